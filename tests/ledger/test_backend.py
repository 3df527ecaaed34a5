"""The one signing function agrees byte for byte with eth-account."""

import os

from eth_account import Account

from mltrail.ledger.backend import revert_reason, sign


def test_sign_matches_eth_account():
    acct = Account.create()
    for to, data in (("0x" + "11" * 20, os.urandom(100)), (None, os.urandom(300))):
        ours = sign(acct, 31_415, 7, to, data, 123_456, 10**9, 10**8)
        tx = {"type": 2, "chainId": 31_415, "nonce": 7, "gas": 123_456, "value": 0,
              "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**8, "data": data}
        if to:
            tx["to"] = to
        assert ours == bytes(acct.sign_transaction(tx).raw_transaction)


def test_revert_reason_decoding():
    from eth_abi import encode

    payload = bytes.fromhex("08c379a0") + encode(["string"], ["missing role"])
    assert revert_reason(payload) == "missing role"
    assert revert_reason(b"") == "reverted"
    assert revert_reason(b"\x01\x02").startswith("reverted (0x0102")
