"""The Explore user list loads lazily, page by page, and searches and sorts in the engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QStyleOptionViewItem

from studio.widgets.user_list import UserList, UserListModel, shared_ending

from tests.studio.trained_workspace import TINY_SHOP, open_trained_copy

PAGE = 50


@pytest.fixture
def engine(tmp_path):
    engine = open_trained_copy(tmp_path)
    yield engine
    engine.workspace.close()


def test_rows_arrive_one_page_at_a_time(qtbot, engine):
    model = UserListModel(engine, page_size=PAGE)
    model.reload()
    assert TINY_SHOP.n_users > 2 * PAGE
    assert model.rowCount() == PAGE and model.total == TINY_SHOP.n_users
    assert model.canFetchMore()
    model.fetchMore()
    assert model.rowCount() == 2 * PAGE
    model.fetchMore()
    assert model.rowCount() == TINY_SHOP.n_users and not model.canFetchMore()
    users = [model.user_at(row) for row in range(model.rowCount())]
    assert len(set(users)) == len(users)


def test_search_filters_by_user_id(qtbot, engine):
    model = UserListModel(engine, page_size=PAGE)
    model.reload()
    wanted = model.user_at(5)
    model.set_search(wanted)
    assert model.total == engine.user_count(wanted) >= 1
    assert all(wanted in model.user_at(row) for row in range(model.rowCount()))
    model.set_search("no user has this id")
    assert model.rowCount() == 0 and model.total == 0


def column_values(model, column):
    attribute = ("user", "events", "last_seen")[column]
    return [getattr(model.row_at(row), attribute) for row in range(model.rowCount())]


def test_sorting_by_activity_and_last_seen(qtbot, engine):
    model = UserListModel(engine, page_size=PAGE)
    model.reload()
    for column in (1, 2):
        model.sort(column, Qt.SortOrder.DescendingOrder)
        values = [value for value in column_values(model, column) if value is not None]
        assert values == sorted(values, reverse=True) and len(values) > PAGE // 2
    model.sort(0, Qt.SortOrder.AscendingOrder)
    assert column_values(model, 0) == sorted(column_values(model, 0))


def test_widget_selects_the_first_user_and_emits_it(qtbot, engine):
    widget = UserList()
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.user_selected, timeout=2000) as selected:
        widget.set_engine(engine)
    assert selected.args == [widget.model.user_at(0)]
    metrics = widget.table.fontMetrics()
    widest_count = f"{engine.users_page(0, 1, order_by='activity')[0].events:,}"  # on whichever page it is
    assert widget.model.most_events == engine.users_page(0, 1, order_by="activity")[0].events
    widget.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by id: the most active user may be on any page
    assert widget.model.user_at(0) == min(column_values(widget.model, 0))
    assert widget.table.columnWidth(1) > metrics.horizontalAdvance(widest_count)
    assert widget.table.columnWidth(2) > metrics.horizontalAdvance(widget.model.index(0, 2).data())
    widget.search.setText(widget.model.user_at(3))
    qtbot.waitUntil(lambda: widget.model.total < TINY_SHOP.n_users, timeout=2000)


def test_long_ids_keep_their_telling_end_and_show_whole_in_a_tooltip(qtbot, engine):
    widget = UserList()
    qtbot.addWidget(widget)
    widget.set_engine(engine)
    user = widget.model.user_at(0)
    assert widget.table.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert widget.model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole) == user


class EmailShop:
    """An engine whose shoppers are known by their e-mail addresses."""

    rows = [SimpleNamespace(user=f"kunde{n}@example.de", events=40 - n, last_seen=1.7e9) for n in range(40)]

    def user_count(self, search=None):
        return len(self.rows)

    def users_page(self, offset, limit, search=None, order_by="activity"):
        return self.rows[offset:offset + limit]

    def time_kind(self):
        return "unix"


def test_ids_that_share_an_ending_show_what_tells_them_apart_when_the_list_is_narrow(qtbot):
    """A shop's e-mail addresses all read "kun…de" in a laptop's user list: the middle that tells
    them apart was what the elision cut. The shared ending goes first."""
    widget = UserList()
    qtbot.addWidget(widget)
    widget.set_engine(EmailShop())
    assert widget.model.shared_ending == "@example.de"
    delegate, index = widget.table.itemDelegateForColumn(0), widget.model.index(36, 0)
    shown = {}
    metrics = widget.table.fontMetrics()
    widths = {"narrow": metrics.horizontalAdvance("kunde36…") + 10, "narrower": metrics.horizontalAdvance("…e36…") + 10,
              "wide": metrics.horizontalAdvance("kunde36@example.de") + 10}
    for name, width in widths.items():
        option = QStyleOptionViewItem()
        option.initFrom(widget.table)
        option.rect = QRect(0, 0, width, 22)
        delegate.initStyleOption(option, index)
        shown[name] = option.text
    assert shown["narrow"] == "kunde36…" and shown["wide"] == "kunde36@example.de"
    assert shown["narrower"].startswith("…") and shown["narrower"].endswith("36…")
    assert index.data() == "kunde36@example.de"  # what is copied, searched and selected stays whole


@pytest.mark.parametrize("ids, ending", [
    (["kunde0@example.de", "kunde36@example.de"], "@example.de"), (["a-DE", "b-DE"], "-DE"),
    (["customer-0012", "customer-0013"], ""), (["user_1", "user_11"], ""), (["@a.de", "b@a.de"], ""),
    (["x@a.de"], "")])
def test_the_shared_ending_starts_at_a_separator_and_leaves_every_id_something(ids, ending):
    assert shared_ending(ids) == ending


def test_background_first_pages_show_only_the_latest_search(qtbot, context, engine):
    model = UserListModel(engine, page_size=PAGE, run_job=context.run)
    model.reload()
    qtbot.waitUntil(lambda: model.rowCount() == PAGE, timeout=5000)
    wanted = model.user_at(7)
    model.set_search(wanted[:-1])
    model.set_search(wanted)
    with qtbot.waitSignal(model.count_changed, timeout=5000) as counted:
        pass
    qtbot.wait(200)  # the superseded search's answer may still arrive: it must not be shown
    assert counted.args == [engine.user_count(wanted)]
    assert model.total == engine.user_count(wanted)
    assert all(wanted in model.user_at(row) for row in range(model.rowCount()))

