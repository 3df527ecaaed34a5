"""Bounds on what a proof bundle may ask the verifier to allocate, read or loop over.

Owns the limits (parameter count, steps, checkpoint and manifest bytes, tar members) and
the reading that applies them *before* anything is allocated: a safetensors file's header
is read and compared with the expected names and shapes before its tensors are loaded.
It judges nothing about training and never touches the ledger.
"""

from __future__ import annotations

import json
import struct

MAX_PARAMS = 20_000_000
"""Largest model a proof may name (80 MB of float32); ResNet-20 has 0.27 M."""
MAX_TOTAL_STEPS = 1_000_000
MAX_SAMPLES = 100_000_000
MAX_MANIFEST_BYTES = 64 << 20
MAX_TAR_MEMBERS = 250_000
MAX_SAFETENSORS_HEADER = 1 << 20


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_header(raw: bytes) -> dict[str, tuple[str, list[int]]]:
    """``name -> (dtype, shape)`` from a safetensors file's header, validated for size.

    Raises ``ValueError`` for anything that is not a well-formed header whose tensors fit
    in the file.
    """
    if len(raw) < 8:
        raise ValueError("too short")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > MAX_SAFETENSORS_HEADER or 8 + hlen > len(raw):
        raise ValueError("bad header length")
    head = json.loads(raw[8:8 + hlen])
    if not isinstance(head, dict):
        raise ValueError("header is not an object")
    out: dict[str, tuple[str, list[int]]] = {}
    body = len(raw) - 8 - hlen
    for name, info in head.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ValueError(f"bad entry {name!r}")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPE_BYTES or not isinstance(shape, list) or not all(
                isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError(f"bad entry {name!r}")
        n = 1
        for s in shape:
            n *= s
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int)
                                                                   for o in offs)
                and 0 <= offs[0] <= offs[1] <= body and offs[1] - offs[0] == n * _DTYPE_BYTES[
                    dtype]):
            raise ValueError(f"tensor {name!r} does not fit the file")
        out[name] = (dtype, shape)
    return out
