"""Forgers of an embedded home's ledger: an adversary who has read ``docs/ledger.md``.

Each forger takes a home (no ledger open on it) and a ``random.Random``; the seed picks
WHAT is forged (which block, trie row, receipt word, index row and column, artefact,
state, kind of file damage), so a family is a distribution of attacks, not one recipe.
:func:`attempt` applies one forgery and runs ``ledger check`` the way a user would
(``Ledger.open`` then :func:`~mltrail.ledger.check.check`) and says whether, where and
how fast it was caught. ``bench/ledger_forgeries.py`` runs every family over many seeds;
the tests run a few fixed seeds.

Families on the index and the home's files live here; forgeries that rewrite blocks with
py-evm (state, receipts, headers, history) in :mod:`mltrail.testing.ledger_chain_forgeries`.
Only for tests and benchmarks: this module destroys the home it is given.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltrail.config import Home
from mltrail.errors import MltrailError, VerificationError
from mltrail.lifecycle import Lifecycle, parse


@dataclass(frozen=True)
class Forged:
    """What a forger did: ``layer`` is where ``check`` must place it ("chain": ``ledger
    damaged``, never a hint at reindex; "index": any failure); ``limit`` marks a forgery
    the docs say ``check`` cannot catch (the attacker owns the whole home)."""

    family: str
    what: str
    layer: str
    limit: bool = False
    noop: bool = False  # the forgery changed nothing the home can see (not a finding)


@dataclass(frozen=True)
class Outcome:
    forged: Forged
    detected: bool
    misplaced: bool  # a chain forgery blamed on the index (its hint would launder it)
    message: str
    seconds: float
    write_refused: bool | None = None  # chain forgeries: the next write exited 1

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.forged.family, "what": self.forged.what,
                "layer": self.forged.layer, "limit": self.forged.limit,
                "noop": self.forged.noop,
                "detected": self.detected, "misplaced": self.misplaced,
                "message": self.message[:300], "seconds": round(self.seconds, 4),
                "write_refused": self.write_refused}


PASSWORD = "test-password"  # of the homes the tests and the bench build
Forger = Callable[[Home, random.Random], Forged]
FORGERS: dict[str, Forger] = {}


def forger(name: str) -> Callable[[Forger], Forger]:
    def register(fn: Forger) -> Forger:
        FORGERS[name] = fn
        return fn
    return register


# -- the scenario every forgery starts from --------------------------------------------------

def populate(home: Home, password: str, rng: random.Random) -> None:
    """Datasets, models derived from them, transitions and anchors by several members
    (identities ``steward``, ``dev``, ``verifier`` holding the default lifecycle's roles)."""
    from mltrail.ledger.client import Ledger

    def digest() -> str:
        return "sha256:" + rng.randbytes(32).hex()

    with Ledger.open(home, identity="steward", password=password) as steward, \
            Ledger.open(home, identity="dev", password=password) as dev, \
            Ledger.open(home, identity="verifier", password=password) as verifier:
        data = [steward.register("dataset", digest(), name=f"data-{i}").artefact_id
                for i in range(rng.randint(1, 2))]
        steward.transition(data[0], "validated")
        for i in range(rng.randint(2, 3)):
            m = dev.register("model", digest(), parents=rng.sample(data, 1),
                             name=f"model-{i}").artefact_id
            dev.transition(m, "trained")
            if rng.random() < 0.6:
                verifier.transition(m, rng.choice(["evaluated", "verified"]))
            dev.anchor(m, rng.randbytes(32), rng.randint(1, 99))


# -- running one forgery -----------------------------------------------------------------------

def attempt(family: str, home: Home, seed: int, password: str) -> Outcome:
    """Forge ``home`` with ``family`` and seed ``seed``, then run ``ledger check`` on it."""
    return judge(home, FORGERS[family](home, random.Random(seed)), password)


def judge(home: Home, forged: Forged, password: str) -> Outcome:
    """Run ``ledger check`` on a forged home and say whether, where and how fast it failed."""
    from mltrail.ledger.check import check
    from mltrail.ledger.client import Ledger

    start = time.perf_counter()
    try:
        with Ledger.open(home, identity="admin", password=password) as led:
            check(led)
        message, detected = "", False
    except VerificationError as exc:
        message, detected = exc.message + (f" (hint: {exc.hint})" if exc.hint else ""), True
    except MltrailError as exc:  # exit 2 (a damaged home's settings): caught, if not by check
        message, detected = exc.message, True
    except Exception as exc:  # noqa: BLE001 - exit 3 "internal error": a finding, not a catch
        message, detected = f"internal error: {type(exc).__name__}: {exc}", False
    seconds = time.perf_counter() - start
    misplaced = forged.layer == "chain" and detected and "ledger damaged" not in message
    refused = _write_refused(home, password) if forged.layer == "chain" else None
    return Outcome(forged, detected, misplaced, message, seconds, refused)


def _write_refused(home: Home, password: str) -> bool:
    """Whether the next write on a forged chain is refused as damage (exit 1) before it
    is acknowledged: the acknowledged write that never happened is the harm to avoid."""
    from mltrail.ledger.client import Ledger

    try:
        with Ledger.open(home, identity="admin", password=password) as led:
            led.register("model", "sha256:" + random.Random(0).randbytes(32).hex())
    except VerificationError as exc:
        return "ledger damaged" in exc.message
    except Exception:  # noqa: BLE001 - another refusal, or an internal error: not damage
        return False
    return False


def fresh_copy(template: Path, target: Path) -> Home:
    """A copy of a home made once (a forgery destroys its home; copying is cheap)."""
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("lock"))
    return Home(target)


# -- helpers on the files ----------------------------------------------------------------------

def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _lifecycle(home: Home) -> Lifecycle:
    return parse(home.lifecycle_path.read_bytes(), str(home.lifecycle_path))


def _rows(db: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()  # noqa: S608


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _other_value(value: Any, rng: random.Random) -> Any:
    """A plausible different value of the same type (what a careful forger would write)."""
    if isinstance(value, int):
        return value + rng.choice([-2, -1, 1, 2, 7])
    text = str(value)
    if text.startswith("0x") and len(text) > 2:
        i = rng.randrange(2, len(text))
        return text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:]
    if text.isdigit():
        return str(int(text) + rng.choice([1, 2, 3]))
    if text.startswith("{") or text.startswith("["):
        return json.dumps({"forged": rng.randrange(10**6)})
    return text + rng.choice(["x", "-v2", " "])


def _index_tables(home: Home) -> dict[str, int]:
    with _connect(home.index_db) as db:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # noqa: S608
                for t in ("events", "artefacts", "parents", "roles", "meta")}


def _head(home: Home) -> int:
    db = _connect(home.chain_db)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key='head'").fetchone()[0])
    finally:
        db.close()


# -- the index ---------------------------------------------------------------------------------

@forger("index_cell")
def index_cell(home: Home, rng: random.Random) -> Forged:
    """One cell of a random row of a random table set to a plausible other value."""
    counts = _index_tables(home)
    table = rng.choice([t for t, n in counts.items() if n])
    db = _connect(home.index_db)
    try:
        row = rng.choice(_rows(db, table))
        cols = _columns(db, table)
        col = rng.randrange(len(cols))
        new = _other_value(row[col + 1], rng)
        try:
            db.execute(f"UPDATE {table} SET {cols[col]}=? WHERE rowid=?",  # noqa: S608
                       (new, row[0]))
        except sqlite3.IntegrityError:  # the new key exists: edit the row's last column
            col = len(cols) - 1
            new = _other_value(row[col + 1], rng)
            db.execute(f"UPDATE {table} SET {cols[col]}=? WHERE rowid=?",  # noqa: S608
                       (new, row[0]))
    finally:
        db.close()
    return Forged("index_cell", f"{table}.{cols[col]} of row {row[0]} := {new!r}"[:160], "index")


@forger("index_row")
def index_row(home: Home, rng: random.Random) -> Forged:
    """A random row deleted, duplicated under another key, or added above the head."""
    counts = _index_tables(home)
    table = rng.choice([t for t, n in counts.items() if n and t != "meta"])
    how = rng.choice(["deleted", "copied", "above head"])
    db = _connect(home.index_db)
    try:
        row = list(rng.choice(_rows(db, table))[1:])
        cols = _columns(db, table)
        if how == "deleted":
            db.execute(f"DELETE FROM {table} WHERE " + " AND ".join(  # noqa: S608
                f"{c} IS ?" for c in cols), row)
        else:
            if table in ("events", "artefacts") and how == "above head":
                row[cols.index("block")] = int(row[cols.index("block")]) + rng.randint(1, 99)
            key = 1 if table == "parents" else 0  # events: (block, log_index); parents: pair
            if table == "events":
                row[1] = int(row[1]) + rng.randint(1, 5) if how == "copied" else row[1]
            else:
                row[key] = _other_value(row[key], rng)
            db.execute(f"INSERT OR REPLACE INTO {table} VALUES "  # noqa: S608
                       f"({','.join('?' * len(cols))})", row)
    finally:
        db.close()
    return Forged("index_row", f"{table} row {how}", "index")


@forger("index_swap")
def index_swap(home: Home, rng: random.Random) -> Forged:
    """Two artefacts' rows swapped (all but the id), or just their states or owners."""
    db = _connect(home.index_db)
    try:
        rows = _rows(db, "artefacts")
        cols = _columns(db, "artefacts")
        options = [(a, b, which) for a in rows for b in rows if a[0] < b[0]
                   for which in (cols[1:], ["state"], ["owner"], ["parents"], ["name"])
                   if any(a[cols.index(c) + 1] != b[cols.index(c) + 1] for c in which)]
        a, b, which = rng.choice(options)  # a swap that changes something
        for src, dst in ((a, b), (b, a)):
            values = [src[cols.index(c) + 1] for c in which]
            db.execute(f"UPDATE artefacts SET {', '.join(f'{c}=?' for c in which)} "  # noqa: S608
                       "WHERE rowid=?", (*values, dst[0]))
    finally:
        db.close()
    return Forged("index_swap", f"artefacts {a[1][:10]} and {b[1][:10]} swapped "
                                f"{'everything' if len(which) > 1 else which[0]}", "index")


@forger("index_unhappened_state")
def index_unhappened_state(home: Home, rng: random.Random) -> Forged:
    """An artefact moved in the index to a state its lifecycle allows from where it is,
    with a matching ``Transitioned`` event row (in a real block, or above the head with the
    index's ``meta`` and, by seed, the chain file's ``meta`` head moved along)."""
    lc = _lifecycle(home)
    db = _connect(home.index_db)
    try:
        rows = _rows(db, "artefacts")
        cols = _columns(db, "artefacts")
        candidates = []
        for row in rows:
            kind = lc.kind_by_code(int(row[cols.index("kind") + 1]))
            state = kind.state_name(int(row[cols.index("state") + 1]))
            nxt = [t for t in kind.states if kind.allowed(state, t)]
            candidates += [(row, kind, state, t) for t in nxt]
        row, kind, state, target = rng.choice(candidates)
        aid, owner = row[1], row[cols.index("owner") + 1]
        last = int(db.execute("SELECT value FROM meta WHERE key='last_block'").fetchone()[0])
        above = rng.random() < 0.5
        block = last + 1 if above else rng.randint(int(row[cols.index("block") + 1]), last)
        index = 0 if above else 1 + int(db.execute(
            "SELECT COALESCE(MAX(log_index), 0) FROM events WHERE block=?", (block,)).fetchone()[0])
        ts = int(db.execute("SELECT MAX(timestamp) FROM events").fetchone()[0]) + 1
        args = {"evidence": "0x" + rng.randbytes(32).hex(),
                "from_state": kind.state_code(state), "to_state": kind.state_code(target)}
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
                   (block, index, "0x" + rng.randbytes(32).hex(), "Transitioned", aid, owner,
                    ts, json.dumps(args, sort_keys=True)))
        db.execute("UPDATE artefacts SET state=? WHERE id=?", (kind.state_code(target), aid))
        chain_meta = False
        if above:
            db.execute("UPDATE meta SET value=? WHERE key='last_block'", (str(block),))
            db.execute("DELETE FROM meta WHERE key='last_hash'")
            chain_meta = rng.random() < 0.5 and home.chain_db.is_file()
    finally:
        db.close()
    if chain_meta:  # make the fast read path believe the index is current
        chain = _connect(home.chain_db)
        try:
            chain.execute("UPDATE meta SET value=? WHERE key='head'", (str(block),))
        finally:
            chain.close()
    return Forged("index_unhappened_state",
                  f"{kind.name} {aid[:10]} {state} -> {target} at block {block}"
                  + (" (above head" + (", chain meta moved)" if chain_meta else ")")
                     if above else ""), "index")


# -- the chain file ----------------------------------------------------------------------------

@forger("chain_file")
def chain_file(home: Home, rng: random.Random) -> Forged:
    """The chain file deleted, emptied, truncated or overwritten at a random place, or one
    of its SQLite pages filled with garbage (the WAL is checkpointed first)."""
    how = rng.choice(FILE_DAMAGE)
    return Forged("chain_file", damage_file(home.chain_db, how, rng), "chain")


FILE_DAMAGE = ("deleted", "emptied", "truncated", "garbage", "page")


def damage_file(path: Path, how: str, rng: random.Random) -> str:
    """Damage ``path`` as ``how`` (one of FILE_DAMAGE) says, at places ``rng`` picks;
    returns what was done."""
    size = path.stat().st_size
    if how == "deleted":
        path.unlink()
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "truncated":
        with path.open("r+b") as fh:
            fh.truncate(rng.randrange(1, size))
    elif how == "garbage":
        path.write_bytes(rng.randbytes(rng.randrange(1, size)))
    else:
        page = 4096
        n = rng.randrange(size // page)
        with path.open("r+b") as fh:
            fh.seek(n * page)
            fh.write(rng.randbytes(page))
        how = f"page {n} of {size // page} overwritten"
    return how



@forger("stale_wal_swap")
def stale_wal_swap(home: Home, rng: random.Random) -> Forged:
    """A writer killed with ``kill -9`` leaves committed frames in ``chain.sqlite-wal``;
    the chain file is then swapped for another home's (SQLite overlays the old WAL on it)."""
    import os
    import subprocess
    import sys
    import tempfile

    from mltrail.ledger.setup import init_home

    n = rng.randint(1, 4)
    code = ("import os, random, sys\n"
            "from mltrail.config import Home\n"
            "from mltrail.ledger.client import Ledger\n"
            "led = Ledger.open(Home(sys.argv[1]), identity='admin', password=sys.argv[2])\n"
            "r = random.Random(int(sys.argv[3]))\n"
            "for _ in range(int(sys.argv[4])):\n"
            "    led.register('model', 'sha256:' + r.randbytes(32).hex())\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(home.root), PASSWORD,
                    str(rng.randrange(10**9)), str(n)], check=True, env=dict(os.environ))
    wal = Path(str(home.chain_db) + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    whole = _wal_holds_whole_database(wal)
    with tempfile.TemporaryDirectory(dir=home.root.parent) as tmp:
        donor = init_home(Path(tmp) / ".mltrail", password=PASSWORD)
        shutil.copy(donor.chain_db, home.chain_db)
    return Forged("stale_wal_swap", f"{n} writes killed, WAL of {size} bytes left"
                  + (" holding every page (the swap is undone)" if whole else "")
                  + ", chain file swapped", "chain", noop=whole)


def _wal_holds_whole_database(wal: Path) -> bool:
    """Whether the committed frames of a SQLite WAL hold every page of the database as of
    its last commit: then SQLite's overlay rebuilds the old database whatever file is
    beside it (format: sqlite.org/fileformat2.html#walformat)."""
    if not wal.exists():
        return False
    data = wal.read_bytes()
    if len(data) < 32:
        return False
    page = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    pages: set[int] = set()
    committed: set[int] = set()
    size = 0
    at = 32
    while at + 24 + page <= len(data) and data[at + 8:at + 16] == salts:
        pages.add(int.from_bytes(data[at:at + 4], "big"))
        after = int.from_bytes(data[at + 4:at + 8], "big")
        if after:  # a commit frame: the database has ``after`` pages
            size, committed = after, set(pages)
        at += 24 + page
    return size > 0 and set(range(1, size + 1)) <= committed


def _load_chain_families() -> None:
    from mltrail.testing import (  # noqa: F401 - registers their forgers
        ledger_chain_forgeries,
        ledger_row_forgeries,
    )


_load_chain_families()
