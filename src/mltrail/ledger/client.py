"""Typed operations on the ArtefactRegistry, the same for every backend.

``Ledger`` is what the CLI, the server and other packages call: register, transition,
anchor, roles, profiles, and reads served from the event index after catching it up with
the chain. It encodes names with the lifecycle and explains refusals with it, but every
rule is decided by the contract.

Writes are confirmed, not assumed: before sending, the node is compared with the home's
pins (genesis, registry code, the highest head seen; ``trust.py``); after mining, the
receipt must hold the expected event from the registry with the expected artefact, state
and actor, or the write fails with exit 1 saying what the node answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from eth_abi import encode
from eth_utils import is_address, keccak, to_checksum_address
from filelock import FileLock, Timeout

from mltrail.config import Home, find_home
from mltrail.config_models import Settings
from mltrail.errors import (
    InputError,
    LedgerError,
    NotFoundError,
    RefusedError,
    VerificationError,
)
from mltrail.identity import unlock_key_from
from mltrail.ledger import contracts, explain, trust
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Backend, Receipt, damaged
from mltrail.ledger.index import EventIndex, IndexedEvent, decode_events
from mltrail.ledger.reader import lineage_depths
from mltrail.lifecycle import Lifecycle, parse
from mltrail.provenance.digest import canonical_json, to_bytes32

if TYPE_CHECKING:  # eth-account only for message signatures (``Ledger.account``)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from eth_account.signers.local import LocalAccount

    from mltrail.keystore import UnlockedKey

ZERO32 = b"\x00" * 32
GAS_REGISTER, GAS_PER_PARENT, GAS_TRANSITION, GAS_ANCHOR, GAS_ADMIN = (
    150_000, 15_000, 100_000, 100_000, 300_000)
MAX_NAME = 64  # bytes of UTF-8: the contract's String[64]
MAX_PROFILE = 256
MAX_ANCHOR_RECORDS = 2**40  # the contract's bound on one anchor's record count


def check_name(name: str) -> str:
    """A registration name: 1..64 bytes of printable text, not taken for an id."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or len(
            name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        size = len(name.encode("utf-8", "surrogatepass")) if isinstance(name, str) else 0
        raise InputError(f"an artefact name is 1 to {MAX_NAME} bytes of text, not {size}")
    if not name.isprintable() or name != name.strip():
        raise InputError(f"artefact name {name!r} has unprintable or surrounding blank characters")
    if _looks_like_id(name):
        raise InputError(f"artefact name {name!r} looks like an id (hex); choose another")
    return name


def _looks_like_id(text: str) -> bool:
    ident = text.lower().removeprefix("0x")
    return len(ident) >= 6 and all(c in "0123456789abcdef" for c in ident)


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block: int
    gas_used: int
    timestamp: int  # the block's, unix seconds

    @classmethod
    def of(cls, rc: Receipt) -> TxResult:
        return cls(rc.tx_hash, rc.block, rc.gas_used, rc.timestamp)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Registered(TxResult):
    artefact_id: str


@dataclass(frozen=True)
class Artefact:
    id: str
    kind: str
    state: str
    owner: str
    content_digest: str
    parents: list[str]
    metadata_digest: str
    block: int
    timestamp: int
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Event = IndexedEvent


def _sha(hex32: str) -> str:
    """``sha256:<hex>`` from the index's ``0x<hex>`` form."""
    return "sha256:" + hex32.removeprefix("0x")


def _digest32(digest: str | None) -> bytes:
    return to_bytes32(digest) if digest else ZERO32


def open_backend(home: Home, settings: Settings) -> Backend:
    """The backend a home's settings name."""
    if settings.backend == "rpc":
        from mltrail.ledger.rpc import RpcBackend

        if not settings.rpc_url:
            raise InputError("rpc backend without rpc_url in config.json")
        backend: Backend = RpcBackend(settings.rpc_url)
    else:
        from mltrail.ledger.embedded import EmbeddedBackend

        backend = EmbeddedBackend(home.chain_db, home.lock_path)  # damage if missing
    if backend.chain_id != settings.chain_id:
        backend.close()
        raise LedgerError(f"chain id mismatch: home expects {settings.chain_id}, "
                          f"node reports {backend.chain_id}")
    return backend


class Ledger:
    """A session on a home's ledger as one identity."""

    def __init__(self, home: Home, settings: Settings, backend: Backend, lifecycle: Lifecycle,
                 identity: str, password: str | Callable[[], str] | None = None) -> None:
        self.home, self.settings, self.backend, self.lifecycle = home, settings, backend, lifecycle
        self.identity = identity
        self._password = password
        self._signer: UnlockedKey | None = None
        self._account: LocalAccount | None = None
        self._ed25519: Ed25519PrivateKey | None = None
        self.registry = to_checksum_address(settings.registry)
        self.abi = ContractABI(contracts.load("ArtefactRegistry").abi)
        self.index = EventIndex(home.index_db)
        # the writers' lock: the embedded backend's own (one instance, so it is re-entrant
        # when a write or a check takes it around the backend's transaction)
        lock = getattr(backend, "lock", None)
        self._lock = lock if isinstance(lock, FileLock) else FileLock(str(home.lock_path),
                                                                       timeout=60)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's writer lock: a write holds it from the pin check to the index
        update, and ``ledger check`` and ``reindex`` hold it throughout, so a check never
        sees a chain, pins and index that a writer has only half moved."""
        try:
            with self._lock:
                yield
        except Timeout as exc:
            raise LedgerError(f"ledger busy: could not lock {self._lock.lock_file}") from exc

    @classmethod
    def open(cls, home: Home | None = None, identity: str | None = None,
             password: str | Callable[[], str] | None = None) -> Ledger:
        """Open ``home`` (found like git's if None) as ``identity`` (the home's default).

        ``password`` may be a callable, asked only when a write needs the key.
        """
        home = home or find_home()
        settings = home.settings()
        if not home.lifecycle_path.is_file():
            raise NotFoundError(f"{home.lifecycle_path} is missing; the home is damaged")
        lifecycle = parse(home.lifecycle_path.read_bytes(), str(home.lifecycle_path))
        if lifecycle.digest != settings.lifecycle_digest:
            raise LedgerError(f"{home.lifecycle_path} was edited: its digest is not the one "
                              "published on chain")
        backend = open_backend(home, settings)
        return cls(home, settings, backend, lifecycle, identity or settings.identity, password)

    def close(self) -> None:
        self.index.close()
        self.backend.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity ---------------------------------------------------------------------------

    @property
    def signer(self) -> UnlockedKey:
        """The unlocked key that signs transactions (decrypted on first write only)."""
        if self._signer is None:
            self._signer = unlock_key_from(self.home, self.identity, self._password)
        return self._signer

    @property
    def account(self) -> LocalAccount:
        """The unlocked key as an eth-account ``LocalAccount``, for signing messages
        (claims, attestations, blob requests); imports eth-account on first use."""
        if self._account is None:
            from eth_account import Account

            self._account = Account.from_key(self.signer.key)
        return self._account

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The identity's Ed25519 key for DSSE envelopes other tools verify (made beside
        the keystore on first use; ``mltrail.identity.unlock_signing_key``)."""
        if self._ed25519 is None:
            from mltrail.identity import unlock_signing_key

            self._ed25519 = unlock_signing_key(self.home, self.identity, self._password)
        return self._ed25519

    @property
    def address(self) -> str:
        from mltrail.identity import address_of

        return self._signer.address if self._signer else address_of(self.home, self.identity)

    # -- writes -----------------------------------------------------------------------------

    def _send(self, fn: str, gas: int, *args: Any, expect: str | None = None,
              **want: Any) -> Receipt:
        """Send one call to the registry after checking the node against the pins, then
        confirm that the receipt holds event ``expect`` with the ``want`` arguments."""
        data = self.abi.encode(fn, *args)
        account = self.signer  # unlock before the checks: a wrong password costs nothing
        with self.locked():
            pins = trust.check_pins(self.home, self.backend, self.registry)
            receipt = self.backend.transact(account, self.registry, data, gas)
            self._confirm(receipt, expect or fn, want)
            trust.raise_head(self.home, pins, receipt.block, receipt.block_hash)
            self._index_receipt(receipt)
        return receipt

    def _confirm(self, receipt: Receipt, name: str, want: dict[str, Any]) -> None:
        ours = [lg for lg in receipt.logs if lg.address == self.registry]
        try:
            events = decode_events(self.abi, ours)
        except LedgerError as exc:
            raise VerificationError(f"write not confirmed: transaction {receipt.tx_hash} in "
                                    f"block {receipt.block}: {exc}") from exc
        want = {"actor": self.address, **want}
        for ev in events:
            fields = {"id": ev.artefact_id, "actor": ev.actor, **ev.args}
            if ev.name == name and all(fields.get(k) == v for k, v in want.items()):
                return
        answered = "; ".join(f"{e.name}({e.artefact_id or ''} by {e.actor})" for e in events)
        raise VerificationError(
            f"write not confirmed: transaction {receipt.tx_hash} in block {receipt.block} "
            f"holds {answered or 'no event from the registry'} ({len(receipt.logs)} logs), "
            f"expected {name} with " + ", ".join(f"{k}={v}" for k, v in want.items()))

    def _index_receipt(self, receipt: Receipt) -> None:
        ours = [lg for lg in receipt.logs if lg.address == self.registry]
        # one transaction per block only on the embedded chain; elsewhere the block may
        # hold other members' transactions, so read the whole block's logs
        if self.backend.kind == "embedded" and self.index.last_block() == receipt.block - 1:
            self.index.apply(decode_events(self.abi, ours), receipt.block,
                             receipt.block_hash or None)
        else:
            self.sync()

    def artefact_id_for(self, kind: str, content_digest: str, metadata_digest: str) -> str:
        """keccak(abi_encode(registrant, kind, content digest, metadata digest)); the
        contract recomputes it, so an id cannot be taken by someone else."""
        k = self.lifecycle.kind(kind)
        raw = keccak(encode(["address", "uint256", "bytes32", "bytes32"],
                            [self.address, k.code, to_bytes32(content_digest),
                             _digest32(metadata_digest)]))
        return "0x" + raw.hex()

    def register(self, kind: str, content_digest: str, parents: Sequence[str] = (),
                 metadata: dict[str, Any] | None = None,
                 name: str | None = None) -> Registered:
        """Register an artefact of ``kind`` whose bytes hash to ``content_digest``.

        ``name`` (default: ``metadata["name"]`` if it is a valid name) goes on chain in the
        ``Registered`` event, so every member can use it in place of the id. Parents are
        sent sorted; the same parent twice is refused.
        """
        k = self.lifecycle.kind(kind)
        if name is None and isinstance((metadata or {}).get("name"), str):
            implicit = str((metadata or {})["name"])
            try:  # a name taken from metadata (often a file name) goes on chain if valid
                name = check_name(implicit)
            except InputError:
                name = None
        elif name is not None:
            check_name(name)
        parent_ids = sorted(self.resolve_parents(parents), key=lambda p: int(p, 16))
        metadata_digest = self.home.store.put(canonical_json(metadata or {}))
        artefact_id = self.artefact_id_for(kind, content_digest, metadata_digest)
        try:
            rc = self._send("register", GAS_REGISTER + GAS_PER_PARENT * len(parent_ids),
                            to_bytes32(artefact_id), k.code, to_bytes32(content_digest),
                            [to_bytes32(p) for p in parent_ids], to_bytes32(metadata_digest),
                            name or "", expect="Registered", id=artefact_id, kind=k.code,
                            state=k.state_code(k.initial))
        except RefusedError as exc:
            raise explain.register(self, exc, kind, artefact_id, parent_ids) from exc
        return Registered(rc.tx_hash, rc.block, rc.gas_used, rc.timestamp, artefact_id)

    def transition(self, artefact_id: str, to_state: str,
                   evidence_digest: str | None = None) -> TxResult:
        """Move an artefact to ``to_state``, citing ``evidence_digest``."""
        art = self.artefact(artefact_id)
        k = self.lifecycle.kind(art.kind)
        code = k.state_code(to_state)
        try:
            rc = self._send("transition", GAS_TRANSITION, to_bytes32(art.id), code,
                            _digest32(evidence_digest), expect="Transitioned", id=art.id,
                            to_state=code)
        except RefusedError as exc:
            raise explain.transition(self, exc, art, to_state) from exc
        return TxResult.of(rc)

    def anchor(self, artefact_id: str, root: bytes, count: int,
               metadata_digest: str | None = None) -> TxResult:
        """Put the Merkle root of ``count`` records about an artefact on chain."""
        if len(root) != 32:
            raise InputError("a Merkle root is 32 bytes")
        if not 0 <= count <= MAX_ANCHOR_RECORDS:
            raise InputError(f"an anchor holds 0 to {MAX_ANCHOR_RECORDS} records, not {count}")
        aid = self.resolve(artefact_id)
        try:
            rc = self._send("anchor", GAS_ANCHOR, to_bytes32(aid), root, count,
                            _digest32(metadata_digest), expect="Anchored", id=aid,
                            root="0x" + root.hex())
        except RefusedError as exc:
            raise explain.anchor(self, exc, aid) from exc
        return TxResult.of(rc)

    def _role_mask(self, role: str) -> int:
        return self.lifecycle.role_bit(role)

    def _account_arg(self, account: str) -> str:
        if not is_address(account):
            from mltrail.identity import address_of

            return address_of(self.home, account)
        return to_checksum_address(account)

    def grant_role(self, account: str, role: str) -> TxResult:
        """Grant ``role`` to an address (or a local identity's name). Admin only."""
        who = self._account_arg(account)
        rc = self._send("grant_role", GAS_ADMIN, who, self._role_mask(role),
                        expect="RolesChanged", account=who)
        return TxResult.of(rc)

    def revoke_role(self, account: str, role: str) -> TxResult:
        who = self._account_arg(account)
        rc = self._send("revoke_role", GAS_ADMIN, who, self._role_mask(role),
                        expect="RolesChanged", account=who)
        return TxResult.of(rc)

    def transfer_admin(self, account: str) -> TxResult:
        """Offer the admin position (and its role bits) to ``account``; it must accept."""
        who = self._account_arg(account)
        rc = self._send("transfer_admin", GAS_ADMIN, who, expect="AdminOffered", actor=None,
                        admin=self.address, candidate=who)
        return TxResult.of(rc)

    def cancel_admin_transfer(self) -> TxResult:
        """Withdraw a pending admin offer."""
        rc = self._send("cancel_admin_transfer", GAS_ADMIN, expect="AdminOfferCancelled",
                        actor=None, admin=self.address)
        return TxResult.of(rc)

    def accept_admin(self) -> TxResult:
        rc = self._send("accept_admin", GAS_ADMIN, expect="AdminChanged", actor=None,
                        admin=self.address)
        return TxResult.of(rc)

    def set_profile(self, url: str) -> TxResult:
        """Publish where this member's node can be reached (any member with a role)."""
        if not isinstance(url, str) or len(url.encode()) > MAX_PROFILE or not url.isprintable():
            raise InputError(f"a profile is at most {MAX_PROFILE} bytes of printable text")
        rc = self._send("set_profile", GAS_ADMIN, url, expect="ProfileSet", actor=None,
                        account=self.address, uri=url)
        return TxResult.of(rc)

    def profile(self, address: str) -> str | None:
        """The profile a member published (None if none), read from the contract."""
        (uri,) = self.abi.decode_output("profile", self.backend.call(
            self.registry, self.abi.encode("profile", self._account_arg(address))))
        return str(uri) or None

    # -- reads ------------------------------------------------------------------------------

    def sync(self) -> int:
        """Catch the index up with the chain; returns the number of new events
        (:meth:`sync_to` the head)."""
        return self.sync_to(None)

    def sync_to(self, up_to: int | None) -> int:
        """Catch the index up with the chain, to block ``up_to`` at most (``ledger check``
        compares the index at the head it verified); returns the number of new events.

        A node whose head is below the index's, or whose block at the index's last block
        has another hash, was reset or forked: that is damage, never re-synced over.
        """
        head = self.backend.head() if up_to is None else min(up_to, self.backend.head())
        last = self.index.last_block()
        if last > head:
            raise damaged(f"chain head is block {head}, but the index already holds block "
                          f"{last} (chain truncated, node reset or forked)")
        known = self.index.last_hash()
        if known and last and "0x" + self.backend.block_hash(last).hex() != known:
            raise damaged(f"block {last} is not the block the index was built from "
                          "(node reset or forked)")
        if head <= last:
            return 0
        events = decode_events(self.abi, self.backend.logs(self.registry, last + 1, head))
        self.index.apply(events, head, self.backend.block_hash(head))
        return len(events)

    def resolve_parents(self, refs: Sequence[str]) -> list[str]:
        """Full ids of ``refs`` (ids, prefixes or names); at most 32, and one artefact named
        twice (even as a name and a prefix) is refused, never merged."""
        if len(refs) > 32:
            raise InputError("at most 32 parents")
        ids = [self.resolve(p) for p in refs]
        for ref, ident in zip(refs, ids, strict=True):
            if ids.count(ident) > 1:
                raise InputError(f"parent {ref} is listed twice (as {ident})")
        return ids

    def resolve(self, artefact_id: str) -> str:
        """Full id from an id, a unique prefix of at least 6 hex digits, or a unique name."""
        if not isinstance(artefact_id, str) or not artefact_id.strip():
            raise InputError("an artefact id or name is required")
        text = artefact_id.strip()
        self.sync()
        if _looks_like_id(text) or text.lower().startswith("0x"):
            ident = text.lower()
            if not ident.startswith("0x"):
                ident = "0x" + ident
            try:
                int(ident, 16)
            except ValueError:
                raise InputError(f"not an artefact id: {artefact_id!r}") from None
            if len(ident) == 66:
                if self.index.artefact_row(ident) is None:
                    raise NotFoundError(f"unknown artefact {artefact_id}")
                return ident
            if len(ident) > 66:
                raise InputError(f"not an artefact id: {artefact_id!r} (too long)")
            if len(ident) < 8:
                raise InputError(f"artefact id prefix {artefact_id!r} too short "
                                 "(6 hex digits min)")
            found = self.index.resolve_prefix(ident)
            if len(found) > 1:
                raise InputError(f"ambiguous artefact id prefix {artefact_id}")
            if found:
                return found[0]
        named = self.index.by_name(text)
        if len(named) > 1:
            raise InputError(f"ambiguous artefact name {text!r}: "
                             + ", ".join(named) + "; use an id")
        if not named:
            raise NotFoundError(f"unknown artefact {artefact_id}" + (
                "" if _looks_like_id(text) else
                ": not an artefact id, id prefix or name known to this ledger"))
        return named[0]

    def _artefact(self, row: tuple[Any, ...]) -> Artefact:
        k = self.lifecycle.kind_by_code(int(row[1]))
        return Artefact(row[0], k.name, k.state_name(int(row[2])), row[3], _sha(row[4]),
                        json.loads(row[6]), _sha(row[5]), int(row[7]), int(row[8]),
                        row[9] if len(row) > 9 else None)

    def artefact(self, artefact_id: str) -> Artefact:
        row = self.index.artefact_row(self.resolve(artefact_id))
        assert row is not None
        return self._artefact(row)

    def history(self, artefact_id: str) -> list[Event]:
        return self.index.events(self.resolve(artefact_id))

    def blob(self, digest: str, owner: str | None = None) -> bytes:
        """The bytes named by ``digest`` (metadata, proof bundles, claims, reports): from this
        home's store, else fetched from a member's node (the owner's first), hash-checked
        and cached. NotFoundError when no node has them."""
        if self.home.store.has(digest):
            return self.home.store.get(digest)
        from mltrail.provenance.exchange import fetch_blob

        return fetch_blob(self, digest, owner)

    def anchors(self, artefact_id: str, actor: str | None = None) -> list[Event]:
        """Anchors on an artefact, oldest first; only those sent by ``actor`` (an address or
        a local identity's name) if given. Per-sender lookups make front-running useless:
        an anchor someone else sent first is not the owner's anchor."""
        who = self._account_arg(actor) if actor is not None else None
        out = []
        for ev in self.index.events(self.resolve(artefact_id), "Anchored"):
            if who is not None and ev.actor != who:
                continue
            args = dict(ev.args)
            args["root"] = bytes.fromhex(str(args["root"])[2:])
            args["metadata_digest"] = _sha(str(args["metadata_digest"]))
            out.append(Event(ev.block, ev.log_index, ev.tx_hash, ev.name, ev.artefact_id,
                             ev.actor, ev.timestamp, args))
        return out

    def find_by_digest(self, content_digest: str) -> list[Artefact]:
        self.sync()
        rows = self.index.by_digest("0x" + to_bytes32(content_digest).hex())
        return [self._artefact(r) for r in rows]

    def find_by_owner(self, owner: str, kind: str) -> list[Artefact]:
        """Every artefact of ``kind`` registered by ``owner``, oldest first."""
        self.sync()
        return [self._artefact(r)
                for r in self.index.by_owner(owner, self.lifecycle.kind(kind).code)]

    def roles(self) -> dict[str, int]:
        """Role masks by address, from the chain's events."""
        self.sync()
        return {a: m for a, m in self.index.roles().items() if m}

    def lineage(self, artefact_id: str) -> dict[str, Any]:
        """Ancestors and descendants of an artefact (transitively), each with depth."""
        root = self.resolve(artefact_id)

        def walk(step: Callable[[str], list[str]]) -> list[dict[str, Any]]:
            return [{"depth": d, **self._artefact(self.index.artefact_row(i) or ()).as_dict()}
                    for i, d in lineage_depths(root, step).items()]

        return {"artefact": self.artefact(root).as_dict(),
                "ancestors": walk(self.index.parents_of),
                "descendants": walk(self.index.children_of)}

    def list_artefacts(self, limit: int = 1000, kind: str | None = None) -> list[Artefact]:
        """Artefacts, newest first, optionally of one kind."""
        self.sync()
        code = self.lifecycle.kind(kind).code if kind else None
        return [self._artefact(r) for r in self.index.all_artefacts(limit, code)]
