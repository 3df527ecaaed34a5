"""What an artefact's work says, for people: parameters, metrics, verdicts and files.

Reads the signed step statement an artefact's metadata names (``activity.envelope``:
the parameters of a captured step, an imported MLflow run's params and metrics, a DVC
stage's params), the proof bundle a PoL model names (its training hyperparameters and
any loss or accuracy the prover recorded per checkpoint), and the PoL and audit reports
its history cites as evidence (the verdicts, and the loss and accuracy per checkpoint
the verifier computed, which replace the prover's). Compares two artefacts side by side.

Every byte comes through ``access`` (``document``/``read``, the one rule), for the
caller of the page; what cannot be read is named in ``Work.notes``, never guessed. This
module decides no rule, writes nothing, and renders every value as text with ``cell``
(no dict or JSON reaches a page).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

from mltrail.errors import MltrailError
from mltrail.render.values import number as show_number
from mltrail.server import access
from mltrail.server.access import Caller
from mltrail.server.app import Node

BUNDLE_KEY = "pol_bundle"  # the metadata key PoL publishing writes (mltrail.pol.onchain)
MAX_CELL = 200  # characters of one rendered value
MAX_ROWS = 400  # parameters or metrics shown for one artefact
MANIFEST_MAX = 16 << 20  # bytes of a proof bundle's manifest read for its header
MAX_MEMBERS = 100_000  # tar members looked through for the manifest
NOT_HYPER = frozenset({"program", "code", "source", "file", "constants", "params"})
CURVE_KEYS = ("loss", "accuracy", "acc", "val_loss", "val_accuracy")  # per checkpoint


def cell(v: Any) -> str:
    """One value as one line of text (the comparison compares these): numbers and yes/no as
    the report renderer writes them (:func:`mltrail.render.values.number`), lists and
    mappings as short ``a, b`` / ``k: v`` text (never JSON), at most ``MAX_CELL`` chars."""
    if v is None:
        out = "—"
    elif isinstance(v, int | float):  # bools too: the reports' own number format
        out = show_number(v)
    elif isinstance(v, dict):
        out = ", ".join(f"{k}: {cell(x)}" for k, x in v.items()) or "—"
    elif isinstance(v, list | tuple):
        out = ", ".join(cell(x) for x in v) or "—"
    else:
        out = str(v)
    return out if len(out) <= MAX_CELL else out[: MAX_CELL - 1] + "…"


TRANSPARENT = frozenset({"options", "kwargs", "groups"})  # spec wrappers, not names


def flatten(doc: Any, prefix: str = "", skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Nested mappings as dotted keys (``optimizer.lr``); a list holding one mapping reads
    as that mapping, several as ``[0].lr`` (at most 16); other lists stay values; the
    wrappers in ``TRANSPARENT`` add no name (a loop proof's ``optimizer.groups[0].options
    .lr`` reads ``optimizer.lr``); keys in ``skip`` are left out."""
    if not isinstance(doc, dict):
        return {prefix or "value": doc}
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k in skip:
            continue
        key = prefix if k in TRANSPARENT and prefix and isinstance(v, dict | list) \
            else f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key, skip))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            if len(v) == 1:
                out.update(flatten(v[0], key, skip))
            else:
                for i, x in enumerate(v[:16]):
                    out.update(flatten(x, f"{key}[{i}]", skip))
        else:
            out[key] = v
    return out


def number(v: Any) -> float | None:
    """A value as a number when it is one (MLflow params are strings: ``"0.05"``)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


@dataclass
class Verdict:
    what: str  # "proof of learning", "audit"
    verdict: str  # "accepted", "rejected", "pass", "fail"
    good: bool
    detail: str
    digest: str
    by: str | None
    timestamp: int


@dataclass
class File:
    label: str
    digest: str
    filename: str
    held: bool
    readers: str = ""  # held: "every member" or "chosen readers" (the blob's readers list)


@dataclass
class Work:
    """What the page shows about an artefact's work (each value raw; ``cell`` renders)."""

    source: list[str] = field(default_factory=list)  # where the values come from
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)  # per checkpoint, if recorded
    verdicts: list[Verdict] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    def curve_columns(self) -> list[str]:
        """The per-checkpoint values some point of the curve has, in ``CURVE_KEYS`` order."""
        return [k for k in CURVE_KEYS if any(k in p for p in self.curve)]


def _doc(node: Node, caller: Caller, digest: Any, what: str, owner: str,
         notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(digest, str):
        return None
    try:
        doc = access.document(node, caller, digest, what, owner)
    except MltrailError as exc:
        notes.append(f"{what}: {exc.message}")
        return None
    return doc if isinstance(doc, dict) else None


def _statement(node: Node, caller: Caller, meta: dict[str, Any], owner: str,
               work: Work) -> None:
    """Parameters and metrics from the signed statement of the step that made it."""
    from mltrail.provenance import attest

    act = meta.get("activity")
    if not isinstance(act, dict):
        return
    env = _doc(node, caller, act.get("envelope"), "statement", owner, work.notes)
    if env is None:
        return
    try:
        stmt = attest.statement_of(env)
    except MltrailError as exc:
        work.notes.append(f"statement: {exc.message}")
        return
    except RecursionError:
        stmt = {}
    if access.depth(stmt) > access.MAX_DEPTH or not stmt:
        work.notes.append(f"statement: nested deeper than {access.MAX_DEPTH} levels: not shown")
        return
    bd = _obj(stmt, "predicate", "buildDefinition")
    ext, internal = _obj(bd, "externalParameters"), _obj(bd, "internalParameters")
    params = ext.get("parameters")
    if isinstance(params, dict):
        work.params.update(flatten(params))
    mlf = internal.get("mlflow")
    if isinstance(mlf, dict):
        run = " ".join(str(x) for x in (mlf.get("run_name"), "·",
                                         str(mlf.get("run_id") or "")[:8]) if x)
        work.source.append(f"MLflow run {run}")
        if isinstance(mlf.get("metrics"), dict):
            work.metrics.update(flatten(mlf["metrics"]))
    elif isinstance(internal.get("dvc"), dict):
        work.source.append(f"DVC stage {internal['dvc'].get('stage', '')}")
    else:
        work.source.append(f"captured step {ext.get('step', '')}")
    work.files.append(File("signed statement (DSSE)", act["envelope"], "statement.dsse.json",
                           False))
    if isinstance(act.get("link"), str):
        work.files.append(File("in-toto link", act["link"], "step.link.json", False))


def _manifest(data: bytes) -> dict[str, Any] | None:
    """``manifest.json`` of a packed proof bundle (a tar), without unpacking the rest:
    at most ``MAX_MEMBERS`` members looked at, ``MANIFEST_MAX`` bytes read, ``MAX_DEPTH``
    levels deep (the bytes come from whoever published the proof)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for n, m in enumerate(tar):
                if n >= MAX_MEMBERS:
                    return None
                if m.name == "manifest.json":
                    fh = tar.extractfile(m) if m.isreg() and m.size <= MANIFEST_MAX else None
                    doc = json.loads(fh.read(MANIFEST_MAX + 1)) if fh else None
                    break
            else:
                return None
    except (tarfile.TarError, ValueError, EOFError, RecursionError, UnicodeError):
        return None
    return doc if isinstance(doc, dict) and access.depth(doc) <= access.MAX_DEPTH else None


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _obj(doc: Any, *keys: str) -> dict[str, Any]:
    """``doc[k1][k2]…`` when each is a mapping, else ``{}`` (documents come from others)."""
    for k in keys:
        doc = doc.get(k) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}




def _proof(node: Node, caller: Caller, meta: dict[str, Any], owner: str, work: Work) -> None:
    """Hyperparameters of a PoL proof (its header), per-checkpoint metrics if recorded."""
    digest = meta.get(BUNDLE_KEY)
    if not isinstance(digest, str):
        return
    work.files.append(File("proof bundle", digest, "proof-bundle.tar", False))
    try:
        data = access.read(node, caller, digest, "proof bundle", owner)
    except MltrailError as exc:
        work.notes.append(f"proof bundle: {exc.message}")
        return
    man = _manifest(data)
    if man is None:
        work.notes.append("proof bundle: no readable manifest.json")
        return
    head = _obj(man, "header")
    work.source.append("proof of learning")
    training = head.get("training")
    if isinstance(training, dict):  # digests and code references are not hyperparameters
        work.params.update({k: v for k, v in flatten(training, skip=NOT_HYPER).items()
                            if v is not None and v != []
                            and not (isinstance(v, str) and v.startswith("sha256:"))})
    for k in ("k", "device", "torch"):
        if k in head:
            work.params["checkpoint every (k)" if k == "k" else k] = head[k]
    records = [r for r in _list(man.get("records")) if isinstance(r, dict)]
    work.metrics["checkpoints"] = sum(r.get("type") == "checkpoint" for r in records)
    _curve(work, [r.get("metrics") if isinstance(r.get("metrics"), dict) else r
                  for r in records if r.get("type") == "checkpoint"], "prover")


def _curve(work: Work, points: list[Any], by: str) -> None:
    """Loss and accuracy per checkpoint into an empty curve, each point marked with who
    computed it (its ``source``, else ``by``); the last point also becomes metrics
    (``final loss (verifier)``)."""
    if work.curve:
        return
    for p in points:
        if not isinstance(p, dict):
            continue
        point = {k: p[k] for k in CURVE_KEYS
                 if isinstance(p.get(k), int | float) and not isinstance(p.get(k), bool)}
        if point:
            who = p.get("source") if p.get("source") in ("verifier", "prover") else by
            work.curve.append({"step": p.get("step"), **point, "by": who})
    if work.curve:
        last = work.curve[-1]
        work.metrics.update({f"final {k} ({last['by']})": v for k, v in last.items()
                             if k in CURVE_KEYS})


def _verdicts(node: Node, caller: Caller, history: list[dict[str, Any]], owner: str,
              work: Work) -> None:
    """Verdicts of the PoL and audit reports the history cites, oldest first."""
    from mltrail.server.api import report_type

    for ev in history:
        digest = ev.get("evidence_digest")
        if not digest:
            continue
        try:
            doc = access.document(node, caller, digest, "report", owner, fetch=False)
        except MltrailError:  # not one this caller may read here: listed, not parsed
            work.files.append(File("evidence", digest, f"evidence-{_short(digest)}.json",
                                   False))
            continue
        if not isinstance(doc, dict):
            continue
        kind = report_type(doc)
        by = ev.get("actor_name") or ev.get("actor")
        if kind == "pol":
            segs = [s for s in _list(doc.get("segments")) if isinstance(s, dict)]
            worst = max((number(s.get("error")) or 0.0 for s in segs), default=0.0)
            detail = (f"{len(segs)} segment{'s' * (len(segs) != 1)} replayed, largest error "
                      f"{cell(worst)} "
                      f"(threshold {cell(doc.get('threshold'))})")
            v = Verdict("proof of learning", str(doc.get("verdict")),
                        doc.get("verdict") == "accepted", detail, digest, by,
                        int(ev.get("timestamp") or 0))
            work.metrics["PoL replay error (max)"] = worst
            computed = _list(doc.get("curve"))
            if computed:  # the newest report's numbers rather than the prover's claims
                work.curve = []
                _curve(work, computed, "verifier")
        elif kind == "audit":
            n = len(_list(doc.get("findings")))
            detail = f"{cell(doc.get('queries'))} queries, {n} finding{'s' * (n != 1)}"
            v = Verdict("audit", str(doc.get("verdict")), doc.get("verdict") == "pass",
                        detail, digest, by, int(ev.get("timestamp") or 0))
        else:
            continue
        work.verdicts.append(v)
        name = "pol-report" if kind == "pol" else "audit-report"
        work.files.append(File(f"{v.what} report", digest,
                               f"{name}-{_short(digest)}.json", False))


def work_of(node: Node, caller: Caller, art: dict[str, Any], metadata: dict[str, Any] | None,
            history: list[dict[str, Any]]) -> Work:
    """What ``caller`` may see of an artefact's work (``art``, ``history``: the API's
    dicts; ``metadata``: as ``access.metadata`` showed it, None when withheld)."""
    w = Work()
    owner = str(art["owner"])
    name = (metadata or {}).get("name") or art.get("name") or "content"
    w.files.append(File("content", art["content_digest"], safe_filename(str(name)), False))
    w.files.append(File("metadata", art["metadata_digest"], "metadata.json", False))
    if metadata is not None:
        if isinstance(metadata.get("manifest"), str):
            w.files.append(File("folder manifest", metadata["manifest"], "manifest.json",
                                False))
        _statement(node, caller, metadata, owner, w)
        _proof(node, caller, metadata, owner, w)
    _verdicts(node, caller, history, owner, w)
    store = node.home.store
    seen: set[str] = set()
    files = []
    for f in w.files:  # one row per digest; held: this node has the bytes (not read here)
        if f.digest in seen:
            continue
        seen.add(f.digest)
        f.held = store.has(f.digest)
        if f.held:
            f.readers = "every member" if access.audience(node, f.digest) == "members" \
                else "chosen readers"
        files.append(f)
    w.files = files
    w.params = dict(list(w.params.items())[:MAX_ROWS])
    w.metrics = dict(list(w.metrics.items())[:MAX_ROWS])
    return w


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def safe_filename(name: str) -> str:
    """A file name for Content-Disposition: the last path part, ``[A-Za-z0-9._-]`` only,
    at most 100 characters (no quote, separator or control character gets through)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base)
    return safe.lstrip(".")[:100] or "content"


# -- two artefacts side by side ------------------------------------------------------------

@dataclass
class Row:
    label: str
    a: str
    b: str
    differs: bool
    badge: bool = False  # a and b are lifecycle states (the page draws them as badges)


def rows(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """One row per key of either mapping (a's order, then b's new keys); values rendered
    with ``cell``; numbers that are equal as numbers (``"0.05"`` and ``0.05``) match."""
    out = []
    for k in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(k), b.get(k)
        na, nb = number(va), number(vb)
        same = (na == nb) if na is not None and nb is not None else cell(va) == cell(vb)
        out.append(Row(k, cell(va) if k in a else "—", cell(vb) if k in b else "—", not same))
    return out


def verdict_summary(w: Work) -> dict[str, str]:
    """The last verdict of each kind, as text (``accepted: 12 segments …``)."""
    out: dict[str, str] = {}
    for v in w.verdicts:
        out[f"{v.what} verdict"] = f"{v.verdict} ({v.detail})"
    return out
