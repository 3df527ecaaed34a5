"""A ledger on any Ethereum JSON-RPC node (anvil in tests, a consortium network in use).

Transactions are signed locally with an explicit nonce, gas limit and EIP-1559 fees; a
dry-run ``eth_call`` first turns a would-be revert into a refusal with its reason, so a
refused operation costs nothing and writes nothing. Block hashes are checked by their
parent links (recomputing a remote header's hash would need every fork's header layout).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted

from mltrail.errors import LedgerError, RefusedError
from mltrail.keystore import Signer
from mltrail.ledger.backend import BlockInfo, Log, Receipt, damaged, revert_reason, sign

LOG_CHUNK = 5_000


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


class RpcBackend:
    """A JSON-RPC node at ``url``."""

    kind = "rpc"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except Exception as exc:  # noqa: BLE001 - requests/URL errors of many kinds
            raise LedgerError(f"cannot reach Ethereum node at {url}: "
                              f"{type(exc).__name__}") from exc
        self._timestamps: dict[int, int] = {}

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def _timestamp(self, block: int) -> int:
        if block not in self._timestamps:
            self._timestamps[block] = int(self.w3.eth.get_block(block)["timestamp"])
        return self._timestamps[block]

    def transact(self, account: Signer, to: str | None, data: bytes, gas: int) -> Receipt:
        sender = account.address
        call: dict[str, Any] = {"from": sender, "data": data, "gas": gas}
        if to is not None:
            call["to"] = to
        try:
            self.w3.eth.call(call)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise RefusedError(f"refused by contract: {revert_reason(_hex_bytes(exc.data or b''))}"
                               if exc.data else f"refused by contract: {exc.message}") from exc
        latest = self.w3.eth.get_block("latest")
        base = int(latest.get("baseFeePerGas", 0))
        priority = int(self.w3.eth.max_priority_fee)
        max_fee = 2 * base + priority
        nonce = int(self.w3.eth.get_transaction_count(sender, "pending"))
        raw = sign(account, self.chain_id, nonce, to, data, gas, max_fee, priority)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # noqa: BLE001 - nodes word this error differently
            if "fund" not in str(exc).lower():
                raise LedgerError(f"node refused the transaction: {exc}") from exc
            balance = int(self.w3.eth.get_balance(sender))
            raise LedgerError(f"identity {sender} has {balance} wei on chain {self.chain_id}; "
                              f"it needs up to {gas * max_fee} wei for this transaction",
                              hint="fund the identity's address first") from exc
        try:
            rc = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except TimeExhausted as exc:
            raise LedgerError(f"transaction 0x{bytes(tx_hash).hex()} not mined in 120 s") from exc
        if int(rc["status"]) != 1:
            raise RefusedError(f"transaction 0x{bytes(tx_hash).hex()} reverted on chain")
        block = int(rc["blockNumber"])
        ts = self._timestamp(block)
        logs = tuple(self._log(lg, ts) for lg in rc["logs"])
        created = rc.get("contractAddress")
        return Receipt("0x" + bytes(rc["transactionHash"]).hex(), block, int(rc["gasUsed"]), ts,
                       logs, to_checksum_address(created) if created else None,
                       _hex_bytes(rc["blockHash"]))

    def _log(self, lg: Any, ts: int | None = None) -> Log:
        block = int(lg["blockNumber"])
        return Log(to_checksum_address(lg["address"]), tuple(_hex_bytes(t) for t in lg["topics"]),
                   _hex_bytes(lg["data"]), block, "0x" + _hex_bytes(lg["transactionHash"]).hex(),
                   int(lg["logIndex"]), ts if ts is not None else self._timestamp(block))

    def call(self, to: str, data: bytes, block: int | None = None) -> bytes:
        """A read-only call against the state at ``block`` (default: the latest)."""
        try:
            return bytes(self.w3.eth.call({"to": to, "data": data},  # type: ignore[typeddict-item]
                                          block if block is not None else "latest"))
        except ContractLogicError as exc:
            raise RefusedError(f"refused by contract: {exc.message}") from exc

    def code_at(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(to_checksum_address(address)))

    def logs(self, address: str, from_block: int, to_block: int) -> list[Log]:
        out: list[Log] = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + LOG_CHUNK - 1)
            raw = self.w3.eth.get_logs({"address": to_checksum_address(address),
                                        "fromBlock": start, "toBlock": end})
            out += [self._log(lg) for lg in raw]
            start = end + 1
        return out

    def blocks(self, from_block: int, to_block: int) -> Iterator[BlockInfo]:
        for n in range(from_block, to_block + 1):
            b = self.w3.eth.get_block(n)
            yield BlockInfo(n, bytes(b["hash"]), bytes(b["parentHash"]), int(b["timestamp"]), True)

    def block_hash(self, number: int) -> bytes:
        try:
            return bytes(self.w3.eth.get_block(number)["hash"])
        except Exception as exc:  # noqa: BLE001 - BlockNotFound, or a node that answers junk
            raise damaged(f"the node at {self.url} has no block {number}") from exc

    def close(self) -> None:
        pass
