"""Who is calling the node, and the one rule for reading a blob or metadata on it.

Credentials (the only ones the node accepts, listed in docs/node.md):

- an API token of this node, ``Authorization: Bearer mlt_...`` (any method);
- the dashboard's cookie ``mltrail_token`` holding the same token, for GET and HEAD only
  (a cross-site page can make a browser send cookies, never an Authorization header);
- a member's signed request, ``X-Mltrail-Member``, on ``GET /v1/blobs/{digest}`` only:
  bound to that digest, to an identity of this node, to the time and to a single-use nonce.

``authorise`` decides every read of a blob's bytes or of what they contain (metadata,
reports), whatever the route; ``read`` is the only way the node's routes get those bytes,
and it calls ``authorise`` first. Every route declares what it returns with ``@route``
(``tests/server/test_access.py`` enumerates ``app.routes`` against these declarations).
Chain data (ids, kinds, states, owners, on-chain names, digests, history, lineage) is
not content: anyone who reaches the node sees it. This module never decides a ledger
rule (the contract does) and never serves bytes it did not get through ``read``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import Request

from mltrail.errors import InputError, MltrailError, NotFoundError
from mltrail.provenance import exchange
from mltrail.server.app import Forbidden, Node, Unauthorized, node_of
from mltrail.server.tokens import Token, node_dir

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact

Access = Literal["content", "chain", "write", "compute"]
F = TypeVar("F", bound=Callable[..., Any])
COOKIE = "mltrail_token"
MAX_DEPTH = 32  # nesting shown in JSON and pages; deeper documents are withheld
FETCH_BUDGET = 3.0  # seconds a request may spend asking other members' nodes
RETRY_AFTER = 30.0  # seconds a failed fetch is not tried again
LOG_MAX = 8 * 1024 * 1024  # access.log rotates to access.log.1 past this


def route(kind: Access) -> Callable[[F], F]:
    """Declare what an endpoint returns: ``content`` (blob bytes or what they hold: it must
    take a ``Caller`` and read through ``read``), ``chain`` (chain data only), ``write``,
    or ``compute`` (derived from the request alone)."""
    def mark(fn: F) -> F:
        fn.__mltrail_access__ = kind  # type: ignore[attr-defined]
        return fn
    return mark


@dataclass(frozen=True)
class Endpoint:
    """One route of an app as it is served: path, methods, handler and its dependencies."""

    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Any] | None
    dependant: Any  # fastapi's Dependant (None for framework and mounted routes)
    mounted: bool = False

    @property
    def access(self) -> str | None:
        return getattr(self.endpoint, "__mltrail_access__", None)


def endpoints(routes: Iterable[Any]) -> Iterator[Endpoint]:
    """Every route an app serves, routers included (flattened), mounts as one entry."""
    from starlette.routing import Mount

    for r in routes:
        nested = getattr(r, "effective_candidates", None)
        if nested is not None:
            yield from endpoints(nested() if callable(nested) else nested)
        elif isinstance(r, Mount):
            yield Endpoint(r.path, frozenset(), None, None, mounted=True)
        else:
            yield Endpoint(r.path, frozenset(getattr(r, "methods", None) or ()),
                           getattr(r, "endpoint", None), getattr(r, "dependant", None))


# -- who is calling ----------------------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    """A request's proven credentials: this node's token, or a member's signature."""

    token: Token | None = None
    member: str | None = None

    def who(self) -> str:
        if self.token is not None:
            return f"token:{self.token.name}"
        return f"member:{self.member}" if self.member else "anonymous"


def _secret(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is not None:
        scheme, _, secret = value.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" else "\x00invalid"
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE) or None
    return None


def optional_token(request: Request) -> Token | None:
    """The request's token, None without one; a bad one is refused with 401."""
    secret = _secret(request)
    if secret is None:
        return None
    tok = node_of(request).tokens.authenticate(secret)
    if tok is None:
        raise Unauthorized("invalid API token")
    return tok


def any_token(request: Request) -> Token:
    """Any valid token (read-only ones too): 401 without one."""
    tok = optional_token(request)
    if tok is None:
        raise Unauthorized("this needs an API token (Authorization: Bearer mlt_...)")
    return tok


def write_token(request: Request) -> Token:
    """A token that may write: 401 without a valid one, 403 for a read-only one."""
    tok = optional_token(request)
    if tok is None:
        raise Unauthorized("this needs an API token (Authorization: Bearer mlt_...)")
    if tok.read_only:
        raise Forbidden(f"token {tok.name!r} is read-only")
    return tok


def caller_of(request: Request) -> Caller:
    """The caller of a content route: a token of this node, or nobody."""
    return Caller(token=optional_token(request))


def exchange_caller(request: Request, digest: str) -> Caller:
    """The caller of ``GET /v1/blobs/{digest}``: a token, else a member's signed request
    for this digest, addressed to an identity of this node, with an unused nonce."""
    token = optional_token(request)
    header = request.headers.get(exchange.HEADER)
    if token is not None or not header or len(header) > 400:
        return Caller(token=token)
    node = node_of(request)
    try:
        digest = exchange.normalise(digest)
    except MltrailError:
        return Caller()
    with node.nonce_lock:
        member = exchange.verify_request(header, digest, node.people.names(), node.nonces)
    return Caller(member=member)


# -- the rule ----------------------------------------------------------------------------

def authorise(node: Node, caller: Caller, digest: str, what: str) -> None:
    """The one rule for reading ``digest`` (its bytes or anything parsed from them) here.

    - this node's tokens: all that this home holds or can fetch (its own organisation);
    - a member (signed request): a blob open to members, or one whose readers list names
      them, while they hold a role on chain; never a blob fetched from another node that
      gave it to chosen readers (recorded with an empty readers list);
    - anyone else: nothing (401).
    Raises ``Unauthorized`` or ``Forbidden``; logs one line either way (``access.log``).
    """
    digest = exchange.normalise(digest)
    try:
        if caller.token is not None:
            pass  # this organisation's own reader: allowed, and logged below like the rest
        elif caller.member is None:
            raise Unauthorized(f"{digest} is content: it needs an API token of this node "
                               "or a member's signed request",
                               hint="set an API token (dashboard: top right; API: "
                                    "Authorization: Bearer mlt_...)")
        else:
            readers = exchange.Readers(node.home).get(digest)
            if readers is not None and caller.member not in readers:
                raise Forbidden(f"{digest} is for chosen readers and {caller.member} is not "
                                "one")
            with node.read_lock:
                member = bool(node.reader.roles().get(caller.member, 0))
            if not member:
                raise Forbidden(f"{caller.member} holds no role on chain: not a member")
    except MltrailError as exc:
        _log(node, what, digest, caller, f"refused {exc.message}")
        raise
    _log(node, what, digest, caller, "allowed")


def held_size(node: Node, digest: str) -> int:
    """How many bytes this home holds for ``digest`` (a size, never the content)."""
    return len(node.home.store.get(digest))


def audience(node: Node, digest: str) -> str:
    """What a blob's ``X-Mltrail-Audience`` header says: ``members`` or ``readers``."""
    return "members" if exchange.Readers(node.home).get(digest) is None else "readers"


def read(node: Node, caller: Caller, digest: str, what: str, owner: str | None = None,
         fetch: bool = True) -> bytes:
    """The bytes of ``digest`` for ``caller``: ``authorise`` first, then this home's store,
    else (``fetch``, never for a member: a node does not relay) other members' nodes
    within ``FETCH_BUDGET`` seconds, outside the ledger's lock."""
    digest = exchange.normalise(digest)
    authorise(node, caller, digest, what)
    return _bytes(node, caller, digest, owner, fetch)


def _bytes(node: Node, caller: Caller, digest: str, owner: str | None, fetch: bool) -> bytes:
    """``read`` after ``authorise`` (call it only from here)."""
    store = node.home.store
    with node.read_lock:
        if store.has(digest):
            return store.get(digest)
        if not fetch or caller.member is not None:
            raise NotFoundError(f"this node does not hold {digest}")
        failed = node.failed.get(digest)
        if failed is not None and failed[0] > time.monotonic():
            raise failed[1]
        nodes = exchange.peers(node.reader, owner)
    try:
        return exchange.fetch_from(node.reader, nodes, digest, timeout=FETCH_BUDGET)
    except MltrailError as exc:
        if len(node.failed) > 10_000:
            node.failed.clear()
        node.failed[digest] = (time.monotonic() + RETRY_AFTER, exc)
        raise


# -- what content looks like to a caller -------------------------------------------------

DOCS_MAX = 100_000  # parsed documents a node keeps (by digest: blobs are immutable)


def document(node: Node, caller: Caller, digest: str, what: str,
             owner: str | None = None, fetch: bool = True) -> Any:
    """A JSON blob parsed for ``caller`` (``read``'s rule), at most ``MAX_DEPTH`` deep.

    InputError for bytes that are not JSON or are nested deeper than ``MAX_DEPTH``."""
    digest = exchange.normalise(digest)
    authorise(node, caller, digest, what)
    if digest in node.docs:  # this home holds it, parsed before; authorised just now
        return node.docs[digest]
    data = _bytes(node, caller, digest, owner, fetch)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InputError(f"{digest} is not a JSON document this node can show") from None
    if depth(doc) > MAX_DEPTH:
        raise InputError(f"{digest} is nested deeper than {MAX_DEPTH} levels: not shown")
    if len(node.docs) < DOCS_MAX:
        node.docs[digest] = doc
    return doc


def depth(doc: Any) -> int:
    """How deeply a parsed JSON document nests (iterative: any depth is safe)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack += [(v, d + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


_ABS = re.compile(r"^(file://|~/|/[^/\s]|[A-Za-z]:[\\/])")


def redact_paths(doc: Any) -> Any:
    """``doc`` with every absolute local path replaced by ``…/<last part>``."""
    if isinstance(doc, dict):
        return {k: redact_paths(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact_paths(v) for v in doc]
    if isinstance(doc, str) and _ABS.match(doc) and not doc.startswith("//"):
        return "…/" + re.split(r"[\\/]", doc.rstrip("/\\"))[-1]
    return doc


def shows_paths(node: Node, caller: Caller, owner: str | None) -> bool:
    """Local paths are for this node's token holders, in documents an identity of this
    home owns (they are that organisation's own machines' paths)."""
    return caller.token is not None and owner is not None and owner in node.people.names()


@dataclass(frozen=True)
class Shown:
    """A document as one caller may see it: the document, or None and why not."""

    doc: dict[str, Any] | None
    note: str | None


def metadata(node: Node, caller: Caller, art: Artefact) -> Shown:
    """An artefact's metadata for ``caller``: shown, withheld (and why), or unavailable."""
    try:
        doc = document(node, caller, art.metadata_digest, "metadata", art.owner)
    except (Unauthorized, Forbidden) as exc:
        return Shown(None, f"withheld: {exc.message}")
    except MltrailError as exc:
        return Shown(None, f"unavailable: {exc.message}")
    doc = doc if isinstance(doc, dict) else {"value": doc}
    return Shown(doc if shows_paths(node, caller, art.owner) else redact_paths(doc), None)


# -- the access log ----------------------------------------------------------------------

_log_lock = threading.Lock()


def _log(node: Node, what: str, digest: str, caller: Caller, outcome: str) -> None:
    """One line per decision: UTC time, what was read, digest, caller, outcome."""
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {what} {digest} "
            f"{caller.who()} {outcome}").replace("\n", " ")[:600] + "\n"
    path = node_dir(node.home) / "access.log"
    with _log_lock:
        try:
            if node.log is None or node.log.tell() > LOG_MAX:
                if node.log is not None:
                    node.log.close()
                    path.replace(path.with_name("access.log.1"))
                path.parent.mkdir(parents=True, exist_ok=True)
                node.log = path.open("a", buffering=1)
            node.log.write(line)
        except OSError:
            pass  # a full disk must not turn a read into a 500
