"""The deferred py-evm dependencies (``mltrail._lazy``): skipped at import, real when used.

Each check runs in a fresh interpreter, since a module once imported stays imported. The
precompiles run on real chains: bn128 addition and pairing on the embedded chain (Cancun
runs them), a BLS12-381 addition on an in-memory Prague chain (py-evm's own, since the
embedded chain's Cancun rules have no BLS precompiles); results are compared with known
values or with py_ecc computed after the call.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

# the pairing tables, the BLS hash-to-curve constants, pycparser (pycryptodome through cffi)
NEVER_LOADED = ("py_ecc.optimized_bls12_381", "py_ecc.bls", "py_ecc.bls.constants",
                "pycparser", "Crypto.Util._raw_api")


def _python(code: str, *args: str) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_the_ledger_imports_without_the_unused_tables():
    out = _python(f"""
        import sys
        import mltrail.ledger.client, mltrail.ledger.embedded
        pairing = sys.modules["py_ecc.optimized_bn128.optimized_pairing"]
        keccak = sys.modules["Crypto.Hash.keccak"]
        print([m for m in {NEVER_LOADED!r} if m in sys.modules])
        print("miller_loop" in vars(pairing), "new" in vars(keccak))
        """)
    assert out.split("\n")[:2] == ["[]", "False False"]


def test_stand_ins_are_plain_functions_of_the_real_modules():
    """What the stand-ins replace are functions (a class or a constant could not be
    deferred this way); checked on the installed versions, loaded without the finder."""
    out = _python("""
        import importlib, importlib.machinery, inspect, sys
        import mltrail._lazy as lazy
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, lazy._Finder)]
        for module, names in lazy.LAZY.items():
            real = importlib.import_module(module)
            assert isinstance(real.__loader__, importlib.machinery.SourceFileLoader), module
            for name in names:
                assert inspect.isfunction(getattr(real, name)), (module, name)
        print("ok", len(lazy.LAZY))
        """)
    assert out.startswith("ok ")


def test_threads_wait_for_the_first_load():
    """Eight threads use a deferred module at once (pycryptodome's keccak, through an
    attribute and through a stand-in): all get the real thing, loaded once."""
    out = _python("""
        import sys, threading
        import mltrail.ledger.embedded
        from Crypto.Hash import keccak
        from eth.precompiles import bls12_g1_add
        assert "new" not in vars(keccak)
        barrier, got, errors = threading.Barrier(8), [], []

        def use():
            barrier.wait()
            try:
                got.append((keccak.new, keccak.new(data=b"", digest_bits=256).hexdigest()))
                bls12_g1_add(None)
            except AttributeError as exc:  # the real precompile reading None.msg
                if "msg" not in str(exc):
                    errors.append(repr(exc))
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len({id(f) for f, _ in got}) == 1 and len(got) == 8
        assert {h for _, h in got} == {
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"}
        print("ok")
        """)
    assert out == "ok\n"


def test_bn128_precompiles_on_the_embedded_chain(tmp_path):
    """ecadd (0x06) and ecpairing (0x08): the pairing module is loaded on first use."""
    out = _python("""
        import sys
        from pathlib import Path
        from mltrail.ledger.embedded import EmbeddedBackend

        P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
        G2 = [11559732032986387107991004021392285783925812861821192530917403151452391805634,
              10857046999023057135944570762232829481370756359578518086990519993285655852781,
              4082367875863433681332203403145435568316851327593401208105741076214120093531,
              8495653923123431417604973247489272438418190587263600148770280649306958101930]
        DOUBLE_G1 = [
            1368015179489954701390400359078579693043519447331113978918064868415326638035,
            9918110051302171585080402603319702774565515993150576347155970296011118125764]

        def words(*ints):
            return b"".join(i.to_bytes(32, "big") for i in ints)

        pairing = sys.modules["py_ecc.optimized_bn128.optimized_pairing"]
        assert "miller_loop" not in vars(pairing)
        chain = EmbeddedBackend(Path(sys.argv[1]) / "chain.sqlite", create=True)
        to = "0x" + "00" * 19
        assert chain.call(to + "06", words(1, 2, 1, 2)) == words(*DOUBLE_G1)
        assert chain.call(to + "08", words(1, 2, *G2, 1, P - 2, *G2)) == words(1)
        assert chain.call(to + "08", words(1, 2, *G2)) == words(0)
        assert "miller_loop" in vars(pairing)
        chain.close()
        print("ok")
        """, str(tmp_path))
    assert out == "ok\n"


def test_a_bls_precompile_on_a_prague_chain():
    """BLS12-381 G1 addition (0x0b, EIP-2537) through the stand-in, on py-evm's Prague rules."""
    out = _python(f"""
        import sys
        import mltrail
        from eth import constants
        from eth.chains.base import MiningChain
        from eth.db.atomic import AtomicDB
        from eth.vm.forks import PragueVM
        from eth_keys import keys

        assert not [m for m in {NEVER_LOADED!r} if m in sys.modules]
        chain = MiningChain.configure(vm_configuration=((0, PragueVM),), chain_id=1).from_genesis(
            AtomicDB(), {{"coinbase": constants.ZERO_ADDRESS, "difficulty": 0,
                         "gas_limit": 30_000_000, "extra_data": b"", "nonce": b"\\0" * 8,
                         "mix_hash": constants.ZERO_HASH32, "timestamp": 1,
                         "base_fee_per_gas": 0}}, {{}})
        head = chain.get_canonical_head()
        X = int("17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83f"
                "f97a1aeffb3af00adb22c6bb", 16)  # the BLS12-381 G1 generator
        Y = int("08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744"
                "a2888ae40caa232946c5e7e1", 16)
        g1 = X.to_bytes(64, "big") + Y.to_bytes(64, "big")
        tx = chain.get_vm(head).create_unsigned_transaction(
            nonce=0, gas_price=0, gas=1_000_000, to=b"\\0" * 19 + b"\\x0b", value=0,
            data=g1 + g1).as_signed_transaction(keys.PrivateKey(b"\\1" * 32), chain_id=1)
        out = bytes(chain.get_transaction_result(tx, head))
        assert "py_ecc.optimized_bls12_381" in sys.modules
        from py_ecc.optimized_bls12_381 import G1, add, normalize
        x, y = normalize(add(G1, G1))
        assert int(X) == int(G1[0]) and int(Y) == int(G1[1])
        assert out == int(x).to_bytes(64, "big") + int(y).to_bytes(64, "big"), out.hex()
        print("ok")
        """)
    assert out == "ok\n"
