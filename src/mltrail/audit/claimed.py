"""What an audit tests against: the claims, from the ledger, a reference model's card or
the target itself, and what the target says about itself.

Owns :func:`target_info` (the target's self-description; a failure is an availability
finding, never an error) and :func:`claims_of` (the claimed fields and the claims check:
ledger claims compared with what the target advertises; for a v2 or adapter-described
target without ledger claims, the reference model's card; otherwise the target's own
description, with a warning). What the claims say and a stock v2 server's metadata left
out (its input shape, its class count) is handed to the v2 client. It never sends a
probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mltrail.audit.claims import ServiceClaims, compare_advertised
from mltrail.audit.client import Target
from mltrail.audit.protocols import OIPClient
from mltrail.audit.result import Findings
from mltrail.audit.wire import ServiceInfo
from mltrail.errors import InputError, MltrailError


def target_info(client: Target, fs: Findings) -> ServiceInfo | None:
    try:
        return client.info()
    except MltrailError as exc:
        what = {"mltrail": "GET /v1/model", "oip": "the v2 model metadata",
                "adapter": "the adapter's health path"}.get(client.protocol, "metadata")
        fs.add("fail", "availability", f"{what} failed: {exc}")
        return None


def claims_of(ledger_claims: ServiceClaims | None, model_path: str | None,
              info: ServiceInfo | None, fs: Findings, target: Target | None = None,
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(claimed fields, claims check) from the ledger, or from the target if none."""
    claimed, check = _claims_of(ledger_claims, model_path, info, fs)
    if isinstance(target, OIPClient):
        target.adopt(claimed.get("input_shape"), claimed.get("classes"))
    return claimed, check


def _claims_of(ledger_claims: ServiceClaims | None, model_path: str | None,
               info: ServiceInfo | None, fs: Findings) -> tuple[dict[str, Any], dict[str, Any]]:
    if ledger_claims is not None:
        c = ledger_claims
        claimed = {"name": c.name, "model_digest": c.model_digest, "public_key": c.public_key,
                   "seed_config": c.seed_config, "reference": c.reference,
                   "claims": c.claims.model_dump(), "message_class": c.message_class,
                   "classes": c.classes, "endpoint": c.endpoint,
                   "input_shape": list(c.input_shape)}
        diffs = compare_advertised(c, info) if info is not None else []
        for d in diffs:
            fs.add("fail", "claims", f"target advertises other claims than the ledger: {d}")
        return claimed, {"source": "ledger", "differences": diffs,
                         "advertised_checked": info is not None}
    if info is None:
        raise InputError("no ledger claims and the target does not describe itself: give "
                         "the claimed model file with its card (--model FILE) or audit a "
                         "registered service")
    if info.protocol != "mltrail" and model_path:
        return _claims_of_card(model_path, info, fs)
    fs.add("warn", "claims", f"claims taken from the target's own {_info_name(info)}, not "
           "from the ledger (audit a registered service to bind them)")
    claimed = {k: getattr(info, k) for k in ("name", "model_digest", "claims", "seed_config",
                                             "public_key", "message_class", "classes",
                                             "input_shape")}
    claimed["reference"] = None
    return claimed, {"source": "target", "differences": []}


def _info_name(info: ServiceInfo) -> str:
    return {"mltrail": "/v1/model", "oip": "v2 model metadata (which names no model "
            "digest)", "adapter": "adapter file"}[info.protocol]


def _claims_of_card(model_path: str, info: ServiceInfo,
                    fs: Findings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ad hoc audit of a target that cannot describe its model (v2, adapter): the claims
    are the reference model's card; what the target does say must agree with it."""
    from mltrail.audit.models import load_card
    from mltrail.provenance.digest import digest_file

    card = load_card(model_path)
    claimed: dict[str, Any] = {
        "name": card.name, "model_digest": digest_file(model_path), "public_key": None,
        "seed_config": card.seed_config, "reference": None,
        "claims": card.claims.model_dump(), "message_class": card.message_class,
        "classes": card.classes, "input_shape": list(card.input_shape)}
    fs.add("warn", "claims", f"claims taken from the reference model's card ({model_path}), "
           "not from the ledger (audit a registered service to bind them)")
    diffs = _shape_diffs(claimed, info)
    for d in diffs:
        fs.add("fail", "claims", f"target advertises other claims than the model card: {d}")
    return claimed, {"source": "reference", "differences": diffs, "advertised_checked": True}


def _shape_diffs(claimed: dict[str, Any], info: ServiceInfo) -> list[str]:
    out = []
    for key, got in info.advertised().items():
        if key in ("input_shape", "classes") and claimed.get(key) is not None:
            want = claimed[key]
            same = got == want or (key == "input_shape" and got is not None and
                                   int(np.prod(got)) == int(np.prod(want)) and len(got) == 1)
            if not same:
                out.append(f"{key}: claimed {want}, target {got}")
    return out
