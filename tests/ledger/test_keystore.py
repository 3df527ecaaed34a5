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
