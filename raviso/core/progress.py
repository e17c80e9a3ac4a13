"""Progress of the long row-streaming steps (convert, import, predict, export): a live bar on a
terminal, a plain line every few seconds in a log, nothing when quiet; one summary line at the end
and nothing after a failure, so an error stays the last line."""

from __future__ import annotations

import sys
import threading
import time


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``with Progress("convert gtex_gene", total=n) as p: ... p.advance(rows)``.

    `total` may be None (a streamed TSV whose length is unknown until the end): then there is no
    ETA. `console` (a rich Console) forces the bar; `stream` forces plain lines to that stream;
    `clock` and `interval` exist for tests."""

    def __init__(self, what: str, total: int | None = None, unit: str = "rows",
                 quiet: bool = False, stream=None, console=None, clock=time.monotonic,
                 interval: float = 10.0):
        self.what, self.total, self.unit, self.quiet = what, total, unit, quiet
        self.clock, self.interval = clock, interval
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._lock = threading.Lock()      # convert advances from two writer threads
        self._bar = None
        self._console = console
        self._rich = console is not None or (stream is None and _isatty(sys.stderr))

    def __enter__(self):
        self.t0 = self.last = self.clock()
        if not self.quiet and self._rich:
            self._bar = _rich_bar(self._console)
            self._task = self._bar.add_task(self.what, total=self.total)
            self._bar.start()
        return self

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += int(n)
            if self.quiet:
                return
            if self._bar is not None:
                self._bar.update(self._task, advance=int(n))
                return
            now = self.clock()
            if now - self.last < self.interval:
                return
            self.last = now
            line = self._status(now)
        self._line(line)

    def refresh(self) -> None:
        if self._bar is not None:
            self._bar.refresh()

    def __exit__(self, exc_type, exc, tb):
        if self._bar is not None:
            self._bar.stop()
        if not self.quiet and exc_type is None:
            dt = max(self.clock() - self.t0, 1e-9)
            self._line(f"{self.done:,} {self.unit} in {dt:.1f} s ({self.done / dt:,.0f} "
                       f"{self.unit}/s)")
        return False

    def _status(self, now: float) -> str:
        rate = self.done / max(now - self.t0, 1e-9)
        if self.total:
            left = max(self.total - self.done, 0)
            eta = _eta(left / rate) if rate > 0 else "?"
            return (f"{self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
                    f", {rate:,.0f} {self.unit}/s, ETA {eta}")
        return f"{self.done:,} {self.unit}, {rate:,.0f} {self.unit}/s"

    def _line(self, text: str) -> None:
        if self._console is not None:
            self._console.print(f"raviso: {self.what}: {text}", markup=False, highlight=False)
        else:
            print(f"raviso: {self.what}: {text}", file=self.stream, flush=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich_bar(console):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                               ProgressColumn, TextColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        """Rows per second (rich's own speed column shows bytes)."""

        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("? rows/s" if speed is None else f"{speed:,.0f} rows/s")

    return RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        Rate(), TextColumn("ETA"), TimeRemainingColumn(),
                        console=console or Console(stderr=True), transient=False)
