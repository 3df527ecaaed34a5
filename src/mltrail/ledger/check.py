"""Check a whole ledger: the chain against the home's pins and itself, then the index.

``check`` verifies, in order, and names the first failure:

1. the node against ``pins.json``: genesis hash, registry code hash (also equal to the
   compiled contract), a head not below the highest head the home saw, with that block's
   hash unchanged (``trust.check_pins``);
2. the chain itself: embedded, every content-addressed row and every block re-executed
   from genesis (``verify.py``); rpc, each block's parent link;
3. the published lifecycle: on-chain digest = sha256 of the home's document, on-chain
   tables = the tables derived from it;
4. the index, every table and row (events, artefacts, parents, roles, meta; rows above the
   head included) equal to an index rebuilt from the chain's events, and each artefact's
   owner, kind, state and block and each account's roles equal to the contract's views.

Chain failures are ``ledger damaged: ...`` (exit 1) and never suggest ``reindex``; index
failures (exit 1) do, since the index is a cache. ``reindex`` refuses a damaged chain.
Nothing here repairs the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltrail.errors import VerificationError
from mltrail.ledger import trust
from mltrail.ledger.backend import damaged
from mltrail.ledger.client import Ledger
from mltrail.ledger.index import TABLES, EventIndex, decode_events
from mltrail.provenance.digest import to_bytes32

REINDEX = "the chain checks out; run 'mltrail ledger reindex' to rebuild the index from it"


@dataclass(frozen=True)
class CheckReport:
    blocks: int
    events: int
    head: int
    artefacts: int = 0
    rows: int = 0  # content-addressed rows of the embedded chain checked

    def as_dict(self) -> dict[str, int | bool]:
        return {"ok": True, "blocks": self.blocks, "events": self.events, "head": self.head,
                "artefacts": self.artefacts, "rows": self.rows}


def verify_chain(ledger: Ledger, advance: Callable[[int], None] | None = None,
                 pinned: bool = True) -> tuple[int, int]:
    """Steps 1-3 (step 1 only when ``pinned``); returns (head, content-addressed rows
    checked)."""
    backend = ledger.backend
    head = backend.head()
    if pinned:
        trust.check_pins(ledger.home, backend, ledger.registry)
    rows = 0
    if backend.kind == "embedded":
        from mltrail.ledger.embedded import EmbeddedBackend
        from mltrail.ledger.verify import verify_embedded

        assert isinstance(backend, EmbeddedBackend)
        rows = verify_embedded(backend, head, advance)
    else:
        prev: bytes | None = None
        for info in backend.blocks(0, head):
            if prev is not None and info.parent_hash != prev:
                raise damaged(f"block {info.number}: parent hash 0x{info.parent_hash.hex()} is "
                              f"not block {info.number - 1}'s hash 0x{prev.hex()}")
            prev = info.hash
            if advance is not None:
                advance(1)
    trust.check_lifecycle(backend, ledger.abi, ledger.registry, ledger.lifecycle)
    return head, rows


def _index_differs(what: str) -> VerificationError:
    return VerificationError(f"index differs from chain: {what}", hint=REINDEX)


_KEY_COLUMNS = {"events": 2, "parents": 2}  # other tables: the first column is the key


def _compare_tables(stored: EventIndex, expected: EventIndex) -> None:
    for table in TABLES:
        have, want = stored.table_rows(table), expected.table_rows(table)
        if have == want:
            continue
        n = _KEY_COLUMNS.get(table, 1)
        cols = [r[1] for r in stored.conn.execute(f"PRAGMA table_info({table})")]
        have_by = {tuple(r[:n]): r for r in have}
        want_by = {tuple(r[:n]): r for r in want}
        for key, row in have_by.items():
            where = f"table {table}, row {'/'.join(map(str, key))}"
            if key not in want_by:
                raise _index_differs(f"{where} is not on chain")
            diff = [f"{c} is {a!r}, the chain says {b!r}"
                    for c, a, b in zip(cols, row, want_by[key], strict=False) if a != b]
            if diff:
                raise _index_differs(f"{where}: " + "; ".join(diff)[:300])
        key = next(k for k in want_by if k not in have_by)
        raise _index_differs(f"table {table} lacks row {'/'.join(map(str, key))} of the chain")


def _compare_views(ledger: Ledger, expected: EventIndex) -> int:
    """Each artefact and role mask of the rebuilt index equals the contract's views."""
    abi, call, registry = ledger.abi, ledger.backend.call, ledger.registry

    head = expected.last_block()

    def view(fn: str, *args: Any) -> tuple[Any, ...]:  # the state the events were read at
        return abi.decode_output(fn, call(registry, abi.encode(fn, *args), head))

    rows = expected.table_rows("artefacts")
    for row in rows:
        owner, kind, state, block = view("artefact", to_bytes32(row[0]))
        if (owner.lower(), kind, state, block) != (str(row[3]).lower(), row[1], row[2], row[7]):
            raise damaged(f"artefact {row[0]}: the contract holds owner {owner}, kind {kind}, "
                          f"state {state}, block {block}; its events say owner {row[3]}, "
                          f"kind {row[1]}, state {row[2]}, block {row[7]}")
    for account, mask in expected.table_rows("roles"):
        (held,) = view("roles", account)
        if held != int(mask):
            raise damaged(f"roles of {account}: the contract holds {held}, its events say {mask}")
    return len(rows)


def check_index(ledger: Ledger, head: int) -> tuple[int, int]:
    """Step 4; returns (events, artefacts)."""
    index = ledger.index
    last = index.last_block()
    if head < last <= ledger.backend.head() and \
            index.last_hash() == "0x" + ledger.backend.block_hash(last).hex():
        head = last  # a reader on a shared node caught the index up past the verified head
    if last <= head and index.last_hash() in (None, "0x" + ledger.backend.block_hash(last).hex()):
        ledger.sync_to(head)  # a stale index is not damage; catch it up first
    events = decode_events(ledger.abi, ledger.backend.logs(ledger.registry, 0, head))
    expected = EventIndex(Path(":memory:"))
    try:
        expected.apply(events, head, ledger.backend.block_hash(head))
        _compare_tables(index, expected)
        artefacts = _compare_views(ledger, expected)
    finally:
        expected.close()
    return len(events), artefacts


def check(ledger: Ledger, advance: Callable[[int], None] | None = None) -> CheckReport:
    """Verify the whole ledger (see the module docstring); ``advance(1)`` per block checked.

    On success the checked head is pinned as verified in the home's ``pins.json``. The
    whole check holds the writers' lock (``Ledger.locked``): writes wait until it ends,
    so chain, pins and index are read as one state, never half moved by a writer.
    """
    with ledger.locked():
        head, rows = verify_chain(ledger, advance)
        n_events, n_artefacts = check_index(ledger, head)
        pins = ledger.home.pins()
        if pins is not None:
            trust.raise_head(ledger.home, pins, head, ledger.backend.block_hash(head),
                             verified=True)
    return CheckReport(head + 1, n_events, head, n_artefacts, rows)


def reindex(ledger: Ledger) -> int:
    """Drop the index and rebuild it from the chain, after checking the chain (steps 1-3):
    a damaged chain is refused, never laundered into a fresh index."""
    with ledger.locked():
        verify_chain(ledger)
        ledger.index.clear()
        return ledger.sync()


def retrust(ledger: Ledger) -> tuple[int, list[str]]:
    """For a home whose ``pins.json`` vanished: verify the chain without pins (steps 2-3:
    everything re-executes), then pin it as it is now. Returns the pinned head and what
    the lost pins can no longer vouch for (``trust.lost_with_pins``), for a warning."""
    with ledger.locked():
        if ledger.home.pins() is not None:
            trust.retrust(ledger.home, ledger.backend, ledger.registry)  # refuses
        head, _ = verify_chain(ledger, pinned=False)
        pins, lost = trust.retrust(ledger.home, ledger.backend, ledger.registry)
    return pins.head, lost
