import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import core.evaluation
import core.runs.train
from core.evaluation import ranks_for
from core.progress import CancelToken, Cancelled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_blocks_a_console_run_keeps_are_handed_back_on_request():
    probe = ("import numpy as np\n"
             "from core.memory import keep_freed_memory, hand_back_freed_memory\n"
             "keep_freed_memory()\n"
             "def anon_mib():\n"
             "    return int(next(l for l in open('/proc/self/status') if l.startswith('RssAnon')).split()[1]) // 1024\n"
             "block = np.ones(256 << 20, dtype=np.uint8)\n"  # 256 MiB, faulted in
             "del block\n"
             "kept = anon_mib()\n"
             "hand_back_freed_memory()\n"
             "print(kept - anon_mib())\n")
    handed_back = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                     env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}).stdout)
    assert handed_back >= 128  # kept after the free, gone after the hand-back (here 256 MiB)


class _Recording:
    """A scorer of 4 items that notes each batch it scores in ``events``."""

    def __init__(self, events: list) -> None:
        self.events = events

    def score(self, histories, segments=None):
        self.events.append("score")
        return torch.arange(5, dtype=torch.float32).repeat(len(histories), 1)


def test_a_scoring_pass_hands_back_freed_memory_before_its_first_batch_and_after_its_last(monkeypatch):
    events = []
    monkeypatch.setattr(core.evaluation, "hand_back_freed_memory", lambda: events.append("hand back"))
    histories = [np.array([1], dtype=np.int32)] * 5
    ranks = ranks_for(_Recording(events), histories, np.full(5, 2), batch_size=2)
    assert ranks.tolist() == [2] * 5  # items 4 and 3 above item 2 (1 is masked)
    assert events == ["hand back", "score", "score", "score", "hand back"]


def test_a_cancelled_scoring_pass_still_hands_back_what_it_freed(monkeypatch):
    events, cancel = [], CancelToken()

    class CancelledAfterOneBatch(_Recording):
        def score(self, histories, segments=None):
            cancel.cancel()
            return super().score(histories, segments)

    monkeypatch.setattr(core.evaluation, "hand_back_freed_memory", lambda: events.append("hand back"))
    with pytest.raises(Cancelled):
        ranks_for(CancelledAfterOneBatch(events), [np.array([1])] * 5, np.full(5, 2), batch_size=2, cancel=cancel)
    assert events == ["hand back", "score", "hand back"]


def test_each_phase_of_a_run_hands_back_the_memory_it_freed(monkeypatch):
    handed_back = []
    monkeypatch.setattr(core.runs.train, "hand_back_freed_memory", lambda: handed_back.append(True))
    phases = core.runs.train._Phases(None)
    phases.end("reading")
    phases.end("training")
    assert len(handed_back) == 2 and set(phases.timing["peak_rss_mb"]) == {"reading", "training"}


def test_a_scoring_pass_holds_scores_for_at_most_score_cells_items_at_once(monkeypatch):
    sizes = []

    class Sized(_Recording):
        def score(self, histories, segments=None):
            sizes.append(len(histories))
            return super().score(histories, segments)

    monkeypatch.setattr(core.evaluation, "SCORE_CELLS", 10)  # two users of this 5-column catalogue
    ranks = ranks_for(Sized([]), [np.array([1])] * 9, np.full(9, 2), batch_size=3)
    assert sizes == [3, 2, 2, 2] and ranks.tolist() == [2] * 9  # the first batch learns the width
