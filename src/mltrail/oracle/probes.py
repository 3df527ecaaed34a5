"""Each oracle's private probes for a round: drawn, digested, and checked by anyone later.

Owns the derivation of an oracle's private probe seed from its commitment salt and the
round's public seed (``keccak256(salt ‖ round seed)``), the draw itself (genuine inputs
from the auditor's own held data, :func:`mltrail.audit.probes.held`, never public
benchmark samples nor generated ones, which detectors tell from traffic), the probe set's
digest that the oracle commits to before anyone reveals, and :func:`check` that redraws
a revealed oracle's set from its revealed salt and compares the digests. The salt stays
private until the reveal, so neither the provider nor another oracle can list a set
before the commit phase closed. This module never queries a service and never touches
the ledger.

:func:`fresh_salt` draws the salt itself, and redraws while the probe set it gives would
fail the audit's own adversarial validation (a key-less detector telling these genuine
digits from public ones, by chance, about 1 set in 100): such a set cannot pass an audit
on its own, so an honest oracle holding one would vote ``fail`` on an honest service.
The salt is the oracle's own secret; choosing among salts steers nothing a provider or
another oracle controls.
"""

from __future__ import annotations

import hashlib
import os

from eth_utils import keccak

from mltrail.audit import probes as P

PRIVATE_QUERIES = 64  # private probes per oracle and round (the identity test needs 59)
SALT_TRIES = 8        # salts tried for a probe set the audit's detectors cannot tell


def private_seed(salt: bytes, round_seed: int) -> int:
    """The seed of an oracle's private probes: secret until the salt is revealed."""
    return int.from_bytes(keccak(b"mltrail-oracle-probes" + salt +
                                 round_seed.to_bytes(32, "big"))[:8], "big")


def draw(salt: bytes, round_seed: int, n: int = PRIVATE_QUERIES) -> P.ProbeSet:
    """The oracle's private probe set for a round."""
    ps = P.held(n, seed=private_seed(salt, round_seed))
    ps.meta["oracle_private"] = True
    return ps


def fresh_salt(round_seed: int, n: int = PRIVATE_QUERIES) -> tuple[bytes, P.ProbeSet, int]:
    """A new secret salt, its probe set and how many salts were drawn: the first of
    :data:`SALT_TRIES` whose set passes the audit's adversarial validation (the check
    :func:`mltrail.audit.runner.run_audit` runs on it, with the same seed, so the audit
    reuses the result), else the last drawn."""
    from mltrail.audit.distinguish import assess_probes

    tries = 0
    while True:
        tries += 1
        salt = os.urandom(32)
        ps = draw(salt, round_seed, n)
        if tries == SALT_TRIES or assess_probes(ps, len(ps), [], None, seed=None)["alone"]:
            break
    return salt, ps, tries


def digest(ps: P.ProbeSet) -> bytes:
    """sha256 over the probe count, inputs (float32) and labels (int64): 32 bytes."""
    h = hashlib.sha256(len(ps).to_bytes(4, "big"))
    h.update(ps.x.astype("<f4").tobytes())
    h.update(ps.y.astype("<i8").tobytes())
    return h.digest()


def check(salt: bytes, round_seed: int, committed: bytes, n: int = PRIVATE_QUERIES) -> bool:
    """Whether the probe set drawn from a revealed ``salt`` is the one committed to."""
    return digest(draw(salt, round_seed, n)) == committed
