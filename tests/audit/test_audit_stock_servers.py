"""Audits of a stock inference server, with no adapter written for it: a real MLServer
1.7.1 process (scikit-learn runtime, from ``.venv-mlserver``, made by ``make mlserver``)
serving the scikit-learn pipelines of ``mltrail audit make-model --kind sklearn``
(trained here on the digits), audited against its scikit-learn (skops) and ONNX
reference cards. One server serves three models: ``digits`` (stock
model settings: the metadata declares no tensors), ``declared`` (the same model, its
input and ``predict_proba`` output declared) and ``swapped`` (a different model under
the claimed model's card: a substitute)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from mltrail.audit import models as M
from mltrail.audit.adapter import parse_adapter
from mltrail.audit.protocols import OIPClient
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.audit.workflows import make_sklearn_demo
from testkit import free_port

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"

pytestmark = [
    pytest.mark.xdist_group("mlserver"),
    pytest.mark.skipif(not MLSERVER.exists(), reason=f"MLServer 1.7.1 is not installed at "
                       f"{MLSERVER.parent.parent} (make mlserver)"),
]


@dataclass
class Stock:
    url: str
    honest: object      # the fitted pipeline MLServer serves as digits / declared
    skops: Path         # its reference cards
    onnx: Path


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mlserver exited: {log.read_text()[-2000:]}")
            try:
                if all(http.get(f"{url}/v2/models/{m}/ready").status_code == 200
                       for m in ("digits", "declared", "swapped")):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    raise RuntimeError(f"mlserver did not get ready: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stock]:
    import shutil

    import joblib

    root = tmp_path_factory.mktemp("mlserver")
    made = make_sklearn_demo(root)   # `mltrail audit make-model --kind sklearn`
    models = Path(made["mlserver"])
    shutil.copytree(models / "digits", models / "declared")
    (models / "declared" / "model-settings.json").write_text(json.dumps({
        "name": "declared", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 10]}]}))
    port = free_port()
    (models / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_port": free_port(), "metrics_endpoint": None, "parallel_workers": 0}))
    honest = joblib.load(models / "digits" / "model.joblib")  # written just above, by us
    log = root / "mlserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MLSERVER), "start", str(models)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        yield Stock(url, honest, Path(made["model"]), Path(made["onnx_model"]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_stock_metadata_is_read_and_probabilities_asked_for_by_name(stock: Stock) -> None:
    x = M.digits()[2][:5]
    with OIPClient(f"{stock.url}/v2/models/digits") as c:
        info = c.info()            # MLServer's stock metadata: no tensors declared
        assert (info.classes, info.input_shape) == (None, None)
        c.adopt([64], 10)          # what the claims say
        r = c.classify(x)
        assert c.ask               # the server answered labels only: outputs are named
        want = stock.honest.predict_proba(x.reshape(5, -1))  # type: ignore[attr-defined]
        assert np.abs(r.probs - want).max() < 1e-12
    with OIPClient(f"{stock.url}/v2/models/declared") as c:
        info = c.info()
        assert (info.classes, info.input_shape, c.probs_name) == (10, [64], "predict_proba")


def test_honest_stock_server_passes_against_a_skops_reference(stock: Stock, cli,
                                                               tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.json"
    r = cli("audit", "run", "--target", f"{stock.url}/v2/models/digits", "--model",
            str(stock.skops), "--max-queries", "96", "--seed", "7", "--latency", "--rate",
            "20", "--duration", "1", "--out", str(out), "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    # the load's requests carry the claimed [N, 64] shape the stock metadata leaves out
    assert json.loads(out.read_text())["latency"]["error_rate"] == 0.0
    assert rep["verdict"] == "pass" and rep["metrics"]["agreement"] == 1.0
    assert any("reference model's card" in f["message"] for f in rep["findings"])


def test_declared_outputs_and_an_onnx_reference(stock: Stock) -> None:
    rep = run_audit(AuditConfig(target=f"{stock.url}/v2/models/declared",
                                model_path=str(stock.onnx), max_queries=96, seed=8))
    assert rep.verdict == "pass", rep.findings
    assert rep.claims_check.differences == []


def test_a_substituting_stock_server_fails(stock: Stock) -> None:
    rep = run_audit(AuditConfig(target=f"{stock.url}/v2/models/swapped",
                                model_path=str(stock.skops), max_queries=96, seed=9,
                                stop_on_alarm=True))
    assert rep.verdict == "fail", rep.findings
    assert rep.failed("identity") or rep.failed("distribution")


def test_an_adapter_reads_the_flat_v2_tensor(stock: Stock) -> None:
    spec = parse_adapter(json.dumps({
        "v": 1, "name": "mlserver by hand", "input_shape": [64], "classes": 10,
        "request": {"path": "/v2/models/digits/infer", "layout": "row-major", "body": {
            "inputs": [{"name": "x", "shape": ["$n", 64], "datatype": "FP32",
                        "data": "$inputs"}], "outputs": [{"name": "predict_proba"}]}},
        "response": {"outputs": "/outputs/0/data", "layout": "row-major"}}))
    ok = run_audit(AuditConfig(target=stock.url, adapter=spec, model_path=str(stock.skops),
                               max_queries=64, seed=10))
    assert ok.verdict == "pass", ok.findings
    swapped = spec.model_copy(update={"request": spec.request.model_copy(
        update={"path": "/v2/models/swapped/infer"})})
    bad = run_audit(AuditConfig(target=stock.url, adapter=swapped,
                                model_path=str(stock.skops), max_queries=64, seed=10,
                                stop_on_alarm=True))
    assert bad.verdict == "fail", bad.findings
