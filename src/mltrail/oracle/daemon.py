"""The oracle daemon: watch for audit requests, audit, commit, wait, reveal, finalise.

The service audited in a round is found from the request's service id alone: its signed
claims on the ledger name the endpoint (:func:`service_claims`); a service without valid
claims fails the round. Each round the oracle draws its own private probes from its
secret salt (:mod:`mltrail.oracle.probes`) and commits to their digest with its findings.

Owns one oracle's round loop and its private state on disk
(``<home>/oracle/<address>/``): the block cursor, the rounds it follows, and for each
round it audits the findings and salt, written durably *before* the commitment is sent,
so a daemon killed at any point and restarted still reveals (or re-sends the same
commitment). Full reports go to the home's content store; only digests and values go on
chain. It never decides a rule itself: windows, tolerances and payouts are the
contract's, and a refusal is logged, not fatal. One line is logged per finished round.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from mltrail._fs import atomic_write
from mltrail.errors import InputError, LedgerError, MltrailError, RefusedError
from mltrail.oracle import market as M
from mltrail.oracle.metrics import AuditOptions, Metrics, measure
from mltrail.provenance.digest import to_bytes32

if TYPE_CHECKING:
    from mltrail.audit.claims import LoadedClaims
    from mltrail.audit.probes import ProbeSet
    from mltrail.ledger.client import TxResult


@dataclass
class Finding:
    """What an oracle commits to for one round (kept on disk until the round ends)."""

    round: int
    values: list[int]
    verdict: int
    report_digest: str
    salt: str
    commitment: str
    probe_digest: str = "0x" + "00" * 32

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FINDING: TypeAdapter[Finding] = TypeAdapter(Finding)
_REQUEST: TypeAdapter[M.Request] = TypeAdapter(M.Request)


class OracleState:
    """Durable per-oracle state: ``cursor.json`` and ``round-<id>.json`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _read(self, name: str) -> Any:
        p = self.root / name
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except ValueError:
            return None

    def _typed(self, name: str, adapter: TypeAdapter[Any]) -> Any:
        """The file ``name`` validated by ``adapter``; None when absent or not JSON."""
        doc = self._read(name)
        if not doc:
            return None
        try:
            return adapter.validate_python(doc)
        except ValidationError as exc:
            raise InputError(f"{self.root / name} is damaged: "
                             f"{exc.errors()[0]['msg']}") from None

    def cursor(self) -> tuple[int, list[int]]:
        doc = self._read("cursor.json") or {}
        return int(doc.get("block", -1)), [int(r) for r in doc.get("rounds", [])]

    def save_cursor(self, block: int, rounds: list[int]) -> None:
        atomic_write(self.root / "cursor.json",
                     json.dumps({"block": block, "rounds": rounds}).encode(), durable=False)

    def request(self, round_id: int) -> M.Request | None:
        req: M.Request | None = self._typed(f"request-{round_id}.json", _REQUEST)
        return req

    def save_request(self, req: M.Request) -> None:
        atomic_write(self.root / f"request-{req.round}.json", json.dumps(asdict(req)).encode(),
                     durable=False)

    def finding(self, round_id: int) -> Finding | None:
        f: Finding | None = self._typed(f"round-{round_id}.json", _FINDING)
        return f

    def save_finding(self, f: Finding) -> None:
        atomic_write(self.root / f"round-{f.round}.json", json.dumps(f.as_dict()).encode(),
                     durable=True)


class Daemon:
    """One oracle's loop over the rounds of a market."""

    def __init__(self, market: M.Market, opts: AuditOptions | None = None, *,
                 poll_s: float = 0.5, tick_s: float = 5.0,
                 log: Callable[[str], None] = print) -> None:
        self.market, self.opts = market, opts or AuditOptions()
        self.poll_s, self.tick_s, self.log = poll_s, tick_s, log
        self.state = OracleState(market.home.root / "oracle" / market.me)
        self._last_head = -1
        self._head_since = time.monotonic()
        self._tick_after = self._jitter()

    def _jitter(self) -> float:
        return self.tick_s * (1.0 + random.random())

    # -- hooks an adversary overrides (mltrail.testing.oracles) -------------------------

    def audit(self, req: M.Request, private: ProbeSet) -> Metrics:
        claims, why = service_claims(self.market, req.service)
        return measure(claims.claims if claims else None, M.mask_names(req.metrics), req.seed,
                       self.opts, private=private, service_id=req.service,
                       claims_digest=claims.digest if claims else None, claims_error=why)

    def commitment_for(self, req: M.Request, f: Finding) -> bytes | None:
        """The commitment to send (None: not yet)."""
        return bytes.fromhex(f.commitment[2:])

    def reveal_args(self, req: M.Request, f: Finding
                    ) -> tuple[list[int], int, bytes, bytes, bytes] | None:
        """What to reveal (None: not yet)."""
        return (f.values, f.verdict, to_bytes32(f.report_digest),
                bytes.fromhex(f.probe_digest[2:]), bytes.fromhex(f.salt[2:]))

    # -- the loop ---------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        me = self.market.me
        self.log(f"oracle {me} watching market {self.market.address_}")
        while not should_stop():
            try:
                self.step()
            except (LedgerError, OSError) as exc:  # node briefly away, lock busy: retry
                self.log(f"ledger unavailable ({exc}); retrying")
            except MltrailError as exc:  # a refusal or an odd round: log, keep watching
                self.log(f"error: {exc.message}")
            time.sleep(self.poll_s)

    def step(self) -> None:
        head = self.market.backend.head()
        if head != self._last_head:
            self._last_head, self._head_since = head, time.monotonic()
            self._tick_after = self._jitter()
        last, rounds = self.state.cursor()
        start = max(last + 1, self.market.network.deploy_block)
        if head >= start:
            for req in self.market.requests(start, head):
                self.state.save_request(req)
                if req.round not in rounds:
                    rounds.append(req.round)
            self.state.save_cursor(head, rounds)
        waiting = False
        for rid in list(rounds):
            done, wait = self._advance(rid, head)
            waiting = waiting or wait
            if done:
                rounds.remove(rid)
                self.state.save_cursor(max(head, last), rounds)
        if waiting and time.monotonic() - self._head_since > self._tick_after:
            try:
                self.market.tick()
            except MltrailError as exc:
                self.log(f"tick failed: {exc}")
            self._head_since = time.monotonic()

    def _advance(self, rid: int, head: int) -> tuple[bool, bool]:
        """Move one round on; returns (finished, waiting for blocks)."""
        req = self.state.request(rid)
        info = self.market.round(rid)
        if info.status != "open" or req is None:
            self._log_round(rid, info)
            return True, False
        nxt = head + 1
        committed = self.market.my_commitment(rid) != b"\x00" * 32
        if not committed:
            if not info.commit_open(nxt):
                self.log(f"round {rid}: missed the commit window")
                return True, False
            f = self.state.finding(rid) or self.prepare(req)
            digest = self.commitment_for(req, f)
            if digest is None:
                return False, False
            self._try(f"round {rid}: commit", self.market.commit, rid, digest)
            return False, False
        if self.market.my_reveal(rid) == 0:
            if not info.reveal_open(nxt):
                return False, True
            if nxt > info.reveal_end:
                return False, True  # too late: wait for finalisation
            stored = self.state.finding(rid)
            if stored is None:
                self.log(f"round {rid}: committed but no stored finding; cannot reveal")
                return False, True
            args = self.reveal_args(req, stored)
            if args is None:
                return False, True
            self._try(f"round {rid}: reveal", self.market.reveal, rid, *args)
            return False, False
        if info.can_finalize(nxt):
            self._try(f"round {rid}: finalize", self.market.finalize, rid, quiet=True)
            return False, False
        return False, True

    def prepare(self, req: M.Request) -> Finding:
        """Draw the private probes, audit, and store the finding and its salt durably
        (before commit)."""
        from mltrail.oracle import probes as OP

        salt, private, tries = OP.fresh_salt(req.seed)
        if tries > 1:
            self.log(f"round {req.round}: {tries - 1} private probe set(s) a detector "
                     "could tell from real digits, redrawn")
        pdigest = OP.digest(private)
        m = self.audit(req, private)
        values = [M.to_units(n, m.values.get(n, 0.0)) if req.metrics >> i & 1 else 0
                  for i, n in enumerate(M.METRICS)]
        verdict = M.PASS if m.verdict == "pass" else M.FAIL
        digest = self.market.home.store.put(m.report_bytes())
        c = M.commitment(req.round, values, verdict, to_bytes32(digest), pdigest, salt,
                         self.market.me)
        f = Finding(req.round, values, verdict, digest, "0x" + salt.hex(), "0x" + c.hex(),
                    "0x" + pdigest.hex())
        self.state.save_finding(f)
        return f

    # -- by hand (``mltrail oracle commit|reveal``) -----------------------------------------

    def commit_round(self, round_id: int) -> tuple[Finding, TxResult]:
        """Audit round ``round_id``'s service now (or reuse the stored finding) and commit."""
        m = self.market
        req = self.state.request(round_id) or next(
            (r for r in m.requests(m.network.deploy_block, m.backend.head())
             if r.round == round_id), None)
        if req is None:
            raise InputError(f"no request for round {round_id}")
        self.state.save_request(req)
        f = self.state.finding(round_id) or self.prepare(req)
        return f, m.commit(round_id, bytes.fromhex(f.commitment[2:]))

    def reveal_round(self, round_id: int, salt: str | None = None) -> TxResult:
        """Reveal the stored finding of ``round_id`` (with ``salt``, hex, if given)."""
        f = self.state.finding(round_id)
        if f is None:
            raise InputError(f"no stored findings for round {round_id}")
        try:
            raw = bytes.fromhex((salt or f.salt).removeprefix("0x"))
        except ValueError as exc:
            raise InputError("--salt must be hex") from exc
        if len(raw) != 32:
            raise InputError("--salt must be 32 bytes of hex")
        return self.market.reveal(round_id, f.values, f.verdict, to_bytes32(f.report_digest),
                                  bytes.fromhex(f.probe_digest[2:]), raw)

    def _try(self, what: str, fn: Callable[..., Any], *args: Any, quiet: bool = False) -> None:
        try:
            fn(*args)
        except RefusedError as exc:
            if not quiet:
                self.log(f"{what} refused: {exc.message}")

    def _log_round(self, rid: int, info: M.RoundInfo) -> None:
        me = self.market.me
        try:
            res = self.market.result(rid)
        except MltrailError as exc:
            self.log(f"round {rid}: {info.status} ({exc.message})")
            return
        mine = "paid " + str(res.paid[me]) if me in res.paid else (
            "slashed " + str(res.slashed[me]["amount"]) + " (" + str(res.slashed[me]["reason"])
            + ")" if me in res.slashed else "not in the round")
        medians = " ".join(f"{k}={v:g}" for k, v in res.medians.items())
        self.log(f"round {rid} service {info.service[:10]} {info.status} "
                 f"verdict={info.verdict or '-'} reveals={info.revealed}/{info.committed} "
                 f"{medians} | me: {mine}")


def service_claims(market: M.Market, service_id: str) -> tuple[LoadedClaims | None, str]:
    """The service's signed claims from the ledger (never from a requester), or None and
    why they cannot be used (unregistered claims, a broken signature...)."""
    from mltrail.audit.claims import load_claims
    from mltrail.ledger.client import Ledger

    try:
        with Ledger.open(market.home, identity=market.identity) as ledger:
            return load_claims(ledger, service_id), ""
    except LedgerError:
        raise  # the node is away: retried by the loop, not a verdict
    except MltrailError as exc:
        return None, f"the service's ledger claims are unusable: {exc.message}"


def check_probes(market: M.Market, res: M.RoundResult) -> dict[str, bool]:
    """For each oracle that revealed in a round: whether the private probe set redrawn
    from its revealed salt and the round's seed has the digest it committed to."""
    from mltrail.oracle import probes as OP

    req = next((r for r in market.requests(market.network.deploy_block, market.backend.head())
                if r.round == res.round.round), None)
    if req is None:
        raise InputError(f"no request event for round {res.round.round}")
    return {rv["oracle"]: OP.check(bytes.fromhex(rv["salt"][2:]), req.seed,
                                   bytes.fromhex(rv["probe_digest"][2:]))
            for rv in res.reveals}


def oracle_report(market: M.Market, who: str | None = None) -> dict[str, Any]:
    """An oracle's status (stake, earnings...) with how many rounds it committed to,
    revealed in, was paid for and was slashed in, counted from the market's events."""
    st = market.oracle_status(who)
    counts = {"committed": 0, "revealed": 0, "paid": 0, "slashed": 0}
    names = {"Committed": "committed", "Revealed": "revealed", "Paid": "paid",
             "Slashed": "slashed"}
    addr = str(st["address"]).lower()
    for name, args, _b, _tx in market.events(market.network.deploy_block, market.backend.head()):
        if name in names and str(args.get("oracle", "")).lower() == addr:
            counts[names[name]] += 1
    st["rounds"] = counts
    return st
