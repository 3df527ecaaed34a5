"""Hostile files never cause an internal error: proof files, DSSE envelopes, dvc.lock."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.errors import MltrailError
from mltrail.provenance import attest, batch

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=12)
HEX = st.text("0123456789abcdef", min_size=0, max_size=66)
PROOFISH = st.fixed_dictionaries({
    "artefact_id": st.text(max_size=70), "root": HEX, "count": st.integers(-5, 10**6),
    "index": st.integers(-5, 10**6), "record": JSON, "proof": st.lists(HEX, max_size=5)})
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(doc=st.one_of(PROOFISH, JSON, st.binary(max_size=200)))
def test_proof_files(tmp_path, doc):
    p = tmp_path / "p.json"
    p.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    try:
        proof = batch.load_proof(p)
    except MltrailError:
        return
    assert batch.check_offline(proof) in (True, False)


ENVISH = st.fixed_dictionaries({
    "payloadType": st.sampled_from([attest.PAYLOAD_TYPE, "x"]),
    "payload": st.one_of(st.text(max_size=40), st.binary(max_size=60).map(
        lambda b: __import__("base64").b64encode(b).decode())),
    "signatures": st.lists(st.fixed_dictionaries(
        {"keyid": st.text(max_size=42), "sig": st.text(max_size=100)}), max_size=2)})


@FUZZ
@given(st.one_of(ENVISH, JSON, st.binary(max_size=200)))
def test_envelopes(doc):
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    try:
        env = attest.parse_envelope(data)
        attest.statement_of(env)
        attest.signers(env)
    except MltrailError:
        pass


@FUZZ
@given(doc=st.one_of(JSON, st.text(max_size=200)))
def test_dvc_lock(tmp_path, doc, home, open_as):
    from mltrail.provenance.importers import import_dvc

    lock = tmp_path / "dvc.lock"
    lock.write_text(doc if isinstance(doc, str) else json.dumps(
        {"schema": "2.0", "stages": doc}))
    with contextlib.suppress(MltrailError):
        import_dvc(open_as("admin"), lock)
