"""The demo shop: deterministic, well-formed, and carrying structure a sequence model can learn."""

import numpy as np
import pandas as pd
import pytest

from core.demo import AGE_GROUPS, EVENT_TYPES, DemoConfig, write_demo_csv
from core.progress import CancelToken

SMALL = DemoConfig(n_users=1500, n_items=600, seed=11)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    files = write_demo_csv(tmp_path_factory.mktemp("demo"), SMALL)
    events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(files.items, dtype=str)
    users = pd.read_csv(files.users, dtype=str)
    return files, events, items, users


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, demo):
    files = demo[0]
    again = write_demo_csv(tmp_path / "again", SMALL)
    other = write_demo_csv(tmp_path / "other", DemoConfig(n_users=1500, n_items=600, seed=12))
    for name in ("events", "items", "users"):
        assert getattr(again, name).read_bytes() == getattr(files, name).read_bytes()
    assert other.events.read_bytes() != files.events.read_bytes()


def test_files_have_the_documented_columns_and_counts(demo):
    files, events, items, users = demo
    assert list(events.columns) == ["user_id", "item_id", "timestamp", "event_type", "value"]
    assert list(items.columns) == ["item_id", "title", "categories"]
    assert list(users.columns) == ["user_id", "age_group", "gender", "region"]
    assert len(users) == files.n_users == 1500 and users.user_id.is_unique
    assert len(items) == files.n_items == 600 and items.item_id.is_unique
    assert len(events) == files.n_events
    assert 20 <= len(events) / users.user_id.nunique() <= 30  # mean ≈ 25 events per user
    assert set(events.item_id) <= set(items.item_id) and set(events.user_id) <= set(users.user_id)
    assert set(users.age_group) == set(AGE_GROUPS)


def test_events_are_plausible_shop_behaviour(demo):
    _, events, items, _ = demo
    assert set(events.event_type) == set(EVENT_TYPES)
    assert (events.event_type.value_counts(normalize=True)["view"]) > 0.7
    purchases = events.event_type == "purchase"
    assert events.value[purchases].gt(0).all() and events.value[~purchases].isna().all()
    start, end = SMALL.start_unix, SMALL.start_unix + SMALL.months * 30 * 86400
    assert events.timestamp.between(start, end).all()
    per_user = events.groupby("user_id", sort=False)
    assert per_user.size().min() >= 3 and per_user.size().max() > 4 * per_user.size().median()  # long tail
    assert per_user.timestamp.apply(lambda t: t.is_monotonic_increasing and t.is_unique).all()  # no exact repeats
    assert events.timestamp.max() - events.timestamp.min() > 0.8 * (end - start)


def test_items_have_readable_titles_and_category_lists(demo):
    _, _, items, _ = demo
    assert items.title.str.match(r"^[A-Z][\w&.' ]+ \d+( [A-Z][\w ]+)?$").mean() > 0.5
    assert items.title.str.contains(" Vol. ").any()
    categories = items.categories.str.split("|")
    assert categories.str.len().between(1, 2).all() and (categories.str.len() == 2).any()
    assert categories.str[0].nunique() == SMALL.n_categories
    assert "Board games" in set(categories.str[0])


def _split_last(events: pd.DataFrame):
    """Hold out each user's last event; the rest is what a model may learn from."""
    is_last = ~events.user_id.duplicated(keep="last")
    return events[~is_last], events[is_last].set_index("user_id").item_id


def test_previous_item_predicts_the_next_far_better_than_popularity(demo):
    _, events, _, _ = demo
    train, targets = _split_last(events)
    previous = train.groupby("user_id", sort=False).item_id.shift()
    pairs = pd.DataFrame({"prev": previous, "next": train.item_id}).dropna()
    counts = pairs.value_counts().reset_index().sort_values(["prev", "count"], ascending=[True, False])
    successors = counts.groupby("prev").head(10).groupby("prev")["next"].agg(list).to_dict()
    popular = train.item_id.value_counts().index[:10].tolist()
    last_seen = train.groupby("user_id").item_id.last()
    markov_hr = np.mean([t in successors.get(last_seen[u], popular) for u, t in targets.items()])
    popularity_hr = np.mean([t in popular for t in targets])
    assert markov_hr > 2 * popularity_hr and markov_hr - popularity_hr > 0.2, (markov_hr, popularity_hr)


def test_profile_segment_popularity_beats_global_popularity(demo):
    """What makes cold-start by segment worth doing: segments favour different categories."""
    _, events, items, users = demo
    train, targets = _split_last(events)
    segment = users.set_index("user_id").age_group + "/" + users.set_index("user_id").gender
    train = train.assign(segment=train.user_id.map(segment))
    top_by_segment = train.groupby("segment").item_id.agg(lambda s: s.value_counts().index[:10].tolist())
    popular = train.item_id.value_counts().index[:10].tolist()
    segment_hr = np.mean([t in top_by_segment[segment[u]] for u, t in targets.items()])
    popularity_hr = np.mean([t in popular for t in targets])
    assert segment_hr > 1.3 * popularity_hr, (segment_hr, popularity_hr)


def test_some_users_have_a_profile_but_no_events(demo):
    _, events, _, users = demo
    cold = set(users.user_id) - set(events.user_id)
    assert 0 < len(cold) < 0.05 * len(users)


def test_for_events_sizes_the_log(tmp_path):
    files = write_demo_csv(tmp_path, DemoConfig.for_events(20_000, n_items=200, seed=3))
    assert 16_000 < files.n_events < 24_000


def test_cancel_leaves_no_partial_files(tmp_path):
    token = CancelToken()
    token.cancel()
    from core.progress import Cancelled

    with pytest.raises(Cancelled):
        write_demo_csv(tmp_path, SMALL, cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_users_and_events(tmp_path):
    reports = []
    write_demo_csv(tmp_path, DemoConfig(n_users=45_000, n_items=300, mean_events_per_user=3), progress=reports.append)
    assert [r.done for r in reports] == [20_000, 40_000, 45_000]
    assert reports[-1].total == 45_000 and reports[-1].metrics["events"] > 0


@pytest.mark.parametrize("bad", [dict(n_categories=1), dict(n_categories=40), dict(n_items=10), dict(n_users=0)])
def test_impossible_configs_are_refused_with_a_reason(tmp_path, bad):
    with pytest.raises(ValueError, match="must"):
        write_demo_csv(tmp_path, DemoConfig(**bad))


def test_demo_workspace_holds_the_generated_shop(tmp_path, demo):
    import json

    from core.demo import create_demo_workspace
    from core.store import WorkspaceError

    files = demo[0]
    with create_demo_workspace(tmp_path / "demo.sqlite", SMALL) as workspace:
        assert workspace.counts() == {"users": files.n_users, "items": files.n_items, "events": files.n_events}
        assert workspace.get_meta("time_kind") == "unix"
        profile = json.loads(workspace.users_frame().attributes.iloc[0])
        assert set(profile) == {"age_group", "gender", "region"}
        sequence = workspace.user_sequence("U000001")
        assert len(sequence) and sequence.ts.is_monotonic_increasing and sequence.title.notna().all()
    with create_demo_workspace(tmp_path / "demo.sqlite", SMALL) as again:  # the same demo: left as it is
        assert again.counts()["events"] == files.n_events
    with pytest.raises(WorkspaceError, match="already holds"):
        create_demo_workspace(tmp_path / "demo.sqlite", DemoConfig(n_users=1500, n_items=600, seed=12))
