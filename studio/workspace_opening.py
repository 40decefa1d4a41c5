"""Opening a workspace for the window: the engine's modules loaded once in a worker, the demo shop
prepared in the job process, and the status bar's figures read off the thread that draws."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from core.jobs import JobCall, JobServer, prepare_demo
from core.store import default_workspace_path

if TYPE_CHECKING:  # core.demo loads the importer: the job process needs it, the window does not
    from core.demo import DemoConfig

DEMO_JOB = "demo shop preparation"


def demo_workspace_path() -> Path:
    """The built-in demo shop lives beside the default workspace in the user's data folder."""
    return default_workspace_path().with_name("demo.sqlite")


_ENGINE_MODULES_FROZEN = False  # ``engine_class`` loaded them and froze them out of the collector's way


def engine_class():
    """``core.engine.Engine``, loaded in the worker that opens a workspace, not before the window shows.

    torch imports ``torch._dynamo`` when a training run builds its first optimizer: about 1 s of
    module loading, parts of which hold the GIL for 200-430 ms (bench_gui.py --watchdog caught
    the window frozen in ``_compile_bytecode`` at the start of a run). Loading it here, while a
    workspace opens, keeps that out of training, where the live curves must keep moving.

    The first time, the garbage collector is paused while the modules load and then they are frozen
    out of its way (``gc.freeze``): they are a quarter of a million objects, and every full
    collection, during the import and for good after it, walked them all while the window waited
    (100-800 ms each; bench_gui.py's big phase, opening a million-user workspace). Whether that was
    done is this module's own flag: ``gc.get_freeze_count()`` counts the frozen objects one by one,
    48 ms under the interpreter lock at every workspace opened. SQLite's dialect is loaded with them
    (SQLAlchemy loads it at the first connection: 32 ms of the first open otherwise).
    """
    global _ENGINE_MODULES_FROZEN
    if not _ENGINE_MODULES_FROZEN:
        gc.disable()
        try:
            import sqlalchemy.dialects.sqlite  # noqa: F401
            import torch._dynamo  # noqa: F401

            import core.engine  # noqa: F401
        finally:
            gc.enable()
        gc.freeze()
        _ENGINE_MODULES_FROZEN = True
    from core.engine import Engine

    return Engine


def open_engine(path: Path):
    return engine_class().open(path)


def prepare_and_open_demo(server: JobServer, path: Path, config: Optional[DemoConfig] = None, progress=None,
                           cancel=None):
    """The demo shop written into ``path`` in the job process (``core.jobs.prepare_demo``; nothing to
    do when it is there already), then opened here as any workspace is."""
    server.run(JobCall(prepare_demo, path, kwargs={"config": config}, text=False, name=DEMO_JOB),
               progress, cancel)
    return open_engine(path)


def read_status(engine) -> tuple[dict[str, int], str, str]:
    """Counts, device, and how far the run that serves lists is behind the log ("" without one)."""
    run = engine.serving_run()
    lag = "" if run is None else f"Run #{run} {engine.run_lag(run).describe()}"
    return engine.workspace.counts(), engine.device_name(), lag
