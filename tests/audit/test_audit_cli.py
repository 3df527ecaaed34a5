"""`mltrail audit ...` in-process: exit codes, JSON, reports written, errors on one line."""

from __future__ import annotations

import json

import pytest


def _mltrail(cli, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``mltrail ARGS`` through the suite's in-process ``cli`` fixture: code, out, err."""
    r = cli(*args)
    return r.code, r.out, r.err


def test_probes_and_audit_run_exit_codes(tmp_path, cli, supplier,
                                          make_proxy) -> None:  # type: ignore[no-untyped-def]
    probes = tmp_path / "p.npz"
    code, out, _ = _mltrail(cli, "audit", "probes", "make", "--out", str(probes),
                            "--n", "64", "--json")
    assert code == 0 and json.loads(out)["counts"] == {"ordinary": 64}  # the auditor's own
    code, out, err = _mltrail(cli, "audit", "run", "--target",
                              make_proxy(supplier.url, "honest"), "--reference", supplier.url,
                              "--probes", str(probes), "--out", str(tmp_path / "h.json"),
                              "--html", str(tmp_path / "h.html"), "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "pass"
    assert 'class="plot sequential"' in (tmp_path / "h.html").read_text()
    code, out, err = _mltrail(cli, "audit", "run", "--target",
                              make_proxy(supplier.url, "substitute"), "--model",
                              str(supplier.path), "--pubkey", supplier.pubkey,
                              "--probes", str(probes), "--json")
    assert code == 1
    assert json.loads(out)["verdict"] == "fail"
    assert err.strip().startswith("error: audit failed") and "Traceback" not in err
    public = tmp_path / "b.npz"
    assert _mltrail(cli, "audit", "probes", "make", "--out", str(public), "--n", "64",
                    "--source", "benchmark")[0] == 0
    code, out, err = _mltrail(cli, "audit", "run", "--target",
                              make_proxy(supplier.url, "honest"), "--reference", supplier.url,
                              "--probes", str(public), "--json")
    assert code == 1 and json.loads(out)["verdict"] == "inconclusive"
    assert "public" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["audit", "run", "--target", "http://127.0.0.1:9", "--probes", "/nonexistent.npz"],
    ["serve-proxy", "--upstream", "http://127.0.0.1:9", "--mode", "mix=2"],
    ["audit", "probes", "make", "--out", "/tmp/x.npz", "--kit", "/nonexistent.safetensors"],
    ["audit", "run", "--target", "http://127.0.0.1:9", "--protocol", "grpc"],
    ["audit", "run", "--target", "http://127.0.0.1:9", "--adapter", "/nonexistent.yaml"],
    ["audit", "run", "--target", "http://127.0.0.1:9", "--data-kind", "tabular"],
    ["audit", "run", "--target", "http://127.0.0.1:9", "--data", "/nonexistent.npz"],
    ["audit", "run", "--target", "http://127.0.0.1:9/v2/models/m"],      # nobody there
    ["audit", "register", "--target", "http://127.0.0.1:9/v2/models/m", "--name", "x"],
])
def test_bad_input_exits_2_with_one_line(cli, args) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _mltrail(cli, *args)
    assert code == 2 and "Traceback" not in err and err.count("\n") <= 3


@pytest.mark.parametrize("option", ["--probes", "--data", "--adapter"])
@pytest.mark.parametrize("special", ["fifo", "folder"])
def test_special_files_are_refused_not_read(tmp_path, cli, option,  # type: ignore[no-untyped-def]
                                            special) -> None:
    """A FIFO given as probes, data or adapter would block a reader forever."""
    import os

    path = tmp_path / special
    os.mkfifo(path) if special == "fifo" else path.mkdir()
    code, _, err = _mltrail(cli, "audit", "run", "--target",
                            "http://127.0.0.1:9", option, str(path))
    assert code == 2 and ("FIFO" in err or "folder" in err), err
