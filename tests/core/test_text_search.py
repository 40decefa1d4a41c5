import json

import pytest

from cli_run import run
from core.engine import Engine
from text_data import packaged_encoder, toy_workspace


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    packaged_encoder()  # skips the module without the [text] extra
    engine = Engine(toy_workspace(tmp_path_factory.mktemp("text") / "ws.sqlite"))
    assert engine.text_available() and engine.text_index() is None  # nothing embedded yet
    engine.embed_items()
    yield engine
    engine.workspace.close()


def test_search_finds_items_by_meaning_without_shared_words(engine):
    found = [info.item for info in engine.search_items("wooden train", 2)]
    assert set(found) == {"t1", "t2"}  # "Deluxe Locomotive 7", "Freight Wagon 2"


def test_words_in_titles_come_first(engine):
    assert [info.item for info in engine.search_items("bunny", 3)][0] == "t6"


def test_search_by_meaning_leaves_out_what_the_words_found(engine):
    assert [info.item for info in engine.search_by_words("locomotive", 5)] == ["t1"]
    assert "t1" not in [info.item for info in engine.search_by_meaning("locomotive", 3, exclude=["t1"])]
    assert [info.item for info in engine.search_by_meaning("wooden train", 1, exclude=["t1"])] == ["t2"]


def test_similar_items_are_the_nearest_texts(engine):
    similar = engine.similar_items("t3", 2)
    assert similar[0].item == "t4" and 0 < similar[1].similarity <= similar[0].similarity <= 1
    assert engine.similar_items("no such item") == []


def test_a_reopened_engine_uses_the_cached_vectors(engine):
    reopened = Engine(engine.workspace)
    assert reopened.text_index() is not None


def test_without_a_text_model_search_falls_back_to_title_words(engine, monkeypatch):
    plain = Engine(engine.workspace)
    monkeypatch.setattr(Engine, "text_available", lambda self: False)
    assert [info.item for info in plain.search_items("game", 5)] == ["t3", "t4"]
    assert plain.search_items("wooden train") == [] and plain.similar_items("t3") == []


def test_cli_items_search_and_similar(engine, capsys):
    code, out, _ = run(capsys, "items", "--db", engine.workspace.path, "--search", "wooden train", "-k", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["by_meaning"] and result["text_model"].startswith("all-MiniLM-L6-v2")
    assert {item["item"] for item in result["items"]} == {"t1", "t2"}
    code, out, _ = run(capsys, "items", "--db", engine.workspace.path, "--similar", " t5 ", "-k", "1")
    assert code == 0 and "t6" in out  # the id as the import stores it, trimmed
    code, out, err = run(capsys, "items", "--db", engine.workspace.path, "--similar", "nope")
    assert code == 1 and "unknown item 'nope'" in err  # not "nothing found", as if it had no neighbours


def test_cli_says_an_item_without_text_has_nothing_to_compare(capsys, tmp_path):
    """An id posted to the service or imported without an items file has no text: `items --similar`
    said "nothing found", as if the language model had found no neighbour."""
    from text_data import TOY_ITEMS

    bare = Engine(toy_workspace(tmp_path / "ws.sqlite", [*TOY_ITEMS, ("bare", "", "", {})]))
    bare.embed_items()
    code, out, _ = run(capsys, "items", "--db", bare.workspace.path, "--similar", "bare")
    assert code == 0 and "bare has no title, category or attribute to read" in out and "nothing found" not in out
    code, out, _ = run(capsys, "items", "--db", bare.workspace.path, "--similar", "t3", "-k", "1")
    assert code == 0 and "t4" in out
    bare.workspace.close()


def test_cli_names_a_folder_that_is_no_model(engine, capsys, tmp_path):
    code, _, err = run(capsys, "items", "--db", engine.workspace.path, "--search", "x", "--text-model", tmp_path)
    assert code == 1 and f"{tmp_path} is not a sentence-transformers model folder" in err


def test_the_catalogue_text_is_read_once_until_asked_to_look_again(tmp_path, monkeypatch):
    """Explore asks for similar items on every user it shows; a catalogue not embedded (yet) must not
    be read again each time. Once another process has embedded it, ``reread`` finds the vectors."""
    from core.jobs import embed_item_text
    from core.text import catalogue

    packaged_encoder()
    workspace = toy_workspace(tmp_path / "ws.sqlite")
    window = Engine(workspace)
    reads = []
    read = catalogue.cached_vectors
    monkeypatch.setattr(catalogue, "cached_vectors", lambda *args: reads.append(args) or read(*args))
    assert window.similar_items("t3") == [] and window.similar_items("t4") == []
    assert len(reads) == 1
    assert embed_item_text(Engine(workspace))  # the studio's job process
    assert window.similar_items("t3") == []  # the miss is remembered...
    assert window.text_index(reread=True) is not None  # ...until the window looks again
    assert window.similar_items("t3")[0].item == "t4"
    workspace.close()


def test_a_catalogue_of_ids_alone_is_searched_by_words_and_never_crashes(tmp_path, monkeypatch, capsys):
    """Items known only by their ids (an order export without a products file): `nextpick items --search`
    ended in a traceback from the vector product (no item had text, so its vectors had no width)."""
    from text_data import use_word_encoder

    encoder = use_word_encoder(monkeypatch)
    read = []
    monkeypatch.setattr(encoder, "encode", lambda texts: read.append(texts))
    workspace = toy_workspace(tmp_path / "ids.sqlite", items=[("SKU-1", None, None, {}), ("SKU-2", None, None, {})])
    workspace.close()
    code, out, _ = run(capsys, "items", "--db", tmp_path / "ids.sqlite", "--search", "SKU-2")
    assert code == 0 and "SKU-2" in out and "SKU-1" not in out
    code, out, err = run(capsys, "items", "--db", tmp_path / "ids.sqlite", "--search", "widget")
    assert code == 0 and "nothing found" in out and "no item has a title or other text to read" in err
    assert read == []  # nothing to mean anything: the query is not read by the model
