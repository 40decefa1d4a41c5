"""The split choice in the studio: the Train page's Split control, the run history, compare mode, categories."""

from __future__ import annotations

from PySide6.QtCore import Qt

from core.engine import Recommendation
from studio.pages.explore_queries import ExploreQuery, answer_query
from studio.pages.train import TrainPage
from studio.widgets.ranked_list import RankedList
from studio.widgets.timeline_events import held_out_rows
from tests.studio.trained_workspace import open_trained_copy, tiny_config


def _train_page(qtbot, context, engine) -> TrainPage:
    context.set_engine(engine)
    page = TrainPage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.train_button.isEnabled(), timeout=10_000)  # the workspace's setup arrived
    return page


def test_split_control_defaults_to_leave_one_out_and_offers_a_dated_time_split(qtbot, context, tmp_path):
    page = _train_page(qtbot, context, open_trained_copy(tmp_path))
    picker = page.settings.split_picker
    assert picker.kind_box.currentText() == "Leave-one-out" and not picker.cutoff_edit.isVisible()
    assert "Leave-one-out:" in picker.kind_box.toolTip() and "Time split:" in picker.kind_box.toolTip()
    assert picker.choice().kind == "leave-one-out"
    picker.set_kind("time")
    assert picker.cutoff_edit.isVisible() and picker.kind_box.model().item(1).isEnabled()
    assert picker.choice().cutoff_ts == int(page.setup.default_cutoff)  # where the latest 10% of events begin
    runs_before = len(page.engine.runs())
    job = page.start_training(tiny_config("pop"))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    run = max(page.engine.runs(), key=lambda r: r.id)
    assert len(page.engine.runs()) == runs_before + 1 and run.status == "done"
    assert run.split.kind == "time" and run.split.cutoff_ts == picker.choice().cutoff_ts
    assert "time split at" in run.metrics["protocol"]
    qtbot.waitUntil(lambda: page.run_table.rowCount() == runs_before + 1, timeout=5000)
    row = [r.id for r in page.run_table.runs].index(run.id)
    assert page.run_table.item(row, 3).text().startswith(run.split.describe() + " · no hyper-parameters")
    assert page.run_table.item(row, 3).toolTip().startswith(
        f"split = {run.split.describe()}\nevaluated on = new items\nvalidation = sample\n")
    assert page.run_table.item(0, 3).text().startswith("leave-one-out · ")
    assert "Training (time split at" in page.monitor.log.toPlainText()


def test_split_control_offers_the_evaluation_mode_and_the_published_validation(qtbot, context, tmp_path):
    from core.data import EvalMode, Validation

    page = _train_page(qtbot, context, open_trained_copy(tmp_path))
    picker = page.settings.split_picker
    assert (picker.choice().eval_mode, picker.choice().validation) == (EvalMode.NEW, Validation.SAMPLE)
    assert picker.eval_box.currentText() == "New items" and "exclude seen" in picker.eval_box.toolTip()
    assert "published leave-one-out" in picker.validation_box.toolTip()
    picker.eval_box.setCurrentIndex(picker.eval_box.findData("repeat"))
    picker.validation_box.setCurrentIndex(picker.validation_box.findData("all"))
    picker.set_kind("time")
    assert (picker.choice().kind, picker.choice().eval_mode, picker.choice().validation) == (
        "time", EvalMode.REPEAT, Validation.ALL)
    picker.set_kind("leave-one-out")
    job = page.start_training(tiny_config("pop"))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    run = max(page.engine.runs(), key=lambda r: r.id)
    assert (run.split.eval_mode, run.split.validation) == (EvalMode.REPEAT, Validation.ALL)
    assert "repeats allowed" in run.metrics["protocol"]


def test_time_split_is_unavailable_with_the_reason_on_a_log_without_times(qtbot, context, tmp_path):
    engine = open_trained_copy(tmp_path)
    engine.workspace.set_meta("time_kind", "order")
    page = _train_page(qtbot, context, engine)
    time_item = page.settings.split_picker.kind_box.model().item(1)
    assert not time_item.isEnabled() and "no real timestamps" in time_item.toolTip()
    assert page.settings.split_picker.choice().kind == "leave-one-out"


def test_compare_mode_holds_out_the_first_item_after_a_time_splits_cutoff(tmp_path):
    from core.data import SplitChoice

    engine = open_trained_copy(tmp_path)
    try:
        timed = engine.train(tiny_config("pop"), split=SplitChoice("time", test_fraction=0.3)).id
        user = next(row.user for row in engine.users_page(0, engine.user_count(None))
                    if (held := engine.held_out(row.user, timed)) is not None and len(held.before) >= 3
                    and held.before[-1] != held.item)
        held = engine.held_out(user, timed)
        query = ExploreQuery(user, timed, None, 20, 0.0, True, None, True, before_held_out=True)
        answer = answer_query(engine, query)
        assert answer.held_out == held.item and answer.held.split.startswith("time split at")
        assert answer.recommendations == engine.recommend(timed, user, k=20, history=held.before)
        timeline_rows = held_out_rows(answer.sequence, held.item, answer.steps_before_held_out)
        assert answer.steps_before_held_out == len(held.before) and timeline_rows
        assert all(answer.sequence[row].item == held.item for row in timeline_rows)
        loo = next(run.id for run in engine.runs() if run.model == "pop" and run.split.kind == "leave-one-out")
        loo_answer = answer_query(engine, ExploreQuery(user, loo, None, 20, 0.0, True, None, False, True))
        items = [str(item) for item in engine.user_history(user)["item"]]
        assert loo_answer.held_out == [item for i, item in enumerate(items) if item not in items[:i]][-1]  # last new
        assert loo_answer.held.split == "leave-one-out"
    finally:
        engine.workspace.close()


def test_ranked_list_names_every_category_and_the_match_on_one_scale(qtbot):
    ranked = RankedList()
    qtbot.addWidget(ranked)
    ranked.set_recommendations([Recommendation(1, "SKU1", "Kite", ("Outdoor", "Kids"), 0.9, "popular", [], None),
                                Recommendation(2, "SKU2", "Ball", (), 0.5, "popular", [], None, top_share=0.004)])
    assert ranked.table.model().columnCount() == 3  # the category is the swatch beside the title, named in its tooltip
    assert ranked.table.model().index(0, 2).data() == "top 100%" and ranked.table.model().index(1, 2).data() == "top 0.4%"
    assert "Outdoor, Kids" in ranked.table.model().index(0, 1).data(Qt.ItemDataRole.ToolTipRole)
