"""``nextpick serve`` over real HTTP: a uvicorn server on a free port, on a shop with a known habit."""

import httpx
import pytest

from core.engine import Engine
from core.importing.live import EventFeed
from core.service import ServiceRefused, make_server
from core.service.app import MAX_BODY_BYTES, MAX_EVENTS, _valid_recommend_query
from core.service.status import read_status
from service_data import PAIRS, START, pair_shop_engine, running_service


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = pair_shop_engine(tmp_path_factory.mktemp("serve") / "shop.sqlite")
    yield engine
    engine.workspace.close()


@pytest.fixture(scope="module")
def client(engine):
    with running_service(engine, engine.active_run()) as (url, service), \
            httpx.Client(base_url=url, timeout=30) as client:
        client.service = service
        yield client


def _unseen_pair(engine, user: str) -> int:
    seen = set(engine.user_history(user)["item"])
    return next(a for a in range(PAIRS) if f"P{2 * a:02d}" not in seen)


def _top(client, user: str, k: int = 3) -> list[str]:
    answer = client.get("/recommend", params={"user": user, "k": k})
    assert answer.status_code == 200, answer.text
    return [r["item"] for r in answer.json()["recommendations"]]


def test_a_posted_event_is_in_the_next_list_as_the_model_predicts(engine, client):
    pair = _unseen_pair(engine, "U01")
    first, second = f"P{2 * pair:02d}", f"P{2 * pair + 1:02d}"
    assert _top(client, "U01")[0] != second
    posted = client.post("/events", json={"user": "U01", "item": first, "time": START + 10**6, "event_type": "view"})
    assert posted.status_code == 200 and posted.json() == {"accepted": 1, "rejected": [], "new_users": 0, "new_items": 0}
    answer = client.get("/recommend", params={"user": "U01", "k": 3, "explain": "true"}).json()
    top = answer["recommendations"][0]
    assert (top["item"], answer["cold_start"]) == (second, False)
    assert top["because"][0]["item"] == first and top["reason"].startswith("because they took ")
    # Stored durably: another process's engine (the CLI's, the studio's) reads the same list from the file.
    reader = Engine.open(engine.workspace.path)
    assert [r.item for r in reader.recommend(engine.active_run(), "U01", k=3)] == _top(client, "U01")
    reader.workspace.close()


def test_a_batch_stores_good_rows_and_names_the_field_and_reason_of_bad_ones(engine, client):
    before = engine.workspace.counts()
    rows = [{"user": "NEW-1", "item": "P00", "time": START + 2 * 10**6},
            {"user": "NEW-1", "item": "P02", "time": "not a time"},
            {"user": "", "item": "P02"},
            {"user": "NEW-1", "item": "BRAND-NEW", "value": "lots"},
            {"user": "NEW-1", "item": "BRAND-NEW", "time": "2024-01-01T10:00:00Z", "value": 2.5}]
    answer = client.post("/events", json=rows)
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2, "new_users": 1, "new_items": 1, "rejected": [
        {"index": 1, "field": "time", "reason": "unparseable time 'not a time'"},
        {"index": 2, "field": "user", "reason": "missing user id"},
        {"index": 3, "field": "value", "reason": "value 'lots' is not a number"}]}
    after = engine.workspace.counts()
    assert (after["events"] - before["events"], after["users"] - before["users"], after["items"] - before["items"]) == (2, 1, 1)
    assert client.get("/items/BRAND-NEW").json()["known_to_model"] is False
    with engine.workspace.engine.connect() as conn:  # the service is one entry of the import history
        raw = conn.connection.dbapi_connection
        (source, import_id), = raw.execute("SELECT source_path, id FROM imports WHERE source_sha256 LIKE 'service:%'")
        reasons = [r[0] for r in raw.execute("SELECT reason FROM rejected_rows WHERE import_id = ?", (import_id,))]
    assert source == "nextpick serve on " + str(client.base_url).split("://")[1].rstrip("/")
    assert "unparseable time 'not a time'" in reasons
    new_user = client.get("/recommend", params={"user": "NEW-1", "k": 1}).json()
    assert new_user["cold_start"] is False and new_user["recommendations"][0]["item"] == "P01"
    # A user whose only events are on items the run does not know is served the cold-start list.
    assert client.post("/events", json={"user": "NEW-2", "item": "BRAND-NEW"}).json()["accepted"] == 1
    assert client.get("/recommend", params={"user": "NEW-2", "k": 1}).json()["cold_start"] is True


def test_a_request_whose_every_row_is_bad_stores_nothing_and_says_why(client):
    answer = client.post("/events", json=[{"user": "U01"}, {"user": ["U01"], "item": "P00"}, 7])
    assert answer.status_code == 422
    assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [(0, "item"), (1, "user"), (2, None)]
    assert answer.json()["accepted"] == 0


def test_an_unknown_user_gets_the_cold_start_list_flagged_and_is_not_created(engine, client):
    users = engine.workspace.counts()["users"]
    answer = client.get("/recommend", params={"user": "nobody-at-all", "k": 5}).json()
    assert answer["cold_start"] is True and len(answer["recommendations"]) == 5
    assert all(r["because"] == [] and r["reason"].startswith("popular") for r in answer["recommendations"])
    assert client.get("/interests", params={"user": "nobody-at-all"}).json()["cold_start"] is True
    assert engine.workspace.counts()["users"] == users


def test_health_items_and_docs(engine, client):
    health = client.get("/health").json()
    assert (health["run"], health["model"], health["items"]) == (engine.active_run(), "markov", 2 * PAIRS)
    assert health["workspace"] == str(engine.workspace.path) and health["device"].startswith("CPU")
    item = client.get("/items/P04").json()
    assert (item["title"], item["categories"], item["known_to_model"]) == ("Part 2 A", ["Firsts"], True)
    assert (item["next_items"][0]["item"], item["next_items"][0]["categories"]) == ("P05", ["Seconds"])
    assert client.get("/docs").status_code == 200
    assert {"/recommend", "/interests", "/items/{item}", "/health", "/events"} <= set(client.get("/openapi.json").json()["paths"])
    cached = health["lists_from_cache"]
    first, again = (client.get("/recommend", params={"user": "U07", "k": 4}).json() for _ in range(2))
    assert first == again and client.get("/health").json()["lists_from_cache"] == cached + 1


def test_an_item_whose_id_holds_a_slash_is_found_either_way_it_is_written(client):
    """Shops' SKUs often hold a slash ("AB/123"): a client that escapes it (%2F) and one that does not both reach it."""
    assert client.post("/events", json={"user": "U02", "item": "AB/12 x", "time": START + 3 * 10**6}).json()["accepted"] == 1
    for path in ("/items/AB%2F12%20x", "/items/AB/12 x"):
        answer = client.get(path)
        assert answer.status_code == 200 and answer.json()["item"] == "AB/12 x", answer.text


def test_ids_are_looked_up_as_the_import_stores_them_trimmed(client):
    """A posted ' TRIM-1 ' is stored as 'TRIM-1' (as a file's ids are): asking with the same text must find
    its events, not answer the cold-start list."""
    assert client.post("/events", json={"user": " TRIM-1 ", "item": "P00", "time": START + 4 * 10**6}).json()["accepted"] == 1
    answer = client.get("/recommend", params={"user": " TRIM-1 ", "k": 1}).json()
    assert (answer["user"], answer["cold_start"]) == ("TRIM-1", False)
    assert client.get("/interests", params={"user": "TRIM-1\t"}).json()["cold_start"] is False
    assert client.get("/items/%20P00%20").json()["item"] == "P00"
    assert client.get("/recommend", params={"user": "   "}).status_code == 422


@pytest.mark.parametrize("path, params, status, message", [
    ("/recommend", {"user": "U01", "k": 0}, 422, "k: "),
    ("/recommend", {"user": "U01", "k": 101}, 422, "k: "),
    ("/recommend", {"user": "U01", "diversity": 2}, 422, "diversity: "),
    ("/recommend", {"user": "U" * 300}, 422, "user: "),
    ("/recommend", {}, 422, "user: "),
    ("/items/" + "X" * 300, {}, 422, "item: "),
    ("/items/nothing-like-it", {}, 404, "unknown item 'nothing-like-it'"),
    ("/no-such-page", {}, 404, "Not Found"),
])
def test_bad_requests_are_answered_in_json_with_a_message(client, path, params, status, message):
    answer = client.get(path, params=params)
    assert answer.status_code == status and answer.json()["message"].startswith(message)


def test_request_bodies_are_bounded(client):
    assert client.post("/events", content=b"{not json").json()["message"].startswith("the body is not JSON")
    too_many = client.post("/events", json=[{"user": "u", "item": "i"}] * (MAX_EVENTS + 1))
    assert too_many.status_code == 413 and "at most" in too_many.json()["message"]
    too_big = client.post("/events", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and "bytes" in too_big.json()["message"]
    chunked = client.post("/events", content=iter([b" " * (1 << 20)] * 5))  # no Content-Length: counted as it comes
    assert chunked.status_code == 413
    long_id = client.post("/events", json={"user": "u" * 300, "item": "P00"}).json()["rejected"]
    assert long_id == [{"index": 0, "field": "user", "reason": "user id longer than 256 characters"}]


def test_an_engine_refusal_is_a_400_with_its_message_and_hint(engine, client, monkeypatch):
    from core.errors import UsageError

    def refuse(*_args, **_kwargs):
        raise UsageError("run #1 cannot do that", hint="train another run")

    monkeypatch.setattr(engine, "recommend_histories", refuse)
    answer = client.get("/recommend", params={"user": "U01"})
    assert answer.status_code == 400
    assert answer.json() == {"message": "run #1 cannot do that", "hint": "train another run"}


def test_a_recommend_query_is_read_as_fastapi_reads_it_or_left_to_the_route_when_invalid():
    query = _valid_recommend_query(b"user=A%20B%2F%C3%A9&k=3&k=4&diversity=0.5&explain=false&other=1")
    assert (query.user, query.k, query.diversity, query.explain) == ("A B/\u00e9", 4, 0.5, False)
    assert _valid_recommend_query(b"user=U01").k == 10 and _valid_recommend_query(b"user=U01").explain is True
    for invalid in (b"", b"user=", b"user=U01&k=0", b"user=U01&k=ten", b"user=U01&explain=maybe"):
        assert _valid_recommend_query(invalid) is None


def test_a_recommend_answered_before_fastapis_layers_is_the_engines_list(engine, client):
    answer = client.get("/recommend", params={"user": "U02", "k": 4, "explain": "false"}).json()
    listed = [r.item for r in engine.recommend(engine.active_run(), "U02", k=4)]
    assert [r["item"] for r in answer["recommendations"]] == listed
    assert set(answer["recommendations"][0]) == {"rank", "item", "title", "categories", "score", "interest"}
    cold = client.get("/recommend", params={"user": "nobody / \u00e9", "k": 2}).json()
    assert (cold["user"], cold["cold_start"], len(cold["recommendations"])) == ("nobody / \u00e9", True, 2)


@pytest.mark.parametrize("route, engine_call", [("/recommend", "recommend_histories"), ("/interests", "interests")])
def test_a_failure_inside_is_json_without_a_traceback(engine, client, monkeypatch, route, engine_call):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, engine_call, broken)  # /recommend fails in the scoring thread's short way
    answer = client.get(route, params={"user": "U01"})
    assert answer.status_code == 500
    assert answer.json() == {"message": "internal error (RuntimeError); the service's log has the details"}


def test_the_status_file_says_a_service_runs_and_a_second_one_is_refused(engine, client):
    status = read_status(engine.workspace.path)
    assert status is not None and status.url == str(client.base_url).rstrip("/") and status.run == engine.active_run()
    with pytest.raises(ServiceRefused, match="already running on this workspace"):
        make_server(engine, engine.active_run(), "127.0.0.1", 0)


def test_a_stopped_service_removes_its_status(engine, tmp_path):
    other = pair_shop_engine(tmp_path / "other.sqlite")
    with running_service(other, other.active_run()):
        assert read_status(other.workspace.path) is not None
    assert read_status(other.workspace.path) is None
    other.workspace.close()


def test_another_address_needs_a_token_and_a_token_is_checked_on_every_request(engine, tmp_path):
    with pytest.raises(ServiceRefused, match="--token"):
        make_server(engine, engine.active_run(), "0.0.0.0", 0)
    other = pair_shop_engine(tmp_path / "guarded.sqlite")
    with running_service(other, other.active_run(), token="s3cret") as (url, _), httpx.Client(base_url=url) as client:
        for path in ("/health", "/docs", "/recommend?user=U01"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).json()["message"].startswith("missing or wrong")
            assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/events", json={"user": "U01", "item": "P00"}).status_code == 401
    other.workspace.close()


def test_a_request_that_fails_midway_stores_nothing(engine, monkeypatch):
    """One transaction per request: the rows a failed request wrote are rolled back, and the
    users and items it created are forgotten, so the next request creates them again."""
    import core.importing.live as live

    feed = EventFeed(engine.workspace, "test")
    before = engine.workspace.counts()

    def fail(*_args):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(live, "record_block", fail)
        with pytest.raises(OSError):
            feed.post([{"user": "HALF-1", "item": "HALF-ITEM", "time": START}])
    assert engine.workspace.counts() == before
    report = feed.post([{"user": "HALF-1", "item": "HALF-ITEM", "time": START}])
    assert (report.accepted, report.new_users, report.new_items) == (1, 1, 1)
    assert engine.workspace.item("HALF-ITEM") is not None


def test_requests_that_wait_are_written_together_and_a_failing_one_alone_is_rolled_back(engine, monkeypatch):
    """Group commit: requests queued behind a write share one transaction, each under its own savepoint."""
    import threading

    import core.importing.live as live

    feed = EventFeed(engine.workspace, "test")
    real_record, groups = live.record_block, []

    def record(target, *args):  # fails after the request wrote its user, item and events
        if target.raw.execute("SELECT 1 FROM users WHERE external_id = 'BOOM'").fetchone():
            raise ValueError("broken request")
        return real_record(target, *args)

    hold = threading.Event()

    def write(group, real=feed._write):
        groups.append(len(group))
        if len(groups) == 1:
            hold.wait(30)
        real(group)

    monkeypatch.setattr(live, "record_block", record)
    monkeypatch.setattr(feed, "_write", write)
    before = engine.workspace.counts()["events"]
    outcomes = {}

    def post(user):
        try:
            outcomes[user] = feed.post([{"user": user, "item": f"{user}-ITEM", "time": START}, {"user": user, "item": "P01"}])
        except ValueError as error:
            outcomes[user] = error

    first = feed.submit([{"user": "G-0", "item": "P01", "time": START}])  # the feed's thread is held writing it
    while not groups:
        threading.Event().wait(0.01)
    threads = [threading.Thread(target=post, args=(user,)) for user in ("G-1", "BOOM", "G-2")]
    for thread in threads:
        thread.start()
    while feed._queue.qsize() < 3:
        threading.Event().wait(0.01)
    hold.set()
    for thread in threads:
        thread.join()
    assert groups == [1, 3] and first.result().accepted == 1
    assert isinstance(outcomes["BOOM"], ValueError)
    assert outcomes["G-1"].accepted == outcomes["G-2"].accepted == 2 and feed.received == 5
    assert engine.workspace.counts()["events"] == before + 5
    assert engine.workspace.user_id("BOOM") is None and engine.workspace.item("BOOM-ITEM") is None
    assert list(engine.workspace.user_sequence("G-2")["item"]) == ["G-2-ITEM", "P01"]


def test_reads_are_answered_while_another_process_holds_the_write_lock(engine, client):
    """WAL: an import in the studio (a long write transaction) never blocks the service's readers."""
    import sqlite3

    writer = sqlite3.connect(engine.workspace.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO users(external_id) VALUES ('being-imported')")
    try:
        assert client.get("/recommend", params={"user": "U02", "k": 2}).status_code == 200
        assert client.get("/items/P00").status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_workspace_another_writer_keeps_busy_is_a_503_to_retry(engine, client, monkeypatch):
    from core.store import WorkspaceBusyError

    from concurrent.futures import Future

    def busy(_rows):
        refused = Future()
        refused.set_exception(WorkspaceBusyError("shop.sqlite is busy: another window or command kept writing to it "
                                                 "for 10 s"))
        return refused

    monkeypatch.setattr(client.service.feed, "submit", busy)
    answer = client.post("/events", json={"user": "U01", "item": "P00"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json()["message"].endswith("nothing of this request was stored, send it again")


def test_a_missing_time_is_now_on_a_clock_and_refused_where_the_log_is_only_an_order(tmp_path):
    from core.importing import import_files
    from core.store import Workspace

    ordered = Workspace.open(tmp_path / "ordered.sqlite")
    (tmp_path / "steps.csv").write_text("user,item,step\nu1,a,1\nu1,b,2\n")
    import_files(ordered, events=tmp_path / "steps.csv")
    assert ordered.get_meta("time_kind") == "order"
    report = EventFeed(ordered, "test").post([{"user": "u1", "item": "c"}, {"user": "u1", "item": "c", "time": 3},
                                              {"user": "u1", "item": "d", "time": "2025-01-01T00:00:00Z"}])
    assert report.accepted == 1 and [r.reason for r in report.rejected] == [
        "missing time", "time '2025-01-01T00:00:00Z' is a date, but these events' times are positions in an order "
                        "(no clock): give a position"]
    ordered.close()
    clock = Workspace.open(tmp_path / "clock.sqlite")
    before = __import__("time").time()
    assert EventFeed(clock, "test").post([{"user": "u1", "item": "c"}]).accepted == 1
    assert clock.get_meta("time_kind") == "unix" and clock.event_arrays().ts[0] >= before
    clock.close()


def test_a_status_file_that_cannot_be_written_does_not_stop_the_service(tmp_path, monkeypatch, caplog):
    import core.service.app as app

    def unwritable(*_args):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(app, "write_status", unwritable)
    other = pair_shop_engine(tmp_path / "readonly-folder.sqlite")
    with running_service(other, other.active_run()) as (url, _):
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert "cannot write the status file" in caplog.text
    other.workspace.close()


def test_a_read_only_workspace_is_served_and_refuses_events_with_a_403(tmp_path):
    from core.store import Workspace

    writer = pair_shop_engine(tmp_path / "shop.sqlite")
    run = writer.active_run()
    writer.workspace.close()
    reader = Engine(Workspace.open(tmp_path / "shop.sqlite", read_only=True))
    with running_service(reader, run) as (url, _), httpx.Client(base_url=url) as client:
        assert client.get("/recommend", params={"user": "U02", "k": 1}).status_code == 200
        refused = client.post("/events", json={"user": "U02", "item": "P00"})
        assert refused.status_code == 403 and "read-only" in refused.json()["message"] and refused.json()["hint"]
    reader.workspace.close()
