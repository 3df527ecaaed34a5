"""Typed operations on the ArtefactRegistry, the same for every backend.

``Ledger`` is what the CLI, the server and other packages call: register, transition,
anchor, roles, and reads served from the event index after catching it up with the
chain. It encodes names with the lifecycle and explains refusals with it, but every
rule is decided by the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address

from mltrail.config import Home, Settings, find_home
from mltrail.errors import InputError, LedgerError, NotFoundError, RefusedError
from mltrail.identity import unlock
from mltrail.ledger import contracts
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Backend, Receipt
from mltrail.ledger.index import EventIndex, IndexedEvent, decode_events
from mltrail.lifecycle import Lifecycle, parse
from mltrail.provenance.digest import canonical_json, to_bytes32

ZERO32 = b"\x00" * 32
GAS_REGISTER, GAS_PER_PARENT, GAS_TRANSITION, GAS_ANCHOR, GAS_ADMIN = (
    150_000, 15_000, 100_000, 100_000, 300_000)


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

        backend = EmbeddedBackend(home.chain_db, home.lock_path)
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
        self._account: LocalAccount | None = None
        self.registry = to_checksum_address(settings.registry)
        self.abi = ContractABI(contracts.load("ArtefactRegistry").abi)
        self.index = EventIndex(home.index_db)

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
    def account(self) -> LocalAccount:
        """The unlocked key (decrypted on first write only)."""
        if self._account is None:
            pw = self._password() if callable(self._password) else self._password
            self._account = unlock(self.home, self.identity, pw)
        return self._account

    @property
    def address(self) -> str:
        from mltrail.identity import address_of

        return self._account.address if self._account else address_of(self.home, self.identity)

    # -- writes -----------------------------------------------------------------------------

    def _send(self, fn: str, gas: int, *args: Any) -> Receipt:
        data = self.abi.encode(fn, *args)
        receipt = self.backend.transact(self.account, self.registry, data, gas)
        self._index_receipt(receipt)
        return receipt

    def _index_receipt(self, receipt: Receipt) -> None:
        ours = [lg for lg in receipt.logs if lg.address == self.registry]
        # one transaction per block only on the embedded chain; elsewhere the block may
        # hold other members' transactions, so read the whole block's logs
        if self.backend.kind == "embedded" and self.index.last_block() == receipt.block - 1:
            self.index.apply(decode_events(self.abi, ours), receipt.block)
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
                 metadata: dict[str, Any] | None = None) -> Registered:
        """Register an artefact of ``kind`` whose bytes hash to ``content_digest``."""
        k = self.lifecycle.kind(kind)
        parent_ids = [self.resolve(p) for p in parents]
        if len(parent_ids) > 32:
            raise InputError("at most 32 parents")
        metadata_digest = self.home.store.put(canonical_json(metadata or {}))
        artefact_id = self.artefact_id_for(kind, content_digest, metadata_digest)
        try:
            rc = self._send("register", GAS_REGISTER + GAS_PER_PARENT * len(parent_ids),
                            to_bytes32(artefact_id), k.code, to_bytes32(content_digest),
                            [to_bytes32(p) for p in parent_ids], to_bytes32(metadata_digest))
        except RefusedError as exc:
            raise self._explain_register(exc, kind, artefact_id) from exc
        return Registered(rc.tx_hash, rc.block, rc.gas_used, rc.timestamp, artefact_id)

    def transition(self, artefact_id: str, to_state: str,
                   evidence_digest: str | None = None) -> TxResult:
        """Move an artefact to ``to_state``, citing ``evidence_digest``."""
        art = self.artefact(artefact_id)
        k = self.lifecycle.kind(art.kind)
        code = k.state_code(to_state)
        try:
            rc = self._send("transition", GAS_TRANSITION, to_bytes32(art.id), code,
                            _digest32(evidence_digest))
        except RefusedError as exc:
            raise self._explain_transition(exc, art, to_state) from exc
        return TxResult.of(rc)

    def anchor(self, artefact_id: str, root: bytes, count: int,
               metadata_digest: str | None = None) -> TxResult:
        """Put the Merkle root of ``count`` records about an artefact on chain."""
        if len(root) != 32:
            raise InputError("a Merkle root is 32 bytes")
        aid = self.resolve(artefact_id)
        rc = self._send("anchor", GAS_ANCHOR, to_bytes32(aid), root, count,
                        _digest32(metadata_digest))
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
        rc = self._send("grant_role", GAS_ADMIN, self._account_arg(account), self._role_mask(role))
        return TxResult.of(rc)

    def revoke_role(self, account: str, role: str) -> TxResult:
        rc = self._send("revoke_role", GAS_ADMIN, self._account_arg(account), self._role_mask(role))
        return TxResult.of(rc)

    def transfer_admin(self, account: str) -> TxResult:
        rc = self._send("transfer_admin", GAS_ADMIN, self._account_arg(account))
        return TxResult.of(rc)

    def accept_admin(self) -> TxResult:
        rc = self._send("accept_admin", GAS_ADMIN)
        return TxResult.of(rc)

    # -- refusals explained by the lifecycle ---------------------------------------------

    def _my_roles(self) -> list[str]:
        return self.lifecycle.role_names(self.roles().get(self.address, 0))

    def _explain_register(self, exc: RefusedError, kind: str, artefact_id: str) -> RefusedError:
        k = self.lifecycle.kind(kind)
        if "missing role" in exc.message:
            return RefusedError(f"{exc.message}: registering a {kind} needs one of "
                                f"{', '.join(k.register_roles)}; you ({self.identity}) have "
                                f"{', '.join(self._my_roles()) or 'no role'}")
        if "exists" in exc.message:
            return RefusedError(f"{exc.message}: you already registered this {kind} "
                                f"as {artefact_id}")
        return exc

    def _explain_transition(self, exc: RefusedError, art: Artefact, to: str) -> RefusedError:
        k = self.lifecycle.kind(art.kind)
        allowed = k.allowed(art.state, to)
        if "missing role" in exc.message:
            return RefusedError(f"{exc.message}: {art.kind} {art.state} -> {to} needs one of "
                                f"{', '.join(allowed)}; you ({self.identity}) have "
                                f"{', '.join(self._my_roles()) or 'no role'}")
        if "not allowed" in exc.message:
            nxt = sorted({t for t in k.states if k.allowed(art.state, t)})
            return RefusedError(f"{exc.message}: {art.kind} cannot go {art.state} -> {to}; "
                                f"from {art.state} it may go to {', '.join(nxt) or 'nothing'}")
        return exc

    # -- reads ------------------------------------------------------------------------------

    def sync(self) -> int:
        """Catch the index up with the chain; returns the number of new events."""
        head = self.backend.head()
        last = self.index.last_block()
        if head <= last:
            return 0
        events = decode_events(self.abi, self.backend.logs(self.registry, last + 1, head))
        self.index.apply(events, head)
        return len(events)

    def resolve(self, artefact_id: str) -> str:
        """Full id from an id or a unique prefix of at least 6 hex digits."""
        ident = artefact_id.strip().lower()
        if not ident.startswith("0x"):
            ident = "0x" + ident
        try:
            int(ident, 16)
        except ValueError:
            raise InputError(f"not an artefact id: {artefact_id!r}") from None
        self.sync()
        if len(ident) == 66:
            if self.index.artefact_row(ident) is None:
                raise NotFoundError(f"unknown artefact {artefact_id}")
            return ident
        if len(ident) < 8:
            raise InputError(f"artefact id prefix {artefact_id!r} too short (6 hex digits min)")
        found = self.index.resolve_prefix(ident)
        if not found:
            raise NotFoundError(f"unknown artefact {artefact_id}")
        if len(found) > 1:
            raise InputError(f"ambiguous artefact id prefix {artefact_id}")
        return found[0]

    def _artefact(self, row: tuple[Any, ...]) -> Artefact:
        k = self.lifecycle.kind_by_code(int(row[1]))
        return Artefact(row[0], k.name, k.state_name(int(row[2])), row[3], _sha(row[4]),
                        json.loads(row[6]), _sha(row[5]), int(row[7]), int(row[8]))

    def artefact(self, artefact_id: str) -> Artefact:
        row = self.index.artefact_row(self.resolve(artefact_id))
        assert row is not None
        return self._artefact(row)

    def history(self, artefact_id: str) -> list[Event]:
        return self.index.events(self.resolve(artefact_id))

    def anchors(self, artefact_id: str) -> list[Event]:
        out = []
        for ev in self.index.events(self.resolve(artefact_id), "Anchored"):
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

    def roles(self) -> dict[str, int]:
        """Role masks by address, from the chain's events."""
        self.sync()
        return {a: m for a, m in self.index.roles().items() if m}

    def lineage(self, artefact_id: str) -> dict[str, Any]:
        """Ancestors and descendants of an artefact (transitively), each with depth."""
        root = self.resolve(artefact_id)

        def walk(step: Any) -> list[dict[str, Any]]:
            seen: dict[str, int] = {}
            frontier, depth = [root], 0
            while frontier:
                depth += 1
                nxt = []
                for node in frontier:
                    for other in step(node):
                        if other not in seen and other != root:
                            seen[other] = depth
                            nxt.append(other)
                frontier = nxt
            return [{"depth": d, **self._artefact(self.index.artefact_row(i) or ()).as_dict()}
                    for i, d in seen.items()]

        return {"artefact": self.artefact(root).as_dict(),
                "ancestors": walk(self.index.parents_of),
                "descendants": walk(self.index.children_of)}

    def list_artefacts(self, limit: int = 1000, kind: str | None = None) -> list[Artefact]:
        """Artefacts, newest first, optionally of one kind."""
        self.sync()
        code = self.lifecycle.kind(kind).code if kind else None
        return [self._artefact(r) for r in self.index.all_artefacts(limit, code)]
