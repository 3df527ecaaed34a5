"""Typed shapes of what crosses the wire between a classification service and its auditor.

Owns :class:`ServiceInfo` (what a service says about itself: mltrail's ``GET /v1/model``,
or the part of an Open Inference Protocol or adapter-described service's metadata the
auditor can read), :class:`ClassOutput` (one input's label and probabilities) and
:class:`ClassifyResponse` (the body of ``POST /v1/classify``). Services build these and
serialise them; clients validate what they receive into them, so a hostile answer fails
here with a message instead of deep inside the audit. It never does I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Protocol = Literal["mltrail", "oip", "adapter"]


class ServiceInfo(BaseModel):
    """What a service advertises about itself. Every field a foreign protocol cannot carry
    is ``None``; unknown fields of a foreign answer are ignored (never trusted)."""

    model_config = ConfigDict(extra="ignore")

    protocol: Protocol = "mltrail"
    name: str | None = None
    model_digest: str | None = None
    public_key: str | None = None
    classes: int | None = None
    input_shape: list[int] | None = None
    message_class: int | None = None
    claims: dict[str, Any] | None = None
    seed_config: dict[str, Any] | None = None
    arch: dict[str, Any] | None = None
    max_batch: int | None = None
    receipts: bool | None = None

    def advertised(self) -> dict[str, Any]:
        """The fields this protocol can advertise, as ``compare_advertised`` reads them:
        all of mltrail's; only the input shape and the class count otherwise."""
        if self.protocol == "mltrail":
            return self.model_dump(exclude={"protocol", "name", "arch", "max_batch",
                                            "receipts"})
        return {k: v for k, v in (("input_shape", self.input_shape),
                                  ("classes", self.classes)) if v is not None}


class ClassOutput(BaseModel):
    """One input's answer: the label and the class probabilities."""

    model_config = ConfigDict(extra="forbid")

    label: int
    probs: list[float] = Field(min_length=1)


class ClassifyResponse(BaseModel):
    """The body of a ``POST /v1/classify`` answer (docs/receipts.md)."""

    model_config = ConfigDict(extra="forbid")

    model_digest: str | None = None
    outputs: list[ClassOutput]
    receipt: dict[str, Any] | None = None
