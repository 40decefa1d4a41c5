"""A tiny demo workspace with trained runs, built once per test session and copied per test.

Explore, Train and Evaluate need real runs to show: a popularity baseline and a Transformer
trained for a single epoch. Building them once and handing each test a private copy of
the folder keeps the studio tests inside their time budget while none can disturb another.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

from core.demo import DemoConfig

TINY_SHOP = DemoConfig(n_users=150, n_items=100, n_categories=6, mean_events_per_user=12.0, seed=11)
_BUILT: list[Path] = []


def tiny_config(model: str, **overrides):
    """A training config that finishes in seconds on a CPU."""
    from core.training import TrainConfig

    values = dict(model=model, hidden=16, layers=1, heads=1, max_len=20, batch_size=128, epochs=1,
                  patience=1, warmup_steps=5, device="cpu", text=False)
    return TrainConfig(**{**values, **overrides})


def _build() -> Path:
    from core.demo import create_demo_workspace
    from core.engine import Engine

    folder = Path(tempfile.mkdtemp(prefix="nextpick-studio-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    create_demo_workspace(folder / "shop.sqlite", TINY_SHOP).close()
    engine = Engine.open(folder / "shop.sqlite")
    try:
        for model in ("sasrec", "pop"):
            engine.train(tiny_config(model))
        engine.prepare()  # the caches an import in the studio leaves: Explore maps them
    finally:
        engine.workspace.close()
    return folder


def open_trained_copy(tmp_path: Path):
    """An Engine over a private copy of the session's trained tiny workspace."""
    from core.engine import Engine

    if not _BUILT:
        _BUILT.append(_build())
    target = tmp_path / "trained"
    shutil.copytree(_BUILT[0], target)
    return Engine.open(target / "shop.sqlite")


@pytest.fixture(name="page")
def train_page(qtbot, context, tmp_path):
    """The Train page on a private copy of the trained workspace, once its setup and runs have arrived."""
    from studio.pages.train import TrainPage

    context.set_engine(open_trained_copy(tmp_path))
    page = TrainPage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.train_button.isEnabled() and bool(page.run_table.runs), timeout=10_000)
    return page


def wait_for_history(qtbot, page) -> None:
    """Until the page's run history, read in a worker, shows every run as stored now."""
    def stored(runs):
        return [(run.id, run.status) for run in runs]

    qtbot.waitUntil(lambda: stored(page.run_table.runs) == stored(page.context.engine.runs()), timeout=10_000)


@pytest.fixture(name="page")
def explore_page(qtbot, context, tmp_path):
    """The Explore page on a private copy of the trained workspace, once its first user's lists have arrived."""
    from studio.pages.explore import ExplorePage

    context.set_engine(open_trained_copy(tmp_path))
    page = ExplorePage(context)
    qtbot.addWidget(page)
    page.resize(1400, 800)
    page.show()
    qtbot.waitUntil(lambda: page.answer is not None and bool(page.ranked.recommendations), timeout=10_000)
    return page


def wait_for_fresh_answer(qtbot, page) -> None:
    """Until the Explore page has answered the latest query."""
    qtbot.waitUntil(lambda: page.answer is not None and page.answer.query == page.latest, timeout=10_000)
