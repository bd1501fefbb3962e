"""Debian's headless Chromium loading a trace page offline, and the call elements its script
drew (`make chromium` installs it; without it the tests skip, or fail when CI is set)."""

from __future__ import annotations

import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


class DrawnCalls(HTMLParser):
    """Call elements of a rendered DOM: call id -> (classes, phase kinds under it)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, tuple[list[str], list[str]]] = {}
        self.body: dict[str, str | None] = {}
        self._stack: list[str | None] = []  # the call id each open div belongs to

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag != "div":
            return
        call = a.get("data-call-id") or (self._stack[-1] if self._stack else None)
        if a.get("data-call-id"):
            self.calls[call] = ((a.get("class") or "").split(), [])
        elif call is not None and a.get("data-phase"):
            self.calls[call][1].append(a["data-phase"] or "")
        self._stack.append(call)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._stack:
            self._stack.pop()


def browser_dom(page: Path, tmp: Path) -> str:
    """The DOM after the page's script ran, as Chromium serializes it."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    profile = tmp / "chromium-profile"
    out = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def drawn_calls(page: Path, tmp: Path) -> DrawnCalls:
    dom = DrawnCalls()
    dom.feed(browser_dom(page, tmp))
    return dom
