"""The .npy caches beside a workspace: one folder per content, older contents removed."""

import numpy as np

from core.store.array_files import save_array_folder


def test_a_saved_folder_replaces_older_contents_of_its_kind_only(tmp_path):
    save_array_folder(tmp_path / "users-aaa-v1", {"ids": np.arange(3)})
    save_array_folder(tmp_path / "sequences-aaa-v1", {"items": np.arange(4)})
    save_array_folder(tmp_path / "users-bbb-v1", {"ids": np.arange(5), "events": np.ones(5)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sequences-aaa-v1", "users-bbb-v1"]  # no staging left
    assert np.array_equal(np.load(tmp_path / "users-bbb-v1" / "ids.npy"), np.arange(5))


def test_the_same_content_saved_twice_keeps_the_first(tmp_path):
    save_array_folder(tmp_path / "users-aaa-v1", {"ids": np.arange(3)})
    save_array_folder(tmp_path / "users-aaa-v1", {"ids": np.arange(3)})  # e.g. another process, a moment later
    assert [p.name for p in tmp_path.iterdir()] == ["users-aaa-v1"]
    assert np.array_equal(np.load(tmp_path / "users-aaa-v1" / "ids.npy"), np.arange(3))
