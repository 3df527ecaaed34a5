"""What every ledger backend offers, and the one way to build and sign a transaction.

A backend is a chain the client can write to (``transact``), read from (``call``,
``logs``) and check (``blocks``). Transactions are always signed locally with
eth-account, with an explicit nonce, gas limit and fee, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi import decode
from eth_account.signers.local import LocalAccount

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
    def transact(self, account: LocalAccount, to: str | None, data: bytes, gas: int) -> Receipt: ...
    def call(self, to: str, data: bytes) -> bytes: ...
    def code_at(self, address: str) -> bytes: ...
    def logs(self, address: str, from_block: int, to_block: int) -> list[Log]: ...
    def blocks(self, from_block: int, to_block: int) -> Iterator[BlockInfo]: ...
    def close(self) -> None: ...


def sign(account: LocalAccount, chain_id: int, nonce: int, to: str | None, data: bytes,
         gas: int, max_fee: int, priority_fee: int) -> bytes:
    """Sign an EIP-1559 transaction; returns the raw bytes."""
    tx: dict[str, Any] = {
        "type": 2, "chainId": chain_id, "nonce": nonce, "gas": gas, "value": 0,
        "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority_fee, "data": data,
    }
    if to is not None:
        tx["to"] = to
    signed = account.sign_transaction(tx)
    return bytes(signed.raw_transaction)


def revert_reason(output: bytes) -> str:
    """Decode a Vyper/Solidity ``Error(string)`` revert payload."""
    if output[:4] == ERROR_SELECTOR:
        try:
            return str(decode(["string"], output[4:])[0])
        except Exception:  # noqa: BLE001 - malformed payload: fall through
            pass
    return "reverted" if not output else f"reverted (0x{output.hex()})"
