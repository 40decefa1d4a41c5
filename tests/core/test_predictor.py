import numpy as np
import torch

from core.encoder import EncoderConfig
from core.pipeline import NeuralScorer, SequenceModel
from core.predictor import NO_INTEREST, cluster_items, interest_names, interests_from_categories, kmeans


def test_interest_probabilities_sum_to_one_and_follow_categories():
    model = SequenceModel(EncoderConfig("sasrec", n_items=12, n_categories=4, hidden=8, max_len=5), n_interests=3)
    category = np.array([0] + [1, 2, 3, 0] * 3)
    model.predictor.item_interest.copy_(torch.from_numpy(interests_from_categories(category)))
    assert model.predictor.targets(torch.tensor([1, 2, 3, 4])).tolist() == [0, 1, 2, NO_INTEREST]
    probabilities = NeuralScorer(model, "sasrec").interests(np.array([1, 2, 5]))
    assert probabilities.shape == (3,)
    assert np.isclose(probabilities.sum(), 1.0) and (probabilities > 0).all()


def test_interests_are_unavailable_before_items_are_mapped():
    model = SequenceModel(EncoderConfig("gru", n_items=5, n_categories=1, hidden=8), n_interests=2)
    assert not model.catalogue().has_interests
    assert NeuralScorer(model, "gru").interests(np.array([1])) is None


def test_kmeans_finds_separated_groups():
    torch.manual_seed(0)
    centres = torch.eye(4) * 5
    points = torch.cat([centres[i] + 0.1 * torch.randn(20, 4) for i in range(4)])
    assignment, centroids = kmeans(points, 4)
    groups = assignment.view(4, 20)
    assert all(len(set(g.tolist())) == 1 for g in groups)
    assert len(set(groups[:, 0].tolist())) == 4
    assert centroids.shape == (4, 4)


def test_clusters_name_interests_by_typical_items_without_categories():
    torch.manual_seed(0)
    table = torch.cat([torch.zeros(1, 3), torch.eye(3).repeat_interleave(4, dim=0) + 0.05 * torch.randn(12, 3)])
    item_interest = cluster_items(table, k=3)
    assert item_interest[0] == NO_INTEREST
    assert len(set(item_interest[1:5].tolist())) == 1 and len(set(item_interest[1:].tolist())) == 3
    titles = np.array([""] + [f"Toy {i}" for i in range(1, 13)], dtype=object)
    names = interest_names(item_interest.numpy(), table.numpy(), titles, titles, np.array(["(none)"]))
    assert len(names) == 3
    first = names[int(item_interest[1])]
    assert any(f"Toy {i}" in first for i in range(1, 5)) and "Toy 9" not in first


def test_category_names_are_interest_names_when_present():
    names = interest_names(np.array([-1, 0, 1]), np.zeros((3, 2)), np.array(["", "a", "b"]), np.array(["", "a", "b"]),
                           np.array(["(none)", "Books", "Toys"]))
    assert names == ["Books", "Toys"]


def test_every_cluster_gets_items_even_from_clumped_points():
    torch.manual_seed(1)
    points = torch.cat([torch.randn(1, 5) + 0.01 * torch.randn(60, 5), torch.randn(4, 5)])
    assignment, _ = kmeans(points, 8)
    assert sorted(set(assignment.tolist())) == list(range(8))


def test_reclustering_moved_embeddings_keeps_each_clusters_number():
    torch.manual_seed(2)
    groups = torch.eye(4).repeat_interleave(10, dim=0)
    table = torch.cat([torch.zeros(1, 4), groups + 0.05 * torch.randn(40, 4)])
    first = cluster_items(table, k=4, seed=0)
    moved = table + 0.1 * torch.randn_like(table)
    again = cluster_items(moved, k=4, seed=5, previous=first)
    assert torch.equal(again, first)
    fresh = cluster_items(moved, k=4, seed=5)
    assert len(set(fresh[1:].tolist())) == 4  # a cold start also finds the groups, numbered as it likes


def test_reclustering_starts_missing_clusters_somewhere():
    table = torch.cat([torch.zeros(1, 3), torch.randn(12, 3)])
    previous = torch.tensor([NO_INTEREST] + [0] * 12)  # every item in cluster 0 of 3
    again = cluster_items(table, k=3, previous=previous)
    assert again[0] == NO_INTEREST and set(again[1:].tolist()) <= {0, 1, 2}
