"""Read commands run without Typer's parser (cli/fast.py) answer exactly as through Typer.

The same argument lists run twice through the real entry point, once as they come (plain
read commands take the fast path) and once with the fast path switched off; exit code,
stdout and stderr must be equal. Hypothesis drives random argument lists built from the
commands' own words, options and values.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.cli import fast
from testkit import make_home_with_artefacts

PLAIN = [
    ["show", "ds"], ["show", "ds", "--json"], ["show", "--json", "m"], ["history", "m"],
    ["history", "ds", "--json"], ["list"], ["list", "--json"], ["list", "-k", "model"],
    ["list", "--kind", "dataset", "--limit", "1", "--json"], ["lineage", "m"],
    ["lineage", "ds", "--down", "--json"], ["lineage", "m", "--format", "json"],
    ["lineage", "m", "-f", "dot"], ["roles", "list"], ["roles", "list", "--json"],
    ["ledger", "status"], ["ledger", "status", "--json"], ["--debug", "show", "m"],
    ["--as", "dev", "show", "m"], ["show", "nosuch"], ["show", "0xzz"], ["list", "-k", "ship"],
    ["lineage", "m", "--up", "--down"], ["lineage", "m", "--format", "gif"],
]
TYPER_ONLY = [
    ["show"], ["show", "a", "b"], ["show", "--help"], ["--version"], ["list", "--limit", "0"],
    ["list", "--limit", "x"], ["list", "--limit", "+3"], ["list", "--limit=2"],
    ["list", "--limit", "1", "--limit", "2"], ["show", "--", "ds"], ["show", "-x", "ds"],
    ["roles", "--json", "list"], ["lineage", "m", "-o", "out.dot", "-f", "dot"],
    ["--home"], ["--debug", "--debug", "list"], ["list", "--kind"],
]
WORDS = ["show", "history", "list", "lineage", "roles", "ledger", "status", "ds", "m",
         "nosuch", "--json", "-k", "--kind", "model", "dataset", "--limit", "0", "2",
         "99999999", "--up", "--down", "-f", "tree", "json", "--as", "dev", "--debug", "--",
         "-x", "--help", "--limit=1"]


@pytest.fixture(scope="module")
def home_root(tmp_path_factory):
    return make_home_with_artefacts(tmp_path_factory.mktemp("fast"))


def _both(cli, monkeypatch, home_root, tmp_path, args):
    env = {"MLTRAIL_HOME": str(home_root)}
    quick = cli(*args, env=env, cwd=tmp_path)
    with monkeypatch.context() as m:
        m.setattr(fast, "plan", lambda argv: None)
        slow = cli(*args, env=env, cwd=tmp_path)
    return quick, slow


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_plain_reads_take_the_fast_path_and_answer_alike(cli, monkeypatch, home_root,
                                                         tmp_path, args):
    assert fast.plan(args) is not None
    quick, slow = _both(cli, monkeypatch, home_root, tmp_path, args)
    assert (quick.code, quick.out, quick.err) == (slow.code, slow.out, slow.err)
    assert quick.code in (0, 1, 2)


@pytest.mark.parametrize("args", TYPER_ONLY, ids=" ".join)
def test_anything_else_is_left_to_typer(args):
    assert fast.plan(args) is None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))
def test_random_argument_lists_answer_alike(cli, monkeypatch, home_root, tmp_path, args):
    quick, slow = _both(cli, monkeypatch, home_root, tmp_path, args)
    assert (quick.code, quick.out, quick.err) == (slow.code, slow.out, slow.err)
