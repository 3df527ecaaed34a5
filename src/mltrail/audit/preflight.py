"""Refuse an audit whose verdict could not be recorded, before any probe is sent.

Owns :func:`refuse_unrecordable`: an audit of a service artefact ends by moving it to
the lifecycle's bound ``audited`` (pass) or ``suspended`` (fail) state. If either move
is impossible from the service's current state (already suspended, retired or revoked)
or the caller may not take it (no ``auditor`` role), the audit would probe the service
and then fail to record its verdict — or worse, record only the outcomes the caller
likes. Such an audit is refused up front (:class:`~mltrail.errors.RefusedError`, exit
2), with the rule that stands in the way. It reads the ledger and never writes to it;
the contract still decides when the verdict is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltrail.errors import InputError, RefusedError

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger


def refuse_unrecordable(ledger: Ledger, service_id: str) -> None:
    """Raise :class:`RefusedError` when an audit of ``service_id`` could not record both
    possible verdicts (pass → audited, fail → suspended) for the calling identity."""
    art = ledger.artefact(service_id)
    lc = ledger.lifecycle
    audited_kind = lc.bound_kind("audit")
    if art.kind != audited_kind:
        raise InputError(f"{art.id[:12]} is a {art.kind}, not a {audited_kind}: only "
                         f"{audited_kind} artefacts are audited")
    kind = lc.kind(art.kind)
    mine = set(lc.role_names(ledger.roles().get(ledger.address, 0)))
    owner = art.owner == ledger.address
    for verdict, key in (("pass", "audited"), ("fail", "suspended")):
        to = lc.bound_state("audit", key)
        rule = kind.rule(art.state, to)
        if not rule:
            raise RefusedError(f"audit refused before any probe: service {art.id[:12]} is "
                               f"{art.state} and the lifecycle allows no move {art.state} -> "
                               f"{to}, so a {verdict} could not be recorded")
        if not (mine & set(rule.roles)
                or (owner and (rule.owner or mine & set(rule.owner_roles)))):
            raise RefusedError(f"audit refused before any probe: recording a {verdict} "
                               f"({art.state} -> {to}) may be done by {rule.describe()}; you "
                               f"({ledger.identity}) have {', '.join(sorted(mine)) or 'no role'}")
