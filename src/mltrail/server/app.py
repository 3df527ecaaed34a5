"""The node's FastAPI application: wiring, authentication, limits and error mapping.

``create_app(home)`` returns the app; ``Node`` holds what requests share (a reading
``Ledger``, one writing ``Ledger`` per token identity, the token store, the exchange's
nonce cache). Errors from the library's one tree become JSON ``{"error", "hint"}`` with
a 4xx status; a JSON body over the limit or nested too deeply is refused (413, 400)
before it is parsed; uploads are bounded by their routes while they stream. Who may read
what is ``access``; no rule is decided here.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mltrail.config import Home
from mltrail.errors import (
    AuthError,
    InputError,
    LedgerError,
    MltrailError,
    NetworkError,
    NotFoundError,
    RefusedError,
    VerificationError,
)
from mltrail.ledger.client import Ledger
from mltrail.provenance.exchange import NonceCache
from mltrail.server import queries
from mltrail.server.queries import Names
from mltrail.server.tokens import Token, TokenStore, node_dir
from mltrail.server.views import People

HERE = Path(__file__).parent
MAX_JSON = 256 * 1024  # request bodies other than blobs and files to verify
MAX_UPLOAD = 64 * 1024 * 1024  # blobs and files to verify
MAX_JSON_DEPTH = 64  # nesting of a JSON request body
UPLOADS = ("/v1/blobs", "/v1/verify")


class NodeLedger(Ledger):
    """The node's reading session: catches up with the chain at most every ``SYNC_EVERY`` s.

    Writes through the node (and the CLI on this home) update the index as they are mined,
    so what the throttle delays is only other homes' records on a shared network.
    """

    SYNC_EVERY = 0.25
    _synced_at = -1.0

    def sync(self) -> int:
        now = time.monotonic()
        if now - self._synced_at < self.SYNC_EVERY:
            return 0
        self._synced_at = now
        return super().sync()

    def resolve(self, artefact_id: str) -> str:
        """As ``Ledger.resolve``; an id not yet seen forces a catch-up before 'unknown'."""
        try:
            return super().resolve(artefact_id)
        except NotFoundError:
            self._synced_at = -1.0
            return super().resolve(artefact_id)


class Node:
    """What every request of one app shares."""

    def __init__(self, home: Home, password: str | Callable[[], str] | None = None,
                 identity: str | None = None) -> None:
        self.home = home
        self.password = password
        self.reader = NodeLedger.open(home, identity=identity, password=password)
        queries.ensure_indexes(self.reader)
        self.read_lock = threading.RLock()
        self.write_lock = threading.Lock()
        self._writers: dict[str, Ledger] = {}
        self.tokens = TokenStore(home)
        self.names = Names()
        self.people = People(home)
        self.nonces = NonceCache(node_dir(home) / "nonces.sqlite")  # shared by workers
        self.nonce_lock = threading.Lock()
        self.upload_lock = threading.Lock()
        self.docs: dict[str, Any] = {}  # documents parsed from blobs this home holds
        self.failed: dict[str, tuple[float, MltrailError]] = {}  # fetches not to retry yet
        self.log: Any = None  # node/access.log, opened by access on first use

    def writer(self, token: Token) -> Ledger:
        """The ledger session signing as the token's identity (call under ``write_lock``)."""
        if token.identity not in self._writers:
            self._writers[token.identity] = Ledger.open(self.home, identity=token.identity,
                                                        password=self.password)
        return self._writers[token.identity]

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        self.nonces.close()
        self.reader.close()
        for led in self._writers.values():
            led.close()


class TooLarge(InputError):
    """413: a request body over its route's limit."""


def status_of(exc: MltrailError) -> int:
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, AuthError | RefusedError):
        return 403
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, VerificationError):
        return 409
    if isinstance(exc, NetworkError):
        return 502
    if isinstance(exc, LedgerError):
        return 503
    return 400


def _error(status: int, message: str, hint: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests (brackets outside strings), without parsing it."""
    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", body).translate(None, _NOT_BRACKETS)
    deepest = level = 0
    for ch in bare:
        level += 1 if ch in b"[{" else -1
        deepest = max(deepest, level)
    return deepest


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyLimit:
    """Refuse request bodies over a limit with 413 without reading them whole, and JSON
    nested deeper than ``MAX_JSON_DEPTH`` with 400. Uploads (``UPLOADS``) pass through
    unread: their routes stream them and stop at ``MAX_UPLOAD``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        upload = path.startswith(UPLOADS)
        limit = MAX_UPLOAD if upload else MAX_JSON
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.isdigit():
            await _error(400, "malformed Content-Length")(scope, receive, send)
            return
        if length is not None and int(length) > limit:
            await _error(413, f"request body over {limit} bytes")(scope, receive, send)
            return
        if upload:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _error(413, f"request body over {limit} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        if json_depth(body) > MAX_JSON_DEPTH:
            await _error(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")(
                scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(home: Home, password: str | Callable[[], str] | None = None,
               identity: str | None = None) -> FastAPI:
    """The node for ``home``: REST API under ``/v1``, blob exchange, dashboard at ``/``."""
    from mltrail.server import api, pages

    node = Node(home, password, identity)
    app = FastAPI(title="mltrail node", version="1",
                  description="A participant's node: artefacts, lineage, reports and blobs "
                              "of a shared mltrail ledger. Writes need an API token "
                              "(`Authorization: Bearer mlt_...`).")
    app.state.node = node

    @app.exception_handler(MltrailError)
    async def _mltrail_error(_: Request, exc: MltrailError) -> JSONResponse:
        return _error(status_of(exc), exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'malformed')}"
        return JSONResponse({"error": msg, "hint": None,
                             "detail": json.loads(json.dumps(errs, default=str))},
                            status_code=422)

    install_auth_handlers(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodyLimit)
    return app


def node_of(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


class Unauthorized(AuthError):
    """401: no token or an unknown one."""


class Forbidden(AuthError):
    """403: a caller who may not do this."""


def install_auth_handlers(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def _unauth(_: Request, exc: Unauthorized) -> JSONResponse:
        return _error(401, exc.message, "create one with 'mltrail token create'",
                      {"WWW-Authenticate": "Bearer"})
