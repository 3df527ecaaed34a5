"""Untrusted inputs of the exchange and the token store, fuzzed (no chain, no network)."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.provenance import exchange
from mltrail.server.tokens import TokenStore

DIGEST = "sha256:" + "ab" * 32


class _Key:
    account = Account.create()


NODE = Account.create().address  # the identity whose node is asked


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_member_header_is_a_signer_or_none(header):
    assert exchange.verify_request(header, DIGEST, [NODE], exchange.NonceCache()) is None


def test_signatures_bind_digest_time_target_and_nonce():
    hdr = exchange.sign_request(_Key, DIGEST, NODE, now=1_000)  # type: ignore[arg-type]
    nonces = exchange.NonceCache()
    other = Account.create().address
    assert exchange.verify_request(hdr, DIGEST, [other], nonces, now=1_100) is None
    assert exchange.verify_request(hdr, DIGEST, [NODE], nonces, now=1_100) == \
        _Key.account.address
    assert exchange.verify_request(hdr, DIGEST, [NODE], nonces, now=1_101) is None  # replay
    fresh = exchange.sign_request(_Key, DIGEST, NODE, now=1_000)  # type: ignore[arg-type]
    late = 1_000 + exchange.MAX_SKEW + 1
    assert exchange.verify_request(fresh, DIGEST, [NODE], nonces, now=late) is None
    assert exchange.verify_request(fresh, "sha256:" + "cd" * 32, [NODE], nonces,
                                   now=1_100) is None
    addr, ts, nonce, target, sig = fresh.split(":")
    flipped = nonce[:-1] + ("1" if nonce.endswith("0") else "0")  # always a different nonce
    for forged in (f"{other}:{ts}:{nonce}:{target}:{sig}", f"{addr}:{ts}:{nonce}:{other}:{sig}",
                   f"{addr}:{int(ts) + 1}:{nonce}:{target}:{sig}",
                   f"{addr}:{ts}:{flipped}:{target}:{sig}"):
        assert exchange.verify_request(forged, DIGEST, [NODE, other], nonces, now=1_100) is None
    assert exchange.verify_request(fresh, DIGEST, [NODE], nonces, now=1_100) is not None


def test_nonce_cache_is_bounded_and_never_forgets_a_replay():
    cache = exchange.NonceCache(size=100)
    for i in range(1_000):
        assert cache.use("0xA", f"n{i}", 1_000 + i // 10, now=1_100)
        assert len(cache) <= 100
    # every nonce seen, evicted or not, is refused again
    assert not any(cache.use("0xA", f"n{i}", 1_000 + i // 10, now=1_100) for i in range(1_000))
    assert cache.use("0xA", "new", 1_100, now=1_100)


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


def test_nonces_are_shared_by_workers_and_kept_across_restarts(tmp_path):
    path = tmp_path / "nonces.sqlite"
    one, two = exchange.NonceCache(path), exchange.NonceCache(path)  # two worker processes
    assert one.use("0xA", "n1", 1_000, now=1_000)
    assert not two.use("0xA", "n1", 1_000, now=1_000)
    one.close()
    two.close()
    again = exchange.NonceCache(path)  # the node restarted
    assert not again.use("0xA", "n1", 1_000, now=1_100)
    assert again.use("0xA", "n2", 1_000, now=1_100)
    again.close()
