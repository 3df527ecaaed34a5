"""Check a ledger against itself: the block hash chain, and the index against chain events.

``check`` never repairs; ``reindex`` rebuilds the index from the chain's logs. A failed
check names the first difference and raises VerificationError (exit code 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mltrail.errors import VerificationError
from mltrail.ledger.client import Ledger
from mltrail.ledger.index import decode_events


@dataclass(frozen=True)
class CheckReport:
    blocks: int
    events: int
    head: int

    def as_dict(self) -> dict[str, int | bool]:
        return {"ok": True, "blocks": self.blocks, "events": self.events, "head": self.head}


def check(ledger: Ledger, advance: Callable[[int], None] | None = None) -> CheckReport:
    """Verify hash links of every block and that the index equals the chain's events.

    ``advance(1)`` is called once per block checked (for a progress bar).
    """
    backend = ledger.backend
    head = backend.head()
    ledger.sync()  # to the head or beyond; comparisons below stop at ``head``
    prev: bytes | None = None
    count = 0
    for info in backend.blocks(0, head):
        if not info.hash_ok:
            raise VerificationError(f"block {info.number}: stored header does not hash to "
                                    f"0x{info.hash.hex()}")
        if prev is not None and info.parent_hash != prev:
            raise VerificationError(f"block {info.number}: parent hash 0x{info.parent_hash.hex()}"
                                    f" is not block {info.number - 1}'s hash 0x{prev.hex()}")
        prev = info.hash
        count += 1
        if advance is not None:
            advance(1)
    chain_events = decode_events(ledger.abi, backend.logs(ledger.registry, 0, head))
    indexed = [e for e in ledger.index.events() if e.block <= head]
    for i, (c, x) in enumerate(zip(chain_events, indexed, strict=False)):
        if c.key() != x.key():
            raise VerificationError(f"index differs from chain at event {i} (block {c.block}, "
                                    f"log {c.log_index}): chain has {c.name} for "
                                    f"{c.artefact_id}, index has {x.name} for {x.artefact_id}",
                                    hint="run 'mltrail ledger reindex'")
    if len(chain_events) != len(indexed):
        which = "chain" if len(chain_events) > len(indexed) else "index"
        extra = (chain_events if which == "chain" else indexed)[min(len(chain_events),
                                                                    len(indexed))]
        raise VerificationError(f"the {which} has more events: first extra is {extra.name} "
                                f"in block {extra.block}", hint="run 'mltrail ledger reindex'")
    if ledger.index.last_block() < head:
        raise VerificationError(f"index stops at block {ledger.index.last_block()}, chain at "
                                f"{head}", hint="run 'mltrail ledger reindex'")
    return CheckReport(count, len(chain_events), head)


def reindex(ledger: Ledger) -> int:
    """Drop the index and rebuild it from the chain; returns the number of events."""
    ledger.index.clear()
    return ledger.sync()
