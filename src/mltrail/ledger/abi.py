"""Fast ABI encoding and event decoding for one compiled contract.

web3's contract objects re-validate every call (milliseconds each); this keeps the
selectors, types and event topics precomputed and uses eth-abi directly.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

from mltrail.errors import LedgerError
from mltrail.ledger.backend import Log


def _type(arg: dict[str, Any]) -> str:
    t = str(arg["type"])
    if t.startswith("tuple"):
        inner = ",".join(_type(c) for c in arg["components"])
        return f"({inner}){t[5:]}"
    return t


class ContractABI:
    """Encode calls to and decode events from a contract described by ``abi``."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        self.events: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
        for item in abi:
            if item["type"] == "function":
                ins = [_type(a) for a in item["inputs"]]
                outs = [_type(a) for a in item.get("outputs", [])]
                sig = f"{item['name']}({','.join(ins)})"
                self.functions[item["name"]] = (keccak(text=sig)[:4], ins, outs)
            elif item["type"] == "event":
                sig = f"{item['name']}({','.join(_type(a) for a in item['inputs'])})"
                self.events[keccak(text=sig)] = (item["name"], item["inputs"])
        self.constructor_types = next(
            ([_type(a) for a in i["inputs"]] for i in abi if i["type"] == "constructor"), [])

    def encode(self, fn: str, *args: Any) -> bytes:
        selector, ins, _ = self.functions[fn]
        return selector + encode(ins, list(args))

    def decode_output(self, fn: str, data: bytes) -> tuple[Any, ...]:
        return tuple(decode(self.functions[fn][2], data))

    def encode_constructor(self, bytecode: bytes, *args: Any) -> bytes:
        return bytecode + encode(self.constructor_types, list(args))

    def decode_log(self, log: Log) -> tuple[str, dict[str, Any]]:
        """(event name, arguments) of a log emitted by this contract."""
        if not log.topics or log.topics[0] not in self.events:
            raise LedgerError(f"unknown event in block {log.block}")
        name, inputs = self.events[log.topics[0]]
        indexed = [a for a in inputs if a.get("indexed")]
        plain = [a for a in inputs if not a.get("indexed")]
        args: dict[str, Any] = {}
        for arg, topic in zip(indexed, log.topics[1:], strict=True):
            args[arg["name"]] = decode([_type(arg)], topic)[0]
        values = decode([_type(a) for a in plain], log.data)
        for arg, value in zip(plain, values, strict=True):
            args[arg["name"]] = value
        return name, args
