"""The three shared datasets import with exact counts, categories and profiles."""

import json

import pandas as pd

from core.importing import ImportOptions, import_files, sniff


def test_ml100k_events_items_users(workspace, shared_data):
    folder = shared_data / "ml-100k"
    item_file = sniff(folder / "u.item")
    assert (item_file.encoding, item_file.delimiter, item_file.has_header) == ("latin-1", "|", False)
    assert len(item_file.columns) == 24 and item_file.preview[0][1] == "Toy Story (1995)"
    report = import_files(workspace, events=folder / "u.data", items=folder / "u.item", users=folder / "u.user")
    assert workspace.counts() == {"users": 943, "items": 1682, "events": 100000}
    assert [(f.kind, f.rows_accepted, f.rows_rejected) for f in report.files] == [
        ("items", 1682, 0), ("users", 943, 0), ("events", 100000, 0)]
    assert workspace.get_meta("time_kind") == "unix"
    items = workspace.items_frame().set_index("external_id")
    # Genre names come from u.genre; Toy Story is flagged Animation, Children's, Comedy (in that order).
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "categories"] == "Animation|Children's|Comedy"
    assert items["categories"].notna().all()
    # u.item is latin-1: accented titles survive.
    assert items["title"].str.contains("é").any()
    users = workspace.users_frame().set_index("external_id")
    assert json.loads(users.loc["1", "attributes"]) == {"col2": 24, "col3": "M", "col4": "technician", "col5": "85711"}
    sequence = workspace.user_sequence("196")
    assert len(sequence) == 39 and sequence["ts"].is_monotonic_increasing
    assert set(sequence["value"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_headerless_users_named_by_column_names_option(workspace, shared_data):
    options = ImportOptions(column_names={"users": ["user", "age", "gender", "occupation", "zip"]})
    import_files(workspace, users=shared_data / "ml-100k" / "u.user", options=options)
    users = workspace.users_frame().set_index("external_id")
    assert len(users) == 943
    assert json.loads(users.loc["2", "attributes"]) == {"age": 53, "gender": "F", "occupation": "other", "zip": "94043"}


def test_items_file_after_events_fills_in_titles(workspace, shared_data):
    folder = shared_data / "ml-100k"
    import_files(workspace, events=folder / "u.data")
    assert workspace.items_frame()["title"].isna().all()
    import_files(workspace, items=folder / "u.item")
    items = workspace.items_frame()
    assert len(items) == 1682 and items["title"].notna().all()
    assert workspace.counts()["events"] == 100000


def test_ml_latest_small_ratings_and_movies(workspace, shared_data):
    folder = shared_data / "ml-latest-small"
    report = import_files(workspace, events=folder / "ratings.csv", items=folder / "movies.csv")
    assert report.file("items").rows_accepted == 9742
    # MovieLens ships 100,836 ratings by 610 users. Some copies of the shared file carry one more
    # last line without a newline, "999,999999,5.0,1493846415": a valid row, imported with one more
    # user and one item that movies.csv does not list. The test holds for either copy.
    lines = (folder / "ratings.csv").read_text().splitlines()
    extra = lines[-1].startswith("999,999999,")
    assert report.file("events").rows_accepted == len(lines) - 1 == 100836 + extra
    assert workspace.counts() == {"users": 610 + extra, "items": 9742 + extra, "events": 100836 + extra}
    if extra:
        assert len(workspace.user_sequence("999")) == 1
    items = workspace.items_frame().set_index("external_id")
    assert items.loc["1", "categories"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert items.loc["11", "title"] == "American President, The (1995)"  # quoted comma
    assert not extra or pd.isna(items.loc["999999", "title"])
    assert report.file("events").roles == {"user": "userId", "item": "movieId", "time": "timestamp", "value": "rating"}


def test_amazon_toys_step_is_an_order(workspace, shared_data):
    report = import_files(workspace, events=shared_data / "amazon-toys" / "toys_events.csv")
    assert workspace.counts() == {"users": 19412, "items": 11924, "events": 167597}
    assert report.file("events").time_kind == "order"
    assert workspace.get_meta("time_kind") == "order"
    assert workspace.user_sequence("1")["ts"].tolist()[:3] == [0.0, 1.0, 2.0]
