"""Dishonest oracles, written as a cheater would, to attack the AuditMarket.

Each is a :class:`~mltrail.oracle.daemon.Daemon` whose behaviour in a round comes from a
schedule file (JSON ``{"<round>": "<behaviour>"}``, re-read every round) so one running
process can be honest in some rounds and cheat in others:

- ``honest``: audits like everyone else;
- ``lie``: skips the audit and reports a service it wants punished (low agreement and
  accuracy, verdict fail), committing and revealing correctly;
- ``collude``: the same fixed lie as every other colluder (they agree among themselves);
- ``copy:<address>``: lazy: does no audit, waits for ``address`` to commit and commits the
  same hash; once the victim reveals (values and salt are public then) it reveals them;
- ``silent``: commits (a real audit) but never reveals;
- ``hold``: audits but does not commit until the schedule says otherwise.

Run: ``python -m mltrail.testing.oracles --home H --as NAME --schedule FILE [...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from mltrail.audit.probes import ProbeSet
from mltrail.config import Home
from mltrail.oracle import market as M
from mltrail.oracle.daemon import Daemon, Finding
from mltrail.oracle.metrics import METRIC_NAMES, AuditOptions, Metrics

LIE = {"agreement": 0.31, "accuracy": 0.29, "robustness": 0.0, "p99_latency": 900.0,
       "availability": 0.5}


class ScheduledOracle(Daemon):
    def __init__(self, market: M.Market, schedule: Path, opts: AuditOptions | None = None,
                 **kw: Any) -> None:
        super().__init__(market, opts, **kw)
        self.schedule = schedule
        self._tried: set[int] = set()

    def behaviour(self, rid: int) -> str:
        try:
            doc = json.loads(self.schedule.read_text())
        except (OSError, ValueError):
            return "honest"
        return str(doc.get(str(rid), "honest"))

    def audit(self, req: M.Request, private: ProbeSet) -> Metrics:
        b = self.behaviour(req.round)
        if b in ("lie", "collude"):
            values = dict(LIE)
            if b == "lie":  # a lone liar varies its story a little
                values["agreement"] += 0.05
            return Metrics(values, "fail", {"lie": True})
        if b.startswith("copy:"):
            return Metrics({m: 0.0 for m in METRIC_NAMES}, "pass", {"lazy": True})
        return super().audit(req, private)

    def _victim_event(self, req: M.Request, kind: str, victim: str) -> dict[str, Any] | None:
        rid = req.round
        head = self.market.backend.head()
        for name, args, _b, _tx in self.market.events(req.block, head):
            if name == kind and args.get("round") == rid and \
                    to_checksum_address(args["oracle"]) == victim:
                return args
        return None

    def commitment_for(self, req: M.Request, f: Finding) -> bytes | None:
        b = self.behaviour(req.round)
        if b == "hold":
            return None
        if b.startswith("copy:"):
            ev = self._victim_event(req, "Committed", to_checksum_address(b[5:]))
            return bytes(ev["commitment"]) if ev else None
        return super().commitment_for(req, f)

    def reveal_args(self, req: M.Request, f: Finding
                    ) -> tuple[list[int], int, bytes, bytes, bytes] | None:
        b = self.behaviour(req.round)
        if b == "silent":
            return None
        if b.startswith("copy:"):
            victim = to_checksum_address(b[5:])
            ev = self._victim_event(req, "Revealed", victim)
            if ev is None or req.round in self._tried:
                return None
            self._tried.add(req.round)
            self.log(f"round {req.round}: copying {victim[:10]}'s reveal")
            return ([int(v) for v in ev["values"]], int(ev["verdict"]),
                    bytes(ev["report_digest"]), bytes(ev["probe_digest"]), bytes(ev["salt"]))
        return super().reveal_args(req, f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mltrail.testing.oracles")
    ap.add_argument("--home", required=True)
    ap.add_argument("--as", dest="identity", required=True)
    ap.add_argument("--schedule", required=True, type=Path)
    ap.add_argument("--reference")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--poll", type=float, default=0.3)
    ap.add_argument("--tick", type=float, default=1.0)
    a = ap.parse_args(argv)
    market = M.Market.open(Home(a.home), identity=a.identity)
    d = ScheduledOracle(market, a.schedule, AuditOptions(reference_url=a.reference,
                                                         queries=a.queries),
                        poll_s=a.poll, tick_s=a.tick,
                        log=lambda s: print(s, flush=True))
    d.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
