"""The Open Inference Protocol (KServe / Triton v2 REST) on serve-model, and audits of
services that speak it: honest passes, substitutes fail, receipts travel in the
response parameters, no identity test means inconclusive, cheaters on the protocol."""

from __future__ import annotations

import json
import secrets

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.audit.claims import ServiceClaims
from mltrail.audit.models import digits, load_model, predict
from mltrail.audit.oip import receipt_of
from mltrail.audit.protocols import OIPClient, open_target
from mltrail.audit.receipts import ReceiptVerifier, load_public_key
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.testing.audit_base import Cheat
from mltrail.testing.audit_oip import OipSniffer, Reorder, RowRotate, SplitBrain

NAME = "digits-mlp"


def _v2(url: str) -> str:
    return f"{url}/v2/models/{NAME}"


def test_metadata_health_and_infer_follow_the_spec(supplier) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=supplier.url) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").status_code == 200
        assert http.get("/v2").json()["name"] == "mltrail"
        assert http.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
        meta = http.get(f"/v2/models/{NAME}").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == \
            [("probs", "FP64", [-1, 10]), ("label", "INT64", [-1])]
        x = digits()[2][:3]
        for data, shape in ((x.ravel().tolist(), [3, 1, 8, 8]),        # flat, row-major
                            (x.reshape(3, 64).tolist(), [3, 64])):      # nested
            r = http.post(f"/v2/models/{NAME}/infer", json={
                "id": "req-7", "parameters": {"tenant": "a"}, "inputs": [
                    {"name": "input", "shape": shape, "datatype": "FP32", "data": data}]})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == "req-7" and body["model_name"] == NAME
            probs = {o["name"]: o for o in body["outputs"]}["probs"]
            assert probs["shape"] == [3, 10] and probs["datatype"] == "FP64"
            got = np.array(probs["data"]).reshape(3, 10)
            assert np.allclose(got, predict(supplier.model, x))
            receipt = receipt_of(body["parameters"])
            outputs = [{"label": int(g.argmax()), "probs": g.tolist()} for g in got]
            ver = ReceiptVerifier(load_public_key(supplier.pubkey), supplier.digest)
            assert ver.check(receipt, batch=x, outputs=outputs, nonce="req-7").ok
        only = http.post(f"/v2/models/{NAME}/infer", json={
            "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                        "data": [0.0] * 64}], "outputs": [{"name": "label"}]}).json()
        assert [o["name"] for o in only["outputs"]] == ["label"] and "id" not in only


@pytest.mark.parametrize("body,status,text", [
    ({"inputs": []}, 400, "exactly one"),
    ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]},
     400, "unknown input"),
    ({"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": [0] * 63}]},
     400, "shape must be"),
    ({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": [0] * 64}]},
     400, "needs 128"),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "BYTES", "data": [0] * 64}]},
     400, "datatype"),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                  "data": [True] * 64}]}, 400, "numbers"),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}],
      "parameters": {"a": {"b": 1}}}, 400, "parameters.a"),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}],
      "outputs": [{"name": "logits"}]}, 400, "requested output"),
    ({"inputs": [{"name": "input", "shape": [300, 64], "datatype": "FP32",
                  "data": [0] * 64}]}, 413, "exceeds"),
])
def test_bad_infer_requests_get_4xx_with_an_error(supplier, body, status, text) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=supplier.url) as http:
        r = http.post(f"/v2/models/{NAME}/infer", json=body)
        assert r.status_code == status and text in r.json()["error"], r.text
        assert http.post("/v2/models/nope/infer", json=body).status_code == 404
        ok = http.post(f"/v2/models/{NAME}/infer", json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]})
        assert ok.status_code == 200  # the same keep-alive connection keeps serving


def test_the_protocol_comes_from_the_url(supplier) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(open_target(_v2(supplier.url)), OIPClient)
    assert open_target(_v2(supplier.url) + "/versions/3").protocol == "oip"
    assert open_target(supplier.url).protocol == "mltrail"
    with OIPClient(_v2(supplier.url)) as c:
        info = c.info()
        assert (info.protocol, info.classes, info.input_shape) == ("oip", 10, [1, 8, 8])
        r = c.classify(digits()[2][:4])
        assert len(r.nonce) == 32 and r.model_digest == supplier.digest
        assert isinstance(r.receipt, dict)


def _claims(seeded_path, url: str, key: str) -> ServiceClaims:  # type: ignore[no-untyped-def]
    _, card, digest = load_model(seeded_path)
    return ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)


def test_honest_oip_service_passes_with_receipts_checked(supplier, seeded_path) -> None:  # type: ignore[no-untyped-def]
    rep = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(supplier.url), supplier.pubkey),
                                model_path=str(seeded_path), max_queries=96, seed=3))
    assert rep.verdict == "pass", rep.findings
    assert rep.claimed["protocol"] == "oip" and rep.receipts.invalid == 0
    assert rep.receipts.valid >= 3 and rep.receipts.missing == 0


@pytest.mark.parametrize("cheat", [SplitBrain(honest_on="mltrail"), OipSniffer(), RowRotate()],
                         ids=["splitbrain", "sniffer", "rowrotate"])
def test_cheaters_on_the_v2_route_are_caught(seeded_path, start_cheat, cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(cheat)
    rep = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(url), key), stop_on_alarm=True,
                                model_path=str(seeded_path), max_queries=96, seed=4))
    assert rep.verdict == "fail", rep.findings
    assert rep.failed("distribution") or rep.failed("identity")
    if isinstance(cheat, OipSniffer):
        assert not any(e["audit_like"] for e in cheat.log)  # it never recognised a probe


def test_honest_variations_of_the_protocol_pass(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Reorder())
    rep = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(url), key),
                                model_path=str(seeded_path), max_queries=64, seed=5))
    assert rep.verdict == "pass", rep.findings


def test_splitbrain_honest_on_v2_is_caught_where_customers_are(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(SplitBrain(honest_on="oip"))
    ok = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(url), key),
                               model_path=str(seeded_path), max_queries=64, seed=6))
    assert ok.verdict == "pass"  # the v2 door is honest ...
    bad = run_audit(AuditConfig(claims=_claims(seeded_path, url, key), stop_on_alarm=True,
                                model_path=str(seeded_path), max_queries=64, seed=6))
    assert bad.verdict == "fail"  # ... the claimed /v1 endpoint is not


def test_no_identity_test_is_inconclusive_and_exits_1(supplier, cli) -> None:  # type: ignore[no-untyped-def]
    from test_audit_cli import _mltrail

    code, out, err = _mltrail(cli, "audit", "run", "--target", _v2(supplier.url),
                              "--max-queries", "40", "--json")
    assert code == 1, err
    res = json.loads(out)
    assert res["verdict"] == "inconclusive"
    assert "inconclusive" in err and err.count("\n") == 1


def test_cli_audits_a_v2_target_against_a_model_file(supplier, seeded_path, cli) -> None:  # type: ignore[no-untyped-def]
    from test_audit_cli import _mltrail

    code, out, err = _mltrail(cli, "audit", "run", "--target", _v2(supplier.url),
                              "--model", str(seeded_path), "--pubkey", supplier.pubkey,
                              "--max-queries", "80", "--seed", str(secrets.randbits(16)),
                              "--json")
    assert code == 0, err
    assert json.loads(out)["receipts"]["invalid"] == 0


def test_a_provider_that_reorders_ids_is_malformed(start_cheat, seeded_path) -> None:  # type: ignore[no-untyped-def]
    class EchoNot(Cheat):
        def shape_oip(self, body):  # type: ignore[no-untyped-def]
            return {**body, "id": "other"}

    url, key = start_cheat(EchoNot())
    rep = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(url), key),
                                model_path=str(seeded_path), max_queries=16, seed=1))
    assert rep.verdict == "fail" and rep.failed("malformed")


_tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "probs", "label", "x"]),
     "shape": st.lists(st.integers(-2, 70) | st.booleans(), max_size=3),
     "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", 5]),
     "data": st.lists(st.floats(allow_nan=True) | st.integers() | st.booleans()
                      | st.lists(st.floats(-1, 1), max_size=3), max_size=70)})
_request = st.fixed_dictionaries(
    {}, optional={"id": st.text(max_size=5) | st.integers(),
                  "inputs": st.lists(_tensor, max_size=2),
                  "outputs": st.lists(st.dictionaries(st.sampled_from(["name", "x"]),
                                                      st.sampled_from(["probs", "y", 1])),
                                      max_size=2),
                  "parameters": st.dictionaries(st.text(max_size=3),
                                                st.integers() | st.text(max_size=3)
                                                | st.lists(st.integers(), max_size=1)),
                  "extra": st.none()})


@settings(max_examples=80, deadline=None, database=None)
@given(body=_request)
def test_parse_infer_answers_any_request_with_a_batch_or_a_4xx(body) -> None:  # type: ignore[no-untyped-def]
    from mltrail.audit.oip import parse_infer
    from mltrail.audit.service import ApiError

    try:
        batch, _, _ = parse_infer(body, (64,), 4)
    except ApiError as exc:
        assert 400 <= exc.status < 500
    else:
        assert batch.dtype == np.float32 and batch.shape[1:] == (64,) and np.isfinite(batch).all()


@settings(max_examples=80, deadline=None, database=None)
@given(outputs=st.lists(_tensor, max_size=3), rid=st.sampled_from(["n", "m"]),
       params=st.none() | st.dictionaries(st.sampled_from(["mltrail_receipt"]),
                                          st.text(max_size=5)))
def test_the_v2_client_reads_any_answer_or_calls_it_malformed(outputs, rid, params) -> None:  # type: ignore[no-untyped-def]
    c = OIPClient("http://127.0.0.1:9/v2/models/m")
    c.probs_name, c.label_name = "probs", "label"
    try:
        outs, _, _ = c.parse({"id": rid, "outputs": outputs, "parameters": params}, 2, "n")
    except (ValueError, KeyError, TypeError, IndexError):
        return  # counted as a malformed answer by Target.classify
    finally:
        c.close()
    from mltrail.audit.client import check_outputs

    check_outputs(outs, 2, None)  # never raises: it names what is wrong, if anything


def test_a_v2_reference_service(supplier, start_cheat, seeded_path) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(RowRotate())
    rep = run_audit(AuditConfig(claims=_claims(seeded_path, _v2(url), key),
                                reference_url=_v2(supplier.url), max_queries=64, seed=8))
    assert rep.reference.kind == "service" and rep.verdict == "fail"
    assert any(f.check == "reference" for f in rep.findings)


def _stock_client() -> OIPClient:
    """A v2 client whose server declared no tensors (as stock MLServer and KServe do)."""
    c = OIPClient("http://127.0.0.1:9/v2/models/m")
    c.probs_name = "predict_proba"
    c.adopt([64], 3)
    return c


def test_an_undeclared_server_is_read_from_its_one_probability_tensor() -> None:
    c = _stock_client()
    path, body = c.request_for(np.zeros((2, 1, 8, 8), np.float32), "n1")
    assert body["inputs"][0]["shape"] == [2, 64] and "outputs" not in body  # as clients do
    answer = {"id": "n1", "outputs": [   # KServe-style: output-0, flat row-major data
        {"name": "output-0", "datatype": "FP64", "shape": [2, 3],
         "data": [0.2, 0.3, 0.5, 0.7, 0.2, 0.1]}]}
    outputs, _, _ = c.parse(answer, 2, "n1")
    assert [o["label"] for o in outputs] == [2, 0] and outputs[1]["probs"] == [0.7, 0.2, 0.1]
    labels_only = {"id": "n1", "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [2, 1], "data": [2, 0]}]}
    with pytest.raises(ValueError, match=r"predict INT64 \[2, 1\].*declares no outputs.*"
                       "model-settings.json"):
        c.parse(labels_only, 2, "n1")
    c.ask = True   # after the server showed it needs it (classify), outputs are named
    assert c.request_for(np.zeros((1, 64), np.float32), "n2")[1]["outputs"] == \
        [{"name": "predict_proba"}]


@pytest.fixture(scope="module")
def sk_pair(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A scikit-learn pipeline with its skops reference card, and a cheap substitute."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mltrail.audit.models import ModelCard
    from mltrail.audit.references import write_sklearn_reference

    x, y, _, _ = digits()
    flat = x.reshape(len(x), -1)
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(flat, y)
    cheap = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300)
                          ).fit(flat[:300], y[:300])
    ref = tmp_path_factory.mktemp("sk") / "digits.skops"
    write_sklearn_reference(good, ModelCard(name="digits", format="skops", classes=10,
                                            input_shape=[64]), ref)
    return good, cheap, ref


@pytest.mark.parametrize("mode", ["honest", "labelswap"])
def test_substituting_only_the_default_labels_of_a_stock_server_is_caught(sk_pair, mode) -> None:  # type: ignore[no-untyped-def]
    from mltrail.testing.stock_v2 import serve

    good, cheap, ref = sk_pair
    srv = serve("digits", good.predict_proba, cheap.predict_proba, mode)
    try:
        # ~30 requests: a plain cross-check misses all of them with p < 0.1 % (about one
        # request in four is cross-checked; bench/stock_servers.py measures the rates)
        rep = run_audit(AuditConfig(target=f"{srv.url}/v2/models/digits", model_path=str(ref),
                                    max_queries=480, seed=11))
    finally:
        srv.stop()
    if mode == "honest":
        assert rep.verdict == "pass", rep.findings
    else:
        assert rep.verdict == "fail" and rep.failed("malformed"), rep.findings
        assert any("answers plain requests differently" in f.message for f in rep.findings)
