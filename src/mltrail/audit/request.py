"""One audit as the command line asks for it: options in, report and summary out.

Owns :class:`AuditRequest` (every option of ``mltrail audit run``) and
:func:`audit_and_record`, which loads the probes, the claims from the ledger and the
clients' submissions, runs :func:`mltrail.audit.runner.run_audit`, writes the report
files atomically and records the verdict on the ledger when a service artefact was
named; an audit whose verdict could not be recorded (:mod:`.preflight`) is refused
before any probe is sent. The CLI is argument parsing, one call here, and printing.
This module never prints and never decides a verdict (the runner does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError

if TYPE_CHECKING:
    from mltrail.audit.result import AuditReport
    from mltrail.ledger.client import Ledger

PROTOCOLS = ("auto", "mltrail", "oip", "adapter")
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class AuditRequest:
    """What to audit and how (the options of ``mltrail audit run``)."""

    service: str | None = None
    target: str | None = None
    protocol: str = "auto"
    adapter: Path | None = None
    probes: Path | None = None
    data: Path | None = None
    data_kind: str | None = None
    traffic: Path | None = None
    reference: str | None = None
    model: Path | None = None
    pubkey: str | None = None
    alpha: float = 0.05
    batch_size: int = 32
    max_queries: int | None = None
    tolerance: float = 0.0
    stop_on_alarm: bool = False
    require_receipts: bool = False
    robustness: bool = False
    eps: float | None = None
    query_cap: int | None = None
    latency: bool = False
    rate: float | None = None
    duration: float = 2.0
    timeout: float = 10.0
    seed: int | None = None
    out: Path | None = None
    html: Path | None = None
    receipt_quorum: int = 3
    missing_tolerance: float = 0.0

    def validate(self) -> None:
        """Refuse contradictory options before anything runs (InputError, exit 2)."""
        if self.reference and self.model:
            raise InputError("give --reference or --model, not both")
        if self.service is None and self.target is None:
            raise InputError("give a SERVICE id (claims from the ledger) or --target URL")
        if self.protocol not in PROTOCOLS:
            raise InputError(f"unknown --protocol {self.protocol!r} "
                             f"({', '.join(PROTOCOLS)})")


def _options(req: AuditRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    rob = None
    if req.robustness:
        rob = {k: v for k, v in (("eps", req.eps), ("query_cap", req.query_cap))
               if v is not None}
    lat = None
    if req.latency:
        lat = {"duration_s": req.duration, **({"rate_qps": req.rate} if req.rate else {})}
    return rob, lat


def audit_and_record(req: AuditRequest, open_ledger: Callable[[], AbstractContextManager[Ledger]],
                     progress: Progress) -> tuple[AuditReport, dict[str, Any]]:
    """Run the audit ``req`` describes; returns the report and the summary the CLI prints
    (with ``tx_hash``, ``block`` and ``gas_used`` when the verdict went on the ledger)."""
    from mltrail._fs import atomic_write
    from mltrail.audit import report as R
    from mltrail.audit.runner import AuditConfig, record_verdict, run_audit
    from mltrail.audit.workflows import load_probes

    req.validate()
    spec = None
    if req.adapter is not None:
        from mltrail.audit.adapter import load_adapter

        spec = load_adapter(req.adapter)
    ps = load_probes(req.probes, req.data, req.data_kind, req.seed, req.max_queries)
    rob, lat = _options(req)
    loaded = None
    if req.service is not None:
        from mltrail.audit.claims import load_claims
        from mltrail.audit.preflight import refuse_unrecordable

        with open_ledger() as led:
            loaded = load_claims(led, req.service)
            refuse_unrecordable(led, loaded.service_id)  # before any probe is sent
    subs = None
    if req.traffic is not None:
        from mltrail.audit.traffic import read_submissions

        subs = read_submissions(req.traffic, loaded.service_id if loaded else None)
    total = min(len(ps) if ps else (req.max_queries or 300), req.max_queries or 10**9)
    with progress(total) as advance:
        cfg = AuditConfig(target=req.target, probes=ps, reference_url=req.reference,
                          claims=loaded.claims if loaded else None,
                          service_id=loaded.service_id if loaded else None,
                          claims_digest=loaded.digest if loaded else None, traffic=subs,
                          model_path=str(req.model) if req.model else None,
                          public_key=req.pubkey, alpha=req.alpha, batch_size=req.batch_size,
                          max_queries=req.max_queries, identity_tolerance=req.tolerance,
                          stop_on_alarm=req.stop_on_alarm,
                          require_receipts=req.require_receipts, robustness=rob, latency=lat,
                          timeout_s=req.timeout, seed=req.seed, on_progress=advance,
                          protocol=req.protocol, adapter=spec,  # type: ignore[arg-type]
                          receipt_quorum=req.receipt_quorum,
                          missing_tolerance=req.missing_tolerance)
        rep = run_audit(cfg)
    raw = R.to_json_bytes(rep.to_dict())
    if req.out is not None:
        atomic_write(req.out, raw)
    if req.html is not None:
        atomic_write(req.html, R.to_html(json.loads(raw)).encode())
    summary: dict[str, Any] = {"verdict": rep.verdict, "queries": rep.queries,
                               "first_alarm_at": rep.first_alarm_at,
                               "metrics": rep.metrics.model_dump(),
                               "findings": [f.model_dump() for f in rep.findings],
                               "receipts": rep.receipts.model_dump(
                                   include={"valid", "invalid", "missing"}),
                               "skipped": [k.model_dump() for k in rep.skipped],
                               "report": str(req.out) if req.out else None,
                               "html": str(req.html) if req.html else None}
    if loaded is not None:
        with open_ledger() as led:
            summary["ledger"] = record_verdict(led, loaded.service_id, raw, rep.verdict)
        summary |= {k: summary["ledger"][k] for k in ("tx_hash", "block", "gas_used")}
    return rep, summary
