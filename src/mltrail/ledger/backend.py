"""What every ledger backend offers, and the one way to build and sign a transaction.

A backend is a chain the client can write to (``transact``), read from (``call``,
``logs``) and check (``blocks``). Transactions are always signed locally (eth-keys),
with an explicit nonce, gas limit and fee, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_abi import decode
from eth_keys import keys
from eth_typing import Address
from eth_utils import to_canonical_address

from mltrail.errors import VerificationError
from mltrail.keystore import Signer

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


@dataclass(frozen=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block: int
    tx_hash: str
    log_index: int
    timestamp: int


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block: int
    gas_used: int
    timestamp: int
    logs: tuple[Log, ...]
    contract_address: str | None = None
    block_hash: bytes = b""


@dataclass(frozen=True)
class BlockInfo:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    hash_ok: bool  # the block's hash recomputed from its header matches


class Backend(Protocol):
    kind: str
    chain_id: int

    def head(self) -> int: ...
    def transact(self, account: Signer, to: str | None, data: bytes, gas: int) -> Receipt: ...
    def call(self, to: str, data: bytes, block: int | None = None) -> bytes: ...
    def code_at(self, address: str) -> bytes: ...
    def logs(self, address: str, from_block: int, to_block: int) -> list[Log]: ...
    def blocks(self, from_block: int, to_block: int) -> Iterator[BlockInfo]: ...
    def block_hash(self, number: int) -> bytes: ...
    def close(self) -> None: ...


def damaged(what: str) -> VerificationError:
    """The one error for a chain that is not the one the home was built on (exit 1).

    Never hints at ``reindex``: rebuilding the index from a damaged chain launders it.
    """
    return VerificationError(f"ledger damaged: {what}")


def sign(account: Signer, chain_id: int, nonce: int, to: str | None, data: bytes,
         gas: int, max_fee: int, priority_fee: int) -> bytes:
    """Sign an EIP-1559 transaction with ``account``'s key; returns the raw typed bytes.

    Built with py-evm's transaction builder over eth-keys (coincurve): byte-for-byte the
    transaction eth-account would sign (a test checks this), five times faster.
    """
    unsigned = CancunTransactionBuilder.new_unsigned_dynamic_fee_transaction(
        chain_id=chain_id, nonce=nonce, max_priority_fee_per_gas=priority_fee,
        max_fee_per_gas=max_fee, gas=gas, to=to_canonical_address(to) if to else Address(b""),
        value=0, data=data, access_list=[])
    return bytes(unsigned.as_signed_transaction(keys.PrivateKey(bytes(account.key))).encode())


def revert_reason(output: bytes) -> str:
    """Decode a Vyper/Solidity ``Error(string)`` revert payload."""
    if output[:4] == ERROR_SELECTOR:
        try:
            return str(decode(["string"], output[4:])[0])
        except Exception:  # noqa: BLE001 - malformed payload: fall through
            pass
    return "reverted" if not output else f"reverted (0x{output.hex()})"
