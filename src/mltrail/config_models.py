"""What ``config.json`` and ``pins.json`` hold: pydantic models, validated on load.

Kept apart from :mod:`mltrail.config` so that finding a home and its paths does not
import pydantic (read commands check ``config.json`` without it, see
:func:`mltrail.ledger.reader.load_settings`). It holds data shapes only; never paths,
files or a ledger.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """What ``config.json`` holds."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = None
    chain_id: int
    registry: str
    identity: str
    lifecycle_digest: str


class Pins(BaseModel):
    """What ``pins.json`` holds: the chain this home was built on, as last seen.

    ``head``/``head_hash`` only ever rise (a write or a check raises them); a node whose
    block ``head`` has another hash, or whose head is lower, was reset or forked.
    """

    model_config = ConfigDict(extra="forbid")

    genesis_hash: str
    registry_code_hash: str
    head: int = 0
    head_hash: str | None = None
    verified_head: int = 0  # the highest head a full ``ledger check`` passed
