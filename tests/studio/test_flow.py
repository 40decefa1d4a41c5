"""The whole flow through the window, as a shop analyst meets it.

Import a demo shop through the import dialog → train a tiny model on the Train page → Explore
shows a user's sequence, predicted interests and ranked list → a what-if changes the list →
Export writes a valid CSV in which titles a spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

FORMULA = "=HYPERLINK(\"http://x\")"


@pytest.fixture
def shop_files(demo_csv, tmp_path):
    """The demo shop with every other item title turned into a spreadsheet formula."""
    items = tmp_path / "items.csv"
    with open(demo_csv.items, newline="") as source, open(items, "w", newline="") as target:
        rows = list(csv.reader(source))
        for number, row in enumerate(rows[1:]):
            if number % 2 == 0:
                row[1] = f"{FORMULA} {row[1]}"
        csv.writer(target).writerows(rows)
    return Path(demo_csv.events), items, Path(demo_csv.users)


def test_import_train_explore_what_if_export(qtbot, wait_idle, window, engine, shop_files, tmp_path):
    context = window.context
    context.set_engine(engine)
    wait_idle(context)

    # Import through the dialog's worker.
    events, items, users = shop_files
    dialog = window.open_import_dialog(events)
    dialog.set_path("items", items)
    dialog.set_path("users", users)
    with qtbot.waitSignal(dialog.start_import().returned, timeout=60_000):
        pass
    dialog.close()
    wait_idle(context)
    assert window.status.size_label.text().startswith("200 users · 96 items")

    # Train a tiny GRU by clicking Train on the Train page.
    window.show_page("Train")
    train = window.page("Train")
    wait_idle(context)
    train.settings.model_box.setCurrentIndex(train.settings.model_box.findData("gru"))
    wait_idle(context)
    settings = train.settings
    settings.form.set_config(dataclasses.replace(settings.current_config(), hidden=16, layers=1, epochs=2, max_len=20))
    train.train_button.click()
    with qtbot.waitSignal(train.job.returned, timeout=300_000) as trained:
        pass
    run = trained.args[0]
    assert run.status == "done" and run.model == "gru"
    wait_idle(context)
    if run.beats_popularity is False:  # a run worse than popularity is never made active by itself
        assert engine.active_run() is None
        train.run_table.select_run(run.id)
        train.active_button.click()  # the person may still choose it
        qtbot.waitUntil(lambda: engine.active_run() == run.id, timeout=5000)  # stored by a worker
    assert engine.active_run() == run.id

    # Explore: the first user's sequence, interests and ranked list, with reasons.
    window.show_page("Explore")
    explore = window.page("Explore")
    qtbot.waitUntil(lambda: explore.answer is not None and bool(explore.ranked.recommendations), timeout=60_000)
    wait_idle(context)
    user = explore.user
    assert explore.sequence and len(explore.sequence) == len(engine.user_history(user))
    assert explore.interest_bars.interests and abs(sum(i.probability for i in explore.interest_bars.interests) - 1) < 1e-3
    before = [rec.item for rec in explore.ranked.recommendations]
    assert len(before) == 10 and all(rec.reason for rec in explore.ranked.recommendations)

    # What-if: the user takes three items of a category they never touched.
    seen = {event.category for event in explore.sequence}
    data = engine.sequence_data()
    fresh = [i for i in range(1, len(data.item_external)) if data.category_names[data.item_category[i]] not in seen]
    for index in fresh[:3]:
        explore.what_if.search.setText(str(data.item_title[index]))
        explore.what_if.add_button.click()
    qtbot.waitUntil(lambda: explore.answer.query.history is not None and len(explore.answer.query.history) ==
                    len(explore.sequence) + 3, timeout=30_000)
    after = [rec.item for rec in explore.ranked.recommendations]
    assert after != before

    # Export recommendations for two users.
    export = window.open_export_dialog()
    from studio.widgets.run_table import run_label

    names = [export.run_combo.itemText(i) for i in range(export.run_combo.count())]
    assert all(any(name.startswith(run_label(run)) for run in window.context.engine.runs()) for name in names)
    target = tmp_path / "recs.csv"
    export.some_radio.setChecked(True)
    export.users_edit.setText(f"{user}, U000002")
    export.path_edit.setText(str(target))
    with qtbot.waitSignal(export.start_export().returned, timeout=60_000) as written:
        pass
    export.close()
    assert written.args[0].rows == 20 and written.args[0].users == 2
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {row["user"] for row in rows} == {user, "U000002"}
    assert [int(row["rank"]) for row in rows[:10]] == list(range(1, 11))
    assert [row["item"] for row in rows[:10]] == [rec.item for rec in engine.recommend(run.id, user, k=10)]
    formulas = [row["title"] for row in rows if FORMULA in row["title"]]
    assert formulas and all(title.startswith("'=") for title in formulas)
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for key, value in row.items() if key != "score")
