"""Participants' keys: encrypted Ethereum keystores (eth-account, scrypt) in ``<home>/keys``.

An identity is a name, an address and a keystore file ``keys/<name>.json``. Beside it,
``keys/<name>.ed25519`` holds the identity's Ed25519 signing key (for DSSE envelopes that
in-toto and securesystemslib verify), encrypted exactly like the Ethereum key (the same
v3 keystore, scrypt, AES-128-CTR, keccak MAC) with the same password; its public key is
kept in clear in that file and published in the member's on-chain profile. The password
comes from the caller, ``$MLTRAIL_PASSWORD`` or a prompt (in the CLI). Private keys are
never written unencrypted and never leave this module except as a ``LocalAccount`` or a
:class:`~mltrail.keystore.UnlockedKey` (plain keystores are decrypted without eth-account).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mltrail._fs import atomic_write, regular_file
from mltrail.config import ENV_PASSWORD, Home
from mltrail.errors import AuthError, InputError, NotFoundError

if TYPE_CHECKING:  # eth-account is imported only when a key is made or signs a message
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from eth_account.signers.local import LocalAccount

    from mltrail.keystore import UnlockedKey

T = TypeVar("T")

_ADDRESS = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_MAX_KEYSTORE = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_SCRYPT_N = "MLTRAIL_SCRYPT_N"
ED25519_SUFFIX = ".ed25519"  # not ``.json``: the identity list reads ``keys/*.json``


def scrypt_n() -> int:
    """The scrypt cost for new keystores: ``$MLTRAIL_SCRYPT_N``, else 2**14 (unlocking near
    50 ms; raise it for real keys). Read on each call, not at import."""
    raw = os.environ.get(ENV_SCRYPT_N, str(2**14))
    n = int(raw) if raw.isdigit() else 0
    if n < 2 or n > 2**20 or n & (n - 1):
        raise InputError(f"{ENV_SCRYPT_N}={raw!r}: use a power of two from 2 to 2**20")
    return n


@dataclass(frozen=True)
class Identity:
    name: str
    address: str


def _path(home: Home, name: str) -> os.PathLike[str]:
    if not _NAME.match(name):
        raise InputError(f"bad identity name {name!r}: use letters, digits, '_', '-', '.'")
    return home.keys_dir / f"{name}.json"


def password_from_env(password: str | None) -> str:
    """The given password, else ``$MLTRAIL_PASSWORD``; refuse an empty one."""
    pw = password if password is not None else os.environ.get(ENV_PASSWORD)
    if not pw:
        raise AuthError("no password: pass one or set MLTRAIL_PASSWORD")
    return pw


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The raw private key in a file holding it as hex (``0x`` optional)."""
    regular_file(path, "key file")
    with open(path, "rb") as fh:
        raw = fh.read(1024)
    try:
        key = bytes.fromhex(raw.decode("ascii").strip().removeprefix("0x"))
    except ValueError as exc:
        raise InputError(f"{path} does not hold a hex private key") from exc
    if len(key) != 32:
        raise InputError(f"{path} holds {len(key)} bytes; a private key is 32")
    return key


def create_identity(home: Home, name: str, password: str | None = None,
                    private_key: bytes | None = None) -> str:
    """Create (or import, with ``private_key``) identity ``name``; return its address."""
    from eth_account import Account

    path = _path(home, name)
    if os.path.lexists(path):
        raise InputError(f"identity {name!r} already exists")
    if home.keys_dir.exists() and not home.keys_dir.is_dir():
        raise InputError(f"{home.keys_dir} is not a folder; the home is damaged")
    pw = password_from_env(password)
    try:
        acct = Account.from_key(private_key) if private_key else Account.create()
    except ValueError as exc:
        raise InputError(f"not a usable secp256k1 private key: {exc}") from exc
    keystore = Account.encrypt(acct.key, pw, kdf="scrypt", iterations=scrypt_n())
    keystore["mltrail_name"] = name
    atomic_write(home.keys_dir / f"{name}.json", json.dumps(keystore, indent=1).encode(),
                 mode=0o600)
    create_signing_key(home, name, pw)
    return str(acct.address)


# -- the Ed25519 signing key beside the Ethereum keystore -----------------------------------

def _ed25519_path(home: Home, name: str) -> Path:
    _path(home, name)  # the name check
    return home.keys_dir / f"{name}{ED25519_SUFFIX}"


def create_signing_key(home: Home, name: str, password: str | None = None) -> bytes:
    """Make identity ``name``'s Ed25519 key, encrypted as its Ethereum keystore is (the
    same v3 keystore through eth-account); return the raw 32-byte public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from eth_account import Account

    path = _ed25519_path(home, name)
    if os.path.lexists(path):
        raise InputError(f"identity {name!r} already has an Ed25519 key ({path})")
    pw = password_from_env(password)
    while True:  # a seed that is not also a secp256k1 scalar (odds 2**-128) is redrawn
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes_raw()
        try:
            keystore = Account.encrypt(seed, pw, kdf="scrypt", iterations=scrypt_n())
            break
        except ValueError:
            continue
    public = key.public_key().public_bytes_raw()
    keystore.pop("address", None)  # an Ethereum address of the seed would mislead
    keystore.update({"mltrail_name": name, "mltrail_key_type": "ed25519",
                     "public_key": public.hex()})
    atomic_write(path, json.dumps(keystore, indent=1).encode(), mode=0o600)
    return public


def _read_signing_keystore(path: Path) -> dict[str, object]:
    doc = _read_json(path, "Ed25519 keystore")
    if not isinstance(doc, dict) or doc.get("mltrail_key_type") != "ed25519" \
            or not isinstance(doc.get("crypto"), dict) \
            or not re.fullmatch(r"[0-9a-f]{64}", str(doc.get("public_key", ""))):
        raise InputError(f"malformed Ed25519 keystore {path}")
    return doc


def signing_public_key(home: Home, name: str) -> bytes | None:
    """The raw Ed25519 public key of identity ``name`` (None when it has no such key);
    read without the password."""
    path = _ed25519_path(home, name)
    if not os.path.lexists(path):
        return None
    return bytes.fromhex(str(_read_signing_keystore(path)["public_key"]))


def unlock_signing_key(home: Home, name: str,
                       password: str | Callable[[], str | None] | None = None
                       ) -> Ed25519PrivateKey:
    """Decrypt identity ``name``'s Ed25519 key, making it first if the identity predates
    Ed25519 keys. Wrong password: :class:`AuthError`; damaged file: :class:`InputError`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = _ed25519_path(home, name)
    pw = password_from_env(password() if callable(password) else password)
    if not os.path.lexists(path):
        unlock_key(home, name, pw)  # the identity's own password, checked before a new key
        create_signing_key(home, name, pw)
    keystore = _read_signing_keystore(path)
    key = _decrypt(keystore, pw, name, f"Ed25519 keystore {path}",
                   Ed25519PrivateKey.from_private_bytes)
    if key.public_key().public_bytes_raw().hex() != keystore["public_key"]:
        raise InputError(f"Ed25519 keystore {path} decrypts to another key than the public "
                         "key it names (damaged or tampered)")
    return key


def list_identities(home: Home) -> list[Identity]:
    """All identities in the home, sorted by name."""
    out = []
    if home.keys_dir.exists() and not home.keys_dir.is_dir():
        raise InputError(f"{home.keys_dir} is not a folder; the home is damaged")
    for p in sorted(home.keys_dir.glob("*.json")):
        doc = _read_keystore(p)
        out.append(Identity(p.stem, _checksum("0x" + str(doc["address"]).removeprefix("0x"))))
    return out


def names_by_address(home: Home) -> dict[str, str]:
    """Local identity names keyed by lower-case ``0x`` address (no checksum: no eth-utils)."""
    out = {}
    for p in sorted(home.keys_dir.glob("*.json")) if home.keys_dir.is_dir() else []:
        try:
            doc = _read_keystore(p)
        except InputError:
            continue  # a damaged keystore names nobody; 'mltrail id list' reports it
        out["0x" + str(doc["address"]).lower().removeprefix("0x")] = p.stem
    return out


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    try:
        return str(to_checksum_address(address))
    except ValueError:
        return address


def _read_keystore(path: str | os.PathLike[str]) -> dict[str, object]:
    """A keystore's JSON, checked for the fields every use needs (address, crypto)."""
    doc = _read_json(path, "keystore")
    if not isinstance(doc, dict) or not isinstance(doc.get("crypto"), dict) \
            or not _ADDRESS.match(str(doc.get("address", ""))):
        raise InputError(f"malformed keystore {path}: not an Ethereum keystore (v3) with an "
                         "address and a crypto section")
    return doc


def address_of(home: Home, name: str) -> str:
    for ident in list_identities(home):
        if ident.name == name:
            return ident.address
    raise NotFoundError(f"no identity {name!r} in {home.root}",
                        hint="see 'mltrail id list'")


def unlock_from(home: Home, name: str,
                password: str | Callable[[], str | None] | None) -> LocalAccount:
    """Decrypt ``name``'s key, asking a callable password source only now (clients hold
    a prompt and call this on their first write)."""
    return unlock(home, name, password() if callable(password) else password)


def unlock_key_from(home: Home, name: str,
                    password: str | Callable[[], str | None] | None) -> UnlockedKey:
    """:func:`unlock_key`, asking a callable password source only now."""
    return unlock_key(home, name, password() if callable(password) else password)


def unlock(home: Home, name: str, password: str | None = None) -> LocalAccount:
    """Decrypt identity ``name``'s key as an eth-account ``LocalAccount`` (for signing
    messages; transactions need only :func:`unlock_key`)."""
    from eth_account import Account

    account: LocalAccount = Account.from_key(unlock_key(home, name, password).key)
    return account


def unlock_key(home: Home, name: str, password: str | None = None) -> UnlockedKey:
    """Decrypt identity ``name``'s key without importing eth-account when the keystore is a
    plain v3 one (:mod:`mltrail.keystore`); any other goes to eth-account's decryption.
    A wrong password is :class:`AuthError`, a damaged keystore :class:`InputError`."""
    from mltrail.keystore import UnlockedKey

    path = _path(home, name)
    if not os.path.exists(path):
        raise NotFoundError(f"no identity {name!r} in {home.root}", hint="see 'mltrail id list'")
    pw = password_from_env(password)
    keystore = _read_keystore(path)
    unlocked = _decrypt(keystore, pw, name, f"keystore {path}", UnlockedKey.of)
    # The v3 MAC covers the ciphertext, not the IV: an edited IV decrypts to another key.
    named = "0x" + str(keystore["address"]).lower().removeprefix("0x")
    if unlocked.address.lower() != named:
        raise InputError(f"keystore {path} decrypts to {unlocked.address}, not the address "
                         f"{named} it names (damaged or tampered)")
    return unlocked


def _decrypt(keystore: dict[str, Any], pw: str, name: str, what: str,
             build: Callable[[bytes], T]) -> T:
    """``build`` of the secret a v3 ``keystore`` holds (plain v3 without eth-account, any
    other through it). A wrong password is :class:`AuthError`; a damaged keystore, or a
    secret ``build`` refuses, :class:`InputError` naming ``what``."""
    from mltrail.keystore import MacMismatch, decrypt_plain

    try:
        secret = decrypt_plain(keystore, pw)
        if secret is None:
            from eth_account import Account

            secret = bytes(Account.decrypt(keystore, pw))
        return build(secret)
    except ValueError as exc:
        if isinstance(exc, MacMismatch) or "mac mismatch" in str(exc).lower():
            raise AuthError(f"wrong password for identity {name!r}") from exc
        raise InputError(f"malformed {what}: {exc}".splitlines()[0]) from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"malformed {what}: missing or bad {exc}") from exc


def _read_json(path: str | os.PathLike[str], what: str) -> object:
    """The JSON of a regular file of at most ``_MAX_KEYSTORE`` bytes; an unreadable one is
    :class:`InputError` naming ``what``."""
    regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(_MAX_KEYSTORE))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable {what} {path}: {exc}".splitlines()[0]) from exc
