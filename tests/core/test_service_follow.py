"""A running ``nextpick serve`` follows the workspace's serving run without a restart (unless pinned with --run)."""

import time

import httpx

from core.engine import Engine
from core.service.follow import FOLLOW_EVERY_S
from service_data import START, pair_shop_engine, running_service


def _post_new_pair(engine, user: str = "U01") -> None:
    """The log gains new items that a few users take in one order, P40 to P43 (the split holds the
    last ones out, so P40 -> P41 is what a run learns), and ``user`` has just taken P40."""
    from core.importing.live import EventFeed

    rows = [{"user": f"U{u:02d}", "item": item, "time": START + 10**6 + 60 * (4 * u + i)}
            for u in range(2, 12) for i, item in enumerate(("P40", "P41", "P42", "P43"))]
    EventFeed(engine.workspace, "shop").post(rows + [{"user": user, "item": "P40", "time": START + 2 * 10**6}])


def _top(client, user: str = "U01") -> tuple[int, str]:
    answer = client.get("/recommend", params={"user": user, "k": 1}).json()
    return answer["run"], answer["recommendations"][0]["item"]


def _wait_for_run(client, run: int, within_s: float = 30.0) -> dict:
    deadline = time.monotonic() + within_s
    while (health := client.get("/health").json())["run"] != run and time.monotonic() < deadline:
        time.sleep(0.05)
    return health


def test_a_service_follows_the_active_run_another_process_updates(tmp_path):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    first = engine.active_run()
    with running_service(engine, first, follow=True) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").json()["follows_active_run"] is True
        other = Engine.open(engine.workspace.path)  # another process's engine: its own connections to the file
        _post_new_pair(other)
        assert _top(client)[1] != "P41"  # P40 is newer than the run: it cannot predict what follows
        child = other.update().id  # the Markov run refitted on the whole log, made active
        assert other.active_run() == child != first
        health = _wait_for_run(client, child)
        assert (health["run"], health["model"], health["items"]) == (child, "markov", 44)  # the new items loaded too
        assert _top(client) == (child, "P41")
        assert client.get("/interests", params={"user": "U01"}).json()["run"] == child
        other.workspace.close()


def test_a_service_given_a_run_stays_on_it(tmp_path):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    first = engine.active_run()
    with running_service(engine, first) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        other = Engine.open(engine.workspace.path)
        _post_new_pair(other)
        assert other.update().id != first
        deadline = time.monotonic() + 3 * FOLLOW_EVERY_S
        while time.monotonic() < deadline:  # looks several times over, as a follower would
            assert client.get("/health").json()["run"] == first
            time.sleep(0.05)
        assert _top(client)[0] == first
        other.workspace.close()
