"""No prompt, no output and no API key in any service's log at the default level: a full
program (an interactive one over gRPC with tools, a declared DAG, and chat completions over
HTTP, streamed and not) runs through a mesh of real processes whose structlog JSON lines
are read back afterwards, looking for distinctive marker strings."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.request
from pathlib import Path

import grpc

from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

KEY = "logkey-SECRET-4f9a1c77"
PROMPT = "PROMPTMARK-zq81"
SYSTEM = "SYSMARK-kx42"
TOOL_RESULT = "TOOLMARK-vb33"


def _http_chat(mesh: Mesh, body: dict) -> bytes:
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                     headers={"Authorization": f"Bearer {KEY}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data
        return data
    finally:
        conn.close()


def _running(engine_url: str) -> float:
    text = urllib.request.urlopen(f"{engine_url}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("sglang:num_running_reqs"))


def _leave_mid_stream(mesh: Mesh) -> None:
    """A streaming client that goes away after its first text: its engine request ends, and
    the gateway's write to the gone client is no error of the gateway's (the review saw an
    ERROR traceback, ClientConnectionResetError, for each)."""
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    body = json.dumps({"messages": [{"role": "user", "content": "a long story"}],
                       "stream": True, "max_tokens": 2000}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     + f"Authorization: Bearer {KEY}\r\n".encode()
                     + b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 60  # (an upper bound: it ends as soon as the write fails)
    while _running(mesh.endpoints.engines[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(mesh.endpoints.engines[0]), "the engine still runs the gone call"


def test_no_prompt_output_or_key_in_any_log(tmp_path: Path) -> None:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "gateway": {"api_keys": {KEY: "hygiene"}, "semantic_cache": False},
        "sim_engine": {"time_scale": 0.1}})
    mesh = Mesh(cfg, ephemeral_ports=True, workdir=str(tmp_path))
    outputs: list[str] = []
    mesh.start()
    try:
        auth = (("authorization", f"Bearer {KEY}"),)
        with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            program = stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=auth,
                                        timeout=30).program_id
            call = common_pb2.CallSpec(messages=[
                common_pb2.Message(role="system", content=SYSTEM),
                common_pb2.Message(role="user", content=f"{PROMPT} look it up"),
                common_pb2.Message(role="assistant", tool_calls=[common_pb2.ToolCall(
                    id="t1", name="lookup", arguments=json.dumps({"q": PROMPT}))]),
                common_pb2.Message(role="tool", tool_call_id="t1", content=TOOL_RESULT)],
                tools=[common_pb2.Tool(name="lookup", parameters_json=json.dumps(
                    {"type": "object", "properties": {"q": {"type": "string"}}}))])
            chunks = list(stub.Call(gateway_pb2.CallRequest(program_id=program, call=call),
                                    metadata=auth, timeout=60))
            outputs.append(chunks[-1].result.text)
            stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program), metadata=auth,
                            timeout=30)
            events = list(stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=[
                gateway_pb2.DagNode(id="a", call=common_pb2.CallSpec(prompt=f"{PROMPT} one")),
                gateway_pb2.DagNode(id="b", depends_on=["a"], call=common_pb2.CallSpec(
                    prompt=f"{PROMPT} two: {{{{a}}}}"))]), metadata=auth, timeout=60))
            outputs += [e.node_finished.result.text for e in events if e.HasField("node_finished")]
        for stream in (False, True):
            data = _http_chat(mesh, {"messages": [{"role": "user", "content": PROMPT}],
                                     "stream": stream, "max_tokens": 12})
            if not stream:
                outputs.append(json.loads(data)["choices"][0]["message"]["content"])
        _leave_mid_stream(mesh)
    finally:
        mesh.close()
    for log in Path(mesh.endpoints.log_dir).glob("*.log"):  # a client gone is no one's error
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "ConnectionResetError" not in text, log.name
    # distinctive pieces of each answer (the sim engine's text), not short common words
    pieces = {w for text in outputs for w in text.split() if len(w) >= 10}
    assert outputs and all(outputs)
    logs = sorted(Path(mesh.endpoints.log_dir).glob("*.log"))
    assert {p.stem for p in logs} >= {"gateway", "planner", "worker-0", "engine-0"}
    lines = [ln for p in logs for ln in p.read_text(errors="replace").splitlines()]
    assert sum(ln.startswith("{") for ln in lines) > 10  # structlog JSON lines were written
    for line in lines:
        for secret in (KEY, PROMPT, SYSTEM, TOOL_RESULT, *pieces):
            assert secret not in line, f"{secret!r} in a log line: {line[:300]}"
