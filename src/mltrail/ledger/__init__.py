"""The ledger: contracts, backends (embedded EVM, JSON-RPC), typed client, event index."""

import os as _os

try:  # the C keccak is several times faster than pycryptodome's for py-evm's tries
    import sha3 as _sha3  # noqa: F401

    _os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
except ImportError:  # pragma: no cover - pycryptodome still works
    pass
