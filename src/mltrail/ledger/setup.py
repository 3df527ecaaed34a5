"""Create a home: deploy a registry (embedded or on a node) or join an existing one.

A home is built in a temporary folder beside its target and renamed into place only when
every step succeeded, so a failed ``init`` leaves nothing behind. Joining reads the
lifecycle the admin published on chain, so every member interprets codes the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from mltrail.config import Home
from mltrail.config_models import Settings
from mltrail.errors import InputError, LedgerError
from mltrail.identity import create_identity, unlock
from mltrail.ledger import contracts
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Backend
from mltrail.ledger.trust import check_code, check_lifecycle, new_pins, published_lifecycle
from mltrail.lifecycle import Lifecycle, load

GAS_DEPLOY = 3_000_000


def _lifecycle_gas(lc: Lifecycle) -> int:
    """22,100 per new rule or kind slot, 16 per document byte (calldata) + 8 (log), slack."""
    keys, _, ids, *_ = lc.contract_tables()
    return 800_000 + 30_000 * len(keys) + 70_000 * len(ids) + 40 * len(lc.document)


def _backend(tmp: Home, rpc_url: str | None) -> Backend:
    if rpc_url:
        from mltrail.ledger.rpc import RpcBackend

        return RpcBackend(rpc_url)
    from mltrail.ledger.embedded import EmbeddedBackend

    return EmbeddedBackend(tmp.chain_db, tmp.lock_path, create=True)


def _published_lifecycle(backend: Backend, abi: ContractABI, registry: str) -> Lifecycle:
    check_code(backend, registry, joining=True)
    try:
        return published_lifecycle(backend, abi, registry)
    except LedgerError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means it is not our registry
        raise LedgerError(f"{registry} is not a usable mltrail ArtefactRegistry: {exc}") from exc


def init_home(path: str | Path, password: str | None = None, lifecycle: str | Path | None = None,
              rpc_url: str | None = None, registry: str | None = None,
              identity: str | None = None, private_key: bytes | None = None) -> Home:
    """Create a home at ``path``: deploy a new registry, or join ``registry`` at ``rpc_url``."""
    target = Home(path)
    if target.root.exists() and not target.root.is_dir():
        raise InputError(f"{target.root} is a file, not a folder")
    if target.exists():
        raise InputError(f"{target.root} is already an mltrail home")
    if target.root.exists() and any(target.root.iterdir()):
        raise InputError(f"{target.root} exists and is not empty")
    if registry and not rpc_url:
        raise InputError("--registry needs --ledger URL (joining is for shared networks)")
    if registry and not is_address(registry):
        raise InputError(f"not an address: {registry}")
    if registry and lifecycle:
        raise InputError("a joining member uses the registry's published lifecycle; "
                         "drop --lifecycle")
    name = identity or ("member" if registry else "admin")
    lc = None if registry else load(lifecycle)
    target.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Home(tempfile.mkdtemp(prefix=f".{target.root.name}.init-", dir=target.root.parent))
    backend: Backend | None = None
    try:
        backend = _backend(tmp, rpc_url)
        create_identity(tmp, name, password, private_key)
        compiled = contracts.load("ArtefactRegistry")
        abi = ContractABI(compiled.abi)
        if registry:
            registry = to_checksum_address(registry)
            lc = _published_lifecycle(backend, abi, registry)
        else:
            assert lc is not None
            account = unlock(tmp, name, password)
            rc = backend.transact(account, None, abi.encode_constructor(
                compiled.bytecode, lc.role_mask(lc.roles),
                lc.role_mask(["admin"]) if "admin" in lc.roles else 0), GAS_DEPLOY)
            assert rc.contract_address is not None
            registry = rc.contract_address
            backend.transact(account, registry, abi.encode(
                "publish_lifecycle", lc.document, *lc.contract_tables()), _lifecycle_gas(lc))
            check_code(backend, registry)
            check_lifecycle(backend, abi, registry, lc)
        tmp.lifecycle_path.write_bytes(lc.document)
        tmp.save_pins(new_pins(backend, registry))
        tmp.save_settings(Settings(backend="rpc" if rpc_url else "embedded", rpc_url=rpc_url,
                                   chain_id=backend.chain_id, registry=registry, identity=name,
                                   lifecycle_digest=lc.digest))
        backend.close()
        backend = None
        if target.root.exists():
            target.root.rmdir()
        tmp.root.rename(target.root)
    except BaseException:
        if backend is not None:
            backend.close()
        shutil.rmtree(tmp.root, ignore_errors=True)
        raise
    return target
