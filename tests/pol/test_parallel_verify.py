"""Parallel verification: ``pol verify --workers N`` (local processes) and ``--ray``
replay the challenged segments in workers and give the serial run's verdict and report
byte for byte (timing aside), an honest proof and a forged one alike; each segment is
seen as it finishes; bad ``--workers`` and an unreachable cluster exit 2 with one line
and write nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mltrail.errors import InputError
from mltrail.pol.parallel import check_workers, workers
from mltrail.provenance.digest import save_state_dict
from mltrail.reference import pinned_threads
from mltrail.testing import pol_forgeries as forgeries
from mltrail.testing import pol_userloops as loops

TIMING = ("total_seconds", "replay_seconds")  # the only fields that may differ


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("par")
    with pinned_threads(1):
        honest = loops.record_transformer(base / "honest", epochs=2, k=1)
    forged = base / "forged"
    forgeries.tamper_states(forged, honest, "reorder", rechain=True)
    data = base / "tokens.safetensors"
    save_state_dict(loops.loop_data(honest), data)
    return {"honest": honest, "forged": forged, "data": data}


def _untimed(path: Path) -> bytes:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    for key in TIMING:
        doc.pop(key)
    return json.dumps(doc, sort_keys=True).encode()


def test_two_workers_give_the_serial_report(proofs: dict[str, Path], tmp_path: Path,
                                            cli) -> None:
    reports = {}
    for n in ("1", "2"):
        reports[n] = tmp_path / f"{n}.json"
        res = cli("pol", "verify", str(proofs["honest"]), "--data", str(proofs["data"]),
                  "--seed", "3", "--random", "6", "--workers", n, "--report",
                  str(reports[n]), "--json")
        assert res.code == 0, res.err
    one, two = (json.loads(reports[n].read_bytes()) for n in ("1", "2"))
    assert one["verdict"] == "accepted" and len(one["segments"]) >= 6
    assert _untimed(reports["1"]) == _untimed(reports["2"])
    assert {k for k in one if one[k] != two[k]} <= set(TIMING)


@pytest.mark.parametrize("bad", ["0", "-1", "65"])
def test_bad_worker_counts_exit_2_and_write_nothing(proofs: dict[str, Path],
                                                    tmp_path: Path, cli, bad: str) -> None:
    report = tmp_path / "r.json"
    res = cli("pol", "verify", str(proofs["honest"]), "--data", str(proofs["data"]),
              "--workers", bad, "--report", str(report))
    assert res.code == 2 and "--workers must be between 1 and 64" in res.err
    assert len(res.err.strip().splitlines()) == 1 and not report.exists()
    with pytest.raises(InputError):
        check_workers(int(bad))


def test_an_unreachable_cluster_exits_2_before_anything_is_verified(
        proofs: dict[str, Path], tmp_path: Path, cli) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    report = tmp_path / "r.json"
    web = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # a port, not Ray
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        res = cli("pol", "verify", str(proofs["honest"]), "--data", str(proofs["data"]),
                  "--workers", "2", "--ray", f"127.0.0.1:{web.server_port}")
    finally:
        web.shutdown()
    assert res.code == 2 and "not a Ray cluster" in res.err, res.err
    for address in ("127.0.0.1:9", "ray://127.0.0.1:9", "no-port"):
        res = cli("pol", "verify", str(proofs["honest"]), "--data", str(proofs["data"]),
                  "--workers", "2", "--ray", address, "--report", str(report))
        assert res.code == 2, (address, res.err)
        assert f"--ray {address}" in res.err and len(res.err.strip().splitlines()) == 1
        assert not report.exists()


@pytest.mark.xdist_group("ray")
def test_ray_workers_give_the_serial_reports_and_show_each_segment(
        proofs: dict[str, Path]) -> None:
    from mltrail.pol.verifier import verify_bundle

    data = loops.loop_data(proofs["honest"])
    docs: dict[tuple[str, int], dict[str, Any]] = {}
    for n, ray in ((1, None), (2, "local")):
        with pinned_threads(1), workers(n, ray):
            for name in ("honest", "forged"):
                seen: list[int] = []
                planned: list[int] = []  # before any segment ended: a bar's total
                rep = verify_bundle(proofs[name], data, seed=4, r=5,
                                    on_segment=lambda s, seen=seen: seen.append(s.index),
                                    on_plan=lambda k, seen=seen, planned=planned:
                                    planned.append(len(seen) * 1000 + k))
                assert sorted(seen) == sorted(s.index for s in rep.segments)  # as each ended
                assert planned == [len(rep.segments)]
                docs[name, n] = rep.model_dump(exclude=set(TIMING))
    assert docs["honest", 1] == docs["honest", 2] and docs["honest", 1]["verdict"] == "accepted"
    assert docs["forged", 1] == docs["forged", 2] and docs["forged", 1]["verdict"] == "rejected"
    assert any(not s["ok"] for s in docs["forged", 2]["segments"])  # caught in parallel
