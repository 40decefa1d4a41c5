"""Predictor: H_t -> Y_{t+1|t}, a probability distribution over the user's next interest.

An interest is an item category when the shop gave categories; otherwise it is a cluster of
items found by k-means on the learned item embeddings, named after its most typical items.
The head is trained jointly with the next-item objective (target = the next item's interest),
answers "what is this user into next", and feeds the generator's interest-match term.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

NO_INTEREST = -1  # interest index of an item without category / before clustering
KMEANS_ITERATIONS = 25
NAMING_ITEMS = 3  # typical items that name a cluster


class InterestHead(nn.Module):
    """Linear head over hidden states plus the item -> interest map it is trained against."""

    def __init__(self, hidden: int, n_interests: int, n_items: int) -> None:
        super().__init__()
        self.n_interests = n_interests
        self.norm = nn.LayerNorm(hidden)
        self.linear = nn.Linear(hidden, n_interests)
        # Interest index of every item index (NO_INTEREST for padding / uncategorised items).
        self.register_buffer("item_interest", torch.full((n_items + 1,), NO_INTEREST, dtype=torch.long))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., d) -> interest logits (..., n_interests)."""
        return self.linear(self.norm(hidden))

    def targets(self, next_items: torch.Tensor) -> torch.Tensor:
        """Interest index of each next item; NO_INTEREST where it has none (ignored by the loss)."""
        return self.item_interest[next_items]


def interests_from_categories(item_category: np.ndarray) -> np.ndarray:
    """Category c (1..) becomes interest c - 1; items without a category get NO_INTEREST."""
    return np.asarray(item_category, dtype=np.int64) - 1


def kmeans(points: torch.Tensor, k: int, iterations: int = KMEANS_ITERATIONS, seed: int = 0,
           start: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain k-means on cosine geometry: (assignment (n,), centroids (k, d)).

    Seeded with k-means++ so small catalogues do not end with empty clusters, or from a ``start``
    assignment (n,) (NO_INTEREST = none) so a re-run on slightly moved points keeps each
    cluster's number.
    """
    generator = torch.Generator().manual_seed(seed)
    points = nn.functional.normalize(points.detach().float().cpu(), dim=1)
    k = max(1, min(k, len(points)))
    if start is None:
        centroids = _kmeans_plus_plus(points, k, generator)
    else:  # a cluster without members starts at a random point
        start = start.cpu()
        member = start >= 0
        anywhere = points[torch.randint(len(points), (k,), generator=generator)]
        centroids, _ = _centres(points[member], start[member], k, anywhere)
    for _ in range(iterations):
        similarity = points @ centroids.T
        assignment = similarity.argmax(dim=1)
        centroids, counts = _centres(points, assignment, k, centroids)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):  # restart empty clusters at the worst-fitting points, so every interest has items
            worst = similarity.max(dim=1).values.argsort()[: len(empty)]
            centroids[empty] = points[worst]
    return (points @ centroids.T).argmax(dim=1), centroids


def _centres(points: torch.Tensor, assignment: torch.Tensor, k: int,
             fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit mean direction of each cluster (``fallback`` where it has no member), and member counts."""
    sums = torch.zeros(k, points.shape[1]).index_add_(0, assignment, points)
    counts = torch.bincount(assignment, minlength=k)
    return torch.where(counts.unsqueeze(1) > 0, nn.functional.normalize(sums, dim=1), fallback), counts


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    centroids = points[torch.randint(len(points), (1,), generator=generator)]
    for _ in range(1, k):
        distance = (1 - points @ centroids.T).clamp(min=0).min(dim=1).values
        weights = distance + 1e-12
        centroids = torch.cat([centroids, points[torch.multinomial(weights, 1, generator=generator)]])
    return centroids


def cluster_items(item_table: torch.Tensor, k: int, seed: int = 0,
                  previous: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Interest per item index from k-means over item embeddings (row 0 = padding -> NO_INTEREST).

    Training re-clusters after every epoch, because clusters of the first epoch's barely trained
    embeddings name nothing a person would recognise. Passing the ``previous`` item -> interest
    map starts k-means from those clusters, so interest numbers (and the interest head trained
    on them) stay meaningful from one epoch to the next.
    """
    start = None if previous is None or not bool((previous[1:] >= 0).any()) else previous[1:]
    assignment, _ = kmeans(item_table[1:], k, seed=seed, start=start)
    return torch.cat([torch.tensor([NO_INTEREST]), assignment])


def interest_names(item_interest: np.ndarray, item_table: np.ndarray, item_title: np.ndarray,
                   item_external: np.ndarray, category_names: Optional[np.ndarray]) -> list[str]:
    """Readable name per interest: the category name, or the words a cluster's titles share and its
    most typical items ("interest 2 · trains, wooden: Wooden Train Set 1, ...")."""
    from core.text.naming import distinctive_words

    item_interest = np.asarray(item_interest)
    n_interests = int(item_interest.max()) + 1 if len(item_interest) else 0
    if category_names is not None and len(category_names) > 1:
        return [str(name) for name in category_names[1:]]
    table = item_table / np.maximum(np.linalg.norm(item_table, axis=1, keepdims=True), 1e-12)
    words = distinctive_words(item_interest, item_title, n_interests)
    names = []
    for interest in range(n_interests):
        members = np.flatnonzero(item_interest == interest)
        if not len(members):
            names.append(f"interest {interest + 1} (empty)")
            continue
        centre = table[members].mean(axis=0)
        typical = members[np.argsort(-(table[members] @ centre))[:NAMING_ITEMS]]
        labels = [str(item_title[i]) or str(item_external[i]) for i in typical]
        about = f" · {', '.join(words[interest])}" if words[interest] else ""
        names.append(f"interest {interest + 1}{about}: " + ", ".join(labels))
    return names
