"""`mltrail pol train-distributed`: bad input is one line and exit 2, before any Ray
cluster starts or any file is written."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("args, says", [
    (["--byzantine", "7:scaled"], "numbered 0 to 2"),
    (["--byzantine", "1:sneaky"], "WORKER:KIND"),
    (["--data", "/no/such/file"], "no such data file"),
    (["--spot-check", "1.5"], "--spot-check"),
    (["--workers", "0"], "--workers"),
    (["--lr", "0"], "--lr"),
    (["--ray", "127.0.0.1:1"], "cannot reach a Ray cluster"),
    (["--ray", "nonsense"], "HOST:PORT"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path: Path, args, says) -> None:
    out = tmp_path / "proof"
    res = cli("pol", "train-distributed", str(out), *args)
    assert res.code == 2, res.out + res.err
    assert says in res.err and len(res.err.strip().splitlines()) <= 3
    assert not out.exists()


def test_a_used_folder_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "proof").mkdir()
    (tmp_path / "proof" / "x").write_text("mine")
    res = cli("pol", "train-distributed", str(tmp_path / "proof"))
    assert res.code == 2 and "not empty" in res.err
    assert (tmp_path / "proof" / "x").read_text() == "mine"
