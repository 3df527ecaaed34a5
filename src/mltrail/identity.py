"""Participants' keys: encrypted Ethereum keystores (eth-account, scrypt) in ``<home>/keys``.

An identity is a name, an address and a keystore file ``keys/<name>.json``. The password
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
from typing import TYPE_CHECKING

from mltrail._fs import atomic_write, regular_file
from mltrail.config import ENV_PASSWORD, Home
from mltrail.errors import AuthError, InputError, NotFoundError

if TYPE_CHECKING:  # eth-account is imported only when a key is made or signs a message
    from eth_account.signers.local import LocalAccount

    from mltrail.keystore import UnlockedKey

_ADDRESS = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_MAX_KEYSTORE = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_SCRYPT_N = "MLTRAIL_SCRYPT_N"


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
    return str(acct.address)


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
    regular_file(path, "keystore")
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(_MAX_KEYSTORE))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable keystore {path}: {exc}".splitlines()[0]) from exc
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
    from mltrail.keystore import MacMismatch, UnlockedKey, decrypt_plain

    path = _path(home, name)
    if not os.path.exists(path):
        raise NotFoundError(f"no identity {name!r} in {home.root}", hint="see 'mltrail id list'")
    pw = password_from_env(password)
    keystore = _read_keystore(path)
    try:
        key = decrypt_plain(keystore, pw)
        if key is None:
            from eth_account import Account

            key = bytes(Account.decrypt(keystore, pw))
        unlocked = UnlockedKey.of(key)
    except ValueError as exc:
        if isinstance(exc, MacMismatch) or "mac mismatch" in str(exc).lower():
            raise AuthError(f"wrong password for identity {name!r}") from exc
        raise InputError(f"malformed keystore {path}: {exc}".splitlines()[0]) from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"malformed keystore {path}: missing or bad {exc}") from exc
    # The v3 MAC covers the ciphertext, not the IV: an edited IV decrypts to another key.
    named = "0x" + str(keystore["address"]).lower().removeprefix("0x")
    if unlocked.address.lower() != named:
        raise InputError(f"keystore {path} decrypts to {unlocked.address}, not the address "
                         f"{named} it names (damaged or tampered)")
    return unlocked
