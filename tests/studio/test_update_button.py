"""The Train page's Update model button: offered once the log has grown past the selected run."""

from __future__ import annotations

from core.importing.live import EventFeed
from tests.studio.trained_workspace import train_page  # noqa: F401 (the page fixture)


def grow_the_log(engine, users: int = 40) -> None:
    """Each of ``users`` shoppers takes four items the shop just added, as the service would store them."""
    known = list(engine.sequence_data().user_external[:users])
    EventFeed(engine.workspace, "test").post([{"user": user, "item": f"NEW{(n + step) % 6}"}
                                              for n, user in enumerate(known) for step in range(4)])


def test_update_is_offered_when_the_log_grew_and_makes_a_child_run(qtbot, page):
    engine = page.context.engine
    neural = next(run for run in engine.runs() if run.model == "sasrec")
    page.run_table.select_run(neural.id)
    qtbot.waitUntil(lambda: page.lag is not None and page.lag[0] == neural.id, timeout=5000)
    assert not page.update_button.isEnabled()  # nothing new since it was trained
    grow_the_log(engine)
    page.run_table.select_run(next(run.id for run in engine.runs() if run.id != neural.id))
    page.run_table.select_run(neural.id)
    qtbot.waitUntil(page.update_button.isEnabled, timeout=5000)  # the lag is read in a worker
    assert "160 newer events · 6 new items" in page.update_button.toolTip()
    job = page.update_selected()
    with qtbot.waitSignal(job.finished, timeout=60_000):
        pass
    child = max(engine.runs(), key=lambda run: run.id)
    assert (child.status, child.parent) == ("done", neural.id)
    row = [run.id for run in page.run_table.runs].index(child.id)
    assert page.run_table.item(row, 3).text().startswith(f"update of #{neural.id} (+160 events, +6 items) · ")
    assert "update of" in page.monitor.log.toPlainText()
