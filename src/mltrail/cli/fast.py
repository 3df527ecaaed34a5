"""Read commands run without Typer's parser when their arguments are plain.

Typer 0.29 coerces every non-flag parameter through a pydantic ``TypeAdapter``, so any
command parsed by Typer imports pydantic and builds adapters: about half of what a read
command costs (``bench/cli.py``). A read command whose argument list is plain (known
options spelled in full, values that need no coercion beyond ``int``) is called here
directly, with the option names, defaults and bounds read from the command function's
own Typer annotations, so nothing about the commands is written twice.

Anything else (``--help``, ``--version``, an unknown or repeated option, ``--opt=value``
after the command, a value that starts with ``-``, a missing or extra argument, an
out-of-range number, an option of another type) answers None, and Typer parses the
command as usual and words any usage error. A test runs the same argument lists both
ways and compares exit codes and output. This module never decides a rule, never runs a
write command and never prints.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Callable
from typing import Any

# command words -> (module, function); read commands only
FAST_READS: dict[tuple[str, ...], tuple[str, str]] = {
    ("show",): ("mltrail.cli.core", "show"),
    ("history",): ("mltrail.cli.core", "history"),
    ("list",): ("mltrail.cli.core", "list_"),
    ("lineage",): ("mltrail.cli.provenance", "lineage"),
    ("roles", "list"): ("mltrail.cli.roles", "list_"),
    ("ledger", "status"): ("mltrail.cli.ledger_cmd", "status"),
}
_GLOBAL_VALUES = ("--home", "--as")
_NUMBER = re.compile(r"[0-9]{1,18}")
_UNSUPPORTED = object()  # an option this module leaves to Typer when given


class _Spec:
    """A command's positional arguments and options, from its Typer annotations."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        from typer.models import ArgumentInfo, OptionInfo
        from typer.utils import get_params_from_function

        self.args: list[str] = []
        self.flags: dict[str, str] = {}
        self.options: dict[str, tuple[str, Any, Any]] = {}  # decl -> (name, type, info)
        for name, meta in get_params_from_function(fn).items():  # Typer's own reading
            info, base = meta.default, meta.annotation
            if isinstance(info, ArgumentInfo):
                if base is not str or info.default is not ...:
                    raise TypeError(f"{fn.__name__}: argument {name} is not a plain str")
                self.args.append(name)
                continue
            if not isinstance(info, OptionInfo):
                raise TypeError(f"{fn.__name__}: parameter {name} has no Typer annotation")
            decls = [d for d in info.param_decls or () if d.startswith("-")]
            plain = not (info.callback or info.is_eager or info.envvar or info.parser
                         or any("/" in d for d in decls))
            if not decls or not plain:
                kind: Any = _UNSUPPORTED
            elif base is bool:
                kind = bool
            elif base is int or set(typing.get_args(base) or (base,)) <= {str, type(None)}:
                kind = int if base is int else str
            else:
                kind = _UNSUPPORTED
            for d in decls:
                if kind is bool:
                    self.flags[d] = name
                else:
                    self.options[d] = (name, kind, info)

    def parse(self, words: list[str]) -> dict[str, Any] | None:
        """Keyword arguments for the command, or None when Typer should parse ``words``."""
        kwargs: dict[str, Any] = {}
        positional: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            if word in self.flags:
                name, value = self.flags[word], True
                i += 1
            elif word in self.options:
                name, kind, info = self.options[word]
                if kind is _UNSUPPORTED or i + 1 >= len(words) or words[i + 1].startswith("-"):
                    return None
                value = _value(kind, info, words[i + 1])
                if value is None:
                    return None
                i += 2
            elif word.startswith("-"):
                return None
            else:
                positional.append(word)
                i += 1
                continue
            if name in kwargs:
                return None
            kwargs[name] = value
        if len(positional) != len(self.args):
            return None
        return {**dict(zip(self.args, positional, strict=True)), **kwargs}


def _value(kind: Any, info: Any, text: str) -> Any:
    if kind is str:
        return text
    if not _NUMBER.fullmatch(text):
        return None
    n = int(text)
    if (info.min is not None and n < info.min) or (info.max is not None and n > info.max):
        return None
    return n


def plan(argv: list[str]) -> tuple[Callable[[], None], dict[str, Any]] | None:
    """What to run for ``argv`` without Typer: the call and the global options
    (``home``, ``identity``, ``debug``), or None when Typer should parse ``argv``."""
    glob: dict[str, Any] = {"home": None, "identity": None, "debug": False}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        word = argv[i]
        key, _, inline = word.partition("=")
        slot = "home" if key == "--home" else "identity"
        if key in _GLOBAL_VALUES and inline and glob[slot] is None:
            glob[slot] = inline
            i += 1
        elif word in _GLOBAL_VALUES and i + 1 < len(argv) and glob[slot] is None \
                and not argv[i + 1].startswith("-"):
            glob[slot] = argv[i + 1]
            i += 2
        elif word == "--debug" and not glob["debug"]:
            glob["debug"] = True
            i += 1
        else:
            return None
    target = FAST_READS.get(tuple(argv[i:i + 2])) or FAST_READS.get(tuple(argv[i:i + 1]))
    if target is None:
        return None
    size = 2 if tuple(argv[i:i + 2]) in FAST_READS else 1
    fn = getattr(importlib.import_module(target[0]), target[1])
    kwargs = _Spec(fn).parse(argv[i + size:])
    if kwargs is None:
        return None
    return (lambda: fn(**kwargs)), glob

