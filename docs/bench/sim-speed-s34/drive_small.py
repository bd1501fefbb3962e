"""Finite run: N programs of `mixed` at rate 24, default policy, 8 engines, after the warm-up;
digest of timelines and outcomes; process_time of the run."""
import hashlib, sys, time
from bench import sweep
from bench.cluster import ClusterSim
from bench.programs import generate
from bench.spec import load_spec
from workers.sim.cost_model import load_profile
n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
warm = int(sys.argv[2]) if len(sys.argv) > 2 else 100
spec = load_spec("mixed")
cfg = sweep.SweepConfig(("default",), (24.0,), 8, "h100-llama3.1-8b", 32, 5.0, 1, warm, (), 100.0, sweep.BARE_DEFAULT)
learned = sweep.warm_up(spec, cfg)
mspec = spec.with_overrides(rate=24.0, programs=n)
pol, cl = sweep._cluster("default", cfg, mspec)
sim = ClusterSim(generate(mspec), pol, load_profile(cfg.profile), cl, learned)
t0 = time.process_time(); run = sim.run(); cpu = time.process_time() - t0
h = hashlib.sha256()
for c in run.calls:
    h.update(repr((c.program, c.call, c.ready, c.dispatched, c.first_token, c.finished, c.worker,
                   c.prompt_tokens, c.cached_tokens, c.output_tokens)).encode())
for o in run.outcomes:
    h.update(repr((o.plan.index, o.finished)).encode())
print(h.hexdigest()[:16], len(run.calls), round(run.simulated_s, 1), "cpu", round(cpu, 2))
