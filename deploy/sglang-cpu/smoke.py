"""Smoke check of the real SGLang built by deploy/sglang-cpu/build.sh: start it, use it, stop it.

    .cache/sglang-cpu/venv/bin/python deploy/sglang-cpu/smoke.py [OUTDIR] [--port 31000]
        [--kv-port 31557] [--kv-bind] [--grammar-backend NAME] [--any-whitespace] [--json-only]
        [-- MORE LAUNCH_SERVER ARGS]

Starts `OUTDIR/launch` on the tiny model with priority scheduling and ZMQ KV events, waits for
GET /health_generate, then checks over native POST /generate: the prefix cache (cached_tokens
on a repeated ~250-token text, on the same prompt sent as input_ids), cache_salt isolation,
priority, constrained decoding (json_schema, validated with jsonschema), KV events on ZMQ;
measures startup time, RSS of the server's processes and tokens/s. Prints one JSON report and
exits non-zero when a check fails. Run it with the SGLang venv's python (it needs psutil,
jsonschema, pyzmq, msgspec and transformers, which that venv has).

The server gets --constrained-json-disable-any-whitespace unless --any-whitespace is given:
with SGLang's default (any whitespace allowed between JSON tokens) a random-weight model
emits whitespace until max_new_tokens runs out in about 2 of 5 samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "code": {"type": "string", "pattern": "^[a-z]{2,6}$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]},
                 "maxItems": 3},
    },
    "required": ["name", "code", "age"],
    "additionalProperties": False,
}
TEXT = ("The licenses for most software are designed to take away your freedom to share and "
        "change it. By contrast, the GNU General Public License is intended to guarantee your "
        "freedom to share and change free software, to make sure the software is free for all its "
        "users. When we speak of free software, we are referring to freedom, not price. ") * 4


def post(base: str, path: str, body: dict, timeout: float = 300) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def get_status(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def generate(base: str, max_new_tokens: int = 8, **kw) -> dict:
    body = {"sampling_params": {"max_new_tokens": max_new_tokens, "temperature": 0.0,
                                **kw.pop("sampling", {})}, **kw}
    t = time.monotonic()
    out = post(base, "/generate", body)
    out["_latency_s"] = time.monotonic() - t
    return out


class KvListener(threading.Thread):
    """Counts SGLang's KV events (ZMQ PUB, msgpack batches) on the given endpoint.

    SGLang's PUB socket binds a wildcard host (tcp://*:N) and *connects* to a concrete one
    (tcp://127.0.0.1:N) unless the config says "bind": true; the subscriber does the opposite.
    """

    def __init__(self, endpoint: str, topic: str, bind: bool) -> None:
        super().__init__(daemon=True)
        import zmq

        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        if bind:
            self.sock.bind(endpoint)
        else:
            self.sock.connect(endpoint)
        self.batches = 0
        self.kinds: dict[str, int] = {}
        self.stop = False

    def run(self) -> None:
        import msgspec
        import zmq

        while not self.stop:
            try:
                parts = self.sock.recv_multipart()
            except zmq.Again:
                continue
            self.batches += 1
            try:
                batch = msgspec.msgpack.decode(parts[-1])
                events = batch[1] if isinstance(batch, list) else batch.get("events", [])
                for ev in events:  # tagged: ["BlockStored", ...] or {"type": "BlockStored", ...}
                    if isinstance(ev, dict):
                        self.count(str(ev.get("type", "dict")))
                    else:
                        tagged = isinstance(ev, list) and ev and isinstance(ev[0], str)
                        self.count(ev[0] if tagged else type(ev).__name__)
            except Exception as e:
                self.count("undecoded:" + type(e).__name__)

    def count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def tree_rss_mib(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return round(sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20, 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", nargs="?", default=".cache/sglang-cpu")
    ap.add_argument("--port", type=int, default=31000)
    ap.add_argument("--kv-port", type=int, default=31557)
    ap.add_argument("--grammar-backend", default=None)
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--kv-bind", action="store_true", help='"bind": true in the KV events config')
    ap.add_argument("--any-whitespace", action="store_true",
                    help="leave out --constrained-json-disable-any-whitespace")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # more launch_server args
    a = ap.parse_args(argv[:len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    out = Path(a.outdir).resolve()
    base = f"http://127.0.0.1:{a.port}"
    kv = {"publisher": "zmq", "endpoint": f"tcp://127.0.0.1:{a.kv_port}", "topic": "kv"}
    if a.kv_bind:
        kv["bind"] = True
    cmd = [str(out / "launch"), "--model-path", str(out / "model"), "--port", str(a.port),
           "--max-total-tokens", "65536", "--enable-priority-scheduling", "--schedule-policy", "fcfs",
           "--kv-events-config", json.dumps(kv)]
    if a.grammar_backend:
        cmd += ["--grammar-backend", a.grammar_backend]
    if not a.any_whitespace:
        cmd += ["--constrained-json-disable-any-whitespace"]
    cmd += extra
    log = open(out / f"smoke-server-{a.port}.log", "w")  # noqa: SIM115 - the server's, for its life
    report: dict = {"cmd": " ".join(cmd), "checks": {}}
    checks = report["checks"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # Connect-style engine (concrete host, no "bind"): the subscriber binds, before the engine starts.
    listener = KvListener(kv["endpoint"], kv["topic"], bind=not a.kv_bind)
    listener.start()
    try:
        while get_status(base, "/health_generate") != 200:
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                report["error"] = f"server did not come up (rc={proc.poll()}), see {log.name}"
                return finish(report, 1)
            time.sleep(0.5)
        report["startup_s"] = round(time.monotonic() - t0, 1)
        report["rss_mib_idle"] = tree_rss_mib(proc.pid)
        time.sleep(0.5)

        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(out / "model"), local_files_only=True)

        # Constrained decoding: json_schema (a JSON string), validated against the schema. Parsed
        # with strict=False: xgrammar's schema grammars let raw control characters into strings
        # (mlc-ai/xgrammar#286), which a random model emits; strict_json says whether it was clean.
        # A byte-level model can also end a string inside a UTF-8 sequence: the text then holds
        # U+FFFD and can exceed maxLength. Both are the model's bytes, not a lost constraint.
        import jsonschema

        js = []
        for i in range(5):
            r = generate(base, 256, text=f"Person {i}: ", sampling={"json_schema": json.dumps(SCHEMA),
                                                                    "temperature": 1.0, "sampling_seed": i})
            sample = {"text": r["text"][:300], "tokens": r["meta_info"]["completion_tokens"],
                      "finish": (r["meta_info"]["finish_reason"] or {}).get("type")}
            try:
                jsonschema.validate(json.loads(r["text"], strict=False), SCHEMA)
                sample["ok"] = True
            except Exception as e:
                sample.update(ok=False, error=f"{type(e).__name__}: {e}"[:200])
            try:
                json.loads(r["text"])
                sample["strict_json"] = True
            except ValueError:
                sample["strict_json"] = False
            js.append(sample)
        checks["json_schema"] = {"pass": all(x["ok"] for x in js), "valid": sum(x["ok"] for x in js),
                                 "of": len(js), "samples": js}
        if a.json_only:
            return finish(report, 0 if checks["json_schema"]["pass"] else 1)

        # Prefix cache: the same ~250-token text twice, then the same prompt as input_ids.
        r1 = generate(base, text=TEXT)
        r2 = generate(base, text=TEXT)
        ids = tok(TEXT).input_ids
        r3 = generate(base, input_ids=ids)
        m1, m2, m3 = r1["meta_info"], r2["meta_info"], r3["meta_info"]
        checks["prefix_cache"] = {
            "pass": m1["cached_tokens"] < 5 and m2["cached_tokens"] >= m2["prompt_tokens"] - 2
            and m3["cached_tokens"] >= m3["prompt_tokens"] - 2 and m3["prompt_tokens"] == len(ids),
            "prompt_tokens": m1["prompt_tokens"], "first_cached": m1["cached_tokens"],
            "second_cached": m2["cached_tokens"], "input_ids_prompt_tokens": m3["prompt_tokens"],
            "input_ids_cached": m3["cached_tokens"],
            "same_output": r1["output_ids"] == r2["output_ids"] == r3["output_ids"],
        }
        # cache_salt: a salted request shares nothing with unsalted or differently salted ones.
        s1 = generate(base, text=TEXT, cache_salt="tenant-a")["meta_info"]["cached_tokens"]
        s2 = generate(base, text=TEXT, cache_salt="tenant-a")["meta_info"]["cached_tokens"]
        s3 = generate(base, text=TEXT, cache_salt="tenant-b")["meta_info"]["cached_tokens"]
        checks["cache_salt"] = {"pass": s1 == 0 and s2 > 0 and s3 == 0,
                                "salt_a_first": s1, "salt_a_again": s2, "salt_b": s3}
        # Priority scheduling is on: a request with a priority is accepted.
        p = generate(base, text="priority check", priority=5)
        checks["priority"] = {"pass": p["meta_info"]["finish_reason"] is not None}

        # Throughput. Decode, one request; decode, 8 at once; prefill of a ~2000-token prompt.
        d = generate(base, 256, text="Once upon a time", sampling={"ignore_eos": True})
        with ThreadPoolExecutor(8) as ex:
            t = time.monotonic()
            rs = list(ex.map(lambda i: generate(base, 128, text=f"Story {i}: once upon a time",
                                                sampling={"ignore_eos": True}), range(8)))
            batch_s = time.monotonic() - t
        report["rss_mib_loaded"] = tree_rss_mib(proc.pid)
        long_ids = (tok(TEXT).input_ids * 10)[:2000]
        pf = generate(base, 1, input_ids=long_ids, cache_salt=f"prefill-{time.time()}")  # no hits
        report["throughput"] = {
            "decode_1_req_tok_s": round(d["meta_info"]["completion_tokens"] / d["_latency_s"], 1),
            "decode_8_req_tok_s": round(sum(x["meta_info"]["completion_tokens"] for x in rs) / batch_s, 1),
            "prefill_2000_tok_s": round(pf["meta_info"]["prompt_tokens"] / pf["_latency_s"], 1),
            "first_request_latency_s": round(r1["_latency_s"], 3),
        }
        time.sleep(1.0)
        checks["kv_events"] = {"pass": listener.batches > 0, "batches": listener.batches,
                               "events": listener.kinds}
        return finish(report, 0 if all(c["pass"] for c in checks.values()) else 1)
    finally:
        listener.stop = True
        with_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        with_group(proc, signal.SIGKILL)  # the scheduler and detokenizer children too


def with_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def finish(report: dict, rc: int) -> int:
    report["pass"] = rc == 0
    print(json.dumps(report, indent=2))
    return rc


if __name__ == "__main__":
    sys.exit(main())
