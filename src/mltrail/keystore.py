"""Decrypting a Web3 Secret Storage (v3) keystore without eth-account, for fast writes.

eth-account imports eth-keyfile, which imports py_ecc's BLS12-381 pairing tables, and
with its other imports costs more than a write's whole EVM work. A plain v3 keystore
(what :func:`mltrail.identity.create_identity` writes through eth-account) needs only a
KDF (scrypt or PBKDF2-HMAC-SHA256, :mod:`hashlib`), a keccak256 MAC (eth-hash) and
AES-128-CTR (cryptography). :func:`decrypt_plain` does exactly that and answers None for
any keystore outside that plain shape, so the caller hands those to eth-account and its
wording: this module never accepts what eth-account refuses (a test decrypts keystores
eth-account wrote, with both KDFs, through both paths).

It owns only the decryption and the :class:`Signer` shape the ledger signs with. It never
writes a keystore (eth-account does, in ``identity``), never logs or prints a key, and
never holds a password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

_HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")
# hashlib.scrypt refuses maxmem >= 2**31; larger costs go to eth-account (pycryptodome)
_MAX_SCRYPT_MEM = 2**31 - 1


class Signer(Protocol):
    """What a backend needs to sign a transaction: eth-account's ``LocalAccount`` or an
    :class:`UnlockedKey`."""

    @property
    def address(self) -> ChecksumAddress: ...

    @property
    def key(self) -> bytes: ...


@dataclass(frozen=True)
class UnlockedKey:
    """A decrypted private key and its checksummed address (the key is never in repr)."""

    address: ChecksumAddress
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, key: bytes) -> UnlockedKey:
        """The key with its address, derived with eth-keys (raises ValueError if the bytes
        are not a secp256k1 private key)."""
        from eth_keys import keys
        from eth_keys.exceptions import ValidationError

        try:
            address = keys.PrivateKey(key).public_key.to_checksum_address()
        except ValidationError as exc:
            raise ValueError(f"not a secp256k1 private key: {exc}") from exc
        return cls(cast("ChecksumAddress", str(address)), bytes(key))


class MacMismatch(ValueError):
    """The password does not open this keystore (the keccak MAC differs)."""


def _lower(doc: Any) -> Any:
    """Keys in lower case, recursively (eth-keyfile's ``normalize_keys``)."""
    if isinstance(doc, dict):
        return {k.lower() if isinstance(k, str) else k: _lower(v) for k, v in doc.items()}
    return doc


def _hex(value: Any) -> bytes | None:
    if not isinstance(value, str) or not _HEX.match(value):
        return None
    return bytes.fromhex(value.removeprefix("0x"))


def _int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _derive(kdf: Any, params: Any, password: bytes) -> bytes | None:
    """The derived key, or None when the KDF or its parameters are not plain."""
    if not isinstance(params, dict):
        return None
    salt, dklen = _hex(params.get("salt")), _int(params.get("dklen"))
    if salt is None or dklen is None or dklen < 32:
        return None
    if kdf == "scrypt":
        n, r, p = (_int(params.get(k)) for k in ("n", "r", "p"))
        if n is None or r is None or p is None or n < 2 or n & (n - 1):
            return None
        need = 128 * r * (n + p + 2) + (1 << 20)
        if need >= _MAX_SCRYPT_MEM:
            return None
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=need)
    if kdf == "pbkdf2":
        c = _int(params.get("c"))
        if params.get("prf") != "hmac-sha256" or c is None:
            return None
        return hashlib.pbkdf2_hmac("sha256", password, salt, c, dklen)
    return None


def decrypt_plain(keystore: dict[str, Any], password: str) -> bytes | None:
    """The private key in a plain v3 keystore (scrypt or PBKDF2-HMAC-SHA256, AES-128-CTR,
    keccak256 MAC), or None when the keystore is not of that shape.

    Raises :class:`MacMismatch` for a wrong password (or a tampered keystore), as
    eth-account does ("MAC mismatch").
    """
    doc = _lower(keystore)
    crypto = doc.get("crypto")
    if doc.get("version") != 3 or not isinstance(crypto, dict) \
            or crypto.get("cipher") != "aes-128-ctr":
        return None
    ciphertext, mac = _hex(crypto.get("ciphertext")), _hex(crypto.get("mac"))
    cipherparams = crypto.get("cipherparams")
    iv = _hex(cipherparams.get("iv")) if isinstance(cipherparams, dict) else None
    if ciphertext is None or mac is None or iv is None or len(iv) > 16 or len(mac) != 32:
        return None
    derived = _derive(crypto.get("kdf"), crypto.get("kdfparams"), password.encode("utf-8"))
    if derived is None:
        return None
    from eth_hash.auto import keccak

    if not hmac.compare_digest(keccak(derived[16:32] + ciphertext), mac):
        raise MacMismatch("MAC mismatch")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    counter = iv.rjust(16, b"\x00")  # eth-keyfile: the iv as a 128-bit big-endian counter
    dec = Cipher(algorithms.AES(derived[:16]), modes.CTR(counter)).decryptor()
    return dec.update(ciphertext) + dec.finalize()
