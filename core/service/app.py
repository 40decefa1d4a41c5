"""The HTTP layer of ``nextpick serve``: FastAPI routes over ``core.engine.Engine`` and an ``EventFeed``.

Nothing here recommends or validates: lists and explanations come from the engine (so they
are the ones the CLI and the studio show) and posted events are judged by the importer. A
user's history is the loaded sequences plus the events stored since, read on every request
(``Engine.users_items``), so an event stored by ``POST /events`` (or by an import elsewhere) is in
that user's next list without retraining; items
the run was not trained on are stored but cannot be scored until a new run knows them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import math
import os
import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Optional
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from starlette.exceptions import HTTPException

from core.engine import LONGEST_LIST
from core.errors import NextPickError
from core.importing.ids import stored_id
from core.importing.live import EventFeed
from core.importing.posted_rows import MAX_ID_CHARS
from core.store import ReadOnlyWorkspaceError, WorkspaceBusyError
from core.service.batching import RecommendBatcher
from core.service.follow import RunFollower, Served
from core.service.status import HEARTBEAT_S, ServiceStatus, remove_status, write_status

log = logging.getLogger("nextpick.serve")

MAX_BODY_BYTES = 4 << 20  # one POST /events request
MAX_EVENTS = 10_000  # rows in one POST /events request

_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "user": {"type": "string", "description": "the shop's user id; a new one is created"},
        "item": {"type": "string", "description": "the shop's item id; a new one is created"},
        "time": {"description": "unix seconds (or ms), or ISO-8601 text; default: now", "type": ["number", "string"]},
        "event_type": {"type": "string", "description": "view, cart, purchase...; default: interaction"},
        "value": {"type": ["number", "null"], "description": "rating, price, quantity..."},
    },
    "required": ["user", "item"],
}


class RecommendQuery(BaseModel):
    """GET /recommend's parameters: the route declares them (docs, and the answer to a bad one) and
    ``_Guard`` validates a request's with the same model before taking its short way."""

    user: Annotated[str, BeforeValidator(stored_id)] = Field(min_length=1, max_length=MAX_ID_CHARS)
    k: int = Field(10, ge=1, le=LONGEST_LIST)
    diversity: float = Field(0.0, ge=0.0, le=1.0)
    explain: bool = Field(True, description="include the reason and the history items behind each")


class ServiceError(Exception):
    """A request the service refuses, answered as ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Service:
    """What the routes share: the run served (``RunFollower``), the event feed and the status it reports.

    ``follow``: serve whichever run becomes the workspace's serving run (``nextpick serve`` without
    ``--run``); otherwise ``run`` stays."""

    engine: object  # core.engine.Engine: the one the service started with (``current()`` gives the one in use)
    run: int  # the run served at start
    url: str
    token: Optional[str] = None
    follow: bool = False

    def __post_init__(self) -> None:
        # The import history shows a source's last path part: no slashes, so it reads whole.
        self.feed = EventFeed(self.engine.workspace, f"nextpick serve on {self.url.split('://', 1)[-1]}")
        self.started_at = time.time()
        self.device = self.engine.device_name()
        self.runs = RunFollower(self.engine, self.run, self.follow)
        self.batcher = RecommendBatcher()

    def current(self) -> Served:
        return self.runs.current()

    def status(self) -> ServiceStatus:
        return ServiceStatus(os.getpid(), socket.gethostname(), self.url, self.runs.served.run, self.started_at,
                             time.time(), self.feed.received)


def create_app(service: Service) -> FastAPI:
    """The FastAPI application serving ``service``; OpenAPI docs at /docs."""
    app = FastAPI(title="NextPick", version="1", lifespan=_heartbeat(service),
                  description="Sequence-aware recommendations from the workspace's active run; "
                              "events posted here are in the user's next list at once.")
    app.state.service = service
    app.add_middleware(_Guard, service=service)
    _add_error_handlers(app)
    # GET /recommend runs on the event loop and hands the request to the scoring thread, which reads
    # the histories of the requests queued together and scores them as a batch
    # (``core.service.batching``): no worker thread in between, whose hand-offs cost more CPU than
    # a Markov run's scoring. A valid one is answered by ``_Guard`` before FastAPI's own layers; this
    # route declares it and answers the invalid ones. The other routes are rare and run in FastAPI's
    # thread pool.

    @app.get("/recommend", summary="the next items for a user, with reasons")
    async def recommend(query: Annotated[RecommendQuery, Query()]):
        return await _recommended(service, query)

    @app.get("/interests", summary="the user's predicted next interests")
    def interests(user: str = Query(..., min_length=1, max_length=MAX_ID_CHARS)):
        user = stored_id(user)
        served = service.current()
        history = _history(served.engine, user)
        found = served.engine.interests(served.run, user, history=history)
        return JSONResponse({"user": user, "run": served.run, "cold_start": _is_cold(served.engine, history),
                             "interests": [dataclasses.asdict(i) for i in found]})

    # ``:path``: shops' SKUs often hold a slash ("AB/123"), which the server has unescaped from %2F
    # before routing; a plain parameter would stop at it and answer 404 for an item that exists.
    @app.get("/items/{item:path}", summary="an item's details and the items most often taken after it")
    def item(item: str = PathParam(..., min_length=1, max_length=MAX_ID_CHARS)):
        engine = service.current().engine
        item = stored_id(item)
        found = engine.workspace.item(item)
        if found is None:
            raise ServiceError(404, f"unknown item {item!r}")
        known = bool(engine.sequence_data().item_index_of([item])[0])
        following = engine.next_items(item, 10) if known else []
        return JSONResponse({**found, "known_to_model": known,
                             "next_items": [dataclasses.asdict(n) for n in following]})

    @app.get("/health", summary="the run served, the workspace, the catalogue size and the device")
    def health():
        served = service.current()
        return {"status": "ok", "run": served.run, "model": served.model,
                "follows_active_run": service.follow, "workspace": str(served.engine.workspace.path),
                "items": int(served.engine.sequence_data().n_items), "device": service.device,
                "events_received": service.feed.received, "lists_from_cache": service.batcher.answers.hits,
                "started_at": service.started_at}

    @app.post("/events", summary="store one event or a list of them",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_EVENTS}]}}}}})
    async def events(request: Request):
        rows = await _posted_rows(request)
        report = await asyncio.wrap_future(service.feed.submit(rows))
        body = {"accepted": report.accepted, "rejected": [dataclasses.asdict(r) for r in report.rejected],
                "new_users": report.new_users, "new_items": report.new_items}
        return JSONResponse(body, status_code=200 if report.accepted or not rows else 422)

    return app


async def _recommended(service: Service, query: RecommendQuery) -> Response:
    served = service.current()
    answer = await asyncio.wrap_future(service.batcher.submit(served, query.user, query.k, query.diversity))
    return _json({"user": query.user, "run": served.run, "cold_start": _is_cold(served.engine, answer.history),
                  "recommendations": [_recommendation(r, query.explain) for r in answer.recommendations]})


def _valid_recommend_query(query_string: bytes) -> Optional[RecommendQuery]:
    """The query of a GET /recommend (the last of a repeated parameter counts, as in FastAPI), or None
    when it is not valid."""
    try:
        return RecommendQuery.model_validate(dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)))
    except (ValidationError, UnicodeDecodeError):
        return None


def _json(body: dict) -> Response:
    """A JSON response encoded by orjson (several times faster than the standard library's, which
    Starlette's JSONResponse uses: a served list is most of a request's encoding work)."""
    return Response(orjson.dumps(body), media_type="application/json")


def _history(engine, user: str) -> list[str]:
    """The user's item ids in time order as stored now ([] for a user the workspace has never seen)."""
    return engine.users_items([user])[0]


def _is_cold(engine, history: list[str]) -> bool:
    """No event the run can read: a new user, or one whose items are all newer than the run. Looked up
    newest first, one at a time: a known user's newest item settles it, where looking up the whole
    history cost the event loop a dictionary look-up per event (10,000 for the heaviest shoppers)."""
    index_of = engine.sequence_data().item_index_of
    return not any(index_of([item])[0] for item in reversed(history))


def _recommendation(rec, explain: bool) -> dict:
    answer = {"rank": rec.rank, "item": rec.item, "title": rec.title, "categories": rec.categories,
              "score": rec.score if math.isfinite(rec.score) else None, "interest": rec.interest}
    if explain:
        answer.update(reason=rec.reason, because=[{"item": item, "weight": weight} for item, weight in rec.because],
                      taken_with=rec.taken_with)
    return answer


async def _posted_rows(request: Request) -> list:
    """The request's events as a list, read at most MAX_BODY_BYTES (a chunked body is counted as it comes)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ServiceError(413, f"request body over {MAX_BODY_BYTES:,} bytes; post the events in smaller batches")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ServiceError(400, f"the body is not JSON: {exc}") from None
    rows = parsed if isinstance(parsed, list) else [parsed]
    if len(rows) > MAX_EVENTS:
        raise ServiceError(413, f"{len(rows):,} events in one request; at most {MAX_EVENTS:,}")
    return rows


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON with a message (``_error_response``)."""

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(exc, f"{request.method} {request.url.path}")

    for kind in (ServiceError, HTTPException, RequestValidationError, NextPickError, Exception):
        app.add_exception_handler(kind, answer)


def _error_response(exc: Exception, request: str) -> JSONResponse:
    """The JSON answer to ``exc``, raised answering ``request`` ("GET /recommend"); the traceback of a
    bug goes to the service's log only."""
    if isinstance(exc, ServiceError):
        return JSONResponse({"message": exc.message}, status_code=exc.status)
    if isinstance(exc, HTTPException):
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = str(first.get("loc", ["", ""])[-1])
        return JSONResponse({"message": f"{field}: {first.get('msg', 'invalid')}", "field": field}, status_code=422)
    if isinstance(exc, WorkspaceBusyError):
        return JSONResponse({"message": f"{exc.message}; nothing of this request was stored, send it again",
                             "hint": exc.hint}, status_code=503, headers={"Retry-After": "5"})
    if isinstance(exc, ReadOnlyWorkspaceError):
        return JSONResponse({"message": exc.message, "hint": exc.hint}, status_code=403)
    if isinstance(exc, NextPickError):
        return JSONResponse({"message": exc.message, "hint": exc.hint}, status_code=400)
    log.error("%s failed", request, exc_info=exc)
    return JSONResponse({"message": f"internal error ({type(exc).__name__}); the service's log has the details"},
                        status_code=500)


class _Guard:
    """ASGI middleware run on every request: the bearer token (when the service has one) and the
    declared body size, both refused before any route runs; then a valid GET /recommend is answered
    here, without FastAPI's layers of middleware, dependency solving and validation (a third of the
    event loop's CPU per request, bench_serve.py), and everything else goes on to the routes."""

    def __init__(self, app, service: Service) -> None:
        self.app = app
        self.service = service
        self.expected = f"Bearer {service.token}".encode() if service.token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        refusal = None
        if self.expected is not None and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            refusal = JSONResponse({"message": "missing or wrong bearer token (Authorization: Bearer TOKEN)"},
                                   status_code=401, headers={"WWW-Authenticate": "Bearer"})
        elif _declared_length(headers) > MAX_BODY_BYTES:
            refusal = JSONResponse({"message": f"request body over {MAX_BODY_BYTES:,} bytes"}, status_code=413)
        if refusal is not None:
            return await refusal(scope, receive, send)
        if scope["path"] == "/recommend" and scope["method"] == "GET":
            query = _valid_recommend_query(scope["query_string"])
            if query is not None:
                return await (await self._recommended(query))(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _recommended(self, query: RecommendQuery) -> Response:
        try:
            return await _recommended(self.service, query)
        except Exception as error:  # answered as the routes' errors are
            return _error_response(error, "GET /recommend")


def _declared_length(headers: dict) -> int:
    """The Content-Length a request declares (0 when none); an unreadable one counts as too long."""
    value = headers.get(b"content-length", b"0")
    return int(value) if value.isdigit() else MAX_BODY_BYTES + 1


def _heartbeat(service: Service):
    """Lifespan: keep the status file beside the workspace fresh while serving, remove it at the end."""

    @asynccontextmanager
    async def lifespan(_app):
        stop = threading.Event()
        path = service.engine.workspace.path

        failed = []

        def publish() -> None:
            """A folder the service may not write to costs the studio its view of it, not the service."""
            try:
                write_status(path, service.status())
            except OSError as error:
                if not failed:
                    log.warning("cannot write the status file beside %s (%s); the studio will not see this service",
                                path, error)
                failed.append(error)

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                publish()

        publish()  # before the first request is taken
        thread = threading.Thread(target=beat, name="nextpick-serve-status", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            service.runs.close()
            service.batcher.close()
            service.feed.close()
            remove_status(path, os.getpid())

    return lifespan
