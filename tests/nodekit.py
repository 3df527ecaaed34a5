"""A small home for the node's tests (API, exchange, browser): three artefacts and a report."""

from __future__ import annotations

import json
from pathlib import Path

from testkit import PASSWORD


def seed(home, tmp: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """A dataset, a model derived from it and a service; names in metadata."""
    from mltrail.ledger.client import Ledger
    from mltrail.provenance.digest import digest_file

    files = {}
    for name, text in (("digits.csv", "1,2,3\n"), ("cnn.bin", "weights"), ("api.json", "{}")):
        files[name] = tmp / name
        files[name].write_text(text)
    ids = {}
    with Ledger.open(home, identity="steward", password=PASSWORD) as st:
        ids["dataset"] = st.register("dataset", digest_file(files["digits.csv"]), (),
                                     {"name": "digits"}).artefact_id
        st.transition(ids["dataset"], "validated")
    with Ledger.open(home, identity="dev", password=PASSWORD) as dev:
        ids["model"] = dev.register("model", digest_file(files["cnn.bin"]), [ids["dataset"]],
                                    {"name": "digits-cnn"}).artefact_id
        dev.transition(ids["model"], "trained")
    with Ledger.open(home, identity="operator", password=PASSWORD) as op:
        ids["service"] = op.register("service", digest_file(files["api.json"]), [ids["model"]],
                                     {"name": "digits-api"}).artefact_id
    report = {"format": "mltrail-pol-report/1", "verdict": "accepted", "reasons": [],
              "bundle": "b", "threshold": 0.1, "q": 1, "r": 1, "verifier_seed": 3,
              "checks": [{"name": "replay", "ok": True, "detail": "ok"}],
              "segments": [{"index": 0, "epoch": 0, "start_step": 0, "end_step": 10,
                            "chosen": "top-q", "update_norm": 1.5, "error": 0.01, "ok": True}]}
    ev = home.store.put(json.dumps(report).encode())
    with Ledger.open(home, identity="verifier", password=PASSWORD) as v:
        v.transition(ids["model"], "verified", ev)
    ids["report"] = ev
    return ids, files
