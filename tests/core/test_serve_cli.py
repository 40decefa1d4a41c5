"""``nextpick serve`` from the command line: refusals in-process, and the real command in a subprocess."""

import signal
import subprocess
import sys
import time

import httpx
import pytest

from cli_run import run
from core.service.status import read_status, status_path
from service_data import free_port_socket, pair_shop_engine


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    engine = pair_shop_engine(tmp_path_factory.mktemp("serve-cli") / "shop.sqlite")
    engine.workspace.close()
    return engine.workspace.path


def test_an_open_address_without_a_token_and_an_unknown_run_are_refused(shop, capsys, monkeypatch):
    monkeypatch.delenv("NEXTPICK_TOKEN", raising=False)
    code, out, err = run(capsys, "serve", "--db", shop, "--host", "0.0.0.0")
    assert code == 1 and out == "" and "give a --token" in err
    code, _, err = run(capsys, "serve", "--db", shop, "--run", 99)
    assert code == 1 and "no run #99" in err
    code, _, err = run(capsys, "serve", "--db", shop, "--port", 70000)
    assert code == 1 and "not a port number" in err


def test_a_port_in_use_is_refused_in_one_line_before_anything_says_it_serves(shop, capsys):
    """It printed 'serving run #1 ... on http://...', then uvicorn's own ERROR line, and exited 3."""
    with free_port_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(capsys, "serve", "--db", shop, "--port", port)
    assert code == 1 and out == "" and "serving run" not in err
    assert f"nextpick serve: cannot listen on 127.0.0.1:{port}: address already in use" in err
    assert "hint: " in err and not status_path(shop).exists()


def test_the_command_serves_until_interrupted_and_then_clears_its_status(shop):
    """On --port 0: the port the system chose is the one announced and recorded, not ":0"."""
    command = [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main())",
               "serve", "--db", str(shop), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            status = read_status(shop)
            try:
                assert status is None or not status.url.endswith(":0")
                health = httpx.get(f"{status.url}/health", timeout=5)
                url = status.url
                break
            except (AttributeError, httpx.TransportError):  # no status file yet, or not answering yet
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "no answer within 120 s"
                time.sleep(0.2)
        assert health.json()["model"] == "markov"
        assert httpx.post(f"{url}/events", json={"user": "CLI-1", "item": "P10"}).json()["accepted"] == 1
        assert httpx.get(f"{url}/recommend", params={"user": "CLI-1", "k": 1}).json()["recommendations"][0]["item"] == "P11"
        assert read_status(shop).url == url
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out == "service stopped; 1 event received\n"
    assert f"serving run #1 of {shop} on {url}" in err and "follows the active run" in err
    assert not status_path(shop).exists()


def test_without_the_serve_extra_the_command_says_what_to_install(shop, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    code, _, err = run(capsys, "serve", "--db", shop)
    assert code == 1 and "needs the serve extra (uvicorn is missing): pip install 'nextpick-studio[serve]'" in err


def test_the_command_loads_the_model_and_the_id_maps_before_the_first_request(shop, capsys, monkeypatch):
    """What every request reads (a million users' id map takes seconds) is built before serving starts."""
    import core.service

    seen = []

    def refuse(engine, run, *args, **kwargs):  # stands in for the server: what had the engine built?
        data = engine.sequence_data()
        seen.append((run, {"_user_lookup", "_item_lookup"} <= set(vars(data)), data.user_index_of("U03")))
        raise core.service.ServiceRefused("stop here")

    monkeypatch.setattr(core.service, "make_server", refuse)
    code, _, err = run(capsys, "serve", "--db", shop)
    assert code == 1 and "stop here" in err
    assert seen == [(1, True, 3)]
