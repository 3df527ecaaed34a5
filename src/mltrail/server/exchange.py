"""Blob exchange between members' nodes: who may read a blob, and fetching a missing one.

Every node serves ``GET /v1/blobs/{digest}`` for what its content store holds. A home
that misses a blob named on chain (metadata, proof bundles, statements, reports) asks
the owner's node, whose URL the owner published on chain (``Ledger.profile``), checks
the bytes hash to the digest, and caches them in its own store.

Requests between nodes are signed by the asking member's key (EIP-191 over the digest
and a timestamp), so a node can serve "members only": the signer must hold a role on
chain. An owner can narrow a blob to a list of readers. This module never trusts bytes
it did not hash itself, and never decides a verdict on what the bytes mean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from mltrail._fs import atomic_write
from mltrail.errors import InputError, NetworkError, NotFoundError, VerificationError
from mltrail.provenance.digest import digest_bytes, to_bytes32

if TYPE_CHECKING:
    from mltrail.config import Home
    from mltrail.ledger.client import Ledger

MAX_BLOB = 256 * 1024 * 1024  # what one fetch accepts from a peer
MAX_SKEW = 300  # seconds a member's signed request stays valid
HEADER = "X-Mltrail-Member"


def normalise(digest: str) -> str:
    """``sha256:<64 hex>`` for any accepted spelling of a digest (InputError otherwise)."""
    return "sha256:" + to_bytes32(digest).hex()


# -- node URLs on chain ------------------------------------------------------------------

def _peers_path(home: Home) -> Path:
    return home.root / "node" / "peers.json"


def node_url(ledger: Ledger, address: str) -> str | None:
    """The node URL ``address`` published on chain (``Ledger.profile``).

    Until the ledger client has ``profile`` (issue 9a), a home-local ``node/peers.json``
    stands in for it (a temporary shim: the chain is the place for it).
    """
    profile = getattr(ledger, "profile", None)
    if callable(profile):  # the profile line may also carry an Ed25519 key (signing.py)
        from mltrail.provenance.signing import parse_profile

        return parse_profile(profile(address)).url
    path = _peers_path(ledger.home)
    if not path.exists():
        return None
    peers = json.loads(path.read_text())
    url = peers.get(to_checksum_address(address))
    return str(url) if url else None


def remember_peer(home: Home, address: str, url: str) -> None:
    """Write a peer's URL into the shim's ``node/peers.json`` (before 9a's profiles)."""
    path = _peers_path(home)
    peers = json.loads(path.read_text()) if path.exists() else {}
    peers[to_checksum_address(address)] = url
    atomic_write(path, json.dumps(peers, indent=1, sort_keys=True).encode())


def publish_url(ledger: Ledger, url: str) -> dict[str, Any]:
    """Publish this identity's node URL (``Ledger.set_profile``; the shim before 9a)."""
    if not url.startswith(("http://", "https://")) or len(url) > 512:
        raise InputError(f"not a node URL: {url!r}")
    setter = getattr(ledger, "set_profile", None)
    if callable(setter):
        from dataclasses import replace

        from mltrail.provenance.signing import parse_profile

        tx = setter(replace(parse_profile(ledger.profile(ledger.address)), url=url).line())
        return {"url": url, **tx.as_dict()}
    remember_peer(ledger.home, ledger.address, url)
    return {"url": url, "tx_hash": None, "block": None, "gas_used": 0}


# -- signed member requests --------------------------------------------------------------

def _message(digest: str, ts: int) -> bytes:
    return f"mltrail-blob-read:{normalise(digest)}:{ts}".encode()


def sign_request(ledger: Ledger, digest: str, now: float | None = None) -> str:
    """The header value proving the reader holds ``ledger``'s key: ``addr:ts:sig``."""
    ts = int(now if now is not None else time.time())
    signed = ledger.account.sign_message(encode_defunct(_message(digest, ts)))
    return f"{ledger.account.address}:{ts}:0x{bytes(signed.signature).hex()}"


def signer_of(header: str, digest: str, now: float | None = None) -> str | None:
    """The address that signed ``header`` for ``digest`` recently, else None."""
    parts = header.split(":")
    if len(parts) != 3 or not is_address(parts[0]) or not parts[1].isdigit():
        return None
    ts = int(parts[1])
    if abs((now if now is not None else time.time()) - ts) > MAX_SKEW:
        return None
    try:
        sig = bytes.fromhex(parts[2].removeprefix("0x"))
        who = Account.recover_message(encode_defunct(_message(digest, ts)), signature=sig)
    except Exception:  # noqa: BLE001 - any malformed signature is simply not a member
        return None
    return str(who) if who == to_checksum_address(parts[0]) else None


# -- who may read a blob -----------------------------------------------------------------

class Readers:
    """Per-blob readers set by the owner; absent means every member may read."""

    def __init__(self, home: Home) -> None:
        self.path = home.root / "node" / "readers.json"

    def _load(self) -> dict[str, list[str]]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        return {k: list(v) for k, v in data.items()}

    def get(self, digest: str) -> list[str] | None:
        return self._load().get(normalise(digest))

    def set(self, digest: str, readers: Iterable[str] | None) -> None:
        """Restrict ``digest`` to ``readers`` (addresses); None opens it to all members."""
        data = self._load()
        key = normalise(digest)
        if readers is None:
            data.pop(key, None)
        else:
            addrs = []
            for r in readers:
                if not is_address(r):
                    raise InputError(f"not an address: {r!r}")
                addrs.append(to_checksum_address(r))
            data[key] = sorted(set(addrs))
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())


def may_read(ledger: Ledger, digest: str, member: str | None, has_token: bool) -> bool:
    """Whether a request may have ``digest``: a node token, or a member among its readers."""
    if has_token:
        return True
    if member is None:
        return False
    readers = Readers(ledger.home).get(digest)
    if readers is not None:
        return member in readers
    return bool(ledger.roles().get(member, 0))


# -- fetching ----------------------------------------------------------------------------

def _candidates(ledger: Ledger, owner: str | None) -> list[str]:
    """Addresses to ask, owner first, then every other member with a role."""
    out: list[str] = [to_checksum_address(owner)] if owner and is_address(owner) else []
    out += [a for a in sorted(ledger.roles()) if a not in out]
    return [a for a in out if a != to_checksum_address(ledger.address)]


def fetch_blob(ledger: Ledger, digest: str, owner: str | None = None,
               timeout: float = 10.0, token: str | None = None) -> bytes:
    """The bytes of ``digest``: from this home's store, else from a member's node.

    The owner's node (its URL from the chain) is asked first, then other members'.
    Bytes are hashed before anything else: a node that answers with other bytes is
    skipped (and reported if no node has the right ones). Fetched bytes are cached.
    """
    digest = normalise(digest)
    store = ledger.home.store
    if store.has(digest):
        return store.get(digest)
    tried: list[str] = []
    for address in _candidates(ledger, owner):
        url = node_url(ledger, address)
        if not url:
            continue
        headers = {HEADER: sign_request(ledger, digest)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            data = _get(f"{url.rstrip('/')}/v1/blobs/{digest}", headers, timeout)
        except NetworkError as exc:
            tried.append(f"{url}: {exc.message}")
            continue
        if data is None:
            tried.append(f"{url}: not there")
            continue
        if digest_bytes(data) != digest:
            tried.append(f"{url}: sent bytes that hash to {digest_bytes(data)[:19]}…")
            continue
        store.put(data)
        return data
    if any("hash to" in t for t in tried):
        raise VerificationError(f"no node sent the bytes of {digest}: " + "; ".join(tried))
    raise NotFoundError(f"blob {digest} is not in this home and no member's node has it"
                        + (f" ({'; '.join(tried)})" if tried else " (no node URL on chain)"))


def _get(url: str, headers: dict[str, str], timeout: float) -> bytes | None:
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout) as resp:
            if resp.status_code == 404:
                return None
            if resp.status_code in (401, 403):
                raise NetworkError("refused to give it to us")
            if resp.status_code != 200:
                raise NetworkError(f"HTTP {resp.status_code}")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_BLOB:
                    raise NetworkError(f"blob larger than {MAX_BLOB} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise NetworkError(f"{type(exc).__name__}: {exc}") from exc
