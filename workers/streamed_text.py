"""What a streamed answer may send so far, so that no text it sent is ever taken back.

SGLang's /generate stream carries the whole text so far in each event (or, launched with
--incremental-streaming-output, each event's new text only: `piece`) and, when the answer
ends at a stop string, drops that string from the last event's text. Text that may still
turn into a stop string (an end of the text that begins one) is therefore held back until
more text shows it does not, or the answer ends. Before this, a stop string split across
tokens ("request c" after " request") made the last event's text shorter than what had
been sent, and the whole text was sent again (the review saw "considers requestconsiders ").

Held text cannot always be told from the text alone to be the answer's or the stop's: with
stop "END", sent "xE" then an empty last piece is "xE" ending at a stop ("xE" + "END") or
"x" ending at one ("x" + "E" "ND"). So the worker streams with SGLang's `no_stop_trim`
where it can (`untrimmed_stop`): the last event keeps the stop string, and the answer ends
where the stop string begins, as SGLang's own trim finds it. Without (special tokens kept:
an EOS token's text would stay too), the trimmed last piece is taken whole: SGLang sends no
event while its text may begin a stop string (check_match_stop_str_prefix), so nothing it
sent is the stop's (the sim engine holds its events back the same way).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)


class StreamedText:
    def __init__(self, stops: Iterable[str] = (), untrimmed: bool = False) -> None:
        self._stops = tuple(s for s in stops if s)
        self._untrimmed = untrimmed  # the last event keeps the stop string: cut it here
        self.sent = ""  # (cumulative events: `delta`)
        self._held = ""  # (incremental events: `piece`)

    def held(self, text: str) -> int:
        """How many characters at the end of `text` begin a stop string (fewer than all
        of it: a whole one ends the answer, and the engine drops it)."""
        longest = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def piece(self, piece: str, finished: bool, matched: str | None = None) -> str:
        """The new text to send, given the engine's next piece of text (SGLang's
        --incremental-streaming-output): what was held back, the piece, less what may now
        begin a stop string. Costs the piece's length, not the answer's. At the end, an
        untrimmed last piece is cut where the matched stop string begins."""
        pending = self._held + piece
        if finished:
            self._held = ""
            # trimmed, the last piece is the answer's: SGLang sends nothing while its text
            # may begin a stop string (its check_match_stop_str_prefix), so what it sent
            # before the stop string is the answer's
            return _before(pending, matched) if self._untrimmed else pending
        keep = self.held(pending) if self._stops else 0
        out, self._held = pending[:len(pending) - keep], pending[len(pending) - keep:]
        return out

    def delta(self, text: str, finished: bool, matched: str | None = None) -> str:
        """The new text to send, given the engine's whole text so far."""
        if finished and self._untrimmed:
            text = _before(text, matched)
        ready = text if finished or not self._stops else text[:len(text) - self.held(text)]
        if ready.startswith(self.sent):
            new, self.sent = ready[len(self.sent):], ready
            return new
        if len(ready) < len(self.sent) and self.sent.startswith(ready):
            return ""  # (held back: the text ends in what may begin a stop string)
        # The engine's text does not extend what was sent: sent text cannot be taken back,
        # so the answer stays as sent (not sent twice).
        log.warning("engine text does not extend the text streamed", sent=len(self.sent),
                    text=len(text))
        return ""


def _before(text: str, matched: str | None) -> str:
    """The text up to the stop string the engine matched (SGLang's trim: the first one)."""
    at = text.find(matched) if matched else -1
    return text if at < 0 else text[:at]


def untrimmed_stop(sampling_params: dict[str, object]) -> bool:
    """Whether a stream is asked to keep the stop string it ends at (SGLang's no_stop_trim):
    where it has stop strings, unless special tokens are kept (the untrimmed end would keep
    an EOS token's text too)."""
    return bool(stop_strings(sampling_params)) and sampling_params.get(
        "skip_special_tokens", True) is not False


def stop_strings(sampling_params: dict[str, object]) -> tuple[str, ...]:
    """The request's stop strings (SGLang takes one string or a list)."""
    stop = sampling_params.get("stop")
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list | tuple):
        return tuple(s for s in stop if isinstance(s, str))
    return ()
