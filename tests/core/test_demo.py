"""The demo shop: deterministic, well-formed, and carrying structure a sequence model can learn."""

import numpy as np
import pandas as pd
import pytest

from core.demo import AGE_GROUPS, EVENT_TYPES, N_SEGMENTS, DemoConfig, build_catalogue, write_demo_csv
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
    assert list(items.columns) == ["item_id", "title", "categories", "brand"]
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
    assert items.title.str.contains(" Part ").any() and items.title.str.contains(" Level ").any()
    assert items.title.str.endswith(" Edition").any()
    categories = items.categories.str.split("|")
    assert categories.str.len().between(1, 2).all() and (categories.str.len() == 2).any()
    assert categories.str[0].nunique() == SMALL.n_categories
    assert "Board games" in set(categories.str[0])
    assert items.brand.notna().all() and 5 < items.brand.nunique() < 20


def _catalogue(config: DemoConfig):
    return build_catalogue(config.n_items, config.n_categories, N_SEGMENTS, config.seed, config.start_unix,
                           config.span_s)


def _item_index(item_ids: pd.Series) -> np.ndarray:
    return item_ids.str[3:].astype(int).to_numpy() - 1  # SKU00042 -> 41


def test_line_pieces_are_named_in_order_and_new_editions_share_their_products_words(demo):
    _, _, items, _ = demo
    cat = _catalogue(SMALL)
    titles, brands = items.title.to_numpy(), items.brand.to_numpy()
    linked = np.flatnonzero(cat.line_next >= 0)
    assert len(linked) > 50
    for a, b in zip(linked, cat.line_next[linked]):
        name_a, number_a = titles[a].rsplit(" ", 1)
        name_b, number_b = titles[b].rsplit(" ", 1)
        assert name_a == name_b and int(number_b) == int(number_a) + 1 and brands[a] == brands[b]
    editions = np.flatnonzero(items.title.str.endswith(" Edition"))
    for e in editions:
        base = titles[e].rsplit(" ", 2)[0]
        assert base in set(titles) and brands[list(titles).index(base)] == brands[e]
        assert items.categories[list(titles).index(base)].split("|")[0] == items.categories[e].split("|")[0]


def test_no_item_is_taken_before_it_is_released_and_the_catalogue_grows_during_the_log(demo):
    _, events, _, _ = demo
    cat = _catalogue(SMALL)
    released = cat.released[_item_index(events.item_id)]
    assert (events.timestamp >= released).all()
    first_seen = events.groupby("item_id").timestamp.min()
    late = cat.released[_item_index(first_seen.index.to_series())] > SMALL.start_unix
    assert late.sum() > 0.05 * SMALL.n_items  # new editions and new line pieces, taken after their release
    span = SMALL.start_unix + np.array([0.5, 1.0]) * SMALL.span_s
    assert first_seen[late].between(*span).sum() > 10  # some arrive in the log's last months


def test_the_next_piece_of_a_line_comes_sessions_after_the_last_one(demo):
    """What makes the whole sequence worth reading: a collector comes back for the next piece of a
    line long after buying the previous one, with other browsing in between, so the last few
    events do not tell what comes next."""
    _, events, _, _ = demo
    cat = _catalogue(SMALL)
    item = _item_index(events.item_id)
    purchases = events.assign(item=item, position=events.groupby("user_id").cumcount())[events.event_type == "purchase"]
    bought_at = {(u, i): p for u, i, p in zip(purchases.user_id, purchases.item, purchases.position)}
    previous = {b: a for a, b in enumerate(cat.line_next) if b >= 0}
    gaps = [p - bought_at[(u, previous[i])] for u, i, p in zip(purchases.user_id, purchases.item, purchases.position)
            if i in previous and (u, previous[i]) in bought_at]
    assert len(gaps) > 200
    assert np.median(gaps) > 8 and np.mean(np.array(gaps) <= 2) < 0.1, np.percentile(gaps, [10, 50, 90])


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


def test_a_time_split_of_the_default_demo_tests_hundreds_of_events_on_items_new_since_the_cut(tmp_path):
    """The item-text model's case: items released during the log, tested after a time split's cut."""
    import json

    from core.data import SplitChoice, SplitKind, sequences_from_arrays
    from core.runs.new_items import known_items

    files = write_demo_csv(tmp_path, DemoConfig())
    events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(files.items, dtype={"item_id": str})
    users = pd.read_csv(files.users, dtype={"user_id": str})
    item_frame = pd.DataFrame({"id": np.arange(1, len(items) + 1), "external_id": items.item_id, "title": items.title,
                               "categories": items.categories})
    user_frame = pd.DataFrame({"id": np.arange(1, len(users) + 1), "external_id": users.user_id,
                               "attributes": [json.dumps(a) for a in users.drop(columns="user_id").to_dict("records")]})
    data = sequences_from_arrays(events.user_id.str[1:].astype(int).to_numpy(), _item_index(events.item_id) + 1,
                                 events.timestamp.to_numpy(np.float64), item_frame, user_frame)
    split = SplitChoice(kind=SplitKind.TIME).resolve(data, "unix").split(data)
    new = ~known_items(split, data.n_items)[split.test.targets]
    assert len(split.test.targets) > 600 and new.sum() >= 100, (len(split.test.targets), new.sum())
    assert len(np.unique(split.test.targets[new])) >= 10  # several new items, not one best seller


def _views_by_week_since(events: pd.DataFrame, items: np.ndarray, start: np.ndarray, weeks: int) -> np.ndarray:
    """Views of ``items`` in week 0, 1, ... after each one's ``start`` (aligned with ``items``), summed."""
    views = events[events.event_type == "view"]
    at = pd.Series(np.arange(len(items)), index=items).reindex(_item_index(views.item_id)).to_numpy()
    taken = ~np.isnan(at)
    week = (views.timestamp.to_numpy()[taken] - start[at[taken].astype(int)]) // (7 * 86400)
    return np.bincount(week[(week >= 0) & (week < weeks)].astype(int), minlength=weeks)


def test_new_items_launch_all_through_the_period_named_after_older_ones_with_a_spike_of_attention_that_fades(demo):
    """As in a real shop: a new edition or the next piece of a line comes out every few days, its
    title and brand those of an item on sale before it, and it is looked at most in the days after
    its launch."""
    _, events, items, _ = demo
    cat = _catalogue(SMALL)
    titles, brands = items.title.to_numpy(), items.brand.to_numpy()
    launched = np.flatnonzero(cat.released > SMALL.start_unix)
    month = (cat.released[launched] - SMALL.start_unix) // (30 * 86400)
    assert np.bincount(month.astype(int), minlength=SMALL.months).min() >= 5, np.bincount(month.astype(int))
    for item in launched:
        older = [j for j in np.flatnonzero(cat.released < cat.released[item])
                 if brands[j] == brands[item] and titles[item].startswith(titles[j].rsplit(" ", 1)[0] + " ")]
        assert older, titles[item]
    in_time = launched[cat.released[launched] < SMALL.start_unix + SMALL.span_s - 28 * 86400]
    weekly = _views_by_week_since(events, in_time, cat.released[in_time], 4)
    assert weekly[0] > 1.3 * weekly[1] > 1.3 * 1.3 * weekly[2] and weekly[0] > 3 * weekly[3], weekly


def test_older_products_have_trends_and_categories_their_seasons(demo):
    """What a model trained a month ago cannot know: which older products are in a trend now, and
    which categories are in season."""
    _, events, _, _ = demo
    cat = _catalogue(SMALL)
    old = cat.released[cat.buzz_by_category] <= SMALL.start_unix
    trending, start = cat.buzz_by_category[old], cat.buzz_keys[old] % cat.KEY_SPAN
    assert len(trending) >= 10
    inside = (start > SMALL.start_unix + 28 * 86400) & (start < SMALL.start_unix + SMALL.span_s - 7 * 86400)
    during = _views_by_week_since(events, trending[inside], start[inside], 1)[0]
    weeks_before = _views_by_week_since(events, trending[inside], start[inside] - 28 * 86400, 4)
    assert during > 2 * weeks_before.mean(), (during, weeks_before)
    month = (events.timestamp - SMALL.start_unix) // (30 * 86400)
    share = pd.crosstab(month, cat.category[_item_index(events.item_id)], normalize="index")
    assert (share.max() / share.min()).max() > 1.8, share.round(3)
