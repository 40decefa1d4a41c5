import numpy as np
import pytest

from core.progress import CancelToken, Cancelled
from core.text import embed_catalogue, item_text
from core.text.catalogue import text_hash
from text_data import TOY_ITEMS, WordEncoder, toy_workspace


def test_item_text_joins_title_categories_and_text_attributes():
    text = item_text("Wooden Train", "Toys|Trains", '{"brand": "Acme", "price": 12.5, "colour": " "}')
    assert text == "Wooden Train. Categories: Toys, Trains. brand: Acme"
    assert item_text(None, "", None) == "" and item_text("", None, "not json") == ""


def test_vectors_are_cached_and_only_new_or_changed_items_are_embedded_again(tmp_path):
    workspace = toy_workspace(tmp_path / "ws.sqlite")
    encoder = WordEncoder()
    first = embed_catalogue(workspace, encoder)
    assert len(encoder.encoded) == len(TOY_ITEMS) == len(first.store_ids)
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-3)

    encoder.encoded.clear()
    again = embed_catalogue(workspace, encoder)
    assert encoder.encoded == []
    np.testing.assert_array_equal(again.vectors, first.vectors)

    with workspace.engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("UPDATE items SET title = 'Steam Locomotive 7' WHERE external_id = 't1'")
        raw.execute("INSERT INTO items (external_id, title) VALUES ('t7', 'Wooden Rail Bridge')")
    refreshed = embed_catalogue(workspace, encoder)
    assert [text.split(".")[0] for text in encoder.encoded] == ["Steam Locomotive 7", "Wooden Rail Bridge"]
    assert len(refreshed.store_ids) == len(TOY_ITEMS) + 1

    other_model = WordEncoder(key="words v2")
    embed_catalogue(workspace, other_model)
    assert len(other_model.encoded) == len(TOY_ITEMS) + 1  # vectors are kept per model name and version


def test_a_cancelled_job_keeps_the_batches_it_finished(tmp_path):
    workspace = toy_workspace(tmp_path / "ws.sqlite")
    cancel, reports = CancelToken(), []

    def progress(report):
        reports.append(report)
        if report.done >= 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        embed_catalogue(workspace, WordEncoder(), progress=progress, cancel=cancel, batch_items=2)
    encoder = WordEncoder()
    embed_catalogue(workspace, encoder)
    assert len(encoder.encoded) == len(TOY_ITEMS) - 2
    assert reports[0].stage == "embed" and reports[0].total == len(TOY_ITEMS)
    assert reports[0].message == f"reading {len(TOY_ITEMS)} item texts with the language model"
    reports.clear()
    embed_catalogue(workspace, WordEncoder(), progress=reports.append)  # nothing left: not "reading 0 item texts"
    assert [r.message for r in reports] == [f"the {len(TOY_ITEMS)} items' text already read (cached in the workspace)"]


def test_text_hash_changes_with_the_text():
    assert text_hash("a") != text_hash("b") and len(text_hash("a")) == 16


def test_a_read_only_workspace_gets_its_vectors_without_storing_them(tmp_path):
    from core.store import Workspace

    toy_workspace(tmp_path / "ws.sqlite").close()
    reader = Workspace.open(tmp_path / "ws.sqlite", read_only=True)
    vectors = embed_catalogue(reader, WordEncoder())
    assert len(vectors.store_ids) == len(TOY_ITEMS) and np.all(np.diff(vectors.store_ids) > 0)
    encoder = WordEncoder()
    embed_catalogue(reader, encoder)
    assert len(encoder.encoded) == len(TOY_ITEMS)  # nothing was cached


def test_a_workspace_from_before_the_cache_gets_its_table_on_the_first_write(tmp_path):
    workspace = toy_workspace(tmp_path / "ws.sqlite")
    with workspace.engine.begin() as conn:
        conn.connection.dbapi_connection.execute("DROP TABLE item_text_vectors")
    assert len(embed_catalogue(workspace, WordEncoder()).store_ids) == len(TOY_ITEMS)
    encoder = WordEncoder()
    embed_catalogue(workspace, encoder)
    assert encoder.encoded == []
