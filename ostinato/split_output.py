"""An output's thinking and answer as a splitter has passed them on so far (the reasoning
formats' splitters: ostinato/reasoning_formats.py, ostinato/harmony.py), kept in pieces: a
long answer is joined once when asked for, not copied again with every piece."""

from __future__ import annotations


class SplitOutput:
    def __init__(self) -> None:
        self._reasoning: list[str] = []  # the thinking so far, in its non-empty pieces
        self._content: list[str] = []  # the answer so far, likewise

    @property
    def reasoning(self) -> str:
        """All the thinking so far."""
        return "".join(self._reasoning)

    @property
    def content(self) -> str:
        """All the answer so far."""
        return "".join(self._content)

    def _passed_on(self, thinking: str, answer: str) -> tuple[str, str]:
        """Keeps what is passed on, and returns it."""
        if thinking:
            self._reasoning.append(thinking)
        if answer:
            self._content.append(answer)
        return thinking, answer
