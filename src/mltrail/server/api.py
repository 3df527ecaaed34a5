"""The node's REST API under ``/v1``: request and response models and one library call each.

Chain data (artefacts, history, lineage, health, members) is open to whoever reaches the
node; content (blobs, metadata, reports) goes through ``access.read``, the one rule for
reading it; writes need a token and are signed with the token's identity's key. Every
route declares what it returns (``access.route``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from mltrail.errors import InputError, NotFoundError
from mltrail.ledger.client import Artefact
from mltrail.provenance import exchange
from mltrail.server import access, queries, views
from mltrail.server.access import Caller, any_token, caller_of, exchange_caller, route, write_token
from mltrail.server.app import MAX_UPLOAD, Node, TooLarge, node_of
from mltrail.server.tokens import Token

router = APIRouter(prefix="/v1")

DIGEST = r"^sha256:[0-9a-fA-F]{64}$"
ID_OR_PREFIX = r"^(0x)?[0-9a-fA-F]{6,64}$"
Digest = Annotated[str, Field(pattern=DIGEST, examples=["sha256:" + "ab" * 32])]
ArtefactId = Annotated[str, Path(min_length=1, max_length=128,
                                  description="Id, unique id prefix, or unique name.")]
DigestPath = Annotated[str, Path(pattern=DIGEST)]
NodeDep = Annotated[Node, Depends(node_of)]
WriteDep = Annotated[Token, Depends(write_token)]
CallerDep = Annotated[Caller, Depends(caller_of)]
TokenDep = Annotated[Token, Depends(any_token)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransitionOut(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str = Field(alias="from", description="A state, or * for any.")
    to: str
    roles: list[str]


class KindOut(Strict):
    kind: str
    initial: str
    states: list[str]
    register_roles: list[str]
    transitions: list[TransitionOut]


class ArtefactOut(Strict):
    id: str
    kind: str
    state: str
    name: str | None
    owner: str
    owner_name: str | None
    content_digest: str
    metadata_digest: str
    parents: list[str]
    block: int
    timestamp: int


class Related(ArtefactOut):
    depth: int


class EventOut(Strict):
    block: int
    log_index: int
    tx_hash: str
    event: str
    actor: str | None
    actor_name: str | None
    timestamp: int
    summary: str
    evidence_digest: str | None


class Move(Strict):
    state: str
    roles: list[str]


class ArtefactDetail(Strict):
    artefact: ArtefactOut
    history: list[EventOut]
    metadata: dict[str, Any] | None = Field(description="Shown to readers only (a token of "
                                            "this node); local paths to their owners only.")
    metadata_note: str | None = Field(default=None, description="Why metadata is null.")
    next_states: list[Move]


class ArtefactPage(Strict):
    items: list[ArtefactOut]
    total: int
    limit: int
    offset: int


class Lineage(Strict):
    artefact: ArtefactOut
    ancestors: list[Related]
    descendants: list[Related]


class VerifyOut(Strict):
    expected: str
    actual: str
    size: int
    match: bool


class ReportOut(Strict):
    digest: str
    type: Literal["pol", "audit", "unknown"]
    report: dict[str, Any]


class CheckOut(Strict):
    ok: bool
    checked_at: int
    blocks: int | None = None
    events: int | None = None
    head: int | None = None
    error: str | None = None
    details: dict[str, int | float | str | bool] = Field(default_factory=dict)


class Health(Strict):
    head: int
    index_block: int
    in_sync: bool
    backend: str
    chain_id: int
    registry: str
    rpc_url: str | None
    lifecycle_digest: str
    last_check: CheckOut | None


class Member(Strict):
    address: str
    name: str | None
    roles: list[str]


class LedgerOut(Strict):
    health: Health
    members: list[Member]
    counts: dict[str, dict[str, int]]


class RegisterIn(Strict):
    kind: str = Field(max_length=64)
    content_digest: Digest
    parents: list[Annotated[str, Field(pattern=ID_OR_PREFIX)]] = Field(default=[],
                                                                       max_length=32)
    name: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TransitionIn(Strict):
    to_state: str = Field(max_length=64)
    evidence_digest: Digest | None = None


class AnchorIn(Strict):
    root: Annotated[str, Field(pattern=r"^(0x)?[0-9a-fA-F]{64}$")]
    count: int = Field(ge=1, le=2**32)
    metadata_digest: Digest | None = None


class TxOut(Strict):
    tx_hash: str
    block: int
    gas_used: int
    timestamp: int
    artefact_id: str | None = None
    signer: str


class BlobOut(Strict):
    digest: str
    size: int


class ReadersIn(Strict):
    readers: list[Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]] | None = Field(
        default=None, max_length=1000, description="Addresses; null opens the blob to members.")


def _art(node: Node, art: Any) -> ArtefactOut:
    return ArtefactOut(**views.artefact(node.reader, node.names, node.people, art))


# -- reads -------------------------------------------------------------------------------

@router.get("/artefacts", response_model=ArtefactPage, summary="List and search artefacts")
@route("chain")
def list_artefacts(
    node: NodeDep,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Name, id or digest prefix.")]
    = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ArtefactPage:
    with node.read_lock:
        page = queries.list_artefacts(node.reader, node.names, kind=kind, state=state,
                                      owner=owner, name=name, q=q, limit=limit, offset=offset)
        items = [_art(node, a) for a in page.items]
    return ArtefactPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/artefacts/{artefact_id}", response_model=ArtefactDetail,
            summary="One artefact with its full history (metadata for readers)")
@route("content")
def get_artefact(node: NodeDep, caller: CallerDep, artefact_id: ArtefactId) -> ArtefactDetail:
    with node.read_lock:
        led = node.reader
        art = led.artefact(artefact_id)
        kind = led.lifecycle.kind(art.kind)
        history = [EventOut(**views.event(kind, e, node.people)) for e in led.history(art.id)]
        out = _art(node, art)
    shown = access.metadata(node, caller, art)  # fetched outside the ledger's lock
    return ArtefactDetail(artefact=out, history=history, metadata=shown.doc,
                          metadata_note=shown.note,
                          next_states=[Move(**m) for m in views.next_states(kind, art.state)])


@router.get("/artefacts/{artefact_id}/lineage", response_model=Lineage,
            summary="Ancestors and descendants")
@route("chain")
def get_lineage(node: NodeDep, artefact_id: ArtefactId) -> Lineage:
    with node.read_lock:
        led = node.reader
        lin = led.lineage(artefact_id)

        def rel(d: dict[str, Any]) -> Related:
            fields = Artefact.__dataclass_fields__
            art = Artefact(**{k: v for k, v in d.items() if k in fields})
            return Related(**views.artefact(led, node.names, node.people, art), depth=d["depth"])

        return Lineage(artefact=_art(node, led.artefact(lin["artefact"]["id"])),
                       ancestors=[rel(d) for d in lin["ancestors"]],
                       descendants=[rel(d) for d in lin["descendants"]])


async def stream(request: Request, limit: int = MAX_UPLOAD) -> Any:
    """The request body in chunks; ``TooLarge`` (413) once it passes ``limit`` bytes."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body over {limit} bytes")
        yield chunk


@router.post("/verify", response_model=VerifyOut,
             summary="Check a file's bytes (the request body, at most 64 MiB) against a digest")
@route("compute")
async def verify(request: Request,
                 digest: Annotated[str, Query(pattern=DIGEST)]) -> VerifyOut:
    import hashlib

    h, size = hashlib.sha256(), 0
    async for chunk in stream(request):  # hashed as it arrives: nothing is kept
        h.update(chunk)
        size += len(chunk)
    actual = "sha256:" + h.hexdigest()
    expected = exchange.normalise(digest)
    return VerifyOut(expected=expected, actual=actual, size=size, match=actual == expected)


@router.get("/reports/{digest}", response_model=ReportOut,
            summary="A proof or audit report stored as evidence (readers only)")
@route("content")
def get_report(node: NodeDep, caller: CallerDep, digest: DigestPath) -> ReportOut:
    doc = access.document(node, caller, digest, "report")
    if not isinstance(doc, dict):
        raise InputError(f"{digest} is not a JSON report")
    if caller.token is None:
        doc = access.redact_paths(doc)
    return ReportOut(digest=exchange.normalise(digest), type=report_type(doc), report=doc)


def report_type(doc: dict[str, Any]) -> Literal["pol", "audit", "unknown"]:
    if str(doc.get("format", "")).startswith("mltrail-pol-report"):
        return "pol"
    if "findings" in doc and "verdict" in doc:
        return "audit"
    return "unknown"


@router.get("/health", response_model=Health, summary="Head block, index sync, last check")
@route("chain")
def health(node: NodeDep) -> Health:
    with node.read_lock:
        return Health(**queries.health(node.reader))


@router.get("/ledger", response_model=LedgerOut, summary="Contract, members and their roles")
@route("chain")
def ledger_info(node: NodeDep) -> LedgerOut:
    with node.read_lock:
        led = node.reader
        members = [Member(address=a, name=node.people.name(a),
                          roles=led.lifecycle.role_names(m)) for a, m in led.roles().items()]
        return LedgerOut(health=Health(**queries.health(led)), members=members,
                         counts=queries.counts(led))


@router.get("/lifecycle/{kind}", response_model=KindOut,
            summary="A kind's states and transitions")
@route("chain")
def lifecycle(node: NodeDep, kind: Annotated[str, Path(max_length=64)]) -> KindOut:
    return KindOut.model_validate(views.lifecycle_kind(node.reader.lifecycle, kind))


@router.get("/blobs/{digest}", summary="Content this node holds (members and tokens)",
            responses={200: {"content": {"application/octet-stream": {}}}})
@route("content")
def get_blob(node: NodeDep, digest: DigestPath,
             caller: Annotated[Caller, Depends(exchange_caller)]) -> Response:
    data = access.read(node, caller, digest, "blob", fetch=False)
    return Response(data, media_type="application/octet-stream",
                    headers={exchange.AUDIENCE: access.audience(node, digest)})


# -- writes ------------------------------------------------------------------------------

@router.post("/artefacts", response_model=TxOut, status_code=201,
             summary="Register an artefact (signed as the token's identity)")
@route("write")
def register(node: NodeDep, token: WriteDep, body: RegisterIn) -> TxOut:
    meta = dict(body.metadata)
    if body.name:
        meta["name"] = body.name
    with node.write_lock:
        led = node.writer(token)
        r = led.register(body.kind, body.content_digest, body.parents, meta)
        return TxOut(**r.as_dict(), signer=led.address)


@router.post("/artefacts/{artefact_id}/transitions", response_model=TxOut,
             summary="Move an artefact to another state")
@route("write")
def transition(node: NodeDep, token: WriteDep, artefact_id: ArtefactId,
               body: TransitionIn) -> TxOut:
    with node.write_lock:
        led = node.writer(token)
        art = led.artefact(artefact_id)
        r = led.transition(art.id, body.to_state, body.evidence_digest)
        return TxOut(**r.as_dict(), artefact_id=art.id, signer=led.address)


@router.post("/artefacts/{artefact_id}/anchors", response_model=TxOut,
             summary="Put a Merkle root about an artefact on chain")
@route("write")
def anchor(node: NodeDep, token: WriteDep, artefact_id: ArtefactId, body: AnchorIn) -> TxOut:
    with node.write_lock:
        led = node.writer(token)
        aid = led.resolve(artefact_id)
        r = led.anchor(aid, bytes.fromhex(body.root.removeprefix("0x")), body.count,
                       body.metadata_digest)
        return TxOut(**r.as_dict(), artefact_id=aid, signer=led.address)


@router.post("/blobs", response_model=BlobOut, status_code=201,
             summary="Store bytes (the request body, at most 64 MiB) in this node's store")
@route("write")
async def put_blob(request: Request, node: NodeDep, token: WriteDep) -> BlobOut:
    import tempfile

    from anyio import to_thread

    incoming = node.home.root / "node" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=incoming, prefix="upload-") as tmp:
        size = 0
        async for chunk in stream(request):  # to disk as it arrives, never whole in memory
            tmp.write(chunk)
            size += len(chunk)
        tmp.flush()

        def store() -> str:
            with node.upload_lock:  # one upload's bytes in memory at a time
                return node.home.store.put_file(tmp.name)

        digest = await to_thread.run_sync(store)
    return BlobOut(digest=digest, size=size)


@router.put("/blobs/{digest}/readers", response_model=BlobOut,
            summary="Restrict who may fetch a blob (null: every member)")
@route("write")
def set_readers(node: NodeDep, token: WriteDep, digest: DigestPath, body: ReadersIn) -> BlobOut:
    with node.read_lock:
        if not node.home.store.has(digest):
            raise NotFoundError(f"this node does not hold {exchange.normalise(digest)}")
        exchange.Readers(node.home).set(digest, body.readers)
    return BlobOut(digest=exchange.normalise(digest), size=access.held_size(node, digest))


@router.post("/ledger/check", response_model=CheckOut,
             summary="Run 'ledger check' now and record its result")
@route("write")
def ledger_check(node: NodeDep, token: TokenDep) -> CheckOut:
    with node.read_lock:
        return CheckOut(**queries.run_check(node.reader))
