"""Per-user, time-ordered item sequences and the vocabularies every model shares.

The store speaks in database ids and text; models speak in dense indices. This module is the
one place that translates, so a trained model, its bundle, the evaluation and the explanations
all agree on what "item 17" means. A workspace's sequences are built and cached on disk by
``core.data.sequence_cache``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from core.store.stats import NO_CATEGORY

UNKNOWN_SEGMENT = "(unknown)"
# A profile segment must hold enough users for its popularity list to mean something.
MAX_SEGMENTS = 64
# An attribute with more distinct values than this (zip codes, free text) is not a segment key.
MAX_ATTRIBUTE_VALUES = 30


@dataclass(frozen=True)
class SequenceData:
    """Everything sequence models need from a workspace, as dense numpy arrays."""

    item_store_id: np.ndarray
    """(n_items + 1,) int64 store id per item index; index 0 is padding and holds -1."""
    item_external: np.ndarray
    """(n_items + 1,) the shop's item id (str) per item index; "" at index 0."""
    item_title: np.ndarray
    """(n_items + 1,) display title per item index ("" when the shop gave none)."""
    item_category: np.ndarray
    """(n_items + 1,) int64 primary category index per item; 0 = no category (and padding)."""
    category_names: np.ndarray
    """(n_categories,) category name per index; index 0 is "(none)"."""
    item_categories: np.ndarray
    """(n_items + 1,) all of the item's categories as "A|B" text, primary first ("" = none): models
    learn from the primary one, people read them all."""
    user_store_id: np.ndarray
    """(n_users,) int64 store id per user index."""
    user_external: np.ndarray
    """(n_users,) the shop's user id (str) per user index."""
    offsets: np.ndarray
    """(n_users + 1,) int64 CSR offsets: user u's events are items[offsets[u]:offsets[u+1]]."""
    items: np.ndarray
    """(n_events,) int32 item index per event, time-ordered within each user, repeats collapsed."""
    ts: np.ndarray
    """(n_events,) float64 timestamp per event (unix seconds or plain order, see meta.time_kind)."""
    user_segment: np.ndarray
    """(n_users,) int64 profile segment per user; 0 = unknown (no usable attributes)."""
    segment_names: np.ndarray
    """(n_segments,) readable segment names, e.g. "gender=F, occupation=writer"; index 0 unknown."""

    @property
    def n_items(self) -> int:
        return len(self.item_store_id) - 1

    @property
    def n_users(self) -> int:
        return len(self.user_store_id)

    @property
    def n_categories(self) -> int:
        """Number of category indices including 0 = none."""
        return len(self.category_names)

    @property
    def has_categories(self) -> bool:
        return bool((self.item_category[1:] > 0).any())

    def history(self, user_index: int) -> np.ndarray:
        """The user's item indices in time order (a view; do not modify)."""
        return self.items[self.offsets[user_index] : self.offsets[user_index + 1]]

    def histories(self) -> list[np.ndarray]:
        """Every user's history, as plain views: slicing the memory-mapped cache itself makes each of
        a million views a ``np.memmap`` (a Python-level finaliser per slice, and per slice of it)."""
        return np.split(np.asarray(self.items), self.offsets[1:-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def _item_lookup(self) -> dict[str, int]:
        return _index_of_each(self.item_external, first=1)

    @cached_property
    def _user_lookup(self) -> dict[str, int]:
        return _index_of_each(self.user_external, first=0)

    @cached_property
    def item_labels(self) -> tuple[list[str], list[str], list[str]]:
        """(ids, titles, categories text) per item index as Python lists: a served list reads a few
        dozen, and a list's element costs a fraction of a NumPy object array's (``core.serving``)."""
        return self.item_external.tolist(), self.item_title.tolist(), self.item_categories.tolist()

    def build_lookups(self) -> None:
        """Build the id -> index maps now rather than at the first look-up (a million users' map takes
        seconds): a service builds them before its first request."""
        self._item_lookup, self._user_lookup, self.item_labels  # noqa: B018 - cached on first access

    def item_index_of(self, external_ids: Iterable[str]) -> np.ndarray:
        """Item indices for the shop's item ids; 0 for ids this data has never seen."""
        lookup = self._item_lookup
        return np.array([lookup.get(str(e), 0) for e in external_ids], dtype=np.int64)

    def user_index_of(self, external_id: str) -> Optional[int]:
        """User index for the shop's user id, or None when unknown."""
        return self._user_lookup.get(str(external_id))


LOOKUP_CHUNK = 20_000  # ids per C call: a 200,000-item map built in one held the studio's window 0.1-0.4 s


def _index_of_each(ids: np.ndarray, first: int) -> dict[str, int]:
    """{ids[i]: i} for i from ``first``, built ``LOOKUP_CHUNK`` ids at a time, so the interpreter lock
    (shared with the studio's window) changes hands between chunks."""
    lookup: dict[str, int] = {}
    for start in range(first, len(ids), LOOKUP_CHUNK):
        chunk = ids[start: start + LOOKUP_CHUNK].tolist()
        lookup.update(zip(chunk, range(start, start + len(chunk))))
    return lookup


def sequences_from_arrays(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    ts: np.ndarray,
    items: Optional[pd.DataFrame] = None,
    users: Optional[pd.DataFrame] = None,
) -> SequenceData:
    """Build sequences from raw events (store ids) plus optional item and user tables.

    ``items`` has columns id, external_id and optionally title, categories ("A|B", primary
    first); ``users`` has id, external_id and optionally attributes (JSON text or dict). Items
    in the table with no events are kept (cold items); ids only seen in events get their id as
    external id. Events are stably sorted by (user, ts), so equal timestamps keep input order.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.float64)
    if not _sorted_by_user_and_time(user_ids, ts):
        order = np.lexsort((np.arange(len(ts)), ts, user_ids))
        user_ids, item_ids, ts = user_ids[order], item_ids[order], ts[order]

    items = _catalogue_frame(items, item_ids, ("title", "categories"))
    users = _catalogue_frame(users, user_ids, ("attributes",))
    item_index = (_positions(items["id"].to_numpy(), item_ids) + 1).astype(np.int32)
    user_index = _positions(users["id"].to_numpy(), user_ids).astype(np.int32)
    del item_ids, user_ids

    keep = _not_a_repeat(user_index, item_index)
    user_index, item_index, ts = user_index[keep], item_index[keep], ts[keep]
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_index, minlength=len(users)), out=offsets[1:])

    category_names, item_category = _primary_categories(items["categories"])
    segment_names, user_segment = _profile_segments(users["attributes"])
    return SequenceData(
        item_store_id=np.concatenate([[-1], items["id"].to_numpy(np.int64)]),
        item_external=np.concatenate([[""], items["external_id"].astype(str).to_numpy(object)]),
        item_title=np.concatenate([[""], items["title"].fillna("").astype(str).to_numpy(object)]),
        item_category=np.concatenate([[0], item_category]).astype(np.int64),
        category_names=category_names,
        item_categories=np.concatenate([[""], _category_lists(items["categories"])]),
        user_store_id=users["id"].to_numpy(np.int64),
        user_external=users["external_id"].astype(str).to_numpy(object),
        offsets=offsets,
        items=item_index,
        ts=ts,
        user_segment=user_segment,
        segment_names=segment_names,
    )


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Where each of ``ids`` sits in ``sorted_ids`` (ascending, distinct, holding every one of them).
    Ids numbered 1 to n without a gap, as a workspace numbers its users and items until one is
    deleted, sit at id - 1: no search (the two binary searches took 4.2 of 6.2 CPU-s at 25M events)."""
    if len(sorted_ids) and sorted_ids[0] == 1 and sorted_ids[-1] == len(sorted_ids):
        return ids - 1
    return np.searchsorted(sorted_ids, ids)


def _sorted_by_user_and_time(user_ids: np.ndarray, ts: np.ndarray) -> bool:
    """True when events already come in (user, ts) order, as the store hands them out: the
    sort (and its copies of every array, 1 GB at 25M events) is then skipped."""
    if len(user_ids) < 2:
        return True
    step = np.diff(user_ids)
    return bool((step >= 0).all() and ((step > 0) | (ts[1:] >= ts[:-1])).all())


def _catalogue_frame(frame: Optional[pd.DataFrame], seen_ids: np.ndarray, optional: tuple[str, ...]) -> pd.DataFrame:
    """The given table sorted by id, extended by ids that only occur in events."""
    if frame is None:
        frame = pd.DataFrame({"id": np.zeros(0, dtype=np.int64)})
    frame = frame.copy()
    if "external_id" not in frame:
        frame["external_id"] = frame["id"].astype(str)
    for column in optional:
        if column not in frame:
            frame[column] = None
    # Store ids are small positive integers: a bincount finds the distinct ones in one linear pass
    # (np.unique sorts millions of event ids, ~100 ms).
    seen = np.flatnonzero(np.bincount(seen_ids)) if len(seen_ids) else np.zeros(0, dtype=np.int64)
    # Both sides are distinct ids (a bincount's, a primary key's): told so, NumPy skips hashing them
    # again, which took 1.1 CPU-s for 680,000 users with NumPy 2.4 (6 ms told).
    missing = np.setdiff1d(seen, frame["id"].to_numpy(np.int64), assume_unique=True)
    if len(missing):
        extra = pd.DataFrame({"id": missing, "external_id": missing.astype(str)})
        frame = pd.concat([frame, extra], ignore_index=True)
    frame["id"] = frame["id"].astype(np.int64)
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def _not_a_repeat(user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
    """False where an event repeats the user's previous item (view -> cart -> purchase is one step)."""
    keep = np.ones(len(item_index), dtype=bool)
    keep[1:] = (item_index[1:] != item_index[:-1]) | (user_index[1:] != user_index[:-1])
    return keep


def _primary_categories(categories: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Category vocabulary (index 0 = none) and each item's primary category index."""
    if _all_blank(categories):
        return np.array([NO_CATEGORY], dtype=object), np.zeros(len(categories), dtype=np.int64)
    primary = categories.fillna("").astype(str).str.split("|").str[0].str.strip()
    names = sorted(set(primary) - {""})
    lookup = {name: index + 1 for index, name in enumerate(names)}
    index = primary.map(lambda name: lookup.get(name, 0)).to_numpy(np.int64)
    return np.array([NO_CATEGORY, *names], dtype=object), index


def _category_lists(categories: pd.Series) -> np.ndarray:
    """Each item's "A|B" text tidied (blanks around and between the bars dropped), order kept."""
    if _all_blank(categories):
        return np.full(len(categories), "", dtype=object)
    parts = categories.fillna("").astype(str).str.split("|")
    return np.array(["|".join(p.strip() for p in names if p.strip()) for names in parts], dtype=object)


def _all_blank(cells: pd.Series) -> bool:
    """No cell holds text, as in a log imported without item or user profiles: the parsing of every
    cell is skipped (a Python call per item and per user, 2-3 CPU-s at 2.5M events)."""
    return not (cells.notna() & (cells != "")).any()


def _profile_segments(attributes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Segments from the first one or two categorical user attributes.

    Two attributes are combined when that still gives at most MAX_SEGMENTS segments, else one
    is used; numeric attributes (age, income) and near-unique ones (zip codes) are skipped.
    """
    if _all_blank(attributes):
        return np.array([UNKNOWN_SEGMENT], dtype=object), np.zeros(len(attributes), dtype=np.int64)
    parsed = [_attribute_dict(value) for value in attributes]
    keys = _categorical_keys(parsed)
    for used in (keys[:2], keys[:1]):
        labels = [
            ", ".join(f"{key}={record[key]}" for key in used) if used and all(k in record for k in used) else ""
            for record in parsed
        ]
        names = sorted(set(labels) - {""})
        if len(names) < MAX_SEGMENTS:
            break
    lookup = {name: index + 1 for index, name in enumerate(names)}
    segment = np.array([lookup.get(label, 0) for label in labels], dtype=np.int64)
    return np.array([UNKNOWN_SEGMENT, *names], dtype=object), segment


def _attribute_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _categorical_keys(records: list[dict]) -> list[str]:
    """Attribute names, in first-seen order, whose values are few and not numbers."""
    values: dict[str, set] = {}
    for record in records:
        for key, value in record.items():
            values.setdefault(key, set()).add(value)
    return [
        key
        for key, seen in values.items()
        if 1 < len(seen) <= MAX_ATTRIBUTE_VALUES and not all(_is_number(v) for v in seen)
    ]


def _is_number(value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
