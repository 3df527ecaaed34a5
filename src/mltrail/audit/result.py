"""The typed audit report: what :func:`mltrail.audit.runner.run_audit` returns.

Owns the report's shape (pydantic, ``extra="forbid"``): the verdict (``pass`` only when
an identity or claim test ran with its stated power and nothing failed; ``fail`` on any
failed check, a refusal or a claim mismatch; ``inconclusive`` otherwise), the findings,
the headline :class:`Metrics` other components consume (agreement with the reference,
accuracy, p99 latency, availability, robustness), and the per-check sections as JSON
dicts. It computes nothing and never talks to a service or the ledger.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["pass", "fail", "inconclusive"]
Severity = Literal["fail", "warn", "info"]


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity
    check: str
    message: str


class Findings(list[Finding]):
    """The findings of one audit as it runs."""

    def add(self, severity: str, check: str, message: str) -> None:
        self.append(Finding(severity=severity, check=check, message=message))  # type: ignore[arg-type]


class Metrics(BaseModel):
    """Headline numbers; ``None`` when the audit did not measure them."""

    model_config = ConfigDict(extra="forbid")

    queries: int = 0
    answered: int = 0
    agreement: float | None = None       # share of labels equal to the reference's
    accuracy: float | None = None        # on labelled probes
    robustness: float | None = None      # worst attack's score
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    availability: float | None = None    # share of requests answered 200 with a valid body
    traffic_samples: int = 0


class AuditReport(BaseModel):
    """One audit. ``to_dict()`` is the JSON whose canonical bytes go to the ledger."""

    model_config = ConfigDict(extra="forbid")

    version: int = 2
    verdict: Verdict
    target: str
    service_id: str | None = None
    claims_source: Literal["ledger", "target", "reference"]
    claims_digest: str | None = None
    claimed: dict[str, Any]
    reference: dict[str, Any]
    alpha: float
    alpha_per_test: float
    queries: int
    probes: dict[str, int]
    probe_meta: dict[str, Any]
    first_alarm_at: int | None
    metrics: Metrics
    findings: list[Finding]
    claims_check: dict[str, Any] = Field(default_factory=dict)
    power: dict[str, Any] = Field(default_factory=dict)
    availability: dict[str, Any] = Field(default_factory=dict)
    timing: dict[str, Any] = Field(default_factory=dict)
    receipts: dict[str, Any] = Field(default_factory=dict)
    sequential: dict[str, Any] = Field(default_factory=dict)
    fixed_sample: dict[str, Any] = Field(default_factory=dict)
    exact: dict[str, Any] | None = None
    traffic: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = Field(default_factory=list)   # {check, reason}
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def failed(self, check: str) -> bool:
        return any(f.severity == "fail" and f.check == check for f in self.findings)

    def first_failure(self) -> Finding | None:
        return next((f for f in self.findings if f.severity == "fail"), None)
