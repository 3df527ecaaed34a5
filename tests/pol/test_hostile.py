"""Hostile bundles: confined paths, links never followed, bounds before allocation, and a
fixed-budget fuzz of the manifest and the tar reader. Only exit 1 or 2, never 3."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.errors import InputError, MltrailError
from mltrail.pol import bundle as bundle_mod
from mltrail.pol.bundle import pack, unpack
from mltrail.pol.reftask import record_reference
from mltrail.pol.verifier import verify_bundle
from mltrail.testing import pol_hostile as hostile

TINY = {"arch": {"type": "mlp", "hidden": [8]}, "optimizer": {"name": "sgd", "lr": 0.1,
                                                             "momentum": 0.9},
        "k": 20, "epochs": 1, "batch_size": 64, "seed": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "tiny"
    record_reference(out, *digits, **TINY)  # pol train's loop spec
    return out


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "outside.safetensors"
    p.write_bytes(b"not yours")
    return p


def _rejected(rep, text: str) -> None:
    assert not rep.accepted and text in rep.reasons[0], rep.reasons
    assert [c.ok for c in rep.checks].count(False) == 1 and not rep.checks[-1].ok  # stopped


def test_paths_stay_inside_and_links_are_not_followed(tmp_path: Path, tiny: Path, digits,
                                                       secret: Path) -> None:
    hostile.outside_path(tmp_path / "o", tiny, secret)
    _rejected(verify_bundle(tmp_path / "o", digits, r=0), "outside the bundle")
    hostile.symlinked_checkpoint(tmp_path / "s", tiny, secret)
    _rejected(verify_bundle(tmp_path / "s", digits, r=0), "symbolic link")
    with pytest.raises(InputError, match="symbolic link"):
        pack(tmp_path / "s")


def test_bounds_come_before_allocation_and_loops(tmp_path: Path, tiny: Path, digits) -> None:
    hostile.huge_epochs(tmp_path / "e", tiny)
    _rejected(verify_bundle(tmp_path / "e", digits, r=0), "steps (k=20) exceed")
    hostile.huge_tensor(tmp_path / "a", tiny)
    _rejected(verify_bundle(tmp_path / "a", digits, r=0), "does not fit")
    hostile.missing_tensor(tmp_path / "m", tiny)
    _rejected(verify_bundle(tmp_path / "m", digits, r=0), "missing")


def test_hostile_tars_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="refusing bundle member"):
        unpack(hostile.sparse_tar(), tmp_path / "sparse")
    with pytest.raises(InputError):
        unpack(hostile.oversized_member_tar(), tmp_path / "big")
    monkeypatch.setattr(bundle_mod, "MAX_TAR_MEMBERS", 10)
    with pytest.raises(InputError, match="more than 10 members"):
        unpack(hostile.many_members_tar(11), tmp_path / "many")
    assert not any((tmp_path / "big").rglob("*.safetensors"))


def test_cli_exit_codes_for_hostile_bundles(tmp_path: Path, tiny: Path, secret: Path,
                                            cli) -> None:
    hostile.outside_path(tmp_path / "o", tiny, secret)
    r = cli("pol", "verify", str(tmp_path / "o"), "--data", "digits", cwd=tmp_path)
    assert r.code == 1 and "outside the bundle" in r.err and "Traceback" not in r.err
    (tmp_path / "sparse.tar").write_bytes(hostile.sparse_tar())
    r = cli("pol", "unpack", str(tmp_path / "sparse.tar"), str(tmp_path / "u"), cwd=tmp_path)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    hostile.symlinked_checkpoint(tmp_path / "s", tiny, secret)
    r = cli("pol", "pack", str(tmp_path / "s"), str(tmp_path / "s.tar"), cwd=tmp_path)
    assert r.code == 2 and not (tmp_path / "s.tar").exists()


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                     | st.floats(allow_nan=True) | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                          max_size=3),
                     max_leaves=6)


def _paths(doc: object, pre: tuple = ()) -> list[tuple]:
    out = [pre]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*pre, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):
            out += _paths(v, (*pre, i))
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_manifest(tmp_path_factory: pytest.TempPathFactory, tiny: Path, digits,
                       data: st.DataObject) -> None:
    """Any edit of any manifest field gives a report or a one-line input error."""
    doc = json.loads((tiny / "manifest.json").read_text())
    paths = _paths(doc)
    where = data.draw(st.sampled_from(paths[1:]))
    value = data.draw(_json)
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        parent.pop(where[-1], None)
    else:
        parent[where[-1]] = value
    folder = tmp_path_factory.mktemp("fuzz") / "b"
    shutil.copytree(tiny, folder)
    (folder / "manifest.json").write_text(json.dumps(doc))
    try:
        rep = verify_bundle(folder, digits, r=0, seed=0)
    except MltrailError as exc:
        assert "\n" not in exc.message
    else:
        assert rep.verdict in ("accepted", "rejected")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_tar_reader(tmp_path_factory: pytest.TempPathFactory, tiny: Path,
                         data: st.DataObject) -> None:
    """Flipped bytes, truncation or garbage: unpack succeeds or raises InputError."""
    raw = bytearray(pack(tiny))
    how = data.draw(st.sampled_from(["flip", "truncate", "garbage"]))
    if how == "flip":
        for i in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[i] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=2048)))
    with contextlib.suppress(InputError):  # anything else fails the test
        unpack(bytes(raw), tmp_path_factory.mktemp("tar") / "u")
