"""Adapter files: the auditor speaks to JSON APIs in other frameworks' styles (servers
written with the standard library's http.server, on 127.0.0.1), honest and substituting;
bad files exit 2 with one line naming the field; the parser under Hypothesis."""

from __future__ import annotations

import contextlib
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_audit_cli import _mltrail

from mltrail.audit.adapter import AdapterSpec, fill, parse_adapter, read_outputs
from mltrail.audit.models import predict
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.errors import InputError
from mltrail.testing.audit_foreign import ADAPTERS, serve


@pytest.fixture()
def adapter_file(tmp_path):  # type: ignore[no-untyped-def]
    def write(style: str, **changes) -> str:  # type: ignore[no-untyped-def]
        p = tmp_path / f"{style}.yaml"
        p.write_text(yaml.safe_dump({**ADAPTERS[style], **changes}))
        return str(p)
    return write


def test_tf_serving_style_api_honest_passes_substitute_fails(supplier, cheap, adapter_file,
                                                              cli) -> None:  # type: ignore[no-untyped-def]
    spec = adapter_file("tf")
    with serve("tf", lambda b: predict(supplier.model, b)) as good, \
            serve("tf", lambda b: predict(cheap, b)) as bad:
        code, out, err = _mltrail(cli, "audit", "run", "--target", good.url,
                                  "--adapter", spec, "--model", str(supplier.path),
                                  "--max-queries", "80", "--json")
        assert code == 0, err
        rep = json.loads(out)
        assert rep["verdict"] == "pass" and rep["receipts"]["missing"] > 0  # signs nothing
        code, out, err = _mltrail(cli, "audit", "run", "--target", bad.url,
                                  "--adapter", spec, "--model", str(supplier.path),
                                  "--max-queries", "80", "--stop-on-alarm", "--json")
        assert code == 1 and json.loads(out)["verdict"] == "fail"
        assert err.startswith("error: audit failed")


def test_hugging_face_style_label_score_lists(supplier, cheap) -> None:  # type: ignore[no-untyped-def]
    spec = AdapterSpec.model_validate(ADAPTERS["hf"])
    with serve("hf", lambda b: predict(supplier.model, b)) as good, \
            serve("hf", lambda b: predict(cheap, b)) as bad:
        ok = run_audit(AuditConfig(target=good.url, adapter=spec, model_path=str(supplier.path),
                                   max_queries=64, seed=2))
        assert ok.verdict == "pass", ok.findings
        assert ok.claimed["protocol"] == "adapter" and ok.metrics.agreement == 1.0
        sub = run_audit(AuditConfig(target=bad.url, adapter=spec, model_path=str(supplier.path),
                                    max_queries=64, seed=2, stop_on_alarm=True))
        assert sub.verdict == "fail"


def test_an_adapter_target_without_a_reference_is_inconclusive(supplier) -> None:  # type: ignore[no-untyped-def]
    spec = AdapterSpec.model_validate(ADAPTERS["tf"])
    with serve("tf", lambda b: predict(supplier.model, b)) as good:
        rep = run_audit(AuditConfig(target=good.url, adapter=spec, max_queries=40, seed=1))
    assert rep.verdict == "inconclusive" and not rep.power.sufficient


@pytest.mark.parametrize("change,field", [
    ({"request": {"path": "/p", "body": {"x": 1}}}, "request"),
    ({"request": {"path": "no-slash", "body": {"i": "$inputs"}}}, "request.path"),
    ({"response": {"outputs": "predictions", "probs": ""}}, "response.outputs"),
    ({"response": {"outputs": "/p"}}, "response"),
    ({"classes": 1}, "classes"),
    ({"labels": ["a", "b"]}, "labels"),
    ({"extra": True}, "extra"),
])
def test_bad_adapter_files_exit_2_naming_the_field(supplier, adapter_file, cli,
                                                   change, field) -> None:  # type: ignore[no-untyped-def]
    spec = adapter_file("tf", **change)
    code, _, err = _mltrail(cli, "audit", "run", "--target", supplier.url,
                            "--adapter", spec)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert field in err.split(".yaml: ", 1)[1], err


V2_BY_HAND = {"v": 1, "name": "v2 by hand", "input_shape": [2, 2], "classes": 3,
              "request": {"path": "/v2/models/m/infer", "layout": "row-major", "body": {
                  "id": "$nonce", "inputs": [{"name": "x", "shape": ["$n", 4],
                                              "datatype": "FP32", "data": "$inputs"}],
                  "outputs": [{"name": "predict_proba"}]}},
              "response": {"outputs": "/outputs/0/data", "layout": "row-major"}}


def test_row_major_requests_and_flat_v2_output_tensors() -> None:
    import numpy as np

    spec = parse_adapter(json.dumps(V2_BY_HAND))
    _, body = fill(spec, np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2), "n")
    assert body["id"] == "n" and body["inputs"][0]["shape"] == [2, 4]
    assert body["inputs"][0]["data"] == [float(i) for i in range(8)]
    answer = {"outputs": [{"name": "predict_proba", "shape": [2, 3],
                           "data": [0.1, 0.2, 0.7, 0.6, 0.3, 0.1]}]}
    outputs, _, _ = read_outputs(spec, answer, 2)
    assert outputs == [{"label": 2, "probs": [0.1, 0.2, 0.7]},
                       {"label": 0, "probs": [0.6, 0.3, 0.1]}]
    with pytest.raises(ValueError, match="flat list of 3 x 3"):
        read_outputs(spec, answer, 3)
    for bad in ({"probs": ""}, {"label": "/0"}):
        doc = {**V2_BY_HAND, "response": {**V2_BY_HAND["response"], **bad}}
        with pytest.raises(InputError, match="row-major"):
            parse_adapter(json.dumps(doc))


def test_yaml_aliases_and_non_mappings_are_refused() -> None:
    with pytest.raises(InputError, match="aliases"):
        parse_adapter("a: &x [1]\nb: *x\n")
    with pytest.raises(InputError, match="mapping"):
        parse_adapter("- 1\n")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                     | st.sampled_from(["$inputs", "/predictions", "", "/0", "~1"]),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(
                         st.sampled_from(["v", "name", "request", "response", "path", "body",
                                          "outputs", "probs", "scores", "classes",
                                          "input_shape", "labels", "layout"]), c, max_size=4),
                     max_leaves=12)


@settings(max_examples=60, deadline=None, database=None)
@given(doc=_json, base=st.booleans())
def test_the_parser_answers_every_document_with_a_spec_or_one_input_error(doc, base) -> None:  # type: ignore[no-untyped-def]
    if base and isinstance(doc, dict):
        doc = {**ADAPTERS["tf"], **doc}
    try:
        spec = parse_adapter(json.dumps(doc))
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(spec, AdapterSpec)


@settings(max_examples=40, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_the_parser_survives_any_text(text) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(InputError):
        parse_adapter(text)
