"""Every (kind, from, to, role, owner or not) cell of the default lifecycle, allowed and refused.

Each role is held by exactly one identity (conftest.ROLE_IDENTITIES, admin holds 'admin'
and all other roles, so admin is tested via a dedicated admin-only identity). A role the
cell allows alone moves anyone's artefact; a role it allows with ownership (``by:
owner_and_role``) moves only its holder's own artefacts and is refused "not the owner" on
another's. An allowed cell must succeed and move the artefact; a refused one must raise
RefusedError and leave the chain head unchanged.
"""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from mltrail.errors import RefusedError
from mltrail.lifecycle import load

LC = load()
ROLE_HOLDER = {"data_steward": "steward", "model_developer": "dev", "verifier": "verifier",
               "auditor": "auditor", "operator": "operator", "admin": "boss"}


def path_to(kind: str, target: str) -> list[str]:
    """Shortest list of states from the initial one to ``target``."""
    k = LC.kind(kind)
    prev: dict[str, str | None] = {k.initial: None}
    queue = deque([k.initial])
    while queue:
        s = queue.popleft()
        for t in k.states:
            if t not in prev and k.allowed(s, t):
                prev[t] = s
                queue.append(t)
    assert target in prev, f"{kind}.{target} unreachable"
    out: list[str] = []
    node: str | None = target
    while node is not None:
        out.append(node)
        node = prev[node]
    return out[::-1][1:]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One home for the module; every cell uses fresh artefacts, so cells stay independent."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from testkit import PASSWORD, make_home

    home = make_home(tmp_path_factory.mktemp("cells"))
    ledgers = {name: Ledger.open(home, identity=name, password=PASSWORD)
               for name in [*ROLE_HOLDER.values(), "admin"] if name != "boss"}
    ledgers["admin"].grant_role(create_identity(home, "boss", PASSWORD), "admin")
    ledgers["boss"] = Ledger.open(home, identity="boss", password=PASSWORD)
    ledgers["root"] = ledgers["admin"]  # admin holds every role: it can walk any path
    yield ledgers
    for led in ledgers.values():
        led.close()


_counter = itertools.count(1)


def fresh_at(world, kind: str, state: str, owner: str = "root") -> str:
    """A new artefact of ``kind`` registered by ``owner`` and walked to ``state``: each step
    by root when a role alone may take it, else by the owner (who must be allowed)."""
    k = LC.kind(kind)
    digest = "sha256:" + f"{next(_counter):064x}"
    aid = world[owner].register(kind, digest).artefact_id
    here = k.initial
    for s in path_to(kind, state):
        world["root" if k.rule(here, s).roles else owner].transition(aid, s)
        here = s
    return aid


@pytest.mark.parametrize("kind", list(LC.kinds))
def test_register_cells(world, kind):
    k = LC.kind(kind)
    for role, who in ROLE_HOLDER.items():
        led = world[who]
        digest = "sha256:" + f"{next(_counter):064x}"
        if role in k.register_roles:
            aid = led.register(kind, digest).artefact_id
            assert led.artefact(aid).state == k.initial
        else:
            head = led.backend.head()
            with pytest.raises(RefusedError, match="missing role"):
                led.register(kind, digest)
            assert led.backend.head() == head


@pytest.mark.parametrize("kind,source", [(k.name, s) for k in LC.kinds.values()
                                         for s in k.states])
def test_transition_cells(world, kind, source):
    k = LC.kind(kind)
    probe = fresh_at(world, kind, source)
    checked = 0
    for target in k.states:
        rule = k.rule(source, target)
        for role, who in ROLE_HOLDER.items():
            led = world[who]
            if role in rule.roles:
                aid = fresh_at(world, kind, source)
                led.transition(aid, target)
                assert led.artefact(aid).state == target
            else:
                if role in rule.owner_roles:  # allowed on its own artefact only
                    own = fresh_at(world, kind, source, owner=who)
                    led.transition(own, target)
                    assert led.artefact(own).state == target
                head = led.backend.head()
                with pytest.raises(RefusedError) as err:
                    led.transition(probe, target)
                expected = ("artefact revoked" if source == LC.terminal else
                            "not the owner" if role in rule.owner_roles else
                            "missing role" if rule else "transition not allowed")
                assert expected in str(err.value)
                assert led.backend.head() == head
                assert led.artefact(probe).state == source
            checked += 1
    assert checked == len(k.states) * len(ROLE_HOLDER)
