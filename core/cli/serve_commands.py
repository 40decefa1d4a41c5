"""``nextpick serve``: the HTTP service (``core.service``) on one run of the workspace."""

from __future__ import annotations

import os

from core.cli.common import CliError, Output, require_workspace

TOKEN_VARIABLE = "NEXTPICK_TOKEN"


def add_commands(commands, common) -> None:
    p = commands.add_parser(
        "serve", parents=[common], help="serve recommendations over HTTP and take new events",
        description="A JSON API on http://HOST:PORT (OpenAPI docs at /docs): GET /recommend, /interests, "
                    "/items/ID, /health; POST /events. Only this machine may connect unless you bind another "
                    "address, which needs a bearer token. Needs the serve extra: pip install 'nextpick-studio[serve]'.")
    p.add_argument("--run", type=int, metavar="RUN",
                   help="run to serve, and only it (default: the active run, else the latest, followed as it changes "
                        "after `nextpick update`, a retrain or a new active run, without a restart)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--token", default=os.environ.get(TOKEN_VARIABLE) or None,
                   help=f"bearer token every request must carry (default: ${TOKEN_VARIABLE}); "
                        "required for any address other than this machine's")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args, out: Output) -> dict:
    from core.cli.recommend_commands import serving_run
    from core.engine import Engine
    from core.store import Workspace

    from core.service import WRITE_WAIT_S, listening_socket, make_server

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a port number (0-65535)")
    require_workspace(args.db)
    _one_thread_per_request()
    engine = Engine(Workspace.open(args.db, write_wait_s=WRITE_WAIT_S))
    run = serving_run(engine, args)
    engine.prepare_to_serve(run)  # load the model before the first request, and fail here if it cannot be
    with listening_socket(args.host, args.port) as sock:  # closed however the service ends
        port = sock.getsockname()[1]  # the port --port 0 let the system choose: the one to announce and record
        try:
            server = make_server(engine, run, args.host, port, args.token, log_level="info", follow=args.run is None)
        except ImportError as error:  # FastAPI or uvicorn, imported only here
            raise CliError(f"nextpick serve needs the serve extra ({error.name} is missing): "
                           "pip install 'nextpick-studio[serve]'") from None
        service = server.config.app.state.service
        follows = "; follows the active run" if service.follow else ""
        out.stderr.write(f"serving run #{run} of {args.db} on {service.url} (docs: {service.url}/docs){follows}; "
                         "Ctrl+C stops\n")
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl+C is how a service is meant to stop: uvicorn has shut down cleanly
            pass
    received = service.feed.received
    out.lines([f"service stopped; {received:,} event{'' if received == 1 else 's'} received"])
    return {"run": run, "url": service.url, "events_received": service.feed.received}


def _one_thread_per_request() -> None:
    """Torch's ops on one thread each: the service's concurrency comes from its requests, and with
    several at once a thread pool per op only makes the requests fight over the cores."""
    import torch

    torch.set_num_threads(1)
