"""Re-hash files on disk and check them against the ledger; check signed statements.

Owns the answer to "did a byte change since registration, and which file?". It reads
the chain (through :class:`~mltrail.ledger.client.Ledger`) and the content store, and
never writes either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError, MltrailError, NotFoundError, VerificationError
from mltrail.provenance import artefacts, attest
from mltrail.provenance.digest import digest_tree

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact, Ledger


@dataclass
class Diff:
    """How a folder (or file) on disk differs from what was registered."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{what} {', '.join(names)}" for what, names in
                 (("changed", self.changed), ("added", self.added), ("removed", self.removed))
                 if names]
        return "; ".join(parts) or "content differs"


@dataclass
class Check:
    """One path checked against one artefact (or against the whole ledger)."""

    path: str
    digest: str
    ok: bool
    artefact: dict[str, Any] | None = None
    registered_by: str | None = None
    registered_at: str | None = None
    diff: Diff | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_manifests(registered: dict[str, str], now: dict[str, str]) -> Diff:
    return Diff(added=sorted(set(now) - set(registered)),
                removed=sorted(set(registered) - set(now)),
                changed=sorted(k for k in set(now) & set(registered) if now[k] != registered[k]))


def _who(led: Ledger, address: str) -> str:
    from mltrail.identity import list_identities

    for ident in list_identities(led.home):
        if ident.address.lower() == address.lower():
            return f"{ident.name} ({address})"
    return address


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _check(led: Ledger, path: Path, digest: str, manifest: dict[str, str] | None,
           art: Artefact) -> Check:
    c = Check(str(path), digest, digest == art.content_digest, art.as_dict(),
              _who(led, art.owner), _when(art.timestamp))
    meta = artefacts.metadata(led.home.store, art)
    registered = artefacts.manifest(led.home.store, meta) if meta else None
    if c.ok and manifest is not None and registered is not None and registered != manifest:
        # the folder digest (model-signing's) binds the files' bytes in path order but not
        # their names; the manifest, bound on chain through the metadata digest, does
        c.ok = False
    if c.ok:
        unnamed = manifest is not None and registered is None
        c.message = (f"matches {art.kind} {art.id} ({art.state})"
                     + ("; file names not checked (no manifest in this home)" if unnamed
                        else ""))
        return c
    if manifest is None and registered is None:
        c.diff = Diff(changed=[path.name])
    elif manifest is not None and registered is not None:
        c.diff = diff_manifests(registered, manifest)
    c.message = (f"{path} does not match {art.kind} {art.id}: "
                 + (c.diff.describe() if c.diff else
                    "content differs (no per-file manifest in this home to name files)"))
    return c


def _registered_at(led: Ledger, path: Path) -> list[Artefact]:
    """Artefacts whose metadata says they were registered from ``path`` (newest first)."""
    want = str(path.resolve())
    out = []
    for art in led.list_artefacts(limit=100_000):
        meta = artefacts.metadata(led.home.store, art)
        if meta and meta.get("path") == want:
            out.append(art)
    return out


Advance = Callable[[int], None] | None  # called with 1 per file hashed


def verify_path(led: Ledger, path: str | Path, artefact_id: str | None = None,
                advance: Advance = None) -> Check:
    """Re-hash ``path``; check it against ``artefact_id``, or find what it matches."""
    p = Path(path)
    digest, manifest = digest_tree(p, advance)
    if artefact_id is not None:
        return _check(led, p, digest, manifest, led.artefact(artefact_id))
    matches = led.find_by_digest(digest)
    if matches:
        return _check(led, p, digest, manifest, matches[-1])
    known = _registered_at(led, p)
    if known:
        return _check(led, p, digest, manifest, known[0])
    return Check(str(p), digest, False,
                 message=f"{p} ({digest}) matches no artefact on the ledger")


@dataclass
class Skip:
    """An artefact ``verify --all`` could not check, and why (no location in this home)."""

    artefact_id: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_all(led: Ledger, advance: Advance = None) -> tuple[list[Check], list[Skip]]:
    """Check every artefact whose location (an absolute metadata ``path``) is known to
    this home; the others are returned as skipped, never counted as matching."""
    out: list[Check] = []
    skipped: list[Skip] = []
    for art in led.list_artefacts(limit=100_000):
        meta = artefacts.metadata(led.home.store, art)
        where = meta.get("path") if meta else None
        if not isinstance(where, str) or not Path(where).is_absolute():
            reason = ("relative path recorded" if isinstance(where, str) and where
                      else "no path recorded")
            skipped.append(Skip(art.id, art.kind, reason))
            continue  # no location, or one relative to a folder nobody recorded
        p = Path(where)
        try:
            digest, manifest = digest_tree(p, advance)
        except NotFoundError:
            out.append(Check(where, "", False, art.as_dict(), _who(led, art.owner),
                             _when(art.timestamp), message=f"{where} is missing"))
            continue
        except MltrailError as exc:
            out.append(Check(where, "", False, art.as_dict(), message=exc.message))
            continue
        out.append(_check(led, p, digest, manifest, art))
    return out, skipped


@dataclass
class SignatureCheck:
    """One signature of a DSSE envelope, checked against its signer's on-chain identity:
    an Ethereum one (``eip191``) must recover to its keyid, an ``ed25519`` one must verify
    with the key a signer published in its on-chain profile."""

    scheme: str
    keyid: str | None
    signer: str | None  # the address it binds to (None when it binds to none)
    ok: bool
    detail: str

    def describe(self, led: Ledger) -> str:
        who = _who(led, self.signer) if self.signer else "no signer"
        return f"{self.scheme} {str(self.keyid or '')[:16]}: {self.detail} ({who})"


_ADDRESS = re.compile(r"^mltrail:(0x[0-9a-fA-F]{40})$")


def _builder(stmt: dict[str, Any]) -> str | None:
    """The address the statement names as its builder (``mltrail:<address>``), if any."""
    try:
        m = _ADDRESS.match(str(stmt["predicate"]["runDetails"]["builder"]["id"]))
    except (KeyError, TypeError):
        return None
    return m.group(1) if m else None


def check_signatures(led: Ledger, env: dict[str, Any],
                     stmt: dict[str, Any]) -> list[SignatureCheck]:
    """Every signature of ``env``: Ethereum ones recovered (:func:`attest.signers`, one at a
    time), Ed25519 ones verified with the key published on chain by a signer (an address
    an Ethereum signature recovered to, or the statement's builder)."""
    from mltrail.provenance import signing

    out: list[SignatureCheck] = []
    for s in env["signatures"]:
        if attest.is_ed25519(s):
            continue
        try:
            addr = attest.signers({**env, "signatures": [s]})[0]
        except VerificationError as exc:
            out.append(SignatureCheck("eip191", s.get("keyid"), None, False, exc.message))
            continue
        out.append(SignatureCheck("eip191", s.get("keyid"), addr, True,
                                  "recovers to its keyid"))
    candidates = list(dict.fromkeys(
        [c.signer for c in out if c.signer] + [a for a in [_builder(stmt)] if a]))
    keys = {a: signing.published_key(led, a) for a in candidates}
    pae = attest.pae(str(env["payloadType"]), attest.payload_of(env))
    for s in attest.ed25519_signatures(env):
        owner = next((a for a, k in keys.items() if k and signing.keyid(k) == s["keyid"]), None)
        key = keys.get(owner) if owner else None
        if owner is None or key is None:
            out.append(SignatureCheck("ed25519", s["keyid"], None, False,
                                      "not the Ed25519 key any signer published on chain"))
        elif not signing.verify_ed25519(key, pae, str(s["sig"])):
            out.append(SignatureCheck("ed25519", s["keyid"], owner, False,
                                      "does not verify with the key published on chain"))
        else:
            out.append(SignatureCheck("ed25519", s["keyid"], owner, True,
                                      "verifies with the key published on chain"))
    return out


def verify_envelope(led: Ledger, path: str | Path) -> dict[str, Any]:
    """Check a DSSE statement: every signature against its signer's on-chain identity
    (:func:`check_signatures`), and each subject an artefact on chain registered by a
    signer. Raises VerificationError (naming every signature) otherwise; InputError when
    the file is not a readable statement."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"statement file not found: {p}")
    env = attest.parse_envelope(p.read_bytes())
    stmt = attest.statement_of(env)
    sigs = check_signatures(led, env, stmt)
    if not all(c.ok for c in sigs):
        raise VerificationError("a statement signature does not verify: "
                                + "; ".join(c.describe(led) for c in sigs))
    signed_by = list(dict.fromkeys(str(c.signer) for c in sigs))
    subjects = []
    for s in stmt["subject"]:
        hexd = s.get("digest", {}).get("sha256") if isinstance(s, dict) else None
        if not isinstance(hexd, str):
            raise VerificationError("a statement subject has no sha256 digest")
        arts = [a for a in led.find_by_digest("sha256:" + hexd)
                if a.owner.lower() in {x.lower() for x in signed_by}]
        if not arts:
            raise VerificationError(
                f"subject {s.get('name')} (sha256:{hexd[:12]}) is not on chain as an artefact "
                f"of the signer {', '.join(signed_by)}")
        subjects.append({"name": s.get("name"), "digest": "sha256:" + hexd,
                         "artefact_ids": [a.id for a in arts]})
    return {"ok": True, "signers": signed_by, "statement_digest": attest.statement_digest(env),
            "signatures": [{**asdict(c), "signer_name": _who(led, c.signer) if c.signer
                            else None} for c in sigs],
            "subjects": subjects, "predicate_type": stmt.get("predicateType")}


@dataclass
class Outcome:
    """What ``mltrail verify`` checked: ``mode`` is ``proof``, ``statement`` or ``paths``;
    ``data`` the proof's or statement's result; ``checks`` the paths' checks."""

    mode: str
    data: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    skipped: list[Skip] | None = None  # with --all: the artefacts with no location

    @property
    def ok(self) -> bool:
        """Every check matched; skipped artefacts are not a mismatch (they are reported)."""
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The paths' result: ``ok``, ``checks`` and (with --all) ``skipped``."""
        out: dict[str, Any] = {"ok": self.ok, "checks": [c.as_dict() for c in self.checks]}
        if self.skipped is not None:
            out["skipped"] = [s.as_dict() for s in self.skipped]
        return out

    def summary(self) -> str | None:
        """With --all: ``4 of 5 artefacts match, 1 skipped: no path recorded``."""
        if self.skipped is None:
            return None
        good = sum(1 for c in self.checks if c.ok)
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        return (f"{good} of {len(self.checks) + len(self.skipped)} artefacts match"
                + "".join(f", {n} skipped: {why}" for why, n in reasons.items()))


def verify_any(led: Ledger, path: str | Path | None = None, artefact_id: str | None = None, *,
               all_: bool = False, proof: str | Path | None = None,
               statement: str | Path | None = None, anchored_by: str | None = None,
               advance: Advance = None) -> Outcome:
    """Exactly one of: a path (against ``artefact_id`` or whatever it was registered as),
    every artefact whose location is known (``all_``), a Merkle inclusion ``proof`` file
    (anchored by ``anchored_by`` if given), or a DSSE ``statement`` file. A mismatching
    path is in the result, not raised; a bad proof or statement raises
    :class:`VerificationError`. ``advance(1)`` is called per file hashed."""
    from mltrail.provenance import batch

    if sum((path is not None, all_, proof is not None, statement is not None)) != 1:
        raise InputError("give exactly one of PATH, --all, --proof FILE, --statement FILE")
    if anchored_by is not None and proof is None:
        raise InputError("--anchored-by goes with --proof")
    if proof is not None:
        return Outcome("proof", batch.verify_proof(led, batch.load_proof(proof), anchored_by))
    if statement is not None:
        return Outcome("statement", verify_envelope(led, statement))
    if all_:
        checks, skipped = verify_all(led, advance)
        return Outcome("paths", checks=checks, skipped=skipped)
    return Outcome("paths", checks=[verify_path(led, path or Path("."), artefact_id, advance)])
