"""The node's REST API under ``/v1``: request and response models and one library call each.

Reads are open to whoever reaches the node (bind it to loopback or put it behind your
own proxy); writes need a token and are signed with the token's identity's key. Blobs
are served to node tokens and to members who sign their request (see ``exchange``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from mltrail.errors import InputError, MltrailError, NotFoundError
from mltrail.ledger.client import Artefact
from mltrail.provenance.digest import digest_bytes
from mltrail.server import exchange, queries, views
from mltrail.server.app import Forbidden, Node, any_token, node_of, optional_token, write_token
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
ReadDep = Annotated[Token | None, Depends(optional_token)]
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
    metadata: dict[str, Any] | None
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
            summary="One artefact with its full history")
def get_artefact(node: NodeDep, artefact_id: ArtefactId) -> ArtefactDetail:
    with node.read_lock:
        led = node.reader
        art = led.artefact(artefact_id)
        kind = led.lifecycle.kind(art.kind)
        history = [EventOut(**views.event(kind, e, node.people)) for e in led.history(art.id)]
        meta = queries.metadata(led, art)
        if meta is None:  # named on chain, held by the owner's node: fetch, check, cache
            try:
                exchange.fetch_blob(led, art.metadata_digest, art.owner, timeout=3.0)
                meta = queries.metadata(led, art)
            except MltrailError:
                meta = None
        return ArtefactDetail(artefact=_art(node, art), history=history, metadata=meta,
                              next_states=[Move(**m) for m in views.next_states(kind, art.state)])


@router.get("/artefacts/{artefact_id}/lineage", response_model=Lineage,
            summary="Ancestors and descendants")
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


@router.post("/verify", response_model=VerifyOut,
             summary="Check a file's bytes (the request body) against a digest")
async def verify(request: Request,
                 digest: Annotated[str, Query(pattern=DIGEST)]) -> VerifyOut:
    body = await request.body()
    actual = digest_bytes(body)
    expected = exchange.normalise(digest)
    return VerifyOut(expected=expected, actual=actual, size=len(body), match=actual == expected)


@router.get("/reports/{digest}", response_model=ReportOut,
            summary="A proof or audit report stored as evidence")
def get_report(node: NodeDep, digest: DigestPath) -> ReportOut:
    data = _blob(node, digest, None)
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        raise InputError(f"{digest} is not a JSON report") from None
    if not isinstance(doc, dict):
        raise InputError(f"{digest} is not a JSON report")
    return ReportOut(digest=exchange.normalise(digest), type=report_type(doc), report=doc)


def report_type(doc: dict[str, Any]) -> Literal["pol", "audit", "unknown"]:
    if str(doc.get("format", "")).startswith("mltrail-pol-report"):
        return "pol"
    if "findings" in doc and "verdict" in doc:
        return "audit"
    return "unknown"


def _blob(node: Node, digest: str, owner: str | None) -> bytes:
    """Local blob, else fetched from a member's node (checked, cached)."""
    with node.read_lock:
        if node.reader.home.store.has(digest):
            return node.reader.home.store.get(digest)
        return exchange.fetch_blob(node.reader, digest, owner)


@router.get("/health", response_model=Health, summary="Head block, index sync, last check")
def health(node: NodeDep) -> Health:
    with node.read_lock:
        return Health(**queries.health(node.reader))


@router.get("/ledger", response_model=LedgerOut, summary="Contract, members and their roles")
def ledger_info(node: NodeDep) -> LedgerOut:
    with node.read_lock:
        led = node.reader
        members = [Member(address=a, name=node.people.name(a),
                          roles=led.lifecycle.role_names(m)) for a, m in led.roles().items()]
        return LedgerOut(health=Health(**queries.health(led)), members=members,
                         counts=queries.counts(led))


@router.get("/lifecycle/{kind}", response_model=KindOut,
            summary="A kind's states and transitions")
def lifecycle(node: NodeDep, kind: Annotated[str, Path(max_length=64)]) -> KindOut:
    return KindOut.model_validate(views.lifecycle_kind(node.reader.lifecycle, kind))


@router.get("/blobs/{digest}", summary="Content this node holds (members and tokens)",
            responses={200: {"content": {"application/octet-stream": {}}}})
def get_blob(node: NodeDep, digest: DigestPath, token: ReadDep,
             member: Annotated[str | None, Header(alias="X-Mltrail-Member", max_length=300)]
             = None) -> Response:
    with node.read_lock:
        led = node.reader
        who = exchange.signer_of(member, digest) if member else None
        if not exchange.may_read(led, digest, who, token is not None):
            raise Forbidden("this blob is for members (sign the request) or token holders")
        if not led.home.store.has(digest):
            raise NotFoundError(f"this node does not hold {exchange.normalise(digest)}")
        data = led.home.store.get(digest)
    return Response(data, media_type="application/octet-stream")


# -- writes ------------------------------------------------------------------------------

@router.post("/artefacts", response_model=TxOut, status_code=201,
             summary="Register an artefact (signed as the token's identity)")
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
def transition(node: NodeDep, token: WriteDep, artefact_id: ArtefactId,
               body: TransitionIn) -> TxOut:
    with node.write_lock:
        led = node.writer(token)
        art = led.artefact(artefact_id)
        r = led.transition(art.id, body.to_state, body.evidence_digest)
        return TxOut(**r.as_dict(), artefact_id=art.id, signer=led.address)


@router.post("/artefacts/{artefact_id}/anchors", response_model=TxOut,
             summary="Put a Merkle root about an artefact on chain")
def anchor(node: NodeDep, token: WriteDep, artefact_id: ArtefactId, body: AnchorIn) -> TxOut:
    with node.write_lock:
        led = node.writer(token)
        aid = led.resolve(artefact_id)
        r = led.anchor(aid, bytes.fromhex(body.root.removeprefix("0x")), body.count,
                       body.metadata_digest)
        return TxOut(**r.as_dict(), artefact_id=aid, signer=led.address)


@router.post("/blobs", response_model=BlobOut, status_code=201,
             summary="Store bytes (the request body) in this node's content store")
async def put_blob(request: Request, node: NodeDep, token: WriteDep) -> BlobOut:
    data = await request.body()
    return BlobOut(digest=node.home.store.put(data), size=len(data))


@router.put("/blobs/{digest}/readers", response_model=BlobOut,
            summary="Restrict who may fetch a blob (null: every member)")
def set_readers(node: NodeDep, token: WriteDep, digest: DigestPath, body: ReadersIn) -> BlobOut:
    with node.read_lock:
        if not node.home.store.has(digest):
            raise NotFoundError(f"this node does not hold {exchange.normalise(digest)}")
        exchange.Readers(node.home).set(digest, body.readers)
        size = len(node.home.store.get(digest))
    return BlobOut(digest=exchange.normalise(digest), size=size)


@router.post("/ledger/check", response_model=CheckOut,
             summary="Run 'ledger check' now and record its result")
def ledger_check(node: NodeDep, token: TokenDep) -> CheckOut:
    with node.read_lock:
        return CheckOut(**queries.run_check(node.reader))
