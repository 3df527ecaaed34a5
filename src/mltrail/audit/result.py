"""The typed audit report: what :func:`mltrail.audit.runner.run_audit` returns.

Owns the report's shape (pydantic, ``extra="forbid"``): the verdict (``pass`` only when
an identity or claim test ran with its stated power and nothing failed; ``fail`` on any
failed check, a refusal or a claim mismatch; ``inconclusive`` otherwise), the findings,
the headline :class:`Metrics` other components consume (agreement with the reference,
accuracy, p99 latency, availability, robustness), the typed sections every audit has
(:class:`Reference`, :class:`ClaimsCheck`, :class:`Power`, :class:`Availability`,
:class:`Timing`, :class:`Receipts`, :class:`Skipped`) and the per-test sections whose
content depends on the test (sequential, fixed-sample, exact, traffic, robustness,
latency) as JSON objects. It computes nothing and never talks to a service or the
ledger.
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reference(_Section):
    """What the answers were compared with (``kind`` None: nothing)."""

    kind: Literal["service", "model file", "seeded rebuild"] | None = None
    url: str | None = None
    path: str | None = None
    model_digest: str | None = None
    claimed_digest: str | None = None     # seeded rebuild: what was claimed ...
    rebuilt_digest: str | None = None     # ... and what the recipe produced
    digest_matches: bool | None = None
    error: str | None = None


class ClaimsCheck(_Section):
    source: Literal["ledger", "target", "reference"]
    differences: list[str] = Field(default_factory=list)
    advertised_checked: bool | None = None


class PowerTest(_Section):
    n: int
    needed: int | None          # None: a sequential test that counts once it decided
    effect: float | None
    counts: bool


class Power(_Section):
    """"No test, no pass": per identity or claim test, whether it reached its power."""

    target_power: float
    tests: dict[str, PowerTest] = Field(default_factory=dict)
    sufficient: bool = False
    probe_set_alone: bool = True   # False: public or detectable probes (mltrail.audit.distinguish)


class Availability(_Section):
    requests: int
    answered: int
    failed: int
    reasons: dict[str, int] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)
    claimed: float | None = None
    tested_against: float


class Timing(_Section):
    requests: int
    claim: dict[str, Any] | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class Receipts(_Section):
    checked: bool
    valid: int = 0
    invalid: int = 0
    missing: int = 0
    bad_examples: list[dict[str, Any]] = Field(default_factory=list)


class Skipped(_Section):
    """A part of the audit that could not run on these probes, and why (one line)."""

    check: str
    reason: str


class AuditReport(BaseModel):
    """One audit. ``to_dict()`` is the JSON whose canonical bytes go to the ledger."""

    model_config = ConfigDict(extra="forbid")

    version: int = 3   # 3: typed sections, skipped parts, claims from a reference card
    verdict: Verdict
    target: str
    service_id: str | None = None
    claims_source: Literal["ledger", "target", "reference"]
    claims_digest: str | None = None
    claimed: dict[str, Any]
    reference: Reference
    alpha: float
    alpha_per_test: float
    queries: int
    probes: dict[str, int]
    probe_meta: dict[str, Any]
    first_alarm_at: int | None
    metrics: Metrics
    findings: list[Finding]
    claims_check: ClaimsCheck
    power: Power
    availability: Availability
    timing: Timing
    receipts: Receipts
    sequential: dict[str, Any] = Field(default_factory=dict)
    fixed_sample: dict[str, Any] = Field(default_factory=dict)
    exact: dict[str, Any] | None = None
    traffic: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    skipped: list[Skipped] = Field(default_factory=list)
    probe_check: dict[str, Any] | None = None   # provenance and adversarial validation
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def failed(self, check: str) -> bool:
        return any(f.severity == "fail" and f.check == check for f in self.findings)

    def first_failure(self) -> Finding | None:
        return next((f for f in self.findings if f.severity == "fail"), None)
