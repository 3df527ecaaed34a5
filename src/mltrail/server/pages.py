"""The dashboard: server-rendered pages over the same library calls as the API.

Pages: artefact list (``/``), artefact (``/a/{id}``), proof and audit reports
(``/reports/{digest}``), ledger (``/ledger``). Writes from the browser go through the
API with the visitor's token (sent by ``app.js``); pages never write. Pages read content
(metadata, reports) through ``access`` with the visitor's token from the dashboard's
cookie; without one they show chain data and say what is withheld.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined
from markupsafe import Markup

from mltrail.errors import MltrailError
from mltrail.provenance import exchange
from mltrail.render import reports
from mltrail.server import access, api, plots, queries, views
from mltrail.server.access import Caller, caller_of, route
from mltrail.server.app import HERE, Node, node_of, status_of

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


templates.env.filters.update(badge=badge, short=short, fmt=fmt)
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
    return _page(request, "artefact.html", {
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
