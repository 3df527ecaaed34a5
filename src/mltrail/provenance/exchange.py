"""Blob exchange between members' nodes: signed read requests, and fetching a missing blob.

Every node serves ``GET /v1/blobs/{digest}`` for what its content store holds (the rule
for who may read is ``mltrail.server.access``). A home that misses a blob named on chain
(metadata, proof bundles, statements, reports) asks the owner's node, whose URL the owner
published on chain (``Ledger.profile``), then other members' nodes; it hashes the bytes
before anything else and caches them in its own store.

A request is signed by the asking member's key (EIP-191) over the digest, the target
node's identity (an address), the time and a random single-use nonce, so a node that
receives a member's request cannot replay it to another node, and a captured request
cannot be used twice (``NonceCache``). This module never trusts bytes it did not hash
itself, never decides who may read, and never decides a verdict on what bytes mean.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
AUDIENCE = "X-Mltrail-Audience"  # "members" (any member may have it) or "readers" (chosen)
PER_NODE = 3.0  # seconds one peer gets (connect, and between bytes) within the budget


def normalise(digest: str) -> str:
    """``sha256:<64 hex>`` for any accepted spelling of a digest (InputError otherwise)."""
    return "sha256:" + to_bytes32(digest).hex()


# -- node URLs on chain ------------------------------------------------------------------

def _peers_path(home: Home) -> Path:
    return home.root / "node" / "peers.json"


def node_url(ledger: Ledger, address: str) -> str | None:
    """The node URL ``address`` published on chain (``Ledger.profile``).

    A client without ``profile`` falls back to a home-local ``node/peers.json`` (a shim).
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
    """Write a peer's URL into the shim's ``node/peers.json``."""
    path = _peers_path(home)
    peers = json.loads(path.read_text()) if path.exists() else {}
    peers[to_checksum_address(address)] = url
    atomic_write(path, json.dumps(peers, indent=1, sort_keys=True).encode())


def publish_url(ledger: Ledger, url: str) -> dict[str, Any]:
    """Publish this identity's node URL (``Ledger.set_profile``; the shim without it)."""
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

def _message(digest: str, target: str, ts: int, nonce: str) -> bytes:
    return f"mltrail-blob-read/2:{normalise(digest)}:{target}:{ts}:{nonce}".encode()


def sign_request(ledger: Ledger, digest: str, target: str, now: float | None = None,
                 nonce: str | None = None) -> str:
    """The header value proving the reader holds ``ledger``'s key (only ``.account`` is
    used), for one request to the node of ``target`` (the address whose published URL is
    asked): ``addr:ts:nonce:target:sig``."""
    ts = int(now if now is not None else time.time())
    nonce = nonce or secrets.token_hex(16)
    target = to_checksum_address(target)
    signed = ledger.account.sign_message(encode_defunct(_message(digest, target, ts, nonce)))
    return f"{ledger.account.address}:{ts}:{nonce}:{target}:0x{bytes(signed.signature).hex()}"


@dataclass(frozen=True)
class SignedRequest:
    signer: str
    ts: int
    nonce: str
    target: str


def parse_request(header: str, digest: str, now: float | None = None) -> SignedRequest | None:
    """The signed request in ``header`` for ``digest`` if well formed, recent and signed by
    the address it names; else None. Does not check the target or the nonce's freshness."""
    parts = header.split(":")
    if len(parts) != 5 or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    addr, ts_s, nonce, target, sig_hex = parts
    if not (is_address(addr) and is_address(target)) or not 16 <= len(nonce) <= 64 \
            or not nonce.isalnum():
        return None
    ts = int(ts_s)
    if abs((now if now is not None else time.time()) - ts) > MAX_SKEW:
        return None
    try:
        sig = bytes.fromhex(sig_hex.removeprefix("0x"))
        who = Account.recover_message(encode_defunct(_message(digest, target, ts, nonce)),
                                      signature=sig)
    except Exception:  # noqa: BLE001 - any malformed signature is simply not a member
        return None
    if who != to_checksum_address(addr):
        return None
    return SignedRequest(str(who), ts, nonce, to_checksum_address(target))


class NonceCache:
    """Nonces seen in the last ``MAX_SKEW`` seconds, at most ``size`` of them, in SQLite:
    a file (``path``) shared by a node's worker processes and kept across restarts, or
    memory (``path`` None).

    When full, the oldest entries are dropped and every request signed at or before their
    time is refused from then on (``floor``), so a dropped nonce can never be used again.
    """

    def __init__(self, path: Path | None = None, size: int = 65_536) -> None:
        import sqlite3

        self.size = size
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", timeout=10,
                                   isolation_level=None, check_same_thread=False)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (signer TEXT, nonce TEXT, "
                         "ts INTEGER, PRIMARY KEY (signer, nonce)) WITHOUT ROWID")
        self._db.execute("CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts)")
        self._db.execute("CREATE TABLE IF NOT EXISTS floor (v INTEGER)")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    @property
    def floor(self) -> int:
        row = self._db.execute("SELECT MAX(v) FROM floor").fetchone()
        return int(row[0]) if row and row[0] is not None else -1

    def use(self, signer: str, nonce: str, ts: int, now: float | None = None) -> bool:
        """Record ``nonce``; False if it was seen before (a replay) or is below the floor."""
        now = now if now is not None else time.time()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # older than any request parse_request still accepts: safe to forget
            db.execute("DELETE FROM nonces WHERE ts < ?", (int(now) - MAX_SKEW - 1,))
            floor = self.floor
            if ts <= floor:
                db.execute("ROLLBACK")
                return False
            fresh = db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)",
                               (signer, nonce, ts)).rowcount == 1
            over = len(self) - self.size
            if over > 0:
                cut = db.execute("SELECT ts FROM nonces ORDER BY ts LIMIT 1 OFFSET ?",
                                 (over - 1,)).fetchone()[0]
                db.execute("DELETE FROM nonces WHERE ts <= ?", (cut,))
                db.execute("DELETE FROM floor")
                db.execute("INSERT INTO floor VALUES (?)", (max(cut, floor),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return fresh


def verify_request(header: str, digest: str, targets: Iterable[str], nonces: NonceCache,
                   now: float | None = None) -> str | None:
    """The member who signed ``header`` for ``digest``, for a node among ``targets``, with a
    nonce not used before; else None (and the nonce is then not recorded)."""
    req = parse_request(header, digest, now)
    if req is None or req.target not in {to_checksum_address(t) for t in targets}:
        return None
    return req.signer if nonces.use(req.signer, req.nonce, req.ts, now) else None


# -- who may have a blob from this home --------------------------------------------------

class Readers:
    """Per-blob readers set by the owner; absent means every member may read.

    An empty list means no other member may have it from this home: a blob fetched from a
    node that gave it to chosen readers only is recorded so, and never relayed.
    """

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


# -- fetching ----------------------------------------------------------------------------

def peers(ledger: Ledger, owner: str | None) -> list[tuple[str, str]]:
    """(address, node URL) to ask for a blob: the owner first, then every other member with
    a role and a published URL. Reads the chain; call it where the ledger may be read."""
    out: list[str] = [to_checksum_address(owner)] if owner and is_address(owner) else []
    out += [a for a in sorted(ledger.roles()) if a not in out]
    me = to_checksum_address(ledger.address)
    return [(a, url) for a in out if a != me and (url := node_url(ledger, a))]


def fetch_blob(ledger: Ledger, digest: str, owner: str | None = None,
               timeout: float = 10.0, token: str | None = None) -> bytes:
    """The bytes of ``digest``: from this home's store, else from a member's node.

    The owner's node (its URL from the chain) is asked first, then other members'
    (``fetch_from``). Fetched bytes are hash-checked and cached.
    """
    digest = normalise(digest)
    if ledger.home.store.has(digest):
        return ledger.home.store.get(digest)
    return fetch_from(ledger, peers(ledger, owner), digest, timeout, token)


def fetch_from(ledger: Ledger, nodes: list[tuple[str, str]], digest: str,
               timeout: float = 10.0, token: str | None = None,
               per_node: float = PER_NODE) -> bytes:
    """The bytes of ``digest`` from the first of ``nodes`` that sends the right ones.

    All within ``timeout`` seconds in total (``per_node`` at most for one node to connect
    or to send its next bytes). Uses only ``ledger``'s key and home, never its chain, so
    it may run outside the lock that guards the ledger. Bytes are hashed before anything
    else: a node that answers with other bytes is skipped (and reported if no node has
    the right ones). Fetched bytes are cached; those a node gave to chosen readers only
    are recorded as such (``Readers``) and never relayed.
    """
    digest = normalise(digest)
    store = ledger.home.store
    deadline = time.monotonic() + timeout
    tried: list[str] = []
    for address, url in nodes:
        where = f"{address[:10]}…'s node {url}"
        left = deadline - time.monotonic()
        if left <= 0:
            tried.append(f"{where}: not asked (out of time)")
            continue
        headers = {HEADER: sign_request(ledger, digest, address)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            data, audience = _get(f"{url.rstrip('/')}/v1/blobs/{digest}", headers,
                                  min(left, per_node), deadline, ledger.address)
        except NetworkError as exc:
            tried.append(f"{where}: {exc.message}")
            continue
        if data is None:
            tried.append(f"{where}: HTTP 404, it does not hold it")
            continue
        if digest_bytes(data) != digest:
            tried.append(f"{where}: sent bytes that hash to {digest_bytes(data)[:19]}…")
            continue
        readers = Readers(ledger.home)
        if audience != "members" and readers.get(digest) is None:
            readers.set(digest, [])  # given to us as a chosen reader: never relay it
        store.put(data)
        return data
    if any("hash to" in t for t in tried):
        raise VerificationError(f"no node sent the bytes of {digest}: " + "; ".join(tried))
    raise NotFoundError(f"blob {digest} is not in this home and no member's node gave it"
                        + (f" ({'; '.join(tried)})" if tried else " (no node URL on chain)"))


def _why(status: int, body: bytes, me: str) -> str:
    try:
        said = str(json.loads(body).get("error", ""))[:200]
    except (ValueError, AttributeError):
        said = ""
    said = f" ({said})" if said else ""
    if status == 401:
        return f"HTTP 401{said}: it wants a member's signed request or a token of that node"
    if status == 403:
        return (f"HTTP 403{said}: {me} is not a member with a role on chain, or not among "
                "the blob's readers; ask its owner to add you (PUT /v1/blobs/{digest}/readers)")
    return f"HTTP {status}{said}: that node failed; try again later or ask its operator"


def _get(url: str, headers: dict[str, str], timeout: float, deadline: float,
         me: str) -> tuple[bytes | None, str | None]:
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout) as resp:
            if resp.status_code == 404:
                return None, None
            if resp.status_code != 200:
                raise NetworkError(_why(resp.status_code, resp.read()[:4096], me))
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_BLOB:
                    raise NetworkError(f"sent more than {MAX_BLOB} bytes")
                if time.monotonic() > deadline:
                    raise NetworkError("too slow: out of time while it was sending")
                chunks.append(chunk)
            return b"".join(chunks), resp.headers.get(AUDIENCE)
    except httpx.HTTPError as exc:
        kind = "down or unreachable" if isinstance(exc, httpx.ConnectError) else (
            "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__)
        raise NetworkError(f"{kind} ({exc})"[:300]) from exc
