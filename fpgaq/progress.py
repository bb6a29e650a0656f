"""Progress on the terminal for the steps that take seconds (a C++ compile, a Verilator build,
an RTL simulation, yosys, a slow build): a spinner with the step's name, a count where there is
one, and the time so far, on stderr.

Shown only where a person watches: stderr is a terminal, `CI` is not set and `TERM` is not
`dumb`; never on stdout, so `--json | jq` and pipes see nothing of it. FPGAQ_PROGRESS=0 turns it
off, FPGAQ_PROGRESS=1 on even without a terminal (tests). A step that ends within DELAY_S shows
nothing, and the display leaves no trace when it ends (the command prints its own summary).
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ENV = "FPGAQ_PROGRESS"
DELAY_S = 0.3            # a step shorter than this shows nothing
POLL_S = 0.25

_lock = threading.RLock()
_display: Any = None      # the rich Progress while something is shown
_shown = 0                # steps on it


def enabled() -> bool:
    """Whether progress is shown: FPGAQ_PROGRESS=1/0 decides, else stderr must be a terminal
    outside CI."""
    flag = os.environ.get(ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on", "always"):
        return True
    if flag in ("0", "false", "no", "off", "never"):
        return False
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):        # no stderr, or a closed one
        return False


class Step:
    """One step in progress. `update` changes its detail or its count (done of total)."""

    def __init__(self, name: str, total: int | None, unit: str):
        self.name, self.total, self.unit = name, total, unit
        self.done = 0
        self.detail = ""
        self.task: Any = None            # its row on the display, once shown
        self.closed = False

    def update(self, done: int | None = None, total: int | None = None, detail: str | None = None) -> None:
        with _lock:
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if detail is not None:
                self.detail = detail
            if self.task is not None and _display is not None:
                _display.update(self.task, description=self.description(), completed=self.done,
                                total=self.total, count=self.count())

    def description(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name

    def count(self) -> str:
        return f"{self.done:,}/{self.total:,} {self.unit}".rstrip() if self.total else ""


def _new_display() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Column
    from rich.text import Text

    class CountBar(BarColumn):
        """A bar only for a step with a count (the spinner says the others are alive)."""
        def render(self, task):
            return super().render(task) if task.total is not None else Text("")

    console = Console(file=sys.stderr, force_terminal=True, force_interactive=True, highlight=False)
    # stdout is never redirected through the display: it may carry JSON
    return Progress(SpinnerColumn(), TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                    CountBar(bar_width=20), TextColumn("{task.fields[count]}", table_column=Column(no_wrap=True)),
                    TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)), console=console, transient=True,
                    redirect_stdout=False, redirect_stderr=False, expand=True)


def _show(s: Step) -> None:
    global _display, _shown
    with _lock:
        if s.task is not None or s.closed:
            return
        if _display is None:
            _display = _new_display()
            _display.start()
        s.task = _display.add_task(s.description(), total=s.total, completed=s.done, count=s.count())
        _shown += 1


def _hide(s: Step) -> None:
    global _display, _shown
    with _lock:
        if s.task is None or _display is None:
            return
        _display.remove_task(s.task)
        s.task = None
        _shown -= 1
        if _shown == 0:
            _display.stop()
            _display = None


@contextmanager
def step(name: str, total: int | None = None, unit: str = "") -> Iterator[Step]:
    """Show `name` with a spinner and the elapsed time while the block runs (where progress is
    enabled, and only once it has run DELAY_S); `total` adds a count of `unit` done."""
    s = Step(name, total, unit)
    if not enabled():
        yield s
        return
    timer = threading.Timer(DELAY_S, _show, (s,))
    timer.daemon = True
    timer.start()
    try:
        yield s
    finally:
        timer.cancel()
        with _lock:
            s.closed = True
            _hide(s)


@contextmanager
def polling(s: Step, read: Callable[[], int | None], every: float = POLL_S) -> Iterator[None]:
    """While the block runs, set the step's count from `read()` (None: unknown yet) every
    `every` seconds, in a thread: for work in another process that writes how far it got."""
    if not enabled():
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            try:
                done = read()
            except (OSError, ValueError):
                done = None
            if done is not None:
                s.update(done=done)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
