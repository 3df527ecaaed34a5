"""Commands run without Typer's parser (cli/fast.py) answer exactly as through Typer.

Reads: the same argument lists run twice through the real entry point, once as they come
(plain read commands take the fast path) and once with the fast path switched off; exit
code, stdout and stderr must be equal. Writes (``register``, ``transition``): the command
functions are replaced by ones that record the arguments they receive (the same
signature, so both parsers read the same annotations) and nothing is written; exit code,
stderr and the recorded arguments must be equal. Hypothesis drives random argument lists
built from the commands' own words, options and values.
"""

from __future__ import annotations

import functools
import inspect

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
    ["lineage", "m", "-o", "out.dot", "-f", "dot"],
]
TYPER_ONLY = [
    ["show"], ["show", "a", "b"], ["show", "--help"], ["--version"], ["list", "--limit", "0"],
    ["list", "--limit", "x"], ["list", "--limit", "+3"], ["list", "--limit=2"],
    ["list", "--limit", "1", "--limit", "2"], ["show", "--", "ds"], ["show", "-x", "ds"],
    ["roles", "--json", "list"], ["lineage", "m", "-o", "-", "-f", "dot"],
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


PLAIN_WRITES = [
    ["register", "data.csv", "-k", "dataset"], ["register", "data.csv", "--kind", "model"],
    ["--as", "dev", "register", "folder", "-k", "model", "--parent", "ds", "-p", "m"],
    ["register", "-k", "model", "missing.bin", "--name", "", "--json"],
    ["register", "data.csv", "-k", "model", "-p", "ds", "-p", "ds"], ["register", "", "-k", "x"],
    ["register", "sp ace", "-k", "x", "--name", "n\u00e9"], ["transition", "m", "trained"],
    ["transition", "m", "trained", "--evidence", "data.csv", "--json"],
    ["--home", "h", "--debug", "transition", "--json", "0xab", "validated"],
    ["transition", "m", "trained", "--evidence", ""],
]
WRITES_TO_TYPER = [
    ["register", "data.csv"], ["register", "-k", "model"], ["register", "a", "b", "-k", "m"],
    ["register", "a", "-k", "m", "--kind", "n"], ["register", "a", "-k", "m", "--name", "x",
                                                 "--name", "y"],
    ["register", "a", "--kind=m"], ["register", "a", "-k", "-m"], ["transition", "m"],
    ["transition", "m", "s", "--evidence", "e", "--evidence", "f"], ["register", "--help"],
    ["transition", "m", "s", "--json", "--json"], ["register", "a", "-k", "m", "--"],
]
WRITE_WORDS = ["register", "transition", "data.csv", "folder", "missing", "", "m", "trained",
               "-k", "--kind", "model", "-p", "--parent", "ds", "--name", "n", "--evidence",
               "--json", "--as", "dev", "--debug", "--", "-x", "--kind=model", "--help"]


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """The write commands replaced by recorders; yields the list of recorded calls."""
    from mltrail.cli import core

    calls: list[tuple[str, dict]] = []
    for name in ("register", "transition"):
        real = getattr(core, name)

        def record(*args, _real=real, **kwargs):
            bound = inspect.signature(_real).bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((_real.__name__, dict(bound.arguments)))

        monkeypatch.setattr(core, name, functools.wraps(real)(record))
    (tmp_path / "data.csv").write_text("x\n")
    (tmp_path / "folder").mkdir()
    return calls


def _both_writes(cli, monkeypatch, recorded, tmp_path, args):
    quick = cli(*args, cwd=tmp_path)
    got_quick = list(recorded)
    recorded.clear()
    with monkeypatch.context() as m:
        m.setattr(fast, "plan", lambda argv: None)
        slow = cli(*args, cwd=tmp_path)
    got_slow = list(recorded)
    recorded.clear()
    return (quick.code, quick.err, got_quick), (slow.code, slow.err, got_slow)


@pytest.mark.parametrize("args", PLAIN_WRITES, ids=" ".join)
def test_plain_writes_take_the_fast_path_and_get_the_same_arguments(cli, monkeypatch, recorded,
                                                                    tmp_path, args):
    assert fast.plan(args) is not None
    quick, slow = _both_writes(cli, monkeypatch, recorded, tmp_path, args)
    assert quick == slow
    assert quick[0] == 0 and len(quick[2]) == 1


@pytest.mark.parametrize("args", WRITES_TO_TYPER, ids=" ".join)
def test_unusual_writes_are_left_to_typer(args):
    assert fast.plan(args) is None


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(st.sampled_from(WRITE_WORDS), min_size=1, max_size=7))
def test_random_write_argument_lists_get_the_same_arguments(cli, monkeypatch, recorded, tmp_path,
                                                            args):
    quick, slow = _both_writes(cli, monkeypatch, recorded, tmp_path, args)
    assert quick == slow
