"""The one facade the CLI and the studio call: import, train, evaluate, recommend, explain.

It owns no logic of its own: it opens the workspace, keeps the expensive things cached (the
workspace's sequences per content hash, each run's loaded bundle per run id) behind one
lock so studio worker threads can call it concurrently, and delegates to the modules that
do the work.

Its methods are grouped by what they serve, each group a base class of ``Engine`` in this package:
``train`` (training, updating and estimating runs), ``run_records`` (the recorded runs, their bundles,
their evaluation) and ``items`` (items, their followers and their text). The workspace's data, its
caches, the users and the answers (recommendations, interests) are here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from core import runs, serving
from core.runs.lag import LogPosition
from core.bundles import Bundle
from core.data import EvalMode, SplitChoice, SplitKind, build_sequences
from core.data.sequence_cache import sequence_cache
from core.data.successors import Successors
from core.errors import NextPickError, UsageError
from core.pipeline import SMALL_BATCH
from core.progress import RateMeter, emit
from core.candidate_sources import N_CANDIDATES
from core.serving import Interest, ItemInfo, NextItem, Recommendation, SimilarItem  # noqa: F401  (the API's return types)
from core.store import Workspace
from core.caches import successors_folder, user_directory, users_folder
from core.store.directory import UserDirectory, UserRow  # noqa: F401  (UserRow: users_page's rows)
from core.text import TextModelSpec
from core.engine.items import ItemMethods
from core.engine.run_records import RunMethods
from core.engine.train import TrainMethods

LONGEST_LIST = N_CANDIDATES  # no list is longer: it is cut from the candidates the ranker re-orders


class UnknownUserError(NextPickError, KeyError):
    """A user id the workspace has never seen, asked about without an explicit what-if history.

    Answering with the cold-start list would hide a typo or a user from another shop behind
    plausible-looking popular items; a caller that means a newcomer passes ``history=[]``.
    """

    def __init__(self, user: str, workspace_name: str) -> None:
        super().__init__(f"unknown user {user!r} in {workspace_name}: no events or profile under that id",
                         "Check the id as the shop's files spell it.")
        self.user = user


@dataclass(frozen=True)
class HeldOut:
    """A user's test target under a run's split, and the history the model was tested from."""

    item: str
    before: list[str]  # item ids in time order (repeats merged), everything the model saw
    split: str  # how the split is described, e.g. "leave-one-out" or "time split at 2026-03-01"
    kind: SplitKind
    eval_mode: EvalMode  # NEW: the user's last item new to them (first new one after a cut), not simply their last


class Engine(TrainMethods, RunMethods, ItemMethods):
    """``Engine.open(path)`` or ``Engine(workspace)``; every method is safe to call from worker threads."""

    def __init__(self, workspace: Workspace, text_model: Optional[str] = None, text: bool = True) -> None:
        """``text_model``: a local sentence-transformers folder to read item text with (None = the packaged model);
        ``text=False``: read no item text at all (the studio's job process follows its window's engine)."""
        self.workspace = workspace
        self.text_model = TextModelSpec(text_model)
        self._text = text
        self._text_index: Optional[tuple[tuple[str, str], object]] = None
        self._lock = threading.RLock()
        self._content: Optional[str] = None
        self._loaded_up_to = 0  # events with ids up to this one are in the sequences of ``_content``
        self._data_cache: tuple[str, object] | None = None
        self._users_cache: tuple[str, UserDirectory] | None = None
        self._successors_cache: tuple[str, Successors] | None = None
        self._bundles: dict[int, Bundle] = {}
        self._session_active: Optional[str] = None  # the active run chosen in a read-only workspace
        # (run, mode) -> (content hash, test users, their ranks): what compare pairs up
        self._test_ranks: dict[tuple[int, EvalMode], tuple[str, np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, path, text_model: Optional[str] = None) -> "Engine":
        return cls(Workspace.open(path), text_model)

    # -- data -------------------------------------------------------------------------------

    def import_files(self, events=None, items=None, users=None, options=None, progress=None, cancel=None,
                     on_whole_log=None):
        """Import CSV or Parquet files and folders, or ``SqlQuery`` s (``core.importing``); caches of
        the old content are dropped."""
        from core.importing import ImportOptions, import_files

        report = import_files(self.workspace, events=events, items=items, users=users,
                              options=options or ImportOptions(), progress=progress, cancel=cancel,
                              on_whole_log=on_whole_log)
        self.refresh()
        return report

    def refresh(self) -> None:
        """Forget cached sequences, users and loaded models (after another process imported into the file)."""
        with self._lock:
            self._content, self._data_cache, self._users_cache, self._text_index = None, None, None, None
            self._successors_cache = None
            self._bundles.clear()
            self._test_ranks.clear()

    def content_hash(self) -> str:
        """The workspace's content hash, read once per import: counting 20M events on every call would cost 0.1 s."""
        with self._lock:
            if self._content is None:
                # read before the hash: an event stored in between is then read again (users_items), never missed
                self._loaded_up_to = self.workspace.last_event_id()
                self._content = self.workspace.content_hash()
            return self._content

    def overview(self):
        from core.store.stats import workspace_stats

        return workspace_stats(self.workspace)

    def sequence_data(self, events=None):
        """The workspace's ``SequenceData``, rebuilt only after an import (from ``events``, every
        interaction as ``Workspace.event_arrays`` gives them, when the caller holds them)."""
        content = self.content_hash()
        with self._lock:
            if self._data_cache is None or self._data_cache[0] != content:
                self._data_cache = (content, build_sequences(self.workspace, events, content))
                self._bundles.clear()
            return self._data_cache[1]

    def time_kind(self) -> str:
        """"unix" when the events carry real timestamps, "order" when only their order is known."""
        return self.workspace.get_meta("time_kind", "unix") or "unix"

    def device_name(self) -> str:
        from core.training import device_name, resolve_device

        return device_name(resolve_device("auto"))

    # -- serving ----------------------------------------------------------------------------

    def recommend(self, run_id: int, user: Optional[str], k: int = 10, diversity: float = 0.0,
                  exclude_seen: bool = True, history: Optional[list[str]] = None) -> list[Recommendation]:
        """Top-``k`` explained items for ``user`` (or for the what-if ``history`` of item ids).

        An unknown ``user`` raises UnknownUserError unless ``history`` is given: ``history=[]``
        (or ``user=None``) asks for the cold-start list on purpose.
        """
        self.check_list_length(k)
        data = self.sequence_data()
        items, segment = self._history_of(data, user, history, self._user_row(data, user))
        return serving.recommend(self.bundle(run_id), data, items, segment, k, diversity, exclude_seen)

    def recommend_many(self, run_id: int, users: list[str], k: int = 10, diversity: float = 0.0,
                       exclude_seen: bool = True, batch_size: int = SMALL_BATCH, progress=None,
                       cancel=None) -> Iterator[tuple[str, list[Recommendation]]]:
        """(user, recommendations) for many stored users, scored a batch at a time (exports). A batch no
        larger than ``SMALL_BATCH`` keeps its encoding's attention, so the explanations read it instead
        of encoding every user a second time: half the CPU of 256-user batches with a Transformer at 25M
        events (3.1-3.4 against 5.8-7.2 ms a user, paired, under load)."""
        self.check_list_length(k)
        data, bundle = self.sequence_data(), self.bundle(run_id)
        meter = RateMeter(len(users))
        for start in range(0, len(users), batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            batch = list(users[start:start + batch_size])
            resolved = [self._history_of(data, user, None, data.user_index_of(user)) for user in batch]
            lists = serving.recommend_batch(bundle, data, [h for h, _ in resolved], np.array([s for _, s in resolved]),
                                            k, diversity, exclude_seen)
            yield from zip(batch, lists)
            done = start + len(batch)
            emit(progress, meter.report("recommend", done, f"{done:,} of {len(users):,} users"))

    def prepare_to_serve(self, run_id: int) -> None:
        """Load what every request reads before the first one: the run's model and the sequences' id maps
        (at 1M users and 200k items, 3 s of a service's first answer otherwise), and what the re-ranker's
        candidate sources find once (``Ranker.prepare_to_serve``)."""
        bundle = self.bundle(run_id)
        self.sequence_data().build_lookups()
        if bundle.ranker is not None:
            bundle.ranker.prepare_to_serve()

    def recommend_histories(self, run_id: int, users: list[Optional[str]], histories: list[list[str]], k: int = 10,
                            diversity: float = 0.0, exclude_seen: bool = True) -> list[list[Recommendation]]:
        """``recommend`` for many (user, history of item ids) pairs at once: what each would answer, with
        the scoring run once for all (``nextpick serve`` batches the requests that arrive together)."""
        self.check_list_length(k)
        data = self.sequence_data()
        resolved = [serving.resolve_history(data, None if user is None else data.user_index_of(user), list(history))
                    for user, history in zip(users, histories)]
        return serving.recommend_batch(self.bundle(run_id), data, [items for items, _ in resolved],
                                       np.array([segment for _, segment in resolved], dtype=np.int64), k, diversity,
                                       exclude_seen)

    def max_list_length(self) -> int:
        """The longest list a run gives: the candidates the ranker re-orders, or the whole
        catalogue when it is smaller."""
        return min(LONGEST_LIST, self.sequence_data().n_items)

    def check_list_length(self, k: int) -> None:
        """Refuse a list length no answer can have, rather than silently return fewer items."""
        longest = self.max_list_length()
        if 1 <= k <= longest:
            return
        if k < 1:
            raise UsageError(f"a list holds at least 1 item, not {k}")
        why = ("the catalogue's size" if longest < LONGEST_LIST
               else f"it is cut from the {LONGEST_LIST} best candidates the ranker re-orders")
        raise UsageError(f"a list holds at most {longest:,} items ({why}), not {k:,}",
                         f"Ask for {longest:,} items or fewer.")

    def unknown_users(self, users: list[str]) -> list[str]:
        """The ids among ``users`` the workspace has neither events nor a profile for."""
        data = self.sequence_data()
        return [user for user in users if data.user_index_of(user) is None]

    def interests(self, run_id: int, user: Optional[str], history: Optional[list[str]] = None) -> list[Interest]:
        """The user's predicted next interests; an unknown user is refused as in ``recommend``."""
        data = self.sequence_data()
        items, segment = self._history_of(data, user, history, self._user_row(data, user))
        return serving.predicted_interests(self.bundle(run_id), items, segment)

    def _history_of(self, data, user: Optional[str], history: Optional[list[str]],
                    row: Optional[int]) -> tuple[np.ndarray, int]:
        """(item indices, segment) of ``user`` (at ``row`` of ``data``, None when it holds no such user)."""
        if history is None and user is not None and row is None:
            raise UnknownUserError(str(user), self.workspace.path.name)
        return serving.resolve_history(data, row, history)

    def _user_row(self, data, user: Optional[str]) -> Optional[int]:
        """The user's row in ``data`` found through the store's index of user ids: one user's answer
        (Explore's, recommend's) does not wait for the table of every id ``data.user_index_of`` builds
        (0.7 s at a million users). None for an unknown user, or one stored since ``data`` was read."""
        store_id = None if user is None else self.workspace.user_id(user)
        if store_id is None:
            return None
        row = int(np.searchsorted(data.user_store_id, store_id))
        return row if row < data.n_users and data.user_store_id[row] == store_id else None

    def user_history(self, user: str):
        """The user's events in time order: DataFrame with ts, event_type, value, item, title, categories."""
        return self.workspace.user_sequence(user)

    def user_items(self, user: str) -> list[str]:
        """The user's item ids in time order as stored now: with the events another process (a service,
        an import in another window) added since the cached sequences were built. Passed as the
        ``history`` of ``recommend``/``interests``, they count at once without rebuilding anything."""
        return self.workspace.user_items(user)

    def users_items(self, users: list[str]) -> list[list[str]]:
        """``user_items`` of many users (the service's batches of requests): each user's events in the
        loaded sequences, then those stored since (``Workspace.events_since``), as one read of the store
        finds them. Only a user with a newer event timed no later than their loaded ones (it belongs
        among them, or among the loaded ones: the sequences were read after ``_loaded_up_to``) is read
        whole from the store: at 25M events a shopper with 10,000 events took 150-300 ms a request so.
        Consecutive events on one item appear once (as in the sequences)."""
        data = self.sequence_data()
        newer = self.workspace.events_since(self._loaded_up_to, users)
        ids = data.item_labels[0]
        histories = []
        for user in users:
            added, first, interleaved = newer.get(str(user), ([], 0.0, False))
            row = data.user_index_of(user)
            loaded = data.history(row) if row is not None else data.items[:0]
            if interleaved or (added and len(loaded) and first <= data.ts[data.offsets[row + 1] - 1]):
                histories.append(self.workspace.user_items(user))
            else:
                histories.append([ids[i] for i in loaded.tolist()] + added)
        return histories

    def log_position(self) -> LogPosition:
        """Where the log ends now (its newest event and item ids): a change says events or items were added."""
        return LogPosition.of(self.workspace)

    def user_profile(self, user: str) -> dict:
        """The user's imported attributes (age, gender, occupation...), as the users file gave them."""
        return self.workspace.user_attributes(user)

    def held_out(self, user: str, run_id: Optional[int] = None) -> Optional[HeldOut]:
        """The user's test target under the run's split and evaluation mode (leave-one-out on new
        items without a run), with the history it was predicted from; None when that split does
        not test this user."""
        data = self.sequence_data()
        index = self._user_row(data, user)
        choice = runs.get_run(self.workspace, run_id).split if run_id is not None else SplitChoice()
        position = None if index is None else choice.test_position(data, index)
        if position is None:
            return None
        history = data.history(index)
        return HeldOut(str(data.item_external[history[position]]),
                       [str(item) for item in data.item_external[history[:position]]], choice.describe(),
                       choice.kind, choice.eval_mode)

    def held_out_item(self, user: str, run_id: Optional[int] = None) -> Optional[str]:
        """Just the item of ``held_out``: the user's test target, or None."""
        held = self.held_out(user, run_id)
        return None if held is None else held.item

    def users_page(self, offset: int, limit: int, search: Optional[str] = None,
                   order_by: str = "activity") -> list[UserRow]:
        """One page of users: "activity" (most events first), "last_seen" (latest first) or "user" (id order)."""
        return self._user_directory().page(offset, limit, search, order_by)

    def user_count(self, search: Optional[str] = None) -> int:
        return self._user_directory().count(search)

    def prepare_users(self, activity=None) -> int:
        """Build the user directory now, and keep it beside the workspace (not in a read-only one), so
        the next ``users_page`` is an array slice; returns the number of users. ``activity``: as
        ``UserDirectory.read`` takes it."""
        return len(self._user_directory(activity))

    def prepare(self, events=None, activity=None) -> None:
        """Build and cache what the studio reads first, the sequences, the user directory and the items'
        followers (a job for the job process: a scan of every event, unless the caller holds them:
        ``WholeLog.for_caches``)."""
        self.sequence_data(events)
        self.prepare_users(activity)
        self.successors()

    def prepared(self) -> bool:
        """Whether the sequences, the user directory and the items' followers of the current content are
        cached beside the workspace, so reading them maps files instead of scanning every event (never in
        a read-only one)."""
        content = self.content_hash()
        return (not self.workspace.read_only and sequence_cache(self.workspace, content).is_dir()
                and users_folder(self.workspace, content).is_dir()
                and successors_folder(self.workspace, content).is_dir())

    def _user_directory(self, activity=None) -> UserDirectory:
        return self._for_content("_users_cache", lambda content: user_directory(self.workspace, content, activity))

    def _for_content(self, attribute: str, build):
        """The (content hash, value) held in ``attribute`` while the workspace's content is unchanged, else
        ``build(content)``: built outside the lock, so a page reading another cache is not held up by it."""
        content = self.content_hash()
        with self._lock:
            held = getattr(self, attribute)
            if held is not None and held[0] == content:
                return held[1]
        value = build(content)
        with self._lock:
            setattr(self, attribute, (content, value))
        return value
