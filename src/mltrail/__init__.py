"""mltrail: accountable machine learning on a shared provenance ledger.

The public API. Names are imported on first use (PEP 562), so ``import mltrail`` stays
cheap for the command line; ``docs/python-api.md`` has a runnable example for each::

    import mltrail
    home = mltrail.init_home("work/.mltrail", password="pw")      # a new embedded ledger
    with mltrail.Ledger.open(home, password="pw") as led:
        reg, hashed = mltrail.register_path(led, "data.csv", "dataset")
"""

from __future__ import annotations

from importlib import import_module

from mltrail import _lazy

_lazy.install()  # before anything imports py-evm: see mltrail/_lazy.py

# not ``typing.TYPE_CHECKING``: importing typing costs every command about 10 ms
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the ledger
    "Ledger": "mltrail.ledger.client",
    "init_home": "mltrail.ledger.setup",
    "create_identity": "mltrail.identity",
    "check_ledger": "mltrail.ledger.check:check",
    # provenance
    "register_path": "mltrail.provenance.artefacts",
    "activity": "mltrail.provenance.capture",
    # Proof-of-Learning
    "record_loop": "mltrail.pol.loop",
    "LoopRecorder": "mltrail.pol.loop",
    "ledger_init": "mltrail.pol.loop",
    "ArrayDataset": "mltrail.pol.loopdata",
    "FolderDataset": "mltrail.pol.loopdata",
    "verify_bundle": "mltrail.pol.verifier",
    "publish_model": "mltrail.pol.onchain",
    "record_pol_verdict": "mltrail.pol.onchain:record_verdict",
    # inference audits
    "AuditConfig": "mltrail.audit.runner",
    "run_audit": "mltrail.audit.runner",
    "record_audit_verdict": "mltrail.audit.runner:record_verdict",
    "register_service": "mltrail.audit.claims",
    "load_claims": "mltrail.audit.claims",
    "sign_receipt": "mltrail.audit.receipts",
    "ReceiptVerifier": "mltrail.audit.receipts",
    "AuditReport": "mltrail.audit.result",
    "ServiceInfo": "mltrail.audit.wire",
    "AdapterSpec": "mltrail.audit.adapter",
    "load_adapter": "mltrail.audit.adapter",
    "open_target": "mltrail.audit.protocols",
    "probes_from_data": "mltrail.audit.probes:from_data",
    # errors
    "MltrailError": "mltrail.errors",
    "InputError": "mltrail.errors",
    "RefusedError": "mltrail.errors",
    "VerificationError": "mltrail.errors",
    "LedgerError": "mltrail.errors",
    "NetworkError": "mltrail.errors",
}

__all__ = [
    "AdapterSpec",
    "ArrayDataset",
    "AuditConfig",
    "AuditReport",
    "FolderDataset",
    "InputError",
    "Ledger",
    "LedgerError",
    "LoopRecorder",
    "MltrailError",
    "NetworkError",
    "ReceiptVerifier",
    "RefusedError",
    "ServiceInfo",
    "VerificationError",
    "activity",
    "check_ledger",
    "create_identity",
    "init_home",
    "ledger_init",
    "load_adapter",
    "load_claims",
    "open_target",
    "probes_from_data",
    "publish_model",
    "record_audit_verdict",
    "record_loop",
    "record_pol_verdict",
    "register_path",
    "register_service",
    "run_audit",
    "sign_receipt",
    "verify_bundle",
]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'mltrail' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # for type checkers and editors; never executed
    from mltrail.audit.adapter import AdapterSpec, load_adapter
    from mltrail.audit.claims import load_claims, register_service
    from mltrail.audit.probes import from_data as probes_from_data
    from mltrail.audit.protocols import open_target
    from mltrail.audit.receipts import ReceiptVerifier, sign_receipt
    from mltrail.audit.result import AuditReport
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.audit.runner import record_verdict as record_audit_verdict
    from mltrail.audit.wire import ServiceInfo
    from mltrail.errors import (
        InputError,
        LedgerError,
        MltrailError,
        NetworkError,
        RefusedError,
        VerificationError,
    )
    from mltrail.identity import create_identity
    from mltrail.ledger.check import check as check_ledger
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home
    from mltrail.pol.loop import LoopRecorder, ledger_init, record_loop
    from mltrail.pol.loopdata import ArrayDataset, FolderDataset
    from mltrail.pol.onchain import publish_model
    from mltrail.pol.onchain import record_verdict as record_pol_verdict
    from mltrail.pol.verifier import verify_bundle
    from mltrail.provenance.artefacts import register_path
    from mltrail.provenance.capture import activity
