"""Deterministic synthetic output text for the sim engine (labelled SIMULATED by the server).

The same prompt, seed and sampling parameters always give the same words; the natural
length (when EOS is not ignored) is drawn from the prompt too.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from itertools import chain

from workers.sim.token_ids import pack_range
from workers.sim.tokenizer import IncrementalDetokenizer, tokenize

_WORDS = tuple(
    "the agent considers the request and plans a next step using available tools while "
    "checking facts against retrieved context before it writes a concise answer with cited "
    "sources results look consistent so far further analysis may refine the estimate".split()
)


_SEED_MASK = (1 << 64) - 1


def _seed(prompt_ids: list[int], seed: int) -> int:
    """Seeds are taken modulo 2**64 (a request may carry any uint64; natural_length adds one)."""
    h = hashlib.blake2b(digest_size=8)
    h.update((seed & _SEED_MASK).to_bytes(8, "little", signed=False))
    for tid in prompt_ids[-256:]:
        h.update(tid.to_bytes(8, "little"))
    h.update(len(prompt_ids).to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "little")


def natural_length(prompt_ids: list[int], seed: int, mean: int = 48) -> int:
    """Where the simulated model would emit EOS: between 4 and 2*mean tokens."""
    return 4 + _seed(prompt_ids, seed + 1) % (2 * mean - 4)


def words(prompt_ids: list[int], seed: int) -> Iterator[str]:
    """An endless deterministic stream of word tokens, each with its leading space."""
    state = _seed(prompt_ids, seed)
    first = True
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        word = _WORDS[(state >> 33) % len(_WORDS)]
        yield word if first else " " + word
        first = False


def _word_tokens(prompt_ids: list[int], seed: int) -> Iterator[int]:
    for word in words(prompt_ids, seed):
        yield from tokenize(word)


EOS_TOKEN_ID = 128009  # Llama 3 <|eot_id|>: what SGLang reports as `matched` on EOS


class Decoder:
    """Produces one request's output token by token and decides when it finishes.

    Without a `script` the output is the endless word stream, ended by EOS at the prompt's
    natural length, or at `min_new_tokens` if later; with one (a tool call, a JSON instance:
    what the simulated model has decided to answer) the output is the script's tokens, then
    EOS (a constrained answer is complete there: `min_new_tokens` does not lengthen it).
    A `preamble` (a thinking model's thinking) comes before either.
    Finish reasons are SGLang's: {"type": "stop", "matched": str | int} for a stop
    string or EOS, {"type": "length", "length": n} at max_new_tokens.
    """

    def __init__(
        self,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        stop: tuple[str, ...] = (),
        no_stop_trim: bool = False,
        ignore_eos: bool = False,
        seed: int = 0,
        script: str | None = None,
        min_new_tokens: int = 0,
        preamble: str = "",
    ) -> None:
        thought = tokenize(preamble) if preamble else []
        if script is None:
            self._tokens: Iterator[int] = chain(thought, _word_tokens(prompt_ids, seed))
            self._eos_at = None if ignore_eos else max(
                len(thought) + natural_length(prompt_ids, seed), min_new_tokens)
        else:
            scripted = tokenize(script)
            self._tokens = chain(thought, scripted)
            self._eos_at = None if ignore_eos else max(1, len(thought) + len(scripted))
        self._detok = IncrementalDetokenizer()
        self._max = max(0, max_new_tokens)
        self._stop = tuple(s for s in stop if s)
        self._keep_stop = no_stop_trim
        self.text = ""
        self.output_ids: list[int] = []
        self.completion_tokens = 0
        self.finish_reason: dict[str, object] | None = None
        if self._max == 0:
            self.finish_reason = {"type": "length", "length": 0}

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def step(self) -> str:
        """Generates one token and returns the text it adds (may be empty at a stop string)."""
        if self.finished:
            raise RuntimeError("decoder already finished")
        self.completion_tokens += 1
        token = next(self._tokens, EOS_TOKEN_ID)
        if token == EOS_TOKEN_ID:  # a script ran out (ignore_eos): EOS is all that is left
            self.output_ids.append(token)
            self.finish_reason = {"type": "stop", "matched": EOS_TOKEN_ID}
            return ""
        self.output_ids.append(token)
        piece = self._detok.add(token)
        before = len(self.text)
        candidate = self.text + piece
        for s in self._stop:
            idx = candidate.find(s, max(0, before - len(s)))
            if idx != -1:
                self.text = candidate[:idx + len(s) if self._keep_stop else idx]
                self.finish_reason = {"type": "stop", "matched": s}
                return self.text[before:]
        self.text = candidate
        if self._eos_at is not None and self.completion_tokens >= self._eos_at:
            self.finish_reason = {"type": "stop", "matched": EOS_TOKEN_ID}
        elif self.completion_tokens >= self._max:
            self.finish_reason = {"type": "length", "length": self._max}
        return piece

    def advance(self, steps: int) -> None:
        """Runs up to `steps` steps, stopping early when the output finishes."""
        for _ in range(steps):
            if self.finished:
                return
            self.step()

    def reserve_bound(self) -> int:
        """max_new_tokens minus the output so far: all an engine knows of what is left
        (SGLang reserves KV from it), unlike remaining_upper_bound, which knows the EOS."""
        return max(0, self._max - self.completion_tokens)

    @property
    def ignores_eos(self) -> bool:
        """The request set ignore_eos: SGLang reserves all its max_new_tokens for it."""
        return self._eos_at is None

    def clip_max_new(self, n: int) -> None:
        """max_new_tokens cut to `n` (what the KV pool can ever hold beside its prompt)."""
        self._max = min(self._max, max(0, n))

    def remaining_upper_bound(self) -> int:
        """Tokens left at most (for fast-forwarding decode stretches)."""
        bound = self._max - self.completion_tokens
        if self._eos_at is not None:
            bound = min(bound, self._eos_at - self.completion_tokens)
        return max(0, bound)


class StepCounter:
    """Decode steps an engine has run; decoders following it produce one token a step."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps = 0


class FixedLengthDecoder:
    """An output of exactly `length` tokens with no text, advanced in O(1) per stretch.

    For the cluster simulator, where a workload fixes each call's output length (as with
    SGLang's ignore_eos) and nobody reads the text. Output token ids are consecutive from
    `first_id`: unique per call, so caches match only what the workload shares.

    While it `follow`s an engine's StepCounter, it produces one token per counter step with
    no call per token (the engine stops it at its length); `settle` ends that.
    """

    __slots__ = ("_asked", "_counter", "_done", "_first", "_ids", "_length", "_mark",
                 "_max_new", "finish_reason")
    text = ""

    def __init__(self, length: int, first_id: int, max_new_tokens: int | None = None) -> None:
        """`length`: the output the model writes (the workload's draw, which only the
        simulation knows); `max_new_tokens`: what the client asked for (default: `length`,
        as with ignore_eos), all the engine's KV reservation may go by."""
        self._length = max(0, length)
        self._asked = max_new_tokens is not None
        self._max_new = self._length if max_new_tokens is None else max(self._length,
                                                                       max_new_tokens)
        self._first = first_id
        self._done = 0  # tokens produced before following the counter
        self._counter: StepCounter | None = None
        self._mark = 0  # counter.steps when following began
        self._ids: array[int] | None = None  # the whole output, built once when asked
        self.finish_reason: dict[str, object] | None = None
        if self._length == 0:
            self.finish_reason = {"type": "length", "length": 0}

    @property
    def completion_tokens(self) -> int:
        c = self._counter
        if c is None:
            return self._done
        n = self._done + c.steps - self._mark
        return n if n < self._length else self._length

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def output_ids(self) -> list[int]:
        return list(range(self._first, self._first + self.completion_tokens))

    def output(self) -> array[int]:
        """The whole output it writes (`length` tokens), packed (workers/sim/token_ids.py),
        built once."""
        ids = self._ids
        if ids is None:
            ids = self._ids = pack_range(self._first, self._first + self._length)
        return ids

    def output_key(self) -> array[int]:
        """output_ids packed: the whole output (not copied) once it is all written, else a
        copy of its first completion_tokens."""
        whole, n = self.output(), self.completion_tokens
        return whole if n == len(whole) else whole[:n]

    def follow(self, counter: StepCounter) -> None:
        """From now on, one token per step of `counter` (until `settle`)."""
        self.settle()
        self._counter = counter
        self._mark = counter.steps

    def settle(self) -> int:
        """Stops following the counter; returns the tokens produced while following."""
        c = self._counter
        if c is None:
            return 0
        n = self.completion_tokens - self._done
        self._counter = None
        self.advance(n)  # also sets finish_reason at the length
        return n

    def step(self) -> str:
        self.advance(1)
        return ""

    def advance(self, steps: int) -> None:
        if self._counter is not None:
            self.settle()
        if self.finished:
            return
        done = self._done + steps
        self._done = done if done < self._length else self._length  # min(), inlined
        if self._done >= self._length:
            self.finish_reason = {"type": "length", "length": self._length}

    def remaining_upper_bound(self) -> int:
        """Tokens left exactly (the simulation knows the length; fast-forwarding uses it)."""
        return self._length - self.completion_tokens

    def reserve_bound(self) -> int:
        """max_new_tokens minus the output so far: what the engine knows is left."""
        return self._max_new - self.completion_tokens

    @property
    def ignores_eos(self) -> bool:
        """Made without a client's max_new_tokens: as with ignore_eos, its length is all it
        may write (SGLang reserves all of it); with one, an early EOS is possible."""
        return self._max_new == self._length and not self._asked

    def clip_max_new(self, n: int) -> None:
        """max_new_tokens cut to `n` (what the KV pool can ever hold beside its prompt): the
        output stops there, finished by length."""
        n = max(0, n)
        if self._max_new > n:
            self._max_new = n
            if self._length > n:
                self._length = n
                if n == 0:
                    self.finish_reason = {"type": "length", "length": 0}
