"""Refusals explained with the lifecycle, after the contract made them.

The contract decides; these functions only turn its one-word reason ("missing role",
"not the owner", "parent kind not allowed" ...) into a sentence naming who may do what.
They never decide anything themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mltrail.errors import RefusedError

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact, Ledger


def my_roles(led: Ledger) -> list[str]:
    return led.lifecycle.role_names(led.roles().get(led.address, 0))


def register(led: Ledger, exc: RefusedError, kind: str, artefact_id: str,
             parents: Sequence[str] = ()) -> RefusedError:
    k = led.lifecycle.kind(kind)
    if "parent kind" in exc.message:
        kinds = sorted({led.artefact(p).kind for p in parents})
        return RefusedError(f"{exc.message}: a {kind} may derive from "
                            f"{', '.join(k.parents) or 'nothing'}, not {', '.join(kinds)}")
    if "parent revoked" in exc.message:
        gone = [p for p in parents if led.artefact(p).state == led.lifecycle.terminal]
        return RefusedError(f"{exc.message}: {', '.join(gone) or 'a parent'} is "
                            f"{led.lifecycle.terminal}")
    if "missing role" in exc.message:
        return RefusedError(f"{exc.message}: registering a {kind} needs one of "
                            f"{', '.join(k.register_roles)}; you ({led.identity}) have "
                            f"{', '.join(my_roles(led)) or 'no role'}")
    if "exists" in exc.message:
        return RefusedError(f"{exc.message}: you already registered this {kind} "
                            f"as {artefact_id}")
    return exc


def transition(led: Ledger, exc: RefusedError, art: Artefact, to: str) -> RefusedError:
    k = led.lifecycle.kind(art.kind)
    rule = k.rule(art.state, to)
    if "missing role" in exc.message or "not the owner" in exc.message:
        return RefusedError(f"{exc.message}: {art.kind} {art.state} -> {to} may be taken by "
                            f"{rule.describe()}; you ({led.identity}) have "
                            f"{', '.join(my_roles(led)) or 'no role'}"
                            + ("" if art.owner == led.address else
                               f" and {art.id[:10]} is owned by {art.owner}"))
    if "not allowed" in exc.message:
        nxt = sorted({t for t in k.states if k.allowed(art.state, t)})
        return RefusedError(f"{exc.message}: {art.kind} cannot go {art.state} -> {to}; "
                            f"from {art.state} it may go to {', '.join(nxt) or 'nothing'}")
    return exc


def anchor(led: Ledger, exc: RefusedError, artefact_id: str) -> RefusedError:
    if "missing role" not in exc.message:
        return exc
    art = led.artefact(artefact_id)
    roles = led.lifecycle.kind(art.kind).anchor
    return RefusedError(f"{exc.message}: only the owner of {artefact_id[:10]} "
                        + (f"or a holder of {', '.join(roles)} " if roles else "")
                        + f"may anchor on a {art.kind}; you ({led.identity}) have "
                        f"{', '.join(my_roles(led)) or 'no role'}")
