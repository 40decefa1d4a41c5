import numpy as np
import pytest

from core.data import (
    EvalMode, SplitChoice, SplitError, SplitKind, Validation, leave_one_out, sequences_from_arrays, time_split,
)
from core.data.splits import VALIDATION_USERS, new_item_events, sample_validation


def _data():
    # user 0: items 1..5 at ts 0..4; user 1: 2 events; user 2: items 6,7,8 at ts 10..12
    users = np.array([0] * 5 + [1] * 2 + [2] * 3)
    items = np.array([1, 2, 3, 4, 5, 1, 2, 6, 7, 8])
    ts = np.array([0, 1, 2, 3, 4, 0, 5, 10, 11, 12], dtype=float)
    return sequences_from_arrays(users, items, ts)


def test_leave_one_out_holds_out_last_two_events():
    split = leave_one_out(_data())
    assert [t.tolist() for t in split.train] == [[1, 2, 3], [1, 2], [6]]
    assert split.valid.user_index.tolist() == [0, 2]
    assert [h.tolist() for h in split.valid.histories] == [[1, 2, 3], [6]]
    assert split.valid.targets.tolist() == [4, 7]
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3, 4], [6, 7]]
    assert split.test.targets.tolist() == [5, 8]


def test_time_split_tests_first_event_after_the_cut_with_everything_before_as_history():
    split = time_split(_data(), cutoff_ts=3.0)
    # user 0 has 3 events before the cut: last of them validates, first after the cut tests
    assert [t.tolist() for t in split.train] == [[1, 2], [1], []]
    assert split.valid.user_index.tolist() == [0]
    assert split.valid.targets.tolist() == [3]
    assert split.test.user_index.tolist() == [0, 1, 2]
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3], [1], []]
    assert split.test.targets.tolist() == [4, 2, 6]
    assert all(len(h) == 0 or h.max() < 9 for h in split.train)


def test_split_choice_test_position_is_where_the_split_holds_out_each_user():
    for data, mode in ((_data(), EvalMode.NEW), (_repeating(), EvalMode.NEW), (_repeating(), EvalMode.REPEAT)):
        _check_test_positions(data, mode)


def _check_test_positions(data, mode):
    for choice in (SplitChoice(eval_mode=mode), SplitChoice("time", cutoff_ts=3.0, eval_mode=mode),
                   SplitChoice("time", cutoff_ts=11.0, eval_mode=mode)):
        test = choice.split(data).test
        tested = dict(zip(test.user_index.tolist(), zip(test.histories, test.targets.tolist())))
        for user in range(data.n_users):
            position = choice.test_position(data, user)
            if user not in tested:
                assert position is None
                continue
            history, target = tested[user]
            assert data.history(user)[:position].tolist() == history.tolist()
            assert data.history(user)[position] == target


def test_time_split_by_fraction_cuts_where_the_latest_events_begin_and_is_recorded_fixed():
    data = _data()
    resolved = SplitChoice("time", test_fraction=0.3).resolve(data, "unix")
    assert resolved.cutoff_ts == 10.0  # the latest 3 of the 10 events are at ts 10, 11, 12
    assert SplitChoice("time", test_fraction=0.01).resolve(data, "unix").cutoff_ts == 12.0  # at least one event
    assert SplitChoice.from_json(resolved.to_json()) == resolved
    assert resolved == SplitChoice("time", cutoff_ts=10.0)  # equal when they cut alike, however the cut was asked for
    assert resolved.split(data).protocol.startswith("time split at 1970-01-01 00:00:10 UTC, new items (")
    assert SplitChoice.from_json(None) == SplitChoice(test_users=None) and SplitChoice().describe() == "leave-one-out"
    assert SplitChoice("time", cutoff_ts=86400.0).describe() == "time split at 1970-01-02"


@pytest.mark.parametrize("choice, time_kind, words", [
    (SplitChoice("time"), "order", "no real timestamps"),
    (SplitChoice("time", cutoff_ts=0.0), "unix", "nothing to learn from"),
    (SplitChoice("time", cutoff_ts=13.0), "unix", "nothing to test on"),
    (SplitChoice("time", cutoff_ts=2.0), "unix", "no user has 3 events before the cut-off"),
])
def test_impossible_time_splits_say_why(choice, time_kind, words):
    with pytest.raises(SplitError, match=words):
        choice.resolve(_data(), time_kind)


def test_bad_split_choices_are_refused():
    with pytest.raises(SplitError, match="unknown split 'random'"):
        SplitChoice("random")
    with pytest.raises(SplitError, match="unknown evaluation mode 'old'; use new or repeat"):
        SplitChoice(eval_mode="old")
    with pytest.raises(SplitError, match="unknown validation 'some'; use sample or all"):
        SplitChoice(validation="some")
    with pytest.raises(SplitError, match="between 0 and 1"):
        SplitChoice("time", test_fraction=1.5)
    assert SplitChoice().resolve(_data(), "order") == SplitChoice()  # leave-one-out needs no clock


def _many_users(n_users: int, length: int = 5):
    users = np.repeat(np.arange(1, n_users + 1), length)
    items = (np.arange(n_users * length) % 50) + 1
    steps = np.tile(np.arange(length), n_users)
    return sequences_from_arrays(users, items, steps)


def test_validation_sample_returns_the_other_users_validation_event_to_training():
    data = _many_users(VALIDATION_USERS + 500)
    full = leave_one_out(data)  # the published protocol: every user validates
    sampled = SplitChoice().split(data)  # the product default
    assert len(sampled.valid) == VALIDATION_USERS and len(full.valid) == data.n_users
    assert np.array_equal(sampled.test.targets, full.test.targets)  # the test is untouched
    kept = set(sampled.valid.user_index.tolist())
    histories = data.histories()
    for user in range(data.n_users):
        expected = histories[user][:-2] if user in kept else histories[user][:-1]
        assert np.array_equal(sampled.train[user], expected)
        assert np.array_equal(full.train[user], histories[user][:-2])  # validation events never trained on
    assert "validation on 2,000 sampled users (the others train on that event)" in sampled.protocol
    assert full.protocol.endswith("validation on every user (never trained on)")
    assert sampled.protocol.startswith("leave-one-out, new items (")
    assert np.array_equal(SplitChoice().split(data).valid.user_index, sampled.valid.user_index)  # seeded
    assert SplitChoice(validation="all").split(data).protocol == full.protocol


def test_small_logs_validate_on_every_user():
    candidates = np.arange(300)
    assert sample_validation(candidates) is candidates
    split = SplitChoice().split(_many_users(300))
    assert len(split.valid) == 300 and split.protocol.endswith("validation on every user (never trained on)")


def _repeating():
    """user 0: 1 2 3 1 4 2 (last event repeats); user 1: 5 6 5 6 5 (two items only); user 2: 7 8 9."""
    users = np.array([0] * 6 + [1] * 5 + [2] * 3)
    items = np.array([1, 2, 3, 1, 4, 2, 5, 6, 5, 6, 5, 7, 8, 9])
    ts = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 10, 11, 12], dtype=float)
    return sequences_from_arrays(users, items, ts)


def test_new_item_events_mark_each_users_first_time_on_an_item():
    data = _repeating()
    assert new_item_events(data.offsets, data.items).astype(int).tolist() == [1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1]


def test_new_item_events_sorted_a_chunk_of_users_at_a_time_mark_the_same_events():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 12, size=40)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, 6, size=int(lengths.sum())).astype(np.int32)
    seen_before = [set() for _ in lengths]
    expected = []
    for user, item in zip(np.repeat(np.arange(len(lengths)), lengths), items):
        expected.append(item not in seen_before[user])
        seen_before[user].add(item)
    for chunk_events in (1, 7, 10_000):  # a user per chunk, users split unevenly, all at once
        assert new_item_events(offsets, items, chunk_events).tolist() == expected


def test_new_items_mode_holds_out_the_last_new_item_and_counts_users_without_one():
    split = leave_one_out(_repeating())
    assert split.eval_mode is EvalMode.NEW and split.kind is SplitKind.LEAVE_ONE_OUT
    assert split.test.user_index.tolist() == [0, 2]  # user 1 has no third new item
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3, 1], [7, 8]]
    assert split.test.targets.tolist() == [4, 9]
    assert split.valid.targets.tolist() == [3, 8] and [h.tolist() for h in split.valid.histories] == [[1, 2], [7]]
    assert (split.test.skipped, split.valid.skipped) == (1, 1)
    # nothing from the held-out event on is trained on (user 0's repeat of 2 included); user 1 trains on everything
    assert [t.tolist() for t in split.train] == [[1, 2], [5, 6, 5, 6, 5], [7]]
    assert split.protocol.startswith("leave-one-out, new items (last new item = test")
    assert all(t not in h for h, t in zip(split.test.histories, split.test.targets))


def test_repeats_allowed_mode_holds_out_the_last_event():
    split = leave_one_out(_repeating(), EvalMode.REPEAT)
    assert split.test.targets.tolist() == [2, 5, 9] and split.valid.targets.tolist() == [4, 6, 8]
    assert split.test.skipped == 0 and split.eval_mode is EvalMode.REPEAT
    assert split.protocol.startswith("leave-one-out, repeats allowed (last event = test")


def test_time_split_new_items_mode_tests_the_first_new_item_after_the_cut():
    data = _repeating()
    split = time_split(data, cutoff_ts=3.0)
    # user 0: 1 after the cut is a repeat, 4 is new; user 1 has only repeats after the cut; user 2 starts after it
    assert split.test.user_index.tolist() == [0, 2] and split.test.targets.tolist() == [4, 7]
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3, 1], []]
    assert split.test.skipped == 1 and split.kind is SplitKind.TIME
    assert split.valid.targets.tolist() == [3, 6]
    assert [t.tolist() for t in split.train] == [[1, 2], [5], []]
    repeat = time_split(data, cutoff_ts=3.0, eval_mode=EvalMode.REPEAT)
    assert repeat.test.targets.tolist() == [1, 6, 7] and repeat.test.skipped == 0


def test_split_choice_records_mode_and_validation_and_compares_tests():
    choice = SplitChoice("time", cutoff_ts=3.0, eval_mode="repeat", validation="all")
    assert (choice.eval_mode, choice.validation, choice.kind) == (EvalMode.REPEAT, Validation.ALL, SplitKind.TIME)
    assert choice.to_json() == {"kind": "time", "cutoff_ts": 3.0, "test_fraction": 0.1, "eval_mode": "repeat",
                                "validation": "all", "test_users": 20_000}
    assert SplitChoice.from_json(choice.to_json()) == choice
    old = SplitChoice.from_json({"kind": "leave-one-out", "cutoff_ts": None, "test_fraction": 0.1})
    assert (old.eval_mode, old.validation) == (EvalMode.NEW, Validation.SAMPLE)  # runs from before the choice
    assert old.test_users is None  # tested every user
    assert not SplitChoice().same_test_as(SplitChoice(test_users=None))  # other users, not comparable
    assert choice.same_test_as(SplitChoice("time", cutoff_ts=3.0, eval_mode="repeat"))  # validation: training only
    assert not choice.same_test_as(SplitChoice("time", cutoff_ts=3.0))
    assert not SplitChoice().same_test_as(SplitChoice("time", cutoff_ts=3.0))


def test_the_test_is_a_seeded_sample_of_users_recorded_in_the_protocol():
    data = sequences_from_arrays(np.repeat(np.arange(50), 4), np.tile([1, 2, 3, 4], 50) + np.repeat(np.arange(50), 4) % 3,
                                 np.tile(np.arange(4.0), 50))
    everyone = SplitChoice(test_users=None).split(data)
    sampled = SplitChoice(test_users=20).split(data)
    assert len(everyone.test) == 50 and everyone.test.sampled_from is None
    assert len(sampled.test) == 20 and sampled.test.sampled_from == 50
    assert set(sampled.test.user_index) < set(everyone.test.user_index)
    assert sampled.test.user_index.tolist() == SplitChoice(test_users=20).split(data).test.user_index.tolist()
    assert "tested on 20 of 50 users (seeded sample, seed 0)" in sampled.protocol
    assert SplitChoice(test_users=500).split(data).test.sampled_from is None  # fewer users than asked: all
    with pytest.raises(SplitError, match="test users"):
        SplitChoice(test_users=0)


def test_a_time_split_needs_a_user_with_three_events_strictly_before_the_cut():
    """Counted from each user's third event (times are in order within a user), not per event."""
    data = sequences_from_arrays(np.array([1, 1, 1, 2, 2, 2, 2]), np.array([1, 2, 3, 1, 2, 3, 4]),
                                 np.array([1.0, 2.0, 5.0, 1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(SplitError, match="no user has 3 events before the cut-off"):
        SplitChoice("time", cutoff_ts=3.0).resolve(data, "unix")  # user 2's third event is at the cut
    assert SplitChoice("time", cutoff_ts=3.5).resolve(data, "unix").cutoff_ts == 3.5
