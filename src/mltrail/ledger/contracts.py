"""Compile the Vyper contracts once and load their cached ABI and bytecode.

Sources live in ``contracts/`` at the repository root; compiled artefacts are cached in
``mltrail/contracts_build/<Name>.json`` with the SHA-256 of the source they came from.
``mltrail-build-contracts`` (or :func:`build_all`) refreshes the cache; a test checks
that the cache matches the source. Loading never compiles, so running needs no vyper.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mltrail._fs import atomic_write
from mltrail.errors import LedgerError

SOURCE_DIR = Path(__file__).resolve().parents[3] / "contracts"
BUILD_DIR = Path(__file__).resolve().parents[1] / "contracts_build"
CONTRACTS = ("ArtefactRegistry", "AuditToken", "AuditMarket")


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_sha256: str
    compiler: str
    runtime: bytes = b""  # the code a deployment leaves on chain (no immutables)

    @property
    def code_hash(self) -> bytes:
        """keccak256 of the runtime code: what ``check`` expects at the registry address."""
        from eth_utils import keccak

        return keccak(self.runtime)


def source_digest(name: str) -> str:
    return hashlib.sha256((SOURCE_DIR / f"{name}.vy").read_bytes()).hexdigest()


def compile_contract(name: str) -> CompiledContract:
    """Compile ``contracts/<name>.vy`` with the vyper package."""
    import vyper

    src = (SOURCE_DIR / f"{name}.vy").read_text()
    out = vyper.compile_code(src, output_formats=["abi", "bytecode", "bytecode_runtime"])
    return CompiledContract(name, out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x")),
                            source_digest(name), f"vyper-{vyper.__version__}",
                            bytes.fromhex(out["bytecode_runtime"].removeprefix("0x")))


def build_all() -> list[Path]:
    """Compile every contract and write the cache."""
    written = []
    for name in CONTRACTS:
        c = compile_contract(name)
        doc = {"name": c.name, "abi": c.abi, "bytecode": c.bytecode.hex(),
               "source_sha256": c.source_sha256, "compiler": c.compiler,
               "runtime": c.runtime.hex()}
        path = BUILD_DIR / f"{name}.json"
        atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        written.append(path)
    return written


@cache
def load(name: str) -> CompiledContract:
    """The cached compiled contract ``name``."""
    path = BUILD_DIR / f"{name}.json"
    if not path.exists():
        raise LedgerError(f"compiled contract {name} missing at {path}",
                          hint="run 'python -m mltrail.ledger.contracts'")
    doc = json.loads(path.read_text())
    return CompiledContract(doc["name"], doc["abi"], bytes.fromhex(doc["bytecode"]),
                            doc["source_sha256"], doc["compiler"],
                            bytes.fromhex(doc.get("runtime", "")))


if __name__ == "__main__":
    for p in build_all():
        print(p)
