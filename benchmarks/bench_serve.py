"""``nextpick serve`` under load: GET /recommend latency and POST /events throughput over real HTTP.

    python benchmarks/bench_serve.py                         # 10k-item demo shop, Markov run, 8 clients
    python benchmarks/bench_serve.py --model sasrec --epochs 1 --clients 8 --requests 300
    python benchmarks/bench_serve.py --db /work/scale25m/scale.sqlite --run 14   # an existing workspace, GETs only

Goals (issue 13), for a 10k-item catalogue on this machine's CPU cores with 8 concurrent
clients: GET /recommend p50 < 10 ms and p99 < 50 ms; POST /events of 100-event batches at
>= 20,000 events/s stored. The service runs as ``nextpick serve`` (one uvicorn worker) in its own
process, as a shop would run it. The clients are one asyncio event loop in this process, each
with one keep-alive HTTP/1.1 connection and a minimal request writer and response reader, each
sending its next request when the last is answered: on a 2-core machine a heavier client (threads
of ``http.client``, httpx) took CPU the service needed. Latency is measured from request sent to
response read; the CPU time per request of the service process (Linux) and of the clients is
printed beside it, a figure other programs' load barely moves. The machine, its load average
and the model are printed with the figures: on a shared machine they vary from run to run.

With ``--db`` the service serves an existing workspace in place (issue 14: 25M events, 1M users,
200k items must serve within 4 GB): the time from starting ``nextpick serve`` to its first
answers and the service's peak RSS are printed, and only GET requests are sent (nothing is
written to the workspace; the service keeps its status file beside it while it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np


def build_workspace(folder: Path, items: int, users: int, model: str, epochs: int) -> tuple[Path, list[str], list[str]]:
    """A demo shop with ``items`` items and a trained run; (path, user ids, item ids)."""
    from core.demo import DemoConfig, create_demo_workspace
    from core.engine import Engine
    from core.training import TrainConfig

    path = folder / "serve-bench.sqlite"
    create_demo_workspace(path, DemoConfig(n_users=users, n_items=items, n_categories=16, seed=11)).close()
    engine = Engine.open(path)
    data = engine.sequence_data()
    started = time.perf_counter()
    overrides = {} if model in ("pop", "markov", "itemknn", "recentpop") else {"epochs": epochs, "device": "cpu"}
    run = engine.train(TrainConfig.for_data(data, model=model, **overrides))
    print(f"workspace: {data.n_items:,} items, {len(data.user_external):,} users, {len(data.items):,} events; "
          f"{model} run #{run.id} trained in {time.perf_counter() - started:.1f} s")
    engine.set_active_run(run.id)
    engine.workspace.close()
    return workspace_ids(path)


def workspace_ids(path: Path) -> tuple[Path, list[str], list[str]]:
    """(path, user ids, item ids) of a bench workspace."""
    from core.engine import Engine

    engine = Engine.open(path)
    data = engine.sequence_data()
    users, items = [str(u) for u in data.user_external], [str(i) for i in data.item_external[1:]]
    engine.workspace.close()
    return path, users, items


def start_service(path: Path, port: int, run: int | None = None) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main())",
               "serve", "--db", str(path), "--port", str(port)] + ([] if run is None else ["--run", str(run)])
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/health")
            health = json.loads(connection.getresponse().read())
            print(f"service: run #{health['run']} ({health['model']}), {health['items']:,} items, {health['device']}; "
                  f"answered {time.perf_counter() - started:.1f} s after start, peak RSS {peak_rss_gib(process):.2f} GiB",
                  flush=True)
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the service did not start:\n{process.stderr.read()}")
            time.sleep(0.3)
    raise SystemExit("the service did not answer within 900 s")


def peak_rss_gib(process: subprocess.Popen) -> float:
    """The service process's peak resident memory so far (Linux's VmHWM; NaN elsewhere)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return float("nan")
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return float("nan") if kib is None else kib / 2**20


def some_users(path: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` user ids of the workspace at random, read through a read-only connection."""
    import sqlite3

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (highest,) = connection.execute("SELECT max(id) FROM users").fetchone()
        ids = np.random.default_rng(seed).integers(1, (highest or 0) + 1, n).tolist()
        found = connection.execute(f"SELECT external_id FROM users WHERE id IN ({','.join(map(str, ids))})").fetchall()
    finally:
        connection.close()
    return [row[0] for row in found]


def first_answer(users: list[str], k: int) -> None:
    """One GET /recommend at a time for a few users: the first (pages a cold process reads) and the next."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    times = []
    for user in users[:20]:
        started = time.perf_counter()
        connection.request("GET", f"/recommend?user={quote(user)}&k={k}&explain=true")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"GET /recommend for {user!r}: {answer.status}")
        times.append((time.perf_counter() - started) * 1000)
    print(f"GET /recommend one at a time: first {times[0]:.0f} ms, the next {len(times) - 1}: "
          f"median {statistics.median(times[1:]):.1f} ms, max {max(times[1:]):.1f} ms", flush=True)


def service_cpu_s(process: subprocess.Popen) -> tuple[float, float]:
    """CPU seconds the service process has used (user + system; Linux's /proc, else NaN), in all and on
    its main thread (the event loop: HTTP and JSON; the rest is mostly the scoring thread): unlike
    latency, barely moved by other programs' load on a shared machine."""
    try:
        return _cpu_s(Path(f"/proc/{process.pid}/stat")), _cpu_s(Path(f"/proc/{process.pid}/task/{process.pid}/stat"))
    except OSError:
        return float("nan"), float("nan")


def _cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, parsing only what the bench needs
    (status line, Content-Length, body): a client this light leaves the CPU to the service."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", PORT))

    async def request(self, method: str, url: str, body: bytes = b"") -> tuple[float, bytes]:
        """(seconds from sending the request to reading the whole answer, the body); an error status raises."""
        head = f"{method} {url} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        started = time.perf_counter()
        self.writer.write(head.encode() + b"\r\n" + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        length = int(headers.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        payload = await self.reader.readexactly(length)
        elapsed = time.perf_counter() - started
        status = int(headers.split(b" ", 2)[1])
        if status >= 400:
            raise RuntimeError(f"{method} {url}: {status} {payload[:200]!r}")
        return elapsed, payload

    def close(self) -> None:
        self.writer.close()


def run_clients(clients: int, work) -> tuple[list[float], float, float]:
    """Run ``await work(client_index, connection, latencies)`` for ``clients`` connections at once,
    all in this process's one event loop; (all latencies in s, wall time, this process's CPU s)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]

    async def everyone() -> tuple[float, float]:
        connections = [await Connection.open() for _ in range(clients)]
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(work(i, connection, latencies[i]) for i, connection in enumerate(connections)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        for connection in connections:
            connection.close()
        return wall, cpu

    wall, cpu = asyncio.run(everyone())
    return [x for per_client in latencies for x in per_client], wall, cpu


class UserDraw:
    """Random users, each drawn once until every one has been (then a new round): the service's cache
    of lists answers only a user asked again with the same history, so a figure taken over users
    drawn with replacement (446 of 2,000 requests among 4,000 users) depended on repeats."""

    def __init__(self, users: list[str], seed: int = 0) -> None:
        self.users, self.rng, self.left, self.drawn = list(users), np.random.default_rng(seed), [], 0

    def take(self, n: int) -> list[str]:
        drawn = []
        while len(drawn) < n:
            if not self.left:
                self.left = self.rng.permutation(self.users).tolist()
            drawn.append(self.left.pop())
        self.drawn += n
        return drawn

    def rounds_note(self) -> str:
        rounds = self.drawn / max(len(self.users), 1)
        return f"{self.drawn:,} drawn of {len(self.users):,} users so far" + (", so some repeat" if rounds > 1 else "")


def bench_recommend(users: UserDraw, clients: int, requests: int, k: int, process: subprocess.Popen) -> None:
    warm_users = users.take(clients * 5)
    asked = [users.take(requests) for _ in range(clients)]

    async def warm_up(index, connection, latencies):
        for user in warm_users[index * 5:(index + 1) * 5]:
            await connection.request("GET", f"/recommend?user={quote(user)}&k={k}")

    async def work(index, connection, latencies):
        for user in asked[index]:
            elapsed, _ = await connection.request("GET", f"/recommend?user={quote(user)}&k={k}&explain=true")
            latencies.append(elapsed)

    run_clients(clients, warm_up)
    cpu, loop_cpu = service_cpu_s(process)
    cached = lists_from_cache()
    latencies, wall, client_cpu = run_clients(clients, work)
    cpu, loop_cpu = (after - before for after, before in zip(service_cpu_s(process), (cpu, loop_cpu)))
    cached = lists_from_cache() - cached
    ms = np.array(latencies) * 1000
    print(f"GET /recommend (k={k}, explain): {len(ms):,} requests from {clients} clients in {wall:.1f} s "
          f"({len(ms) / wall:,.0f}/s): p50 {np.percentile(ms, 50):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms   (goal: p50 < 10, p99 < 50); "
          f"CPU per request: service {1000 * cpu / len(ms):.2f} ms (event loop {1000 * loop_cpu / len(ms):.2f}), "
          f"clients {1000 * client_cpu / len(ms):.2f} ms; {cached:,} answered from the service's cache "
          f"(each user is asked once while unasked users remain: {users.rounds_note()})", flush=True)


def lists_from_cache() -> int:
    """How many GET /recommend the service has answered from its cache of lists so far."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    connection.request("GET", "/health")
    return json.loads(connection.getresponse().read())["lists_from_cache"]


def bench_events(users: list[str], items: list[str], clients: int, batches: int, batch: int,
                 process: subprocess.Popen) -> None:
    rng = np.random.default_rng(1)
    now = time.time()

    def body() -> bytes:
        return json.dumps([{"user": str(u), "item": str(i), "time": now, "event_type": "view"}
                           for u, i in zip(rng.choice(users, batch), rng.choice(items, batch))]).encode()

    bodies = [[body() for _ in range(batches)] for _ in range(clients)]
    stored = [0] * clients

    async def work(index, connection, latencies):
        for payload in bodies[index]:
            elapsed, answer = await connection.request("POST", "/events", payload)
            stored[index] += json.loads(answer)["accepted"]
            latencies.append(elapsed)

    cpu = service_cpu_s(process)[0]
    latencies, wall, client_cpu = run_clients(clients, work)
    cpu = service_cpu_s(process)[0] - cpu
    ms = np.array(latencies) * 1000
    events = max(sum(stored), 1)
    print(f"POST /events ({batch}-event batches): {sum(stored):,} events stored by {clients} clients in {wall:.1f} s: "
          f"{sum(stored) / wall:,.0f} events/s; per request p50 {np.percentile(ms, 50):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms   (goal: >= 20,000 events/s); "
          f"CPU per event: service {1e6 * cpu / events:.0f} us, clients {1e6 * client_cpu / events:.0f} us", flush=True)


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}, load average {load[0]:.1f} (others' work included)")


def main() -> None:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=4_000)
    parser.add_argument("--model", default="markov", help="run to serve (default: %(default)s); e.g. sasrec")
    parser.add_argument("--epochs", type=int, default=1, help="epochs for a neural model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=250, help="GET /recommend per client")
    parser.add_argument("--batches", type=int, default=40, help="POST /events requests per client")
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--workspace", type=Path, metavar="FOLDER",
                        help="serve a copy of the workspace folder a run with --keep saved, instead of building one "
                             "(before/after comparisons on the same data and run)")
    parser.add_argument("--keep", type=Path, metavar="FOLDER", help="save the built workspace folder here")
    parser.add_argument("--db", type=Path, metavar="WORKSPACE",
                        help="serve this workspace in place, GET requests only: start time, peak RSS, latency")
    parser.add_argument("--run", type=int, help="with --db: the run to serve (default: its serving run)")
    args = parser.parse_args()
    if args.keep and args.keep.is_dir() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the folder holds files already; name a new or empty one")
    print(machine())
    if args.db:
        return bench_in_place(args)
    with tempfile.TemporaryDirectory() as folder:
        if args.workspace:
            shutil.copytree(args.workspace, folder, dirs_exist_ok=True)
            path, users, items = workspace_ids(Path(folder) / "serve-bench.sqlite")
        else:
            path, users, items = build_workspace(Path(folder), args.items, args.users, args.model, args.epochs)
            if args.keep:
                shutil.copytree(folder, args.keep, dirs_exist_ok=True)  # found empty above
        PORT = free_port()
        process = start_service(path, PORT)
        draw = UserDraw(users)
        try:
            bench_recommend(draw, args.clients, args.requests, k=10, process=process)
            bench_events(users, items, args.clients, args.batches, args.batch, process=process)
            bench_recommend(draw, args.clients, args.requests // 2, k=10, process=process)  # with the posted events
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    print(machine())


def bench_in_place(args) -> None:
    """Serve an existing workspace without writing to it: start, first answers, 8 clients' GETs, peak RSS."""
    global PORT
    users = some_users(args.db, 20 + args.clients * (5 + args.requests))
    PORT = free_port()
    process = start_service(args.db, PORT, args.run)
    try:
        draw = UserDraw(users)
        first_answer(draw.take(20), k=10)
        bench_recommend(draw, args.clients, args.requests, k=10, process=process)
        print(f"service peak RSS: {peak_rss_gib(process):.2f} GiB (goal: under 4 GB)")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    print(machine())


PORT = 0

if __name__ == "__main__":
    main()
