"""The sim engine core's followers: running requests that follow its decode-step counter.

Without stream events (`stream_events=False`), requests with a FixedLengthDecoder follow the
engine's decode-step counter: a decode iteration costs O(1) plus its finishers, not one call
per running request. `Followers` keeps that bookkeeping for SimEngineCore
(workers/sim/scheduler.py): the counter, the other ("eager") running requests, the
followers' context tokens, a heap of the steps at which followers finish and one of the
steps at which their output reaches the next progress report.
"""

from __future__ import annotations

import heapq
import itertools

from workers.sim.requests import Req
from workers.sim.text import FixedLengthDecoder, StepCounter


class Followers:
    def __init__(self, enabled: bool) -> None:
        self.counter = StepCounter()
        self.enabled = enabled  # False: every running request is eager (stream events)
        self.eager: set[Req] = set()  # running requests advanced one call per iteration
        self._context = 0  # followers' context tokens, less followers * steps
        self._finishes: list[tuple[int, int, Req]] = []  # (step it ends at, join id, req)
        self._joins = itertools.count(1)
        self._progress_every = 0
        self._progress: list[tuple[int, int, Req]] = []  # (step of next report, join id, req)

    def context(self, n: int) -> int:
        """Context tokens of the `n` running requests, when all of them are followers."""
        return self._context + n * self.counter.steps

    def start(self, req: Req) -> None:
        """A request that has its first token joins the decode batch."""
        if self.enabled and type(req.decoder) is FixedLengthDecoder:
            self.follow(req)
        else:
            self.eager.add(req)

    def follow(self, req: Req) -> None:
        d = req.decoder
        assert isinstance(d, FixedLengthDecoder) and req._join is None
        steps = self.counter.steps
        req._join = join = next(self._joins)
        d.follow(self.counter)
        req._lazy_base = len(req.prompt_ids) + d.completion_tokens - steps
        self._context += req._lazy_base
        heapq.heappush(self._finishes, (steps + d.remaining_upper_bound(), join, req))
        if self._progress_every:
            self._push_progress(req)

    def unfollow(self, req: Req) -> None:
        """Settles a follower's output and KV reservation (it had every step's token)."""
        if req._join is None:
            return
        d = req.decoder
        assert isinstance(d, FixedLengthDecoder)
        req.reserved += d.settle()
        self._context -= req._lazy_base
        req._join = None

    def drop(self, req: Req) -> None:
        """The request leaves the decode batch (finished, aborted or retracted)."""
        self.unfollow(req)
        self.eager.discard(req)

    def stepped(self, k: int, running: list[Req]) -> None:
        """After `k` decode steps run one call per running request (each unfollowed first):
        the counter moves on, and the running requests that can follow it follow it again."""
        self.counter.steps += k
        if self.enabled:
            for req in running:
                if req._join is None and req not in self.eager:
                    self.follow(req)

    def min_remaining(self) -> int:
        """Decode steps until the first follower finishes."""
        heap = self._finishes
        while heap:
            end, join, req = heap[0]
            if req._join == join:
                return end - self.counter.steps
            heapq.heappop(heap)
        return 1

    def advance(self, k: int, running: list[Req]) -> list[tuple[int, Req]]:
        """Moves the counter `k` steps (a stretch of followers only); returns the followers
        that reach their length at its last step, each with its place in `running`, in that
        order."""
        counter = self.counter
        counter.steps += k
        finishing: list[Req] = []
        heap = self._finishes
        while heap and heap[0][0] <= counter.steps:
            end, join, req = heapq.heappop(heap)
            if req._join == join:
                assert end == counter.steps, "a follower ran past its length"
                finishing.append(req)
        if not finishing:
            return []
        if len(finishing) == 1:
            return [(running.index(finishing[0]), finishing[0])]
        # running's order is `_ran`'s (it is only appended to): each place found by a scan
        # from the previous one, in C (was a dict of every running request's place)
        finishing.sort(key=_ran)
        out: list[tuple[int, Req]] = []
        i = 0
        for r in finishing:
            i = running.index(r, i)
            out.append((i, r))
        return out

    def take_progress(self, every: int, running: list[Req]) -> list[tuple[str, int]]:
        """SimEngineCore.take_progress: (rid, output tokens) of each running request whose
        output has reached a multiple of `every` since it was last listed, in the order of
        `running`."""
        if every < 1:
            raise ValueError("every must be positive")
        if every != self._progress_every:
            self._progress_every = every
            self._progress = []
            for r in running:
                if r._join is not None:
                    self._push_progress(r)
        steps = self.counter.steps
        due: list[Req] = []
        heap = self._progress
        while heap and heap[0][0] <= steps:
            _, join, r = heapq.heappop(heap)
            if r._join != join:
                continue  # no longer running (or running anew: it has a newer entry)
            if r.decoder.completion_tokens // every > r._reported // every:
                r._reported = r.decoder.completion_tokens
                due.append(r)
            self._push_progress(r)
        for r in self.eager:
            if r.decoder.completion_tokens // every > r._reported // every:
                r._reported = r.decoder.completion_tokens
                due.append(r)
        if len(due) > 1:
            due.sort(key=_ran)  # running's order (it is only appended to), without a pass
        return [(r.rid, r._reported) for r in due]

    def _push_progress(self, req: Req) -> None:
        every = self._progress_every
        n = req.decoder.completion_tokens
        to_go = (req._reported // every + 1) * every - n  # steps to its next report
        if to_go < 0:  # max(0, ...), without the builtin's call
            to_go = 0
        assert req._join is not None
        heapq.heappush(self._progress, (self.counter.steps + to_go, req._join, req))


def _ran(req: Req) -> int:
    return req._ran
