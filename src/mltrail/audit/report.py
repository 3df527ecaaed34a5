"""Audit reports: canonical JSON bytes and a self-contained HTML page with inline plots.

The JSON is what goes into the content store and whose digest is the ledger evidence.
The HTML page is :mod:`mltrail.render.reports`' (the dashboard's renderer): the
sequential tests' evidence paths, per-class robustness and the latency histogram as
inline SVG. This module renders; it never runs checks.
"""

from __future__ import annotations

import math
from typing import Any

from mltrail.provenance.digest import canonical_json


def to_json_bytes(report: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, compact): the bytes whose digest is recorded."""
    return canonical_json(_finite(report))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def to_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (no external resources; plots inline SVG), drawn by the
    renderer the node's dashboard uses."""
    from mltrail.render.reports import audit_html

    return audit_html(_finite(report))
