"""Every command's help: a first sentence, an ``Example: mltrail ...`` paragraph that parses,
and a description for every option and argument.

The tree is the whole app built from ``cli/main.py``'s COMMANDS, GROUPS and EXTENSIONS
tables, so a command added anywhere is checked here without being listed.
"""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import pytest
import typer

from mltrail.cli.main import _GLOBAL_WITH_VALUE, build_app

# i10p/i10a give these their help text on their branches; the lead removes this after merging.
PENDING_MODULES: set[str] = set()
PENDING_GROUPS: set[tuple[str, ...]] = set()


@cache
def _root() -> Any:
    return typer.main.get_command(build_app())


def _walk(cmd: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        out += _walk(sub, (*path, name))
    return out


def _cases() -> list[Any]:
    cases = []
    for path, cmd in _walk(_root(), ()):
        module = getattr(cmd.callback, "__module__", None)
        pending = module in PENDING_MODULES or path in PENDING_GROUPS
        marks = [pytest.mark.xfail(reason="help text comes with i10p/i10a", strict=False)] \
            if pending else []
        cases.append(pytest.param(path, cmd, marks=marks, id=" ".join(("mltrail", *path))))
    return cases


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def _example(cmd: Any) -> str:
    examples = [p for p in _paragraphs(cmd.help or "") if p.startswith("Example: mltrail ")]
    assert examples, "no paragraph starting 'Example: mltrail ...'"
    return examples[0].removeprefix("Example: ")


def _command_words(argv: list[str]) -> list[str]:
    """The words of ``argv`` (after 'mltrail') before the first option of the command."""
    words, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif arg.startswith("-"):
            if words:
                break
        else:
            words.append(arg)
    return words


@pytest.mark.parametrize("path, cmd", _cases())
def test_help_has_a_sentence_and_an_example(path: tuple[str, ...], cmd: Any) -> None:
    paragraphs = _paragraphs(cmd.help or "")
    assert paragraphs, "no help text"
    first = paragraphs[0]
    assert not first.startswith("Example:") and first.rstrip(")").endswith((".", "?")), \
        f"the help must start with a sentence, not {first!r}"
    argv = shlex.split(_example(cmd))
    assert argv[0] == "mltrail"
    assert _command_words(argv[1:])[:len(path)] == list(path), \
        f"the example runs another command: {argv}"


@pytest.mark.parametrize("path, cmd", _cases())
def test_every_option_and_argument_is_described(path: tuple[str, ...], cmd: Any) -> None:
    bare = [p.name for p in cmd.params if p.name != "help" and not (getattr(p, "help", "") or
                                                                       "").strip()]
    assert not bare, f"no help= for {bare}"


@pytest.mark.parametrize("path, cmd", _cases())
def test_the_example_parses(path: tuple[str, ...], cmd: Any,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """The example with ``--help`` added: every word and option must be known to the parser
    (``--help`` goes before a ``--`` so it is never passed to a wrapped command)."""
    argv = shlex.split(_example(cmd))[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = [*argv[:cut], "--help", *argv[cut:]]
    code = _root().main(args, prog_name="mltrail", standalone_mode=False)
    out = capsys.readouterr().out
    assert code == 0, f"{args}: {out}"
    assert " ".join(("Usage: mltrail", *path)) in " ".join(out.split())
