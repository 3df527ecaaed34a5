"""Participants' keys: encrypted Ethereum keystores (eth-account, scrypt) in ``<home>/keys``.

An identity is a name, an address and a keystore file ``keys/<name>.json``. The password
comes from the caller, ``$MLTRAIL_PASSWORD`` or a prompt (in the CLI). Private keys are
never written unencrypted and never leave this module except as a ``LocalAccount``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from mltrail._fs import atomic_write
from mltrail.config import ENV_PASSWORD, Home
from mltrail.errors import AuthError, InputError, NotFoundError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# scrypt cost: 2**14 keeps unlocking near 50 ms; raise with MLTRAIL_SCRYPT_N for real keys.
SCRYPT_N = int(os.environ.get("MLTRAIL_SCRYPT_N", str(2**14)))


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
    if not os.path.isfile(path):
        raise InputError(f"key file not found: {path}")
    with open(path) as fh:
        text = fh.read().strip().removeprefix("0x")
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise InputError(f"{path} does not hold a hex private key") from exc
    if len(key) != 32:
        raise InputError(f"{path} holds {len(key)} bytes; a private key is 32")
    return key


def create_identity(home: Home, name: str, password: str | None = None,
                    private_key: bytes | None = None) -> str:
    """Create (or import, with ``private_key``) identity ``name``; return its address."""
    path = _path(home, name)
    if os.path.exists(path):
        raise InputError(f"identity {name!r} already exists")
    pw = password_from_env(password)
    try:
        acct = Account.from_key(private_key) if private_key else Account.create()
    except ValueError as exc:
        raise InputError(f"not a usable secp256k1 private key: {exc}") from exc
    keystore = Account.encrypt(acct.key, pw, kdf="scrypt", iterations=SCRYPT_N)
    keystore["mltrail_name"] = name
    atomic_write(home.keys_dir / f"{name}.json", json.dumps(keystore, indent=1).encode())
    return str(acct.address)


def list_identities(home: Home) -> list[Identity]:
    """All identities in the home, sorted by name."""
    out = []
    for p in sorted(home.keys_dir.glob("*.json")):
        doc = _read_keystore(p)
        out.append(Identity(p.stem, _checksum("0x" + str(doc.get("address", "")))))
    return out


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    try:
        return str(to_checksum_address(address))
    except ValueError:
        return address


def _read_keystore(path: str | os.PathLike[str]) -> dict[str, object]:
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable keystore {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"malformed keystore {path}")
    return doc


def address_of(home: Home, name: str) -> str:
    for ident in list_identities(home):
        if ident.name == name:
            return ident.address
    raise NotFoundError(f"no identity {name!r} in {home.root}",
                        hint="see 'mltrail id list'")


def unlock(home: Home, name: str, password: str | None = None) -> LocalAccount:
    """Decrypt identity ``name``'s key."""
    path = _path(home, name)
    if not os.path.exists(path):
        raise NotFoundError(f"no identity {name!r} in {home.root}", hint="see 'mltrail id list'")
    pw = password_from_env(password)
    keystore = _read_keystore(path)
    try:
        key = Account.decrypt(keystore, pw)
    except ValueError as exc:
        raise AuthError(f"wrong password for identity {name!r}") from exc
    return Account.from_key(key)
