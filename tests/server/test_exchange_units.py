"""Untrusted inputs of the exchange and the token store, fuzzed (no chain, no network)."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.server import exchange
from mltrail.server.tokens import TokenStore

DIGEST = "sha256:" + "ab" * 32


class _Key:
    account = Account.create()


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_member_header_is_a_signer_or_none(header):
    assert exchange.signer_of(header, DIGEST) is None


def test_signatures_bind_digest_and_time():
    hdr = exchange.sign_request(_Key, DIGEST, now=1_000)  # type: ignore[arg-type]
    assert exchange.signer_of(hdr, DIGEST, now=1_100) == _Key.account.address
    assert exchange.signer_of(hdr, DIGEST, now=1_000 + exchange.MAX_SKEW + 1) is None
    assert exchange.signer_of(hdr, "sha256:" + "cd" * 32, now=1_100) is None
    addr, ts, sig = hdr.split(":")
    other = Account.create().address
    assert exchange.signer_of(f"{other}:{ts}:{sig}", DIGEST, now=1_100) is None


@pytest.fixture(scope="module")
def token_home(tmp_path_factory):
    from testkit import make_home

    home = make_home(tmp_path_factory.mktemp("tok"))
    TokenStore(home).create("ci", "dev")
    return home


@settings(max_examples=50, deadline=None)
@given(secret=st.text(max_size=300))
def test_any_bearer_string_authenticates_nothing(token_home, secret):
    assert TokenStore(token_home).authenticate(secret) is None
    assert TokenStore(token_home).authenticate("mlt_" + secret) is None
