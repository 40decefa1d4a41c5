"""Saving and loading trained runs: one folder with ``weights.safetensors`` and ``bundle.json``.

Nothing in the load path can run code: tensors come from safetensors (a JSON header plus raw
buffers), everything else from JSON. A bundle names the catalogue it was trained on (item ids,
category and segment names), so loading it against a workspace whose items changed is
detected and either refused with a clear message or served through an explicit item mapping.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import core
from core.errors import NextPickError
from core.baselines import BASELINES
from core.baselines.popularity import PopularityScorer
from core.ranker import Ranker
from core.ranker_features import ItemFacts
from core.scorer import Scorer

FORMAT = "nextpick-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
WEIGHTS = "weights.safetensors"


class BundleError(NextPickError):
    """A bundle that cannot be used: missing, corrupt, foreign, too new, or for other items."""

    hint = "Train the model again on this workspace, or choose another run."


@dataclass
class Bundle:
    """A loaded run, ready to serve: scorer, cold-start fallback, ranker and vocabularies."""

    path: Path
    manifest: dict
    scorer: Scorer
    fallback: Scorer  # segment popularity, behind an item mapping when the catalogue changed
    ranker: Optional[Ranker]
    item_interest: np.ndarray  # (n_items + 1,) interest index per item of the data served, -1 = none
    interest_names: list[str]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # "eval.*" per-user ranks etc.
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)  # AdamW moments by parameter name (neural runs)
    notes: list[str] = field(default_factory=list)  # what loading had to adapt, for the user

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})


def save_bundle(folder: Path, *, model: str, config: dict, data, scorer: Scorer, fallback: Scorer,
                ranker: Optional[Ranker], item_interest: np.ndarray, interest_names: list[str], metrics: dict,
                content_hash: str, dims: Optional[dict] = None, arrays: Optional[dict] = None,
                optimizer: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write the run to ``folder`` (created); the manifest is written last, so a crash leaves no valid bundle.

    ``optimizer``: the optimizer's moments by parameter name (``core.training.network.optimizer_moments``),
    kept so that ``nextpick update`` continues the optimisation instead of restarting it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"scorer.{k}": v for k, v in scorer.state_tensors().items()}
    tensors.update({f"fallback.{k}": v for k, v in fallback.state_tensors().items()})
    if ranker is not None:
        tensors.update({f"ranker.{k}": v for k, v in ranker.state_tensors().items()})
    tensors["item_interest"] = torch.as_tensor(np.asarray(item_interest), dtype=torch.long)
    tensors.update({f"eval.{k}": torch.as_tensor(np.asarray(v)) for k, v in (arrays or {}).items()})
    tensors.update({f"optimizer.{k}": v for k, v in (optimizer or {}).items()})
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(folder / WEIGHTS))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "code_version": core.__version__,
        "created_at": time.time(),
        "model": model,
        "config": config,
        "dims": dims,
        "content_hash": content_hash,
        "metrics": metrics,
        "vocabulary": {
            "items": [str(x) for x in data.item_external[1:]],
            "categories": [str(x) for x in data.category_names],
            "segments": [str(x) for x in data.segment_names],
            "interests": list(interest_names),
        },
    }
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def read_manifest(folder: Path) -> dict:
    """The bundle's JSON manifest, checked to be ours and not from a newer release."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a NextPick model bundle (expected a folder holding {MANIFEST} and {WEIGHTS})")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a NextPick model bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path} is not a text file (byte {exc.start}): not a NextPick bundle manifest") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not a NextPick bundle manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(f"{path} has bundle format {version!r}; this release reads up to {FORMAT_VERSION} — update NextPick")
    for key, kind in (("model", str), ("config", dict), ("vocabulary", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BundleError(f"{path} lacks a valid \"{key}\" entry; the bundle is incomplete")
    for key in ("items", "categories", "segments"):
        if not isinstance(manifest["vocabulary"].get(key), list):
            raise BundleError(f"{path} lacks the vocabulary's \"{key}\" list; the bundle is incomplete")
    return manifest


def load_bundle(path, data=None, on_mismatch: str = "refuse", device: str = "cpu", text=None) -> Bundle:
    """Load a bundle; with ``data``, check it fits that data's catalogue.

    on_mismatch: "refuse" raises ``BundleError`` when the items differ; "map" serves known items
    with their trained scores and new items with the mean score of known items of their category,
    or, for a model that reads item text, from their text: ``text`` is then called (only when the
    items differ) for the current items' ``core.text.search.TextIndex`` under the run's text
    model, or None when that model is not available here.
    """
    if on_mismatch not in ("refuse", "map"):
        raise ValueError("on_mismatch must be 'refuse' or 'map'")
    folder = Path(path)
    manifest = read_manifest(folder)
    tensors = _read_tensors(folder / WEIGHTS)
    try:
        bundle = _assemble(folder, manifest, tensors, device)
    except BundleError:
        raise
    except Exception as exc:  # shapes or keys that do not fit the model described by the manifest
        raise BundleError(f"{folder / WEIGHTS} does not match its manifest ({type(exc).__name__}: {exc})") from None
    if data is not None:
        bundle = _fit_to_data(bundle, data, on_mismatch, text)
    return bundle


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BundleError(f"{path.parent} is not a complete bundle: {WEIGHTS} is missing")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors reports corrupt headers and truncated buffers as errors
        raise BundleError(f"{path} is not a readable safetensors file ({exc}); the bundle is corrupt") from None


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _assemble(folder: Path, manifest: dict, tensors: dict[str, torch.Tensor], device: str) -> Bundle:
    model = manifest["model"]
    scorer = restore_scorer(model, manifest["config"], manifest.get("dims"), _part(tensors, "scorer"), device)
    ranker_state = _part(tensors, "ranker")
    return Bundle(
        path=folder,
        manifest=manifest,
        scorer=scorer,
        fallback=PopularityScorer.from_state(_part(tensors, "fallback")),
        ranker=Ranker.from_state(ranker_state).with_text(scorer.text_vectors()) if ranker_state else None,
        item_interest=tensors["item_interest"].numpy(),
        interest_names=list(manifest["vocabulary"].get("interests", [])),
        arrays={k: v.numpy() for k, v in _part(tensors, "eval").items()},
        optimizer=_part(tensors, "optimizer"),
    )


def restore_scorer(model: str, config: dict, dims: Optional[dict], state: dict[str, torch.Tensor],
                   device: str = "cpu") -> Scorer:
    """Rebuild a baseline or neural scorer from its state tensors."""
    if model in BASELINES:
        return BASELINES[model].from_state(state)
    from core.pipeline import DataDims, NeuralScorer
    from core.training import TrainConfig

    if not dims:
        raise BundleError(f"the bundle of a {model!r} model lacks its network sizes (\"dims\")")
    return NeuralScorer.from_state(TrainConfig.from_json(config), state, DataDims(**dims), device)


# -- serving a bundle on data whose catalogue changed ----------------------------------------


def _fit_to_data(bundle: Bundle, data, on_mismatch: str, text=None) -> Bundle:
    vocab = bundle.manifest["vocabulary"]
    trained_items = vocab["items"]
    current = [str(x) for x in data.item_external[1:]]
    same_items = current == trained_items
    if same_items and _same_segments(vocab, data):
        return bundle
    new_to_old = item_index_map(trained_items, data)
    unknown = int((new_to_old[1:] == 0).sum())
    gone = len(trained_items) - int((new_to_old[1:] > 0).sum())
    if not same_items and on_mismatch == "refuse":
        raise BundleError(
            f"this model was trained on {len(trained_items):,} items; the workspace now has {len(current):,} "
            f"({unknown:,} the model has never seen, {gone:,} it knows are gone). Retrain it, or load it with "
            "item mapping (known items keep their scores, new items are scored from their category)."
        )
    return _mapped(bundle, data, new_to_old, unknown, gone, text)


def item_index_map(trained_items: list[str], data) -> np.ndarray:
    """(n_items + 1,) the trained item index of each of ``data``'s items, matched by the shop's id; 0 = new."""
    old_index = {external: i + 1 for i, external in enumerate(trained_items)}
    return np.array([0] + [old_index.get(str(e), 0) for e in data.item_external[1:]], dtype=np.int64)


def _same_segments(vocab: dict, data) -> bool:
    return list(vocab.get("segments", [])) == [str(x) for x in data.segment_names]


def _mapped(bundle: Bundle, data, new_to_old: np.ndarray, unknown: int, gone: int, text=None) -> Bundle:
    vocab = bundle.manifest["vocabulary"]
    old_category = {name: i for i, name in enumerate(vocab["categories"])}
    category_in_old = np.array([old_category.get(str(data.category_names[c]), 0) for c in data.item_category])
    old_segment = {name: i for i, name in enumerate(vocab["segments"])}
    segment_map = np.array([old_segment.get(str(name), 0) for name in data.segment_names], dtype=np.int64)
    by_category = len(bundle.interest_names) == len(vocab["categories"]) - 1
    item_interest = np.where(new_to_old > 0, bundle.item_interest[new_to_old],
                             category_in_old - 1 if by_category else -1)
    item_interest[0] = -1
    ranker = None if bundle.ranker is None else _remapped_ranker(bundle.ranker, new_to_old, category_in_old)
    notes = list(bundle.notes)
    scorer = _scorer_from_text(bundle.scorer, new_to_old, category_in_old, item_interest, text) if unknown else None
    if unknown or gone:
        notes.append(f"catalogue changed since training: {unknown:,} new items scored from their "
                     f"{'text' if scorer is not None else 'category'}, {gone:,} removed items dropped")
    if not _same_segments(vocab, data):
        notes.append("profile segments changed since training: segments matched by name, unknown ones use global popularity")
    if scorer is None:
        scorer = MappedScorer(bundle.scorer, new_to_old, data.item_category, segment_map)
    else:
        item_interest = scorer.model.predictor.item_interest.cpu().numpy()
        ranker = None if ranker is None else ranker.with_text(scorer.text_vectors())
    return replace(bundle, scorer=scorer,
                   fallback=MappedScorer(bundle.fallback, new_to_old, data.item_category, segment_map),
                   ranker=ranker, item_interest=item_interest, notes=notes)


def _scorer_from_text(scorer, new_to_old, category_in_old, item_interest, text):
    """The model rebuilt on the current items when it reads text and their vectors are at hand, else None."""
    from core.text.extend import extended_scorer, reads_text

    if text is None or not reads_text(scorer):
        return None
    index = text()
    if index is None:
        return None
    return extended_scorer(scorer, new_to_old, category_in_old, index.vectors, item_interest)


def _remapped_ranker(ranker: Ranker, new_to_old: np.ndarray, category_in_old: np.ndarray) -> Ranker:
    """The ranker's item facts moved to the new item indices; new items are marked unknown, so their
    log features are read as their list's average (``core.ranker_features.ItemFacts.known``), not as never taken."""
    index = torch.as_tensor(new_to_old)
    known = index > 0
    facts = ItemFacts(
        popularity=torch.where(known, ranker.facts.popularity[index], torch.zeros(())),
        recency=torch.where(known, ranker.facts.recency[index], torch.zeros(())),
        item_category=torch.as_tensor(category_in_old, dtype=torch.long),
        segment_affinity=ranker.facts.segment_affinity,
        cooccurrence=None if ranker.facts.cooccurrence is None else ranker.facts.cooccurrence.remapped(
            new_to_old, category_in_old),
        text=None if ranker.facts.text is None else torch.where(known[:, None], ranker.facts.text[index], 0.0),
        known=known,
    )
    return ranker.carrying(facts)


class MappedScorer:
    """Serves a scorer trained on an older catalogue on the current item indices.

    Known items keep their trained scores. An item the model never saw gets, per user, the
    mean score of the known items of its category that the user has not taken (its features are
    all the model can go by; a taken item is masked from the list, and its score, often the
    highest, would lift the new item above the items it is served among); with no such item
    in its category, the user's lowest score among those items.
    """

    def __init__(self, inner: Scorer, new_to_old: np.ndarray, item_category: np.ndarray,
                 segment_map: np.ndarray) -> None:
        self.inner, self.name = inner, inner.name
        self.new_to_old = np.asarray(new_to_old, dtype=np.int64)
        self.item_category = torch.as_tensor(np.asarray(item_category), dtype=torch.long)
        self.segment_map = np.asarray(segment_map, dtype=np.int64)
        self.n_categories = int(self.item_category.max()) + 1 if len(self.item_category) else 1

    def _old_history(self, history) -> np.ndarray:
        old = self.new_to_old[np.asarray(history, dtype=np.int64)]
        return old[old > 0]

    def _old_segments(self, segments: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if segments is None:
            return None
        return self.segment_map[np.clip(np.asarray(segments), 0, len(self.segment_map) - 1)]

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        old_scores = self.inner.score([self._old_history(h) for h in histories], self._old_segments(segments)).float()
        index = torch.as_tensor(self.new_to_old)
        scores = old_scores[:, index]  # unknown items read column 0 (-inf) for now
        known = index > 0
        known[0] = False
        unknown = ~known
        unknown[0] = False
        if bool(unknown.any()):
            scores[:, unknown] = self._category_means(scores, histories, known)[:, self.item_category[unknown]]
        scores[:, 0] = float("-inf")
        return scores

    def _category_means(self, scores: torch.Tensor, histories: list[np.ndarray], known: torch.Tensor) -> torch.Tensor:
        """(B, n_categories) each user's mean score over the known items of each category they have not
        taken; the user's lowest such score where a category has none."""
        counted = known.expand_as(scores).clone()  # (B, n_items + 1)
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        if len(rows):
            counted[torch.as_tensor(rows), torch.as_tensor(np.concatenate(histories).astype(np.int64))] = False
        values = torch.where(counted, scores, torch.zeros(()))
        sums = torch.zeros(len(scores), self.n_categories).index_add_(1, self.item_category, values)
        counts = torch.zeros(len(scores), self.n_categories).index_add_(1, self.item_category, counted.float())
        lowest = torch.where(counted, scores, torch.full((), float("inf"))).min(dim=1, keepdim=True).values
        floor = torch.where(torch.isfinite(lowest), lowest, torch.zeros(()))
        return torch.where(counts > 0, sums / counts.clamp(min=1), floor)

    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        return self.inner.interests(self._old_history(history))

    def text_vectors(self) -> Optional[torch.Tensor]:
        """None: the inner scorer's vectors follow the old catalogue's indices, not the current ones."""
        return None

    def interests_batch(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> np.ndarray:
        return self.inner.interests_batch([self._old_history(h) for h in histories], self._old_segments(segments))

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        history, items = np.asarray(history, np.int64), np.asarray(items, np.int64)
        weights = np.zeros((len(items), len(history)), dtype=np.float32)
        old_history, old_items = self.new_to_old[history], self.new_to_old[items]
        rows, cols = np.flatnonzero(old_items > 0), np.flatnonzero(old_history > 0)
        if len(rows) and len(cols):
            inner = self.inner.attributions(old_history[cols], old_items[rows])
            weights[np.ix_(rows, cols)] = inner
        return weights

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.inner.state_tensors()
