"""Does the window stay responsive? Event-loop stalls during an import and a training run, and
the Explore page's user-switch time, measured on the real main window offscreen.

    python benchmarks/bench_gui.py                         # 100k-user import + explore, 3k-user training
    python benchmarks/bench_gui.py --users 20000 --switches 50 --train-users 1000   # a quick look
    python benchmarks/bench_gui.py --phases train --watchdog stalls.txt  # what the window waited on
    python benchmarks/bench_gui.py --phases big --big /work/sperf1m/big.sqlite  # 1M users: open, list, switches

Goals (issue 4): the longest event-loop stall stays under 50 ms while an import or a training
run works in the background; switching users on the Explore page takes p95 < 100 ms on a
workspace with 100k users.

How (``gui_stalls.py``): a QTimer ticks every 5 ms in the GUI thread; the longest gap between two ticks, minus the
5 ms, is the longest time the window could not answer. The import goes through the import
dialog's worker, the training through the Train page's Train button, each with the Data and
Train pages following the context's signals as they do for a user. A user switch is timed from
``ExplorePage.show_user`` to the moment its answer (sequence, interests, ranked list) has been
painted, on the 100k-user workspace, once with a popularity baseline and once with a Transformer
(one epoch by default) as the active model, then again while the Train page trains another
Transformer in the background.

The ``big`` phase opens a workspace of a million users (``--big``: made once by the demo
generator, 1M users with 5 events each on average, and kept with its popularity run for the
next time) as File > Open does, and prints how long until the window is usable (the Explore
page's user list and its first user's answer shown), the longest stall while it opens, the
user list's scrolling and searching (stalls, and the time a search takes), and user switches.

Import, training and evaluation run in the studio's job process (``core.jobs``), started as the
app starts it, before the first phase; the window's process relays their reports. Each phase
also prints the full (generation 2) garbage collections the window's process made, and the
longest: a collection pauses whichever thread triggers it, the painting one included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from gui_stalls import StallMeter, StallTracer  # noqa: E402 - Qt is imported inside: the job process
# (multiprocessing's spawn) runs this script's top again, and must not load Qt


def wait_until(app, condition, timeout_s: float) -> float:
    """Run the event loop until ``condition()``; returns the seconds it took."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"still waiting after {timeout_s:.0f} s")
        app.processEvents()
        time.sleep(0.0005)
    return time.perf_counter() - started


def settle(app, seconds: float = 0.5) -> None:
    """Run the event loop a moment, as a person looks before clicking: the first paint of a page
    or dialog just shown belongs to showing it, not to the job measured next."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.0005)


def make_window(scratch: Path):
    from PySide6.QtCore import QSettings

    from studio.app import create_application
    from studio.context import StudioContext
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    app = create_application()
    settings = StudioSettings(QSettings(str(scratch / "bench.ini"), QSettings.Format.IniFormat))
    window = MainWindow(StudioContext(), settings)
    window.context.jobs.job_started.connect(
        lambda job: job.errored.connect(lambda exc: print(f"  a job failed: {exc!r}", flush=True)))
    window.resize(1440, 900)
    window.show()
    started = time.perf_counter()
    window.context.jobs.warm_up()  # as the app does once its window shows
    window.context.jobs.server.run(_ready_call(scratch))
    print(f"  the job process was ready {time.perf_counter() - started:.1f} s after it started (engine imported)")
    return app, window


def _ready_call(scratch: Path):
    from core.jobs import JobCall

    return JobCall(_nothing, scratch / "warm-up.sqlite", name="warm-up", text=False)


def _nothing(engine, progress=None, cancel=None) -> None:
    """A first job: the job process has imported the engine once it answers."""


def open_engine(app, window, path: Path):
    """Open ``path`` as a user does (File > Open: a worker loads the engine) and wait for the pages."""
    window.open_workspace(path)
    wait_until(app, lambda: not window.context.jobs.active() and window.context.engine is not None
               and window.context.engine.workspace.path == path.resolve(), 600)
    wait_until(app, lambda: not window.context.jobs.active(), 600)
    return window.context.engine


def bench_import(app, window, folder: Path, n_users: int, meter: StallMeter) -> Path:
    from core.demo import DemoConfig, write_demo_csv

    started = time.perf_counter()
    files = write_demo_csv(folder / "csv", DemoConfig(n_users=n_users))
    print(f"  generated {files.n_events:,} events for {n_users:,} users in {time.perf_counter() - started:.1f} s")
    open_engine(app, window, folder / "big.sqlite")
    dialog = window.open_import_dialog(files.events)
    dialog.set_path("items", files.items)
    dialog.set_path("users", files.users)
    settle(app)
    meter.start()
    job = dialog.start_import()
    seconds = wait_until(app, lambda: not window.context.jobs.active() and not job.running, 3600)
    meter.stop()
    dialog.close()
    print(f"  import of {files.n_events:,} events took {seconds:.1f} s; {meter.summary()}")
    return folder / "big.sqlite"


def bench_training(app, window, folder: Path, n_users: int, epochs: int, meter: StallMeter) -> None:
    from core.demo import DemoConfig, create_demo_workspace

    create_demo_workspace(folder / "train.sqlite", DemoConfig(n_users=n_users)).close()
    open_engine(app, window, folder / "train.sqlite")
    window.show_page("Train")
    train = window.page("Train")
    wait_until(app, lambda: not window.context.jobs.active(), 600)
    train.settings.form.set_config(dataclasses.replace(train.settings.current_config(), model="sasrec", epochs=epochs))
    settle(app)
    meter.start()
    train.train_button.click()
    seconds = wait_until(app, lambda: not window.context.jobs.active(), 3600)
    meter.stop()
    print(f"  training ({epochs} epochs, {n_users:,} users, live curves on) took {seconds:.1f} s; {meter.summary()}")


def bench_explore(app, window, workspace: Path, models: list[str], epochs: int, switches: int, meter: StallMeter) -> None:
    """User switches with each of ``models`` as the active run (neural models trained for ``epochs``)."""
    from core.training import TrainConfig

    engine = open_engine(app, window, workspace)
    users = [row.user for row in engine.users_page(0, engine.user_count(), order_by="user")]
    for model in models:
        started = time.perf_counter()
        run = engine.train(TrainConfig(model=model, epochs=epochs))
        print(f"  {run.model} for {len(users):,} users trained in {time.perf_counter() - started:.1f} s")
        window.context.announce_runs_changed()
        window.context.set_active_run(run.id)
        window.show_page("Explore")
        explore = window.page("Explore")
        wait_until(app, lambda: explore.answer is not None and not window.context.jobs.active(), 600)
        time_switches(app, explore, users, switches, meter, run.model)
    switch_while_training(app, window, users, switches, meter, run.model)


def switch_while_training(app, window, users: list, switches: int, meter: StallMeter, model: str) -> None:
    """User switches while the Train page trains a Transformer, as a person browses during a run:
    each question's worker competes with training's threads for the CPUs."""
    train = window.page("Train")
    stages = []
    job = train.start_training(dataclasses.replace(train.settings.current_config(), model="sasrec", epochs=100))
    job.progress.connect(lambda report: stages.append(report.stage))
    wait_until(app, lambda: "train" in stages, 600)  # past the split and windows: in the epochs
    window.show_page("Explore")
    settle(app)
    time_switches(app, window.page("Explore"), users, switches, meter, f"{model} while a Transformer trains")
    train.stop_training()
    wait_until(app, lambda: not window.context.jobs.active(), 120)


def time_switches(app, explore, users: list, switches: int, meter: StallMeter, model: str,
                  population: Optional[int] = None) -> None:
    """Switch to ``switches`` of ``users`` (drawn from ``population`` users, all of ``users`` by default)."""
    rng = np.random.default_rng(0)
    times = []
    meter.start()
    for user in rng.choice(users, size=switches, replace=False):
        started = time.perf_counter()
        explore.show_user(str(user))
        wait_until(app, lambda u=str(user): explore.answer is not None and explore.answer.query.user == u, 60)
        times.append((time.perf_counter() - started) * 1000)
    meter.stop()
    p50, p95 = statistics.median(times), float(np.percentile(times, 95))
    print(f"  {model}: user switch over {switches} random users of {population or len(users):,}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {max(times):.1f} ms ({'OK' if p95 < 100 else 'ABOVE'} the 100 ms p95 goal); {meter.summary()}")


BIG_SHOP = dict(n_users=1_000_000, mean_events_per_user=5, n_items=20_000)


def bench_big(app, window, path: Path, models: list[str], switches: int, meter: StallMeter) -> None:
    """A million users: opening the workspace, the user list, and switching users."""
    from studio.workspace_opening import engine_class

    engine = _big_workspace(path, models)
    counts = engine.workspace.counts()
    print(f"  {counts['users']:,} users, {counts['events']:,} events")
    if not engine.prepared():  # caches of an older release: the studio would prepare them in its job process
        started = time.perf_counter()
        engine.prepare()
        print(f"  its caches prepared in {time.perf_counter() - started:.1f} s (once; an import prepares them)")
    runs = {run.model: run.id for run in engine.runs() if run.status == "done"}
    engine.workspace.close()
    started = time.perf_counter()
    engine_class()  # what the studio's first workspace loads in a worker, once per session (torch)
    print(f"  the engine's modules loaded in {time.perf_counter() - started:.1f} s (once per studio session, "
          f"not measured below)")
    window.show_page("Explore")
    explore = window.page("Explore")
    meter.start()
    started = time.perf_counter()
    window.open_workspace(path)
    wait_until(app, lambda: window.context.engine is not None and window.context.engine.workspace.path == path.resolve(),
               600)
    opened = time.perf_counter() - started
    wait_until(app, lambda: explore.users.model.rowCount() > 0, 600)
    listed = time.perf_counter() - started
    wait_until(app, lambda: explore.answer is not None and explore.answer.query.run is not None, 600)
    usable = time.perf_counter() - started
    meter.stop()
    print(f"  open: engine in {opened:.1f} s, user list in {listed:.1f} s, first user's answer in {usable:.1f} s "
          f"({'OK' if usable < 5 else 'ABOVE'} the 5 s goal); {meter.summary()}")
    wait_until(app, lambda: not window.context.jobs.active(), 600)  # the open's other reads (item text)
    time_user_list(app, explore.users, meter)
    engine = window.context.engine
    rng = np.random.default_rng(0)
    users = [engine.users_page(int(offset), 1, order_by="user")[0].user
             for offset in rng.choice(engine.user_count(), size=switches, replace=False)]
    for model in models:
        window.context.set_active_run(runs[model])
        settle(app)
        wait_until(app, lambda: explore.answer is not None and explore.answer.query.run == runs[model]
                   and not window.context.jobs.active(), 600)
        time_switches(app, explore, users, switches, meter, model, population=engine.user_count())


def _big_workspace(path: Path, models: list[str]):
    """The million-user demo shop at ``path`` with a finished run of each model: made the first time
    (minutes), reused after. Another workspace already there (``bench_scale.py``'s 25M-event shop) is
    used as it is."""
    from core.demo import DemoConfig, create_demo_workspace
    from core.engine import Engine
    from core.store import Workspace
    from core.training import TrainConfig

    if not path.exists():
        print(f"  making {path} (once; minutes)…", flush=True)
        engine = Engine(create_demo_workspace(path, DemoConfig(**BIG_SHOP)))
    else:
        engine = Engine(Workspace.open(path))
    done = {run.model for run in engine.runs() if run.status == "done"}
    for model in models:
        if model not in done:
            started = time.perf_counter()
            engine.train(TrainConfig(model=model, epochs=1))
            print(f"  trained {model} in {time.perf_counter() - started:.0f} s (once)", flush=True)
    return engine


def time_user_list(app, users, meter: StallMeter, pages: int = 100, searches: tuple = ("12", "123", "4567")) -> None:
    """Scroll the list ``pages`` pages down as the view asks for them, then type searches."""
    from studio.widgets.user_list import SEARCH_DELAY_MS

    model = users.model
    meter.start()
    started = time.perf_counter()
    for _ in range(pages):
        rows = model.rowCount()
        users.table.scrollToBottom()
        wait_until(app, lambda: model.rowCount() > rows, 60)
        settle(app, 0.02)  # a person's next flick of the wheel; the window paints meanwhile
    scrolled = time.perf_counter() - started - pages * 0.02
    meter.stop()
    print(f"  user list: {pages} pages scrolled in {scrolled:.2f} s (pauses between them left out) ({model.rowCount():,} rows held of "
          f"{model.total:,}); {meter.summary()}")
    meter.start()
    times = []
    for text in searches:
        started = time.perf_counter()
        users.search.setText(text)
        wait_until(app, lambda t=text: model.rowCount() > 0
                   and all(t in model.user_at(row) for row in range(min(model.rowCount(), 5))), 60)
        times.append(time.perf_counter() - started)
    meter.stop()
    users.search.clear()
    settle(app, 3 * SEARCH_DELAY_MS / 1000)  # the list reads its first page again and selects its first user
    print(f"  user list search ({', '.join(searches)}; typing pause {SEARCH_DELAY_MS} ms included): "
          + ", ".join(f"{t * 1000:.0f} ms" for t in times) + f"; {meter.summary()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users of the imported (and explored) demo shop")
    parser.add_argument("--train-users", type=int, default=3000, help="users of the demo shop trained on")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--switches", type=int, default=100, help="Explore user switches timed")
    parser.add_argument("--explore-models", default="pop,sasrec",
                        help="comma-separated models, each the active run for one round of user switches")
    parser.add_argument("--explore-epochs", type=int, default=1, help="epochs of the neural models explored")
    parser.add_argument("--watchdog", type=Path, default=None,
                        help=f"write every thread's stack to this file whenever the GUI thread is "
                             f"{StallTracer.LATE_S * 1000:.0f} ms late (finds what causes a stall)")
    parser.add_argument("--phases", default="import,train,explore",
                        help="comma-separated phases to run (explore needs import; big needs --big)")
    parser.add_argument("--big", type=Path, default=None,
                        help="the million-user workspace of the big phase: made there the first time, reused after")
    parser.add_argument("--big-models", default="pop", help="comma-separated models explored on the big workspace")
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))

    import torch

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), Qt platform {os.environ['QT_QPA_PLATFORM']}, "
          f"load average {os.getloadavg()[0]:.1f} (stalls grow when other processes share the CPUs)")
    with tempfile.TemporaryDirectory(prefix="nextpick-bench-gui-") as scratch:
        folder = Path(scratch)
        app, window = make_window(folder)
        watchdog = open(args.watchdog, "w") if args.watchdog else None
        meter = StallMeter(watchdog)
        if "import" in phases or "explore" in phases:
            print("import through the import dialog:")
            big = bench_import(app, window, folder, args.users, meter)
        if "train" in phases:
            print("training through the Train page:")
            bench_training(app, window, folder, args.train_users, args.epochs, meter)
        if "explore" in phases:
            print("Explore page:")
            bench_explore(app, window, big, args.explore_models.split(","), args.explore_epochs, args.switches, meter)
        if "big" in phases:
            print(f"a million users ({args.big}):")
            bench_big(app, window, args.big, args.big_models.split(","), args.switches, meter)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
