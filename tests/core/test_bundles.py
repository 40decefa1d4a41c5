import json
import pickle
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.baselines.popularity import PopularityScorer
from core.bundles import MANIFEST, WEIGHTS, BundleError, load_bundle, save_bundle
from engine_data import baseline_with_ranker, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An item-kNN run with its ranker, saved once for every test here."""
    data, split, log, scorer, item_interest, ranker = baseline_with_ranker("itemknn", max_users=300, epochs=10)
    folder = tmp_path_factory.mktemp("bundle") / "run"
    save_bundle(folder, model="itemknn", config={"model": "itemknn"}, data=data, scorer=scorer,
                fallback=PopularityScorer.fit(log), ranker=ranker, item_interest=item_interest,
                interest_names=[str(c) for c in data.category_names[1:]], metrics={"ndcg@10": 0.5},
                content_hash="abc", arrays={"test_ranks": np.arange(5)})
    return folder, data, split, scorer, ranker


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for name in (MANIFEST, WEIGHTS):
        (target / name).write_bytes((folder / name).read_bytes())
    return target


def test_round_trip_gives_identical_scores(saved):
    folder, data, split, scorer, ranker = saved
    bundle = load_bundle(folder, data)
    histories = split.test.histories[:20]
    assert torch.equal(bundle.scorer.score(histories), scorer.score(histories))
    assert bundle.model == "itemknn" and bundle.metrics == {"ndcg@10": 0.5}
    assert bundle.manifest["vocabulary"]["items"][:3] == list(data.item_external[1:4])
    assert bundle.arrays["test_ranks"].tolist() == [0, 1, 2, 3, 4]
    for key, value in ranker.state_tensors().items():
        assert torch.equal(bundle.ranker.state_tensors()[key], value)
    assert bundle.ranker.exclude_seen and bundle.ranker.features == ranker.features


def test_truncated_weights_give_bundle_error(saved, tmp_path):
    copy = _copy(saved[0], tmp_path)
    weights = copy / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(BundleError, match="corrupt"):
        load_bundle(copy)


def test_corrupt_manifest_names_line_and_column(saved, tmp_path):
    copy = _copy(saved[0], tmp_path)
    (copy / MANIFEST).write_text('{"format": "nextpick-bundle",\n "model": oops}')
    with pytest.raises(BundleError, match=r"line 2, column 11"):
        load_bundle(copy)


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_foreign_files_are_refused_and_never_executed(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copy = _copy(saved[0], tmp_path)
    (copy / WEIGHTS).write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(BundleError):
        load_bundle(copy)
    with zipfile.ZipFile(copy / WEIGHTS, "w") as archive:
        archive.writestr("data.pkl", pickle.dumps(_Boom()))
    with pytest.raises(BundleError):
        load_bundle(copy)
    assert not (tmp_path / "PWNED").exists()
    (copy / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BundleError, match="not a NextPick bundle"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not a NextPick model bundle"):
        load_bundle(copy / WEIGHTS)


def test_bundle_from_a_newer_release_is_refused(saved, tmp_path):
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="update NextPick"):
        load_bundle(copy)


def _changed_catalogue(data):
    """The same data with item 1 renamed (so unknown to the bundle): one new item, one gone."""
    external = data.item_external.copy()
    external[1] = "BRAND-NEW"
    return replace(data, item_external=external)


def test_changed_catalogue_is_refused_with_a_clear_message(saved):
    folder, data, *_ = saved
    with pytest.raises(BundleError, match=r"1 the model has never seen, 1 it knows are gone"):
        load_bundle(folder, _changed_catalogue(data))


def test_changed_catalogue_maps_known_items_and_scores_new_ones_by_their_untaken_category(saved):
    folder, data, split, scorer, _ = saved
    changed = _changed_catalogue(data)
    bundle = load_bundle(folder, changed, on_mismatch="map")
    assert any("1 new items" in note for note in bundle.notes)
    histories = [h[h != 1] for h in split.test.histories[:10]]
    mapped, original = bundle.scorer.score(histories), scorer.score(histories)
    assert torch.equal(mapped[:, 2:], original[:, 2:])  # every known item keeps its score
    same_category = torch.as_tensor(np.flatnonzero(data.item_category == data.item_category[1]))
    same_category = same_category[same_category != 1]
    for row, history in enumerate(histories):  # the mean over the items of its category the user has not taken
        untaken = same_category[~np.isin(same_category.numpy(), history)]
        assert torch.allclose(mapped[row, 1], original[row, untaken].mean())
    assert bundle.ranker.facts.popularity[1] == 0  # the new item starts without popularity


def test_mapped_bundle_serves_interests_and_ranked_lists(saved):
    from core.ranker import RankedScorer

    folder, data, split, scorer, _ = saved
    bundle = load_bundle(folder, _changed_catalogue(data), on_mismatch="map")
    histories = [h[h != 1] for h in split.test.histories[:4]]  # item 1 is the renamed one
    assert np.allclose(bundle.scorer.interests_batch(histories), scorer.interests_batch(histories), atol=1e-6)
    served = RankedScorer(bundle.scorer, bundle.ranker, bundle.item_interest)
    scores = served.score(histories, data.user_segment[split.test.user_index[:4]])
    seen = torch.zeros(scores.shape, dtype=torch.bool)
    for row, history in enumerate(histories):
        seen[row, torch.as_tensor(history)] = True
    assert scores.shape == (4, data.n_items + 1) and bundle.ranker.exclude_seen  # trained for "exclude seen"
    assert torch.isfinite(scores[:, 1:][~seen[:, 1:]]).all() and torch.isneginf(scores[seen]).all()


@pytest.mark.parametrize("cut", [0, 7, 8, 60, -1])
def test_any_truncation_of_the_weights_is_a_bundle_error(saved, tmp_path, cut):
    copy = _copy(saved[0], tmp_path)
    weights = copy / WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[:cut] if cut >= 0 else data[:-1])
    with pytest.raises(BundleError):
        load_bundle(copy)


def test_manifest_with_missing_parts_is_a_bundle_error(saved, tmp_path):
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    for broken in ({**manifest, "vocabulary": {"items": []}}, {**manifest, "config": "x"}, [1, 2]):
        (copy / MANIFEST).write_text(json.dumps(broken))
        with pytest.raises(BundleError):
            load_bundle(copy)
    (copy / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError, match="not a text file"):
        load_bundle(copy)


def test_weights_of_another_model_kind_are_a_bundle_error(saved, tmp_path):
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "model": "markov"}))
    with pytest.raises(BundleError, match="does not match its manifest"):
        load_bundle(copy)


class _FixedScores:
    """An inner scorer giving every user the same scores over a 4-item old catalogue."""

    name = "fixed"

    def score(self, histories, segments=None):
        return torch.tensor([[float("-inf"), 10.0, 1.0, 3.0, -5.0]]).repeat(len(histories), 1)


def test_new_item_gets_its_category_mean_over_the_items_the_user_has_not_taken():
    from core.bundles import MappedScorer

    # current items 1..5: 1-4 are the old ones, 5 is new; items 1-3 and 5 share category 1, item 4 is category 2
    new_to_old = np.array([0, 1, 2, 3, 4, 0])
    item_category = np.array([0, 1, 1, 1, 2, 1])
    scorer = MappedScorer(_FixedScores(), new_to_old, item_category, np.arange(1))
    scores = scorer.score([np.array([1]), np.array([], dtype=np.int64), np.array([1, 2, 3])])
    assert scores[0, 5].item() == pytest.approx(2.0)  # items 2 and 3; item 1 (10.0) was taken and is masked
    assert scores[1, 5].item() == pytest.approx(14.0 / 3)  # nothing taken: the whole category
    assert scores[2, 5].item() == pytest.approx(-5.0)  # the category all taken: the lowest untaken score
