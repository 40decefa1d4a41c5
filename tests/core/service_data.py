"""A shop with one strict habit, and a real ``nextpick serve`` on it, for the service's tests.

Items come in pairs: whoever takes P00 takes P01 next, P02 is followed by P03, and so on, in
a random order of pairs per user. A Markov run learns exactly that, so after an event on
P(2a) its list must start with P(2a+1): a test can tell whether a posted event reached the model.
"""

from __future__ import annotations

import csv
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np

PAIRS = 20
START = 1_700_000_000


def pair_shop_csv(folder, users: int = 60, pairs_per_user: int = 5, seed: int = 3):
    """(events.csv, items.csv) of the pair shop in ``folder``."""
    rng = np.random.default_rng(seed)
    events, items = folder / "events.csv", folder / "items.csv"
    with open(items, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "categories"])
        writer.writerows([f"P{i:02d}", f"Part {i // 2} {'AB'[i % 2]}", "Firsts" if i % 2 == 0 else "Seconds"]
                         for i in range(2 * PAIRS))
    with open(events, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        clock = START
        for user in range(users):
            for pair in rng.choice(PAIRS, size=pairs_per_user, replace=False):
                for item in (2 * pair, 2 * pair + 1):
                    clock += 60
                    writer.writerow([f"U{user:02d}", f"P{item:02d}", clock])
    return events, items


def pair_shop_engine(path):
    """An Engine on the pair shop (imported through the real importer) with a Markov run active."""
    from core.engine import Engine
    from core.training import TrainConfig

    events, items = pair_shop_csv(path.parent)
    engine = Engine.open(path)
    engine.import_files(events=events, items=items)
    run = engine.train(TrainConfig.for_data(engine.sequence_data(), model="markov"))
    engine.set_active_run(run.id)
    return engine


def free_port_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def running_service(engine, run: int, token=None, host: str = "127.0.0.1", follow: bool = False):
    """A real uvicorn server in a thread on a free port; yields (base URL, the app's ``Service``)."""
    from core.service import make_server

    sock = free_port_socket(host)
    port = sock.getsockname()[1]
    server = make_server(engine, run, host, port, token, follow=follow)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}", server.config.app.state.service
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
