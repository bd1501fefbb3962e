"""The worker's SGLang client on an engine launched with --incremental-streaming-output
(`make test-engine`): each streamed event carries its new text and logprobs only; the
client learns so from /get_server_info, and a streamed answer is the engine's unstreamed
one, word for word, logprobs and a stop string split across tokens included."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.engine.conftest import engine
from workers.sglang_client import EngineRequest, SGLangClient

pytestmark = pytest.mark.engine

PROMPT = "The history of the harbour town begins"


async def _streamed(client: SGLangClient, params: dict, top: int | None = None) -> tuple:
    outs = [o async for o in client.generate(EngineRequest(
        rid=uuid.uuid4().hex, text=PROMPT, sampling_params=params, top_logprobs_num=top))]
    return "".join(o.delta for o in outs), outs[-1], len(outs)


async def test_an_incremental_stream_is_the_unstreamed_answer(engine_build: Path,
                                                               tmp_path: Path) -> None:
    async with engine(str(engine_build / "launch"), str(engine_build / "model"), tmp_path,
                      "incremental", "--max-total-tokens 8192 --max-running-requests 2 "
                      "--incremental-streaming-output") as client:
        assert (await client.server_info())["incremental_streaming_output"]
        assert client.incremental
        params = {"max_new_tokens": 24, "temperature": 0, "ignore_eos": True}
        whole = await client.generate_once(EngineRequest(
            rid=uuid.uuid4().hex, text=PROMPT, sampling_params=params, top_logprobs_num=2))
        text, last, events = await _streamed(client, params, top=2)
        assert events > 3 and text == last.text == whole.text  # one event a token or so
        assert [e[1] for e in last.token_logprobs] == [e[1] for e in whole.token_logprobs]
        assert len(last.top_logprobs) == len(whole.top_logprobs) == 24
        # a stop string that starts inside one token and ends in a later one
        start = len(whole.text) // 3
        stop = whole.text[start:start + 6]
        stopped = (await client.generate_once(EngineRequest(
            rid=uuid.uuid4().hex, text=PROMPT, sampling_params={**params, "stop": [stop]}))).text
        text, last, _ = await _streamed(client, {**params, "stop": [stop]})
        assert last.finish_reason == "stop" and stop not in text
        assert text == last.text == stopped == whole.text[:whole.text.index(stop)]
        # special tokens kept: no no_stop_trim (workers/streamed_text.py), the trimmed last
        # piece taken whole, as SGLang sends nothing while its text may begin the stop
        kept = {**params, "stop": [stop], "skip_special_tokens": False}
        text, last, _ = await _streamed(client, kept)
        assert text == last.text == stopped
