"""Tampering with registered files and forging signed statements, as a cheater would.

Folder tampers (each changes content a reader would see, except ``touch``, a benign
change that must NOT be flagged): flip one bit, flip the last byte, append a byte,
truncate, replace a file with same-size bytes, swap two files' contents, move a file to
another name, add a hidden file, add an empty file, delete a file, and ``touch`` (mtime).
Statement forgeries: change the payload after signing, re-sign with the forger's own key,
re-sign and claim the victim's address as keyid, splice the victim's signature onto another
payload, change the payloadType. Used by ``bench/capture.py`` and the tests; it never
touches a ledger.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

from mltrail.provenance import attest

Tamper = Callable[[Path, random.Random], str]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _pick(root: Path, rng: random.Random, nonempty: bool = True) -> Path:
    files = [p for p in _files(root) if p.stat().st_size > 0 or not nonempty]
    return rng.choice(files)


def flip_bit(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng)
    data = bytearray(p.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    p.write_bytes(bytes(data))
    return str(p.relative_to(root))


def flip_last(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    return str(p.relative_to(root))


def append_byte(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng, nonempty=False)
    with p.open("ab") as fh:
        fh.write(bytes([rng.randrange(256)]))
    return str(p.relative_to(root))


def truncate(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng)
    size = p.stat().st_size
    os.truncate(p, rng.randrange(size))
    return str(p.relative_to(root))


def replace_same_size(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng)
    old = p.read_bytes()
    new = rng.randbytes(len(old))
    while new == old:
        new = rng.randbytes(len(old))
    p.write_bytes(new)
    return str(p.relative_to(root))


def swap_contents(root: Path, rng: random.Random) -> str:
    files = _files(root)
    for _ in range(20):
        a, b = rng.sample(files, 2)
        da, db = a.read_bytes(), b.read_bytes()
        if da != db:
            a.write_bytes(db)
            b.write_bytes(da)
            return f"{a.relative_to(root)}<->{b.relative_to(root)}"
    raise ValueError("no two files differ")


def rename(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng, nonempty=False)
    target = p.with_name(p.name + ".moved")
    p.rename(target)
    return str(p.relative_to(root))


def add_hidden(root: Path, rng: random.Random) -> str:
    target = root / f".hidden-{rng.randrange(10**6)}"
    target.write_bytes(b"x")
    return target.name


def add_empty(root: Path, rng: random.Random) -> str:
    d = _pick(root, rng, nonempty=False).parent
    target = d / f"empty-{rng.randrange(10**6)}"
    target.touch()
    return str(target.relative_to(root))


def delete(root: Path, rng: random.Random) -> str:
    p = _pick(root, rng, nonempty=False)
    p.unlink()
    return str(p.relative_to(root))


def touch(root: Path, rng: random.Random) -> str:
    """Benign: new modification time, same bytes. Must not be reported."""
    p = _pick(root, rng, nonempty=False)
    t = p.stat().st_mtime + rng.randrange(1, 10**6)
    os.utime(p, (t, t))
    return str(p.relative_to(root))


TAMPERS: dict[str, Tamper] = {
    "flip_bit": flip_bit, "flip_last": flip_last, "append_byte": append_byte,
    "truncate": truncate, "replace_same_size": replace_same_size,
    "swap_contents": swap_contents, "rename": rename, "add_hidden": add_hidden,
    "add_empty": add_empty, "delete": delete,
}
BENIGN: dict[str, Tamper] = {"touch": touch}


# -- statement forgeries ------------------------------------------------------------------

Forgery = Callable[[dict[str, Any], random.Random], dict[str, Any]]


def _edited(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    stmt = attest.statement_of(env)
    stmt["predicate"]["buildDefinition"]["externalParameters"]["forged"] = rng.randrange(10**9)
    return stmt


def edit_payload(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    payload = base64.b64encode(json.dumps(_edited(env, rng)).encode()).decode()
    return {**env, "payload": payload}


def resign_own_key(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return attest.sign(Account.from_key(rng.randbytes(32)), _edited(env, rng))


def resign_claim_victim(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    forged = attest.sign(Account.from_key(rng.randbytes(32)), _edited(env, rng))
    forged["signatures"][0]["keyid"] = env["signatures"][0]["keyid"]
    return forged


def splice_signature(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    forged = edit_payload(env, rng)
    forged["signatures"] = env["signatures"]
    return forged


def change_type(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {**env, "payloadType": "application/json"}


FORGERIES: dict[str, Forgery] = {
    "edit_payload": edit_payload, "resign_own_key": resign_own_key,
    "resign_claim_victim": resign_claim_victim, "splice_signature": splice_signature,
    "change_type": change_type,
}
