"""The embedded chain survives restarts and kill -9, and serialises concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mltrail.ledger.check import check
from mltrail.ledger.client import Ledger

WRITER = str(Path(__file__).with_name("_writer.py"))
PW = "test-password"


def _writer(home, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WRITER, str(home.root), "steward", tag, str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_persists_across_processes(home):
    proc = _writer(home, "a", 3)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    ids = out.split()
    with Ledger.open(home, identity="steward", password=PW) as led:
        assert [led.artefact(i).id for i in ids] == ids
        report = check(led)
        assert report.events >= 3


def test_kill_9_loses_no_acknowledged_transaction(home):
    proc = _writer(home, "b", 10_000)
    acked: list[str] = []
    assert proc.stdout is not None
    deadline = time.time() + 60
    while len(acked) < 25 and time.time() < deadline:
        line = proc.stdout.readline()
        if line:
            acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) >= 25
    with Ledger.open(home, identity="steward", password=PW) as led:
        report = check(led)
        for aid in acked:
            assert led.artefact(aid).kind == "dataset"
        # the chain may hold one more (mined, killed before the print), never fewer
        n = len(led.list_artefacts())
        assert len(acked) <= n <= len(acked) + 1
        assert report.head >= n
        led.register("dataset", "sha256:" + "ef" * 32)  # and it keeps working


def test_concurrent_writers_are_serialised(home):
    procs = [_writer(home, tag, 15) for tag in ("c", "d")]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        outs += out.split()
    assert len(set(outs)) == 30
    with Ledger.open(home, identity="steward", password=PW) as led:
        check(led)
        assert {a.id for a in led.list_artefacts()} >= set(outs)
