"""One progress display over a whole run: training *and* probes, with an honest ETA.

Work is counted in the up-front estimate's seconds (:mod:`.budget`): a training step is worth
its share of the estimated training time, a probed stream its share of the probes' time, so
that the two phases advance one bar at the rate the estimate expects.  The time left starts as
the estimate and moves to the measured pace as work is done, separately for training and for
probes (the estimate can be off by different factors for the two): a phase's pace is
``(seconds spent + c) / (estimated seconds done + c)`` with ``c`` a twentieth of that phase's
estimate, a prior that the estimate is right which the first measurements outweigh.

On a terminal the display is one line rewritten in place; elsewhere (a file, a pipe, CI) it
writes a plain line when the phase changes and every ``every`` seconds, never a carriage
return.  A heartbeat thread keeps it moving through long stretches without a report (a
chunk's probes).  ``--quiet`` turns it off.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO

PRIOR = 0.05            # weight of the up-front estimate, as a share of its total


def clock_text(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """``train_steps`` training steps worth ``train_s`` estimated seconds and ``probe_units``
    probed streams worth ``probe_s``.  Call :meth:`step` per training step, :meth:`probed` per
    stream probed, :meth:`phase` when the work changes, :meth:`close` at the end."""

    def __init__(self, desc: str, train_steps: int, train_s: float, probe_units: int, probe_s: float, *,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 tty: bool | None = None, every: float = 30.0, redraw: float = 0.2,
                 heartbeat: bool = True) -> None:
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock, self.every, self.redraw = clock, every, redraw
        self.chunk(train_steps, train_s, probe_units, probe_s)
        self.work = {"train": train_steps * self.step_s, "probe": probe_units * self.probe_s}   # estimated s
        self.total = max(sum(self.work.values()), 1e-9)
        self.done_by = {"train": 0.0, "probe": 0.0}       # estimated seconds of work done, per phase
        self.spent = {"train": 0.0, "probe": 0.0}         # measured seconds, per phase
        self.start = self._last = clock()
        self._kind = "train"                              # the phase under way (its time since _last is its)
        self.text = ""
        self._shown = -1e30
        self._width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = None
        if heartbeat:
            self._beat = threading.Thread(target=self._heartbeat, name="mmgain-progress", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0 if self.tty else self.every):
            self._show()

    # -- what the run reports
    def chunk(self, steps: int, train_s: float, probe_units: int, probe_s: float) -> None:
        """The next part of the work: ``steps`` training steps worth ``train_s`` estimated
        seconds, ``probe_units`` probes worth ``probe_s`` (steps differ in work from one part
        to the next: a step over 2 rows is not a step over 2,000)."""
        self.step_s = train_s / steps if steps else 0.0
        self.probe_s = probe_s / probe_units if probe_units else 0.0

    def step(self, n: int = 1) -> None:
        self._account("train", n * self.step_s)

    def probed(self, n: int = 1) -> None:
        self._account("probe", n * self.probe_s)

    def _account(self, kind: str, work: float) -> None:
        """The time since the last report went into ``kind``'s work."""
        now = self.clock()
        self.spent[kind] += now - self._last
        self._last, self._kind = now, kind
        self.done_by[kind] += work
        self._show()

    def phase(self, text: str) -> None:
        """Plain-language name of the work now under way ("training 126 models")."""
        if text != self.text:
            self.text = text
            self._show(force=True)

    def stop(self) -> None:
        """End the heartbeat (and, on a terminal, the line) without the final line: the run
        stopped early."""
        self._stop.set()
        if self.tty and self._width:
            with self._lock:
                self.stream.write("\n")
                self._width = 0

    def close(self) -> None:
        self._stop.set()
        elapsed = self.clock() - self.start
        self._write(f"{self.desc}: done in {clock_text(elapsed)} (training {clock_text(self.spent['train'])}, "
                    f"scoring and probes {clock_text(self.spent['probe'])})", final=True)

    # -- what it says
    @property
    def fraction(self) -> float:
        return min(sum(self.done_by.values()) / self.total, 1.0)

    def eta(self) -> float:
        """Seconds left: each phase's remaining estimated work at the pace measured in it so
        far, with the estimate itself as the prior.  Between reports (a chunk's probes report
        once) the phase under way counts down, to no less than zero."""
        left, running = 0.0, self.clock() - self._last
        for kind, work in self.work.items():
            c = PRIOR * work + 1e-9
            pace = (self.spent[kind] + c) / (self.done_by[kind] + c)
            here = max(work - self.done_by[kind], 0.0) * pace
            left += max(here - running, 0.0) if kind == self._kind else here
        return left

    def line(self) -> str:
        elapsed = self.clock() - self.start
        return (f"{self.desc}: {100 * self.fraction:3.0f}% · {self.text} · {clock_text(elapsed)} elapsed, "
                f"about {clock_text(self.eta())} left")

    def _show(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._shown >= (self.redraw if self.tty else self.every) - 1e-6:
            self._shown = now
            self._write(self.line())

    def _write(self, text: str, final: bool = False) -> None:
        with self._lock:
            self._write_unlocked(text, final)

    def _write_unlocked(self, text: str, final: bool) -> None:
        if self.tty:
            pad = " " * max(self._width - len(text), 0)
            self._width = 0 if final else len(text)
            self.stream.write("\r" + text + pad + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
