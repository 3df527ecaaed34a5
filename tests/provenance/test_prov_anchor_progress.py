"""`mltrail anchor` shows progress on a terminal only (records hashed, then proofs written),
and nothing extra under --json or in a pipe."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from mltrail.provenance import batch


def _records(project, n: int):
    path = project / "records.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(n)))
    return path


def test_progress_counts_records_then_proofs(project, open_as):
    seen: list[tuple[int | None, int]] = []

    @contextmanager
    def progress(total: int | None) -> Iterator:
        done = [0]
        yield lambda n: done.__setitem__(0, done[0] + n)
        seen.append((total, done[0]))

    led = open_as("steward")
    ds = led.register("dataset", "sha256:" + "ab" * 32, name="ds").artefact_id
    res = batch.anchor_file(led, ds, _records(project, 2500), project / "proofs", progress)
    assert res["count"] == 2500 and seen == [(5000, 5000)]
    batch.anchor_file(led, ds, _records(project, 3), None, progress)
    assert seen[-1] == (3, 3)


def test_anchor_progress_only_on_a_terminal(project, cli, open_as, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    home = project / ".mltrail"
    open_as("steward").register("dataset", "sha256:" + "cd" * 32, name="ds")
    records = _records(project, 50)
    args = ("--as", "steward", "anchor", "ds", str(records), "--proofs", str(project / "p"))
    piped = cli(*args, home=home)
    assert piped.code == 0 and piped.err == "" and "anchored 50 records" in piped.out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    quiet = cli(*args, "--json", home=home)
    assert quiet.code == 0 and quiet.err == "" and quiet.json()["count"] == 50
    tty = cli(*args, home=home)
    assert tty.code == 0 and "anchored 50 records" in tty.out, tty.err
