"""The work behind artefacts, for the dashboard's tests: two real MLflow runs imported with
``import_mlflow`` (params ``lr``, metric ``acc``), a real PoL proof published with
``publish_model``, and one content blob this node holds but restricts to chosen readers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from testkit import PASSWORD

RUNS = ({"name": "fit-a", "lr": "0.05", "acc": 0.9, "weights": b"weights of run a" * 8},
        {"name": "fit-b", "lr": "0.1", "acc": 0.8, "weights": b"weights of run b" * 8})
TINY: dict[str, Any] = {"arch": {"type": "mlp", "hidden": [8]},
                        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                        "k": 20, "epochs": 1, "batch_size": 64, "seed": 0}


def mlflow_runs(tmp: Path) -> tuple[str, list[str]]:
    """Two finished runs in a local SQLite MLflow store: (tracking uri, run ids)."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("work", artifact_location=str(tmp / "mlartifacts"))
    ids = []
    for r in RUNS:
        run = client.create_run(exp, run_name=str(r["name"]))
        rid = run.info.run_id
        client.log_param(rid, "lr", r["lr"])
        client.log_param(rid, "epochs", "3")
        client.log_metric(rid, "acc", float(r["acc"]))  # type: ignore[arg-type]
        out = tmp / f"{r['name']}" / "model.pt"
        out.parent.mkdir()
        out.write_bytes(r["weights"])  # type: ignore[arg-type]
        client.log_artifact(rid, str(out))
        client.set_terminated(rid, "FINISHED")
        ids.append(rid)
    return uri, ids


def seed_work(home: Any, tmp: Path, pol: bool = False) -> dict[str, Any]:
    """Import both runs as ``dev``; keep run a's weights in the store, readable by one
    stranger only (as blob readers); optionally record and publish a tiny PoL proof."""
    from eth_account import Account

    from mltrail.ledger.client import Ledger
    from mltrail.provenance import exchange
    from mltrail.provenance.importers import import_mlflow

    uri, run_ids = mlflow_runs(tmp)
    out: dict[str, Any] = {"runs": []}
    with Ledger.open(home, identity="dev", password=PASSWORD) as dev:
        for rid in run_ids:
            res = import_mlflow(dev, rid, uri)
            out["runs"].append(res.outputs[0]["artefact_id"])
        weights = RUNS[0]["weights"]
        out["weights"] = weights
        out["weights_digest"] = home.store.put(weights)
        out["open_digest"] = home.store.put(RUNS[1]["weights"])
        exchange.Readers(home).set(out["weights_digest"], [Account.create().address])
        if pol:
            from mltrail.pol.onchain import publish_model
            from mltrail.pol.reftask import record_reference
            from mltrail.reference import load_digits_tensors, pinned_threads

            d = load_digits_tensors()
            with pinned_threads(1):
                record_reference(tmp / "tiny", d.x_train, d.y_train, **TINY)
            out["pol"] = publish_model(dev, tmp / "tiny", name="tiny-mlp")["model_id"]
    return out
