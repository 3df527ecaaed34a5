"""Forgers of a ledger on a JSON-RPC node we control (anvil and its cheat methods).

What a node operator, or whoever reset the node, can do behind a home's back: edit the
registry's storage (``anvil_setStorageAt``: an artefact's state, owner or kind, an
account's roles), revert the node to an earlier snapshot and grow another history
(fewer blocks, as many, or more than the home saw, by seed), or reset it. The seed picks
the artefact, the field, the value and the fork point. :func:`build` makes an rpc home
with a few artefacts on the node and records a snapshot per block, so a forger can fork
anywhere. Tests and benchmarks only: it rewrites the node it is given.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak

from mltrail.config import Home
from mltrail.testing.ledger_forgeries import PASSWORD, Forged

SNAPSHOTS = "forger-snapshots.json"  # in the home: block number -> anvil snapshot id
RpcForger = Callable[[Home, str, random.Random], Forged]
RPC_FORGERS: dict[str, RpcForger] = {}


def _forger(name: str) -> Callable[[RpcForger], RpcForger]:
    def register(fn: RpcForger) -> RpcForger:
        RPC_FORGERS[name] = fn
        return fn
    return register


def rpc(url: str, method: str, *params: Any) -> Any:
    request = urllib.request.Request(
        url, headers={"Content-Type": "application/json"},
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                         "params": list(params)}).encode())
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - test node
        answer = json.loads(reply.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def _head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def build(path: Path, url: str, key: bytes, rng: random.Random) -> Home:
    """An rpc home at ``path`` on ``url`` (its own registry, deployed with ``key``) holding
    datasets and models moved along their lifecycle by its admin; snapshots recorded."""
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    snaps: dict[int, str] = {}
    home = init_home(path, PASSWORD, rpc_url=url, private_key=key)

    def snap() -> None:
        snaps[_head(url)] = rpc(url, "evm_snapshot")

    with Ledger.open(home, password=PASSWORD) as admin:
        for role in ("data_steward", "model_developer", "verifier"):
            admin.grant_role(admin.address, role)
        snap()
        data = admin.register("dataset", "sha256:" + rng.randbytes(32).hex()).artefact_id
        snap()
        for _ in range(rng.randint(1, 2)):
            m = admin.register("model", "sha256:" + rng.randbytes(32).hex(),
                               parents=[data]).artefact_id
            snap()
            admin.transition(m, "trained")
            snap()
            if rng.random() < 0.5:
                admin.transition(m, "verified")
                snap()
    (home.root / SNAPSHOTS).write_text(json.dumps(snaps))
    return home


def _artefact_slot(url: str, registry: str, aid: str) -> tuple[str, int]:
    for slot in range(64):
        key = "0x" + keccak(slot.to_bytes(32, "big") + bytes.fromhex(aid[2:])).hex()
        value = int(rpc(url, "eth_getStorageAt", registry, key, "latest"), 16)
        if value >> 96:
            return key, value
    raise LookupError(f"no storage slot for {aid}")


def _artefacts(home: Home) -> list[str]:
    import sqlite3

    db = sqlite3.connect(home.index_db)
    try:
        return [str(r[0]) for r in db.execute("SELECT id FROM artefacts ORDER BY block")]
    finally:
        db.close()


@_forger("node_storage")
def node_storage(home: Home, url: str, rng: random.Random) -> Forged:
    """An artefact's state, kind or owner rewritten in the node's storage."""
    registry = home.settings().registry
    aid = rng.choice(_artefacts(home))
    key, value = _artefact_slot(url, registry, aid)
    field = rng.choice(["state", "kind", "owner"])
    if field == "state":
        new = value & ~255 | ((value & 255) % 8 + rng.randint(1, 3))
    elif field == "kind":
        new = value & ~(255 << 8) | (((value >> 8 & 255) % 3 + 1) << 8)
    else:
        new = value & ((1 << 96) - 1) | int.from_bytes(rng.randbytes(20), "big") << 96
    rpc(url, "anvil_setStorageAt", registry, key, "0x" + new.to_bytes(32, "big").hex())
    return Forged("node_storage", f"{aid[:10]} {field}", "chain")


@_forger("node_forked")
def node_forked(home: Home, url: str, rng: random.Random) -> Forged:
    """The node reverted to a snapshot below the pinned head and mined again: fewer
    blocks than the home saw, as many, or more (by seed)."""
    snaps = {int(k): v for k, v in json.loads((home.root / SNAPSHOTS).read_text()).items()}
    head = _head(url)
    at = rng.choice(sorted(b for b in snaps if b < head))
    rpc(url, "evm_revert", snaps[at])
    target = head + rng.choice([-1, 0, 0, 1, 3])
    while _head(url) < target:
        rpc(url, "evm_mine")
    return Forged("node_forked", f"reverted to block {at}, mined to {_head(url)} "
                                 f"(home saw {head})", "chain")


@_forger("node_reset")
def node_reset(home: Home, url: str, rng: random.Random) -> Forged:
    """The node reset to genesis (``anvil_reset``), then mined a few blocks or not."""
    rpc(url, "anvil_reset")
    for _ in range(rng.randint(0, 3)):
        rpc(url, "evm_mine")
    return Forged("node_reset", f"reset, head now {_head(url)}", "chain")
