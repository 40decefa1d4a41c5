"""Import from a database query: the same roles, checks, rejected rows and one transaction as a
file, streamed in chunks with progress and cancel.

The SQLite-source tests always run. The PostgreSQL tests use a real server, never a mock: the
one ``.ci/run`` starts (``.ci/postgres``), named by NEXTPICK_TEST_PG_URL; they skip without it.
"""

import datetime as dt
import os
import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from core.importing import CsvImportError, ImportOptions, SqlQuery, import_files, import_history, preview_source
from core.progress import CancelToken, Cancelled
from tests.core.cli_run import run

UTC = dt.timezone.utc
START = dt.datetime(2026, 3, 1, tzinfo=UTC)


def _rows(n):
    return [(f"u{i % 7}", f"P{(i * 5) % 11}", START + dt.timedelta(minutes=i), "view" if i % 3 else "purchase", i + 0.5)
            for i in range(n)]


def _snapshot(workspace):
    with sqlite3.connect(workspace.path) as raw:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "items", "events", "imports", "rejected_rows", "meta")}


@pytest.fixture
def shop_db(tmp_path):
    """A SQLite database with an events table: unix times, one bad time, one missing item."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (customer TEXT, sku TEXT, ts INTEGER, action TEXT, price REAL)")
        rows = [(u, p, int(t.timestamp()), a, v) for u, p, t, a, v in _rows(30)]
        rows[4] = ("u4", "P9", "yesterday", "view", 1.0)
        rows[9] = ("u2", None, rows[9][2], "view", 1.0)
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


ROLES = {"user": "customer", "item": "sku", "time": "ts", "event": "action", "value": "price"}


def test_a_query_imports_its_rows_and_reports_bad_ones_by_row(workspace, shop_db):
    query = SqlQuery(shop_db, "SELECT customer, sku, ts, action, price FROM events ORDER BY rowid")
    report = import_files(workspace, events=query, options=ImportOptions(roles=ROLES)).file("events")
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (30, 28, 2)
    assert [(r.unit, r.line, r.column, r.reason) for r in report.rejected] == [
        ("row", 5, "ts", "unparseable time 'yesterday'"), ("row", 10, "sku", "missing item id")]
    assert workspace.user_sequence("u0")["ts"].tolist()[0] == START.timestamp()
    history = import_history(workspace)[0]
    assert history["source_path"] == shop_db and "ORDER BY rowid" in history["options"]
    assert history["source_name"] == report.name == "shop.db query"  # what the Data page and the dialog show


def test_the_same_query_again_adds_only_new_rows(workspace, shop_db):
    query = SqlQuery(shop_db, "SELECT customer AS user_id, sku AS item_id, ts FROM events")
    import_files(workspace, events=query)
    with sqlite3.connect(shop_db.removeprefix("sqlite:///")) as db:
        db.execute("INSERT INTO events VALUES ('u99', 'P1', 1772400000, 'view', 1)")
    again = import_files(workspace, events=query).file("events")
    assert not again.duplicate and again.rows_accepted == 1 and again.duplicates == 28


def test_strict_names_the_database_row_and_column_and_changes_nothing(workspace, shop_db, tmp_path):
    before = _snapshot(workspace)
    query = SqlQuery(shop_db, "SELECT customer, sku, ts, action, price FROM events ORDER BY rowid")
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=query, options=ImportOptions(roles=ROLES, strict=True))
    assert str(error.value) == f"{shop_db}, row 5, column 'ts': unparseable time 'yesterday'"
    assert _snapshot(workspace) == before


def test_database_errors_are_clear_and_hide_the_password(workspace, shop_db):
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=SqlQuery(shop_db, "SELECT nope FROM events"))
    assert "the database refused: no such column: nope" in str(error.value)
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=SqlQuery("postgresql://shop:s3cret@127.0.0.1:1/shop", "SELECT 1"))
    assert "s3cret" not in str(error.value) and "postgresql://shop:***@127.0.0.1:1/shop" in str(error.value)
    assert error.value.hint
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=SqlQuery("nodb://x", "SELECT 1"))
    assert "no driver" in str(error.value) or "not a database URL" in str(error.value)
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=SqlQuery(shop_db, "SELECT customer, sku FROM events WHERE 0"))
    assert "no data rows" in str(error.value)
    assert workspace.counts()["events"] == 0


def test_items_and_users_come_from_queries_too(workspace, shop_db):
    with sqlite3.connect(shop_db.removeprefix("sqlite:///")) as db:
        db.execute("CREATE TABLE products (sku TEXT, name TEXT, category TEXT, weight INTEGER)")
        db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", [(f"P{i}", f"Item {i}", "Tools", 100 + i) for i in range(11)])
    report = import_files(workspace, items=SqlQuery(shop_db, "SELECT sku AS item_id, name AS title, category, weight FROM products"))
    assert report.file("items").rows_accepted == 11
    frame = workspace.items_frame().set_index("external_id")
    assert frame.loc["P3", "title"] == "Item 3" and frame.loc["P3", "categories"] == "Tools"


def test_preview_shows_the_first_rows_and_guessed_roles(shop_db):
    preview = preview_source(SqlQuery(shop_db, "SELECT customer AS user_id, sku AS item_id, ts FROM events"), ImportOptions())
    assert preview.columns == ["user_id", "item_id", "ts"] and len(preview.preview) == 20
    assert preview.preview[0] == ["u0", "P0", str(int(START.timestamp()))]
    assert preview.roles == {"user": "user_id", "item": "item_id", "time": "ts"}


def test_columns_of_the_same_name_are_both_kept(workspace, shop_db):
    query = SqlQuery(shop_db, "SELECT e.customer AS id, e.sku AS id, e.ts FROM events e ORDER BY rowid")
    report = import_files(workspace, events=query, options=ImportOptions(roles={"user": "id", "item": "id_2"})).file("events")
    assert report.renamed == {"id_2": "id"} and report.rows_accepted == 28
    assert workspace.user_sequence("u0")["item"].tolist()[:1] == ["P0"]


def test_columns_that_change_between_preview_and_reading_are_refused(shop_db):
    from core.importing.sql import SqlSource

    source = SqlSource(SqlQuery(shop_db, "SELECT * FROM events"))
    with sqlite3.connect(shop_db.removeprefix("sqlite:///")) as db:
        db.execute("ALTER TABLE events ADD COLUMN coupon TEXT")
    with pytest.raises(CsvImportError, match="columns changed since it was previewed"):
        next(source.read(10))


def test_cli_from_sql(capsys, shop_db, tmp_path):
    code, out, err = run(capsys, "import", "--from-sql", shop_db, "--query",
                         "SELECT customer AS user_id, sku AS item_id, ts FROM events ORDER BY rowid",
                         "--db", tmp_path / "ws.sqlite")
    assert code == 0, err
    assert "30 rows read, 28 accepted, 2 rejected" in out and "row 5, column 'ts': unparseable time 'yesterday'" in out
    code, _out, err = run(capsys, "import", "--query", "SELECT 1", "--db", tmp_path / "ws.sqlite")
    assert code == 2 and "--from-sql" in err


# -- a real PostgreSQL server ------------------------------------------------------------------

@pytest.fixture
def postgres():
    """An engine on the test server, and a fresh schema dropped afterwards."""
    url = os.environ.get("NEXTPICK_TEST_PG_URL")
    if not url:
        pytest.skip("no PostgreSQL server: NEXTPICK_TEST_PG_URL is not set (.ci/run starts one with .ci/postgres)")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield url, engine, schema
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def _pg_events(engine, schema, n):
    """Typed columns as a shop's database holds them: bigint ids, timestamptz, numeric prices."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {schema}.events (id serial, user_id bigint, item_id text, "
                             "created_at timestamptz, action text, price numeric(10, 2))"))
        conn.execute(sa.text(f"INSERT INTO {schema}.events (user_id, item_id, created_at, action, price) "
                             "VALUES (:u, :i, :t, :a, :p)"),
                     [{"u": i % 7, "i": p, "t": t, "a": a, "p": v} for i, (_u, p, t, a, v) in enumerate(_rows(n))])
        conn.execute(sa.text(f"UPDATE {schema}.events SET created_at = '1850-01-01' WHERE id = 4"))


def test_postgres_rows_stream_in_chunks_through_a_server_side_cursor(workspace, postgres):
    url, engine, schema = postgres
    _pg_events(engine, schema, 250)
    fetching, seen = [], []

    def listen(report):
        if report.stage == "import events":
            seen.append(report.done)
            with engine.connect() as conn:  # what the import's own session is doing meanwhile
                fetching.append(conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'FETCH FORWARD%'")).scalar_one())

    query = SqlQuery(url, f"SELECT user_id, item_id, created_at, action, price FROM {schema}.events ORDER BY id")
    report = import_files(workspace, events=query, options=ImportOptions(chunk_rows=100), progress=listen).file("events")
    assert seen == [100, 200, 250] and all(fetching)
    assert (report.rows_read, report.rows_accepted) == (250, 249)
    assert [(r.line, r.column) for r in report.rejected] == [(4, "created_at")]
    assert "1850-01-01" in report.rejected[0].reason
    first = workspace.user_sequence("0")
    assert first["ts"].tolist()[0] == START.timestamp()
    values = sqlite3.connect(workspace.path).execute("SELECT value FROM events ORDER BY id LIMIT 2").fetchall()
    assert values == [(0.5,), (1.5,)]


def test_postgres_cancel_between_chunks_leaves_the_workspace_as_it_was(workspace, postgres, shop_db):
    url, engine, schema = postgres
    import_files(workspace, events=SqlQuery(shop_db, "SELECT customer AS user_id, sku AS item_id, ts FROM events"))
    before = _snapshot(workspace)
    _pg_events(engine, schema, 250)
    token = CancelToken()
    with pytest.raises(Cancelled):
        import_files(workspace, events=SqlQuery(url, f"SELECT user_id, item_id, created_at FROM {schema}.events"),
                     options=ImportOptions(chunk_rows=100), cancel=token,
                     progress=lambda r: token.cancel() if r.stage == "import events" else None)
    assert _snapshot(workspace) == before


def test_postgres_cli_and_errors(capsys, postgres, tmp_path):
    url, engine, schema = postgres
    _pg_events(engine, schema, 20)
    code, out, err = run(capsys, "import", "--from-sql", url, "--query",
                         f"SELECT user_id, item_id, created_at AS ts FROM {schema}.events", "--db", tmp_path / "ws.sqlite")
    assert code == 0, err
    assert "20 rows read, 19 accepted, 1 rejected" in out
    code, _out, err = run(capsys, "import", "--from-sql", url, "--query", f"SELECT * FROM {schema}.missing",
                          "--db", tmp_path / "ws.sqlite")
    assert code == 1 and "the database refused" in err and "does not exist" in err


def test_postgres_an_import_never_writes_to_the_database(workspace, postgres):
    url, engine, schema = postgres
    _pg_events(engine, schema, 20)
    sequence = f"{schema}.events_id_seq"
    with pytest.raises(CsvImportError) as error:  # nextval() writes, and no rollback would undo it
        import_files(workspace, events=SqlQuery(url, f"SELECT user_id, item_id, nextval('{sequence}') FROM {schema}.events"))
    assert "read-only transaction" in str(error.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT last_value FROM {sequence}")).scalar_one() == 20
