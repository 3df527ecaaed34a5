"""Import discipline of the CLI (issue 9, fast reads): what each command may import.

Each command runs in a fresh interpreter through the real entry point; the modules it
imported are read from ``sys.modules`` at exit. Read commands answer from the index and
must not import the EVM, web3, eth-account or the ABI/eth-utils stack, nor pydantic (Typer
0.29 coerces parameters with it; plain reads are parsed by ``cli/fast.py``); an embedded write
must not import eth-account or eth-keyfile (its keystore is decrypted by
``mltrail.keystore``). No timings here: speed is measured by ``bench/cli.py``.

py-evm imports its Prague BLS12-381 precompiles eagerly (``eth/precompiles/__init__.py``),
and with them py_ecc's pairing tables; ``mltrail._lazy`` defers those until first used,
so an embedded write must not load them (``tests/test_lazy_imports.py`` runs the
precompiles themselves).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import PASSWORD, make_home_with_artefacts

RUN = """
import json, os, sys
from mltrail.cli.main import run
code = 0
try:
    run()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
with open(os.environ["MODULES_OUT"], "w") as fh:
    json.dump(sorted(sys.modules), fh)
sys.exit(code)
"""
NOT_ON_READS = ("eth", "eth_account", "eth_keyfile", "py_ecc", "web3", "eth_abi", "eth_utils",
                "eth_keys", "mltrail.ledger.client", "mltrail.ledger.embedded",
                "pydantic", "mltrail.config_models")  # plain reads skip Typer's parser
NOT_ON_WRITES = ("eth_account", "eth_keyfile", "web3", "py_ecc.optimized_bls12_381",
                 "py_ecc.bls", "pycparser")
READS = [["show", "ds", "--json"], ["show", "ds"], ["history", "ds"], ["lineage", "ds"],
         ["list", "--json"], ["roles", "list"], ["ledger", "status"]]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_home_with_artefacts(tmp_path_factory.mktemp("imports"))


def _modules(home: Path, tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = dict(os.environ, MLTRAIL_HOME=str(home), MLTRAIL_PASSWORD=PASSWORD,
               MODULES_OUT=str(out))
    p = subprocess.run([sys.executable, "-c", RUN, *args], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return set(json.loads(out.read_text()))


def _top(mods: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in mods)


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_reads_import_no_evm_and_no_eth_account(home, tmp_path, args):
    mods = _modules(home, tmp_path, *args)
    assert "mltrail.ledger.reader" in mods  # it did answer from the index
    assert _top(mods, NOT_ON_READS) == []


def test_json_read_imports_no_rich(home, tmp_path):
    mods = _modules(home, tmp_path, "show", "m", "--json")
    assert "rich" not in mods


def test_embedded_write_imports_no_eth_account(home, tmp_path):
    mods = _modules(home, tmp_path, "--as", "dev", "transition", "m", "trained", "--json")
    assert "eth" in mods and "mltrail.keystore" in mods  # it wrote through py-evm
    assert _top(mods, NOT_ON_WRITES) == []
