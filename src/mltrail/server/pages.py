"""The dashboard: server-rendered pages over the same library calls as the API.

Pages: artefact list (``/``), artefact (``/a/{id}``: with its parameters, metrics,
verdicts and files), two artefacts side by side (``/compare?a=&b=``), downloads
(``/download/{digest}``), proof and audit reports (``/reports/{digest}``), ledger
(``/ledger``). Writes from the browser go through the
API with the visitor's token (sent by ``app.js``); pages never write. Pages read content
(metadata, reports) through ``access`` with the visitor's token from the dashboard's
cookie; without one they show chain data and say what is withheld.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined
from markupsafe import Markup

from mltrail.errors import InputError, MltrailError
from mltrail.provenance import exchange
from mltrail.render import reports
from mltrail.server import access, api, plots, queries, views
from mltrail.server.access import Caller, caller_of, exchange_caller, route
from mltrail.server.app import HERE, Node, node_of, status_of
from mltrail.server.work import Row, cell, rows, safe_filename, verdict_summary, work_of

router = APIRouter(include_in_schema=False)
CallerDep = Annotated[Caller, Depends(caller_of)]
templates = Jinja2Templates(directory=HERE / "templates")

GOOD = {"approved", "verified", "deployed", "audited", "validated"}
WARN = {"suspended", "deprecated"}
BAD = {"revoked", "rejected"}


def badge(state: str) -> Markup:
    tone = ("good" if state in GOOD else "warn" if state in WARN else "bad" if state in BAD
            else "muted" if state == "retired" else "info")
    return Markup('<span class="badge {}">{}</span>').format(tone, state)


def short(value: str | None, n: int = 10) -> str:
    if not value or isinstance(value, Undefined):
        return "—"
    v = str(value)
    return v if len(v) <= n + 2 else v[: n + 2] + "…"


def fmt(v: Any) -> str:
    if v is None or isinstance(v, Undefined):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


templates.env.filters.update(badge=badge, short=short, fmt=fmt, cell=cell)
templates.env.globals["isinstance"] = isinstance
templates.env.globals["dict"] = dict
templates.env.globals["list"] = list


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def _error(request: Request, exc: MltrailError) -> HTMLResponse:
    return _page(request, "error.html", {"message": exc.message, "hint": exc.hint},
                 status_of(exc))


@router.get("/", response_class=HTMLResponse)
@route("chain")
def artefact_list(request: Request, kind: str = "", state: str = "", q: str = "",
                  page: int = 1) -> HTMLResponse:
    node: Node = node_of(request)
    per = 50
    try:
        with node.read_lock:
            led = node.reader
            res = queries.list_artefacts(led, node.names, kind=kind or None, state=state or None,
                                         q=q or None, limit=per, offset=max(0, page - 1) * per)
            rows = [views.artefact(led, node.names, node.people, a) for a in res.items]
            kinds = list(led.lifecycle.kinds)
            states = sorted({s for k in led.lifecycle.kinds.values() for s in k.states})
            counts = queries.counts(led)
    except MltrailError as exc:
        return _error(request, exc)
    return _page(request, "list.html", {
        "rows": rows, "total": res.total, "kinds": kinds, "states": states, "counts": counts,
        "f": {"kind": kind, "state": state, "q": q}, "page": max(1, page),
        "pages": max(1, -(-res.total // per))})


@router.get("/a/{artefact_id}", response_class=HTMLResponse)
@route("content")
def artefact_page(request: Request, caller: CallerDep, artefact_id: str) -> HTMLResponse:
    node: Node = node_of(request)
    try:
        detail = api.get_artefact(node, caller, artefact_id)
        lin = api.get_lineage(node, artefact_id)
        with node.read_lock:
            lc = node.reader.lifecycle
            kind = lc.kind(detail.artefact.kind)
    except MltrailError as exc:
        return _error(request, exc)
    art = detail.artefact.model_dump()
    reports = {}
    for ev in detail.history:
        if ev.evidence_digest:
            reports[ev.evidence_digest] = _report_kind(node, caller, ev.evidence_digest)
    history = [e.model_dump() for e in detail.history]
    try:
        with node.read_lock:
            peers = [views.artefact(node.reader, node.names, node.people, p) for p in
                     queries.list_artefacts(node.reader, node.names, kind=art["kind"],
                                            limit=50).items if p.id != art["id"]]
    except MltrailError:
        peers = []
    return _page(request, "artefact.html", {
        "work": work_of(node, caller, art, detail.metadata, history), "peers": peers,
        "a": art, "history": [e.model_dump() for e in reversed(detail.history)],
        "metadata": detail.metadata, "metadata_note": detail.metadata_note,
        "next": [m.model_dump() for m in detail.next_states],
        "lifecycle": Markup(plots.lifecycle_svg(kind, art["state"], lc.terminal)),
        "lineage": Markup(plots.lineage_svg(art, [a.model_dump() for a in lin.ancestors],
                                            [d.model_dump() for d in lin.descendants])),
        "n_related": len(lin.ancestors) + len(lin.descendants), "reports": reports})


def _report_kind(node: Node, caller: Caller, digest: str) -> str | None:
    """The kind of report a transition cites, if this caller may read it and it is here."""
    try:
        doc = access.document(node, caller, digest, "report-kind", fetch=False)
    except MltrailError:
        return None
    return api.report_type(doc) if isinstance(doc, dict) else None


@router.get("/reports/{digest}", response_class=HTMLResponse)
@route("content")
def report_page(request: Request, caller: CallerDep, digest: str) -> HTMLResponse:
    node: Node = node_of(request)
    try:
        digest = exchange.normalise(digest)
        rep = api.get_report(node, caller, digest)
        with node.read_lock:
            cited = queries.cited_by(node.reader, digest)
            about = None
            if cited is not None:
                art = node.reader.artefact(cited["artefact_id"])
                about = views.artefact(node.reader, node.names, node.people, art)
                cited["actor_name"] = node.people.name(cited["actor"])
    except MltrailError as exc:
        return _error(request, exc)
    body = {"pol": reports.pol_body, "audit": reports.audit_body}.get(rep.type or "")
    if body is not None:
        return _page(request, f"{rep.type}_report.html", {
            "report_css": reports.css(), "body": body(
                rep.report, digest=digest, cited=cited, about=about,
                names=node.people.names(), links=True)})
    return _page(request, "error.html", {"message": f"{digest} is not a proof or audit report",
                                         "hint": None}, 404)


@router.get("/ledger", response_class=HTMLResponse)
@route("chain")
def ledger_page(request: Request) -> HTMLResponse:
    node: Node = node_of(request)
    try:
        info = api.ledger_info(node)
    except MltrailError as exc:
        return _error(request, exc)
    return _page(request, "ledger.html", {"info": info.model_dump(),
                                          "identity": node.reader.identity})


@router.get("/compare", response_class=HTMLResponse)
@route("content")
def compare_page(request: Request, caller: CallerDep, a: str = "", b: str = "") -> HTMLResponse:
    """Two artefacts side by side: lineage, parameters, metrics, verdicts; differences marked."""
    node: Node = node_of(request)
    try:
        with node.read_lock:
            recent = [views.artefact(node.reader, node.names, node.people, x) for x in
                      queries.list_artefacts(node.reader, node.names, limit=100).items]
        sides = [_side(node, caller, ref) for ref in (a, b) if ref.strip()]
    except MltrailError as exc:
        return _error(request, exc)
    ctx: dict[str, Any] = {"recent": recent, "a": a, "b": b, "sides": sides}
    if len(sides) == 2:
        x, y = sides
        ctx["sections"] = [
            ("Artefact", rows(x["facts"], y["facts"])),
            ("Verdicts", [Row("lifecycle state", x["a"]["state"], y["a"]["state"],
                                   x["a"]["state"] != y["a"]["state"], badge=True),
                          *rows(verdict_summary(x["work"]),
                                     verdict_summary(y["work"]))]),
            ("Lineage", rows(x["lineage"], y["lineage"])),
            ("Parameters", rows(x["work"].params, y["work"].params)),
            ("Metrics", rows(x["work"].metrics, y["work"].metrics))]
    return _page(request, "compare.html", ctx)


def _side(node: Node, caller: Caller, ref: str) -> dict[str, Any]:
    if len(ref) > 200:
        raise InputError("an artefact is named by an id, an id prefix or a name (at most "
                         "200 characters)")
    detail = api.get_artefact(node, caller, ref.strip())
    lin = api.get_lineage(node, ref.strip())
    art = detail.artefact.model_dump()
    up = [r.name or r.id[:10] for r in lin.ancestors]
    down = [r.name or r.id[:10] for r in lin.descendants]
    return {
        "a": art, "work": work_of(node, caller, art, detail.metadata,
                                       [e.model_dump() for e in detail.history]),
        "facts": {"kind": art["kind"], "owner": art["owner_name"] or art["owner"],
                  "content digest": art["content_digest"]},
        "lineage": {"parents": [r.name or r.id[:10] for r in lin.ancestors if r.depth == 1],
                    "ancestors": up, "descendants": down},
        "lineage_svg": Markup(plots.lineage_svg(art, [x.model_dump() for x in lin.ancestors],
                                                [d.model_dump() for d in lin.descendants]))}


@router.get("/download/{digest}", response_model=None,
            responses={200: {"content": {"application/octet-stream": {}}}})
@route("content")
def download(request: Request, digest: str,
             caller: Annotated[Caller, Depends(exchange_caller)],
             name: str = "") -> Response:
    """A blob's bytes as a file, for whoever ``access.authorise`` lets read it (a token of
    this node, a member among its readers); anyone else gets the refusal and no byte."""
    node: Node = node_of(request)
    try:
        digest = exchange.normalise(digest)
        data = access.read(node, caller, digest, "download", fetch=caller.token is not None)
    except MltrailError as exc:
        return _error(request, exc)
    filename = safe_filename(name) if name else digest.removeprefix("sha256:")[:16]
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "private, no-store"})
