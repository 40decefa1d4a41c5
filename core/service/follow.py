"""The run a service answers from, and, without ``--run``, following the workspace's serving run.

A shop updates its model (``nextpick update``, a retrain, the studio's Train page) in another
process while the service answers. Between requests the service looks, at most every
``FOLLOW_EVERY_S``, whether anything was committed to the workspace (``ChangeWatch``: SQLite's
data version, microseconds) and only then which run is the serving one. A new one is loaded
into a second engine on a thread of its own (its sequences and bundle: seconds on a large
log) while requests go on being answered from the old one, then takes its place in one
assignment: no request waits for a load and none sees half of a switch.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("nextpick.serve")

FOLLOW_EVERY_S = 0.5  # how often a following service looks for a new serving run, at most


@dataclass(frozen=True)
class Served:
    """What a request answers from: an engine and the run of it served. Swapped whole."""

    engine: object  # core.engine.Engine
    run: int
    model: str  # the run's model name (sasrec, markov...)


class RunFollower:
    """``current()``: the ``Served`` a request uses; with ``follow``, the workspace's serving run as it changes."""

    def __init__(self, engine, run: int, follow: bool, every_s: float = FOLLOW_EVERY_S) -> None:
        self.served = Served(engine, int(run), engine.run(run).model)
        self.follow = follow
        self.every_s = every_s
        self._watch = engine.workspace.change_watch() if follow else None
        self._lock = threading.Lock()
        self._next_look = 0.0
        self._loading = False
        self._look_again = False  # a switch ended: the serving run may have moved on while it loaded
        self._unloadable: set[int] = set()  # runs that failed to load: not tried again on every look

    def current(self) -> Served:
        if self.follow and time.monotonic() >= self._next_look:
            self._look()
        return self.served

    def _look(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next_look or self._loading:
                return
            self._next_look = now + self.every_s
            changed = self._watch.changed() or self._look_again
            self._look_again = False
            if not changed:
                return
            wanted = self.served.engine.serving_run()
            if wanted is None or wanted == self.served.run or wanted in self._unloadable:
                return
            self._loading = True
        threading.Thread(target=self._switch_to, args=(wanted,), name="nextpick-serve-load", daemon=True).start()

    def _switch_to(self, run: int) -> None:
        """Load ``run`` into an engine of its own, on the current data, then serve it."""
        from core.engine import Engine

        old = self.served
        try:
            fresh = Engine(old.engine.workspace, old.engine.text_model.path)
            fresh.prepare_to_serve(run)  # the current sequences and the run's model, loaded before the first request
            self.served = Served(fresh, run, fresh.run(run).model)
            log.info("now serving run #%d (was #%d)", run, old.run)
        except Exception as error:  # a run deleted meanwhile, a bundle that cannot be read: keep serving
            log.warning("run #%d became the serving run but could not be loaded (%s); still serving run #%d",
                        run, error, old.run)
            self._unloadable.add(run)
        finally:
            with self._lock:
                self._loading, self._look_again = False, True

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
