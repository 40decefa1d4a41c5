"""The status bar: a service running on the open workspace, and how far the served run is behind the log."""

from __future__ import annotations

import dataclasses
import os
import socket
import time

from core.importing.live import EventFeed
from core.service.status import ServiceStatus, remove_status, write_status
from core.training import TrainConfig


def _status(events: int, updated_at: float) -> ServiceStatus:
    return ServiceStatus(os.getpid(), socket.gethostname(), "http://127.0.0.1:8123", 1, updated_at - 5, updated_at, events)


def test_the_status_bar_shows_a_running_service_and_the_run_falling_behind(qtbot, wait_idle, window, imported_engine):
    engine = imported_engine
    engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))
    window.context.set_engine(engine)
    wait_idle(window.context)
    assert window.status.lag_label.text() == "Run #1 trained just now · no newer events"
    assert window.status.service_label.text() == ""

    path = engine.workspace.path
    write_status(path, _status(0, time.time()))
    window.service_watcher.poll()
    assert window.status.service_label.text() == "Serving run #1 on http://127.0.0.1:8123 · 0 events received"

    EventFeed(engine.workspace, "test").post([{"user": "U000001", "item": "BRAND-NEW"}, {"user": "U000002", "item": "BRAND-NEW"}])
    write_status(path, _status(2, time.time()))
    window.service_watcher.poll()
    assert window.status.service_label.text().endswith("· 2 events received")
    qtbot.waitUntil(lambda: window.status.lag_label.text() == "Run #1 trained just now · 2 newer events · 1 new item")

    remove_status(path, os.getpid())
    window.service_watcher.poll()
    assert window.status.service_label.text() == ""


def test_a_status_left_by_a_killed_service_reads_as_stopped(window, imported_engine, wait_idle):
    window.context.set_engine(imported_engine)
    wait_idle(window.context)
    write_status(imported_engine.workspace.path, _status(7, time.time() - 60))
    window.service_watcher.poll()
    assert window.status.service_label.text() == ""
    write_status(imported_engine.workspace.path, dataclasses.replace(_status(7, time.time()), pid=2**22 + 12345))
    window.service_watcher.poll()
    assert window.status.service_label.text() == ""
