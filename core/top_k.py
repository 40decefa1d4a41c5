"""The k best-scored items of every row of a wide score block, without a selection over every item.

``torch.topk`` over a 200,000-item catalogue took half of a baseline run's evaluation on CPU (0.15 s
per 256 users, three times per batch: the evaluation's top 10, the re-ranker's candidates, a
baseline's interests). A strided sample of the columns gives each row a score that at least ``k``
of its items reach; only those items (about a thousand, not 200,000) go through ``torch.topk``:
0.07 s instead of 0.17 for the top 10 of 256 users, 0.11 instead of 0.19 for the top 100.
"""

from __future__ import annotations

import numpy as np
import torch

CANDIDATES = 1000  # about this many candidates per row: every (1000 / k)-th column sampled, 4 to 32
DIRECT_BELOW = 16_384  # narrower rows (and k near the width) go straight to torch.topk
MOST_CANDIDATES = 8  # a batch whose candidates exceed 1/8 of the width (ties, -inf rows) does too


def top_k(scores: torch.Tensor, k: int) -> torch.return_types.topk:
    """``torch.topk(scores, k, dim=1)``: values and indices, best first, of each row of a 2-D float tensor.

    The same values always; among items scoring exactly the k-th value, ``torch.topk`` picks some
    (which ones is not specified) and so does this, not necessarily the same ones. Rows this cannot
    narrow well (many ties at the sample's level, rows of -inf, NaN) go to ``torch.topk`` whole.
    """
    width, stride = scores.shape[1], max(4, min(32, CANDIDATES // max(k, 1)))
    if width < DIRECT_BELOW or k * stride * 4 > width or scores.device.type != "cpu" or not len(scores):
        return torch.topk(scores, k, dim=1)
    level = torch.topk(scores[:, ::stride], k, dim=1).values[:, -1:]  # the sample's own k best reach it
    flat = scores.detach().contiguous().numpy()
    reached = np.flatnonzero(flat >= level.numpy())  # numpy: a third of torch's time for this pass
    rows = reached // width
    per_row = np.bincount(rows, minlength=len(flat))
    if per_row.min() < k or per_row.max() * MOST_CANDIDATES > width:
        return torch.topk(scores, k, dim=1)
    most = int(per_row.max())
    at = rows * most + np.arange(len(reached)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    values = np.full((len(flat), most), -np.inf, dtype=flat.dtype)
    columns = np.zeros(values.shape, dtype=np.int64)
    values.ravel()[at] = flat.ravel()[reached]
    columns.ravel()[at] = reached - rows * width
    best = torch.topk(torch.from_numpy(values), k, dim=1)
    return torch.return_types.topk((best.values, torch.from_numpy(columns).gather(1, best.indices)))
