"""What a home trusts about its chain, and the checks that it is still that chain.

A home pins (``pins.json``, outside the chain database) the genesis hash, the registry's
code hash and the highest head it has seen with that block's hash. Before every write
and in ``ledger check`` the node is compared with the pins: a deleted or replaced chain
file, a restarted or forked node, or a registry without the expected code is reported
as ``ledger damaged: ...`` (exit 1). The published lifecycle is checked the same way:
its on-chain digest is the sha256 of the document, and the tables the contract stored
are the tables this client derives from that document.

Pins are written at ``init`` and re-created only by :func:`retrust`, which the user asks
for explicitly (``mltrail ledger trust --i-accept-unverifiable-history``) and which
names what the lost pins can no longer vouch for.

This module never repairs anything and never writes to the chain.
"""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address

from mltrail.config import Home
from mltrail.config_models import Pins
from mltrail.errors import LedgerError, MltrailError, VerificationError
from mltrail.ledger import contracts
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Backend, damaged
from mltrail.lifecycle import Lifecycle, parse
from mltrail.provenance.digest import to_bytes32


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def expected_code_hash() -> str:
    """keccak256 of the ArtefactRegistry runtime code this client was built with."""
    return _hex(contracts.load("ArtefactRegistry").code_hash)


def code_hash(backend: Backend, registry: str) -> str:
    return _hex(keccak(backend.code_at(registry)))


def check_code(backend: Backend, registry: str, joining: bool = False) -> str:
    """The registry holds exactly the compiled contract (else damage, or a refusal to join);
    returns its code hash."""
    try:
        code = backend.code_at(registry)
    except MltrailError:
        raise
    except Exception as exc:  # noqa: BLE001 - py-evm's MissingTrieNode, MissingBytecode ...
        raise damaged(f"the code of registry {registry} cannot be read from the chain "
                      f"({type(exc).__name__}: its state is damaged)") from exc
    found = _hex(keccak(code))
    if found == expected_code_hash():
        return found
    what = ("no contract" if not code else
            f"code with hash {found}, not mltrail's ArtefactRegistry v3 ({expected_code_hash()})")
    if joining:
        raise LedgerError(f"{what} at {registry} on chain {backend.chain_id}")
    raise damaged(f"registry {registry} holds {what}")


def new_pins(backend: Backend, registry: str) -> Pins:
    head = backend.head()
    return Pins(genesis_hash=_hex(backend.block_hash(0)),
                registry_code_hash=code_hash(backend, registry), head=head,
                head_hash=_hex(backend.block_hash(head)))


ACCEPT_FLAG = "--i-accept-unverifiable-history"
RETRUST = f"if you trust this chain as it is now, run 'mltrail ledger trust {ACCEPT_FLAG}'"


def check_pins(home: Home, backend: Backend, registry: str) -> Pins:
    """Compare the node with what ``home`` pinned. A home without pins is refused (damage):
    pins are written only at ``init`` and by :func:`retrust`, never re-created silently,
    since new pins would bless whatever chain is there now (a history cut back or
    rewritten while they were gone)."""
    found = check_code(backend, registry)
    pins = home.pins()
    if pins is None:
        raise VerificationError(
            f"ledger damaged: {home.pins_path} is missing, so nothing remembers the chain this "
            "home saw; nothing is written, checked or indexed anew until you trust the chain "
            "again",
            hint=RETRUST)
    genesis = _hex(backend.block_hash(0))
    if genesis != pins.genesis_hash:
        raise damaged(f"genesis block is {genesis}, the home was built on {pins.genesis_hash} "
                      f"(chain replaced or node reset; pinned in {home.pins_path})")
    if found != pins.registry_code_hash:
        raise damaged(f"registry {registry} code changed since {home.pins_path} was written")
    head = backend.head()
    if head < pins.head:
        raise damaged(f"chain head is block {head}, below block {pins.head} this home already "
                      "saw (chain truncated, node reset or forked)")
    if pins.head_hash is not None:
        at = _hex(backend.block_hash(pins.head))
        if at != pins.head_hash:
            raise damaged(f"block {pins.head} is {at}, this home saw {pins.head_hash} "
                          "(history rewritten or node forked)")
    return pins


def raise_head(home: Home, pins: Pins, head: int, head_hash: bytes,
               verified: bool = False) -> Pins:
    """Remember a higher head (and, after a full check, that it was verified)."""
    current = home.pins() or pins
    if head < current.head and not verified:
        return current
    update = {"head": head, "head_hash": _hex(head_hash)} if head >= current.head else {}
    if verified:
        update["verified_head"] = max(head, current.verified_head)
    new = current.model_copy(update=update)
    if new != current:
        home.save_pins(new)
    return new


def published_lifecycle(backend: Backend, abi: ContractABI, registry: str) -> Lifecycle:
    """The lifecycle published at ``registry``, checked against the on-chain digests."""
    registry = to_checksum_address(registry)
    digest = abi.decode_output("lifecycle_digest",
                               backend.call(registry, abi.encode("lifecycle_digest")))[0]
    docs = [args["document"] for name, args in
            (abi.decode_log(log) for log in backend.logs(registry, 0, backend.head()))
            if name == "LifecyclePublished" and args["digest"] == digest]
    if not docs:
        raise LedgerError(f"registry {registry} has published no lifecycle")
    lc = parse(docs[-1], f"lifecycle on chain at {registry}")
    check_lifecycle(backend, abi, registry, lc)
    return lc


def check_lifecycle(backend: Backend, abi: ContractABI, registry: str, lc: Lifecycle) -> None:
    """The on-chain digest is the document's and the on-chain tables are derived from it."""
    (digest,) = abi.decode_output("lifecycle_digest",
                                  backend.call(registry, abi.encode("lifecycle_digest")))
    if digest != to_bytes32(lc.digest):
        raise damaged(f"registry {registry} enforces lifecycle {_hex(digest)}, "
                      f"this home's lifecycle is {lc.digest}")
    (tables,) = abi.decode_output("tables_digest",
                                  backend.call(registry, abi.encode("tables_digest")))
    if tables != lc.tables_digest:
        raise damaged(f"registry {registry} enforces rule tables {_hex(tables)} that are not "
                      f"derived from its lifecycle document ({_hex(lc.tables_digest)})")


def lost_with_pins(home: Home, backend: Backend) -> list[str]:
    """What a home without pins can no longer vouch for, and the evidence left elsewhere
    (the index's last block) that the chain moved back or changed since."""
    head = backend.head()
    lost = [f"any history before block {head} (the chain's head now) that was cut back or "
            "rewritten while the pins were missing can no longer be told from the real one"]
    from mltrail.ledger.index import EventIndex

    index = EventIndex(home.index_db)
    try:
        last, known = index.last_block(), index.last_hash()
    finally:
        index.close()
    if last > head:
        lost.append(f"the index had seen block {last}, above the chain's head {head}: "
                    "blocks were removed")
    elif known and last and _hex(backend.block_hash(last)) != known:
        lost.append(f"the index had seen block {last} as {known}, the chain holds "
                    f"{_hex(backend.block_hash(last))}: history was rewritten")
    return lost


def retrust(home: Home, backend: Backend, registry: str) -> tuple[Pins, list[str]]:
    """Pin the chain as it is now, for a home whose ``pins.json`` is missing; returns the
    new pins and :func:`lost_with_pins`. The caller verifies the chain itself first
    (``check.trust``). A home that has pins is refused: nothing is lost to re-trust."""
    if home.pins() is not None:
        raise LedgerError(f"{home.pins_path} exists; this home still trusts its pinned chain "
                          "(nothing to re-trust)")
    check_code(backend, registry)
    lost = lost_with_pins(home, backend)
    pins = new_pins(backend, registry)
    home.save_pins(pins)
    return pins, lost
