"""mltrail.keystore decrypts what eth-account writes, exactly as eth-account does.

Keystores are written by eth-account (scrypt and PBKDF2, real AES-128-CTR and keccak MAC)
and decrypted both ways; wrong passwords and tampered keystores are refused alike, and
anything outside the plain shape is left to eth-account (through ``identity``).
"""

from __future__ import annotations

import copy
import json

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.config import Home
from mltrail.errors import AuthError, InputError
from mltrail.identity import address_of, create_identity, unlock, unlock_key
from mltrail.keystore import MacMismatch, UnlockedKey, decrypt_plain

# cheap KDF costs: the algorithm is what is tested, not the cost
KDFS = [("scrypt", 2**4), ("pbkdf2", 16)]
KEYS = st.integers(min_value=1, max_value=2**256 - 2**129).map(lambda k: k.to_bytes(32, "big"))


def _encrypt(key: bytes, password: str, kdf: str, cost: int) -> dict:
    return Account.encrypt(key, password, kdf=kdf, iterations=cost)


@pytest.mark.parametrize("kdf,cost", KDFS)
@settings(max_examples=15, deadline=None)
@given(key=KEYS, password=st.text(min_size=1, max_size=24))
def test_decrypt_agrees_with_eth_account(kdf, cost, key, password):
    ks = _encrypt(key, password, kdf, cost)
    assert ks["crypto"]["kdf"] == kdf
    ours = decrypt_plain(ks, password)
    assert ours == bytes(Account.decrypt(ks, password)) == key
    assert UnlockedKey.of(ours).address == Account.from_key(key).address


@pytest.mark.parametrize("kdf,cost", KDFS)
def test_wrong_password_and_tampering_refused_like_eth_account(kdf, cost):
    key = bytes(range(1, 33))
    ks = _encrypt(key, "right", kdf, cost)
    tampered_mac = copy.deepcopy(ks)
    tampered_mac["crypto"]["mac"] = ("0" if ks["crypto"]["mac"][0] != "0" else "1") \
        + ks["crypto"]["mac"][1:]
    tampered_text = copy.deepcopy(ks)
    c = tampered_text["crypto"]["ciphertext"]
    tampered_text["crypto"]["ciphertext"] = c[:-1] + ("0" if c[-1] != "0" else "1")
    for doc, pw in ((ks, "wrong"), (tampered_mac, "right"), (tampered_text, "right")):
        with pytest.raises(MacMismatch):
            decrypt_plain(doc, pw)
        with pytest.raises(ValueError, match="MAC mismatch"):
            Account.decrypt(doc, pw)


def test_upper_case_keys_as_geth_writes_them():
    ks = _encrypt(b"\x07" * 32, "pw", "scrypt", 2**4)
    ks["Crypto"] = ks.pop("crypto")
    assert decrypt_plain(ks, "pw") == bytes(Account.decrypt(ks, "pw")) == b"\x07" * 32


@pytest.mark.parametrize("edit", [
    lambda d: d.update(version=4),
    lambda d: d["crypto"].update(cipher="aes-256-ctr"),
    lambda d: d["crypto"].update(kdf="argon2"),
    lambda d: d["crypto"]["kdfparams"].update(n=3),        # not a power of two
    lambda d: d["crypto"]["kdfparams"].update(dklen=16),
    lambda d: d["crypto"]["kdfparams"].update(salt="xyz"),
    lambda d: d["crypto"].update(mac=None),
    lambda d: d["crypto"].pop("cipherparams"),
])
def test_anything_unusual_is_left_to_eth_account(edit):
    ks = _encrypt(b"\x05" * 32, "pw", "scrypt", 2**4)
    edit(ks)
    assert decrypt_plain(ks, "pw") is None


@pytest.fixture
def key_home(tmp_path):
    h = Home(tmp_path / ".mltrail")
    h.keys_dir.mkdir(parents=True)
    return h


def test_unlock_key_in_a_home(key_home):
    addr = create_identity(key_home, "alice", "pw")  # scrypt, written by eth-account
    k = unlock_key(key_home, "alice", "pw")
    assert k.address == addr == address_of(key_home, "alice")
    assert k.key.hex() not in repr(k)
    assert unlock(key_home, "alice", "pw").key == k.key
    with pytest.raises(AuthError, match="^wrong password for identity 'alice'$"):
        unlock_key(key_home, "alice", "nope")


def test_unusual_keystores_get_eth_accounts_errors(key_home):
    create_identity(key_home, "bob", "pw")
    path = key_home.keys_dir / "bob.json"
    doc = json.loads(path.read_text())
    doc["crypto"]["kdf"] = "argon2"  # not plain: eth-account decides (and refuses)
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="malformed keystore"):
        unlock_key(key_home, "bob", "pw")
    doc["crypto"]["kdf"] = "pbkdf2"  # pbkdf2 without its parameters: eth-account's KeyError
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="malformed keystore"):
        unlock_key(key_home, "bob", "pw")


def _tamper(ks: dict, seed: int) -> dict:
    """An attacker's edit of one field of a keystore: one hex digit of the ciphertext, MAC,
    IV or salt, or a KDF parameter moved (the seed picks which and where)."""
    import random

    rng = random.Random(seed)
    doc = copy.deepcopy(ks)
    crypto = doc["crypto"]
    hexes = [(crypto, "ciphertext"), (crypto, "mac"), (crypto["cipherparams"], "iv"),
             (crypto["kdfparams"], "salt")]
    numbers = [k for k in ("c", "n", "r", "p", "dklen") if k in crypto["kdfparams"]]
    if rng.random() < 0.8:
        where, field = rng.choice(hexes)
        i = rng.randrange(len(where[field]))
        digit = rng.choice([d for d in "0123456789abcdef" if d != where[field][i].lower()])
        where[field] = where[field][:i] + digit + where[field][i + 1:]
    else:
        k = rng.choice(numbers)
        crypto["kdfparams"][k] = max(1, crypto["kdfparams"][k] + rng.choice([-1, 1, 16]))
    return doc


def _outcome(fn, doc: dict) -> bytes | str:  # type: ignore[no-untyped-def]
    try:
        return bytes(fn(doc, "right"))
    except Exception as exc:  # noqa: BLE001 - only whether it was refused matters
        return "refused" if exc else "?"


@pytest.mark.parametrize("kdf,cost", KDFS)
def test_a_tampered_keystore_decrypts_as_eth_account_decides(kdf, cost):
    """Seeded edits of one field: mltrail's decryption decides exactly as eth-account's,
    including the format's own gap (the v3 MAC does not cover the IV)."""
    ks = _encrypt(bytes(range(1, 33)), "right", kdf, cost)
    for seed in range(40):
        doc = _tamper(ks, seed)
        ours = _outcome(lambda d, pw: decrypt_plain(d, pw) or Account.decrypt(d, pw), doc)
        assert ours == _outcome(Account.decrypt, doc), (seed, doc["crypto"])


@pytest.mark.parametrize("kdf,cost", KDFS)
def test_a_tampered_identity_never_unlocks_to_another_key(key_home, kdf, cost):
    """The same edits on an identity in a home: refused, or the original key, never
    another one (an edited IV decrypts to another key; the address check refuses it)."""
    key = bytes(range(1, 33))
    ks = _encrypt(key, "right", kdf, cost)
    path = key_home.keys_dir / "alice.json"
    for seed in range(40):
        path.write_text(json.dumps(_tamper(ks, seed)))
        try:
            got = unlock_key(key_home, "alice", "right").key
        except (AuthError, InputError):
            continue
        assert got == key, (seed, json.loads(path.read_text())["crypto"])
