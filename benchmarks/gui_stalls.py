"""How long the GUI thread could not answer, and what held it: ``StallMeter`` (a 5 ms timer's
late ticks) and ``StallTracer`` (every thread's stack while the GUI thread is late), for
``bench_gui.py``."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback

import numpy as np

TICK_MS = 5


class StallTracer:
    """A Python thread that looks every ``TICK_MS`` at when the GUI thread last ticked; while it is
    more than ``LATE_S`` late, it writes every thread's Python stack to ``file``, at most once per
    ``LATE_S``.

    It reads the stacks through ``sys._current_frames`` holding the interpreter lock. The
    benchmark used ``faulthandler.dump_traceback_later``, whose C thread reads every other thread's
    frames while they run: under load it crashed the benchmark twice, with no traceback. The price:
    while a C call holds the interpreter lock this thread waits too, and writes the stacks as it
    gets the lock back, which still names the line that held it (the call just returned there).
    """

    LATE_S = 0.04

    def __init__(self, file) -> None:
        self.file = file
        self.gui_thread = threading.get_ident()
        self._last_tick = self._last_dump = time.perf_counter()
        self._started = 0.0
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """The GUI thread answered now (called by its timer)."""
        self._last_tick = time.perf_counter()

    def start(self) -> None:
        self._started = self._last_tick = time.perf_counter()
        self._running.set()
        self._thread = threading.Thread(target=self._watch, name="stall tracer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        while self._running.is_set():
            time.sleep(TICK_MS / 1000)
            now = time.perf_counter()
            if now - self._last_tick > self.LATE_S and now - self._last_dump > self.LATE_S:
                self._last_dump = now
                self._dump(now)

    def _dump(self, now: float) -> None:
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        lines = [f"--- the GUI thread is {(now - self._last_tick) * 1000:.0f} ms late, "
                 f"{now - self._started:.2f} s into the phase"]
        for ident, frame in sys._current_frames().items():
            if ident == threading.get_ident():
                continue
            role = " (GUI)" if ident == self.gui_thread else ""
            lines.append(f"thread {names.get(ident, ident)}{role}:")
            lines.extend(line.rstrip() for line in traceback.format_stack(frame, limit=12))
        print("\n".join(lines), file=self.file, flush=True)


class StallMeter:
    """The longest gap between ticks of a 5 ms timer in the GUI thread, minus the 5 ms; with a
    ``watchdog`` file, a ``StallTracer`` writes what the threads were doing during each stall."""

    def __init__(self, watchdog=None) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.watchdog = watchdog
        self.tracer = StallTracer(watchdog) if watchdog is not None else None
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0
        self._stolen_at_start = self.stolen_s = 0.0
        self.collections: list[float] = []  # ms of each full garbage collection in this process
        self._collecting_since = 0.0
        self._measuring = False
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if info["generation"] != 2 or not self._measuring:
            return
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:
            self.collections.append((time.perf_counter() - self._collecting_since) * 1000)

    def start(self) -> None:
        self.gaps.clear()
        self.collections.clear()
        self._measuring = True
        self._stolen_at_start = stolen_cpu_s()
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self.timer.start()
        if self.tracer is not None:
            self.tracer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._measuring = False
        self.stolen_s = stolen_cpu_s() - self._stolen_at_start
        if self.tracer is not None:
            self.tracer.stop()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        gap = (now - self._last) / 1e6 - TICK_MS
        self.gaps.append(gap)
        self._last = now
        if self.tracer is not None:
            self.tracer.tick()
            if gap > StallTracer.LATE_S * 1000:
                print(f"=== the stall above lasted {gap:.0f} ms (ended {now / 1e9:.2f} s into the phase)",
                      file=self.watchdog, flush=True)

    def summary(self) -> str:
        gaps = np.array(self.gaps) if self.gaps else np.zeros(1)
        longest_gc = f", longest {max(self.collections):.0f} ms" if self.collections else ""
        return (f"longest stall {gaps.max():6.1f} ms, p99 {np.percentile(gaps, 99):5.1f} ms "
                f"over {len(self.gaps):,} ticks ({'OK' if gaps.max() < 50 else 'ABOVE'} the 50 ms goal; "
                f"{self.stolen_s:.2f} CPU-s stolen by the host; {len(self.collections)} full collections in the "
                f"window's process{longest_gc})")


def stolen_cpu_s() -> float:
    """CPU time the hypervisor gave to other guests so far (Linux /proc/stat; 0 elsewhere): on a
    shared virtual machine, phases that lost time this way show longer stalls through no fault of
    the studio's."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
