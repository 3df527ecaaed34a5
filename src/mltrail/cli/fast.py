"""Plain commands run without Typer's parser: reads, ``register`` and ``transition``.

Typer 0.29 coerces every non-flag parameter through a pydantic ``TypeAdapter``, so any
command parsed by Typer imports pydantic and builds adapters: about half of what a read
command costs, and a share of a write's (``bench/cli.py``). A command listed in
:data:`FAST` whose argument list is plain (known options spelled in full, values that need
no coercion beyond ``int`` or ``Path``) is called here directly, with the option names,
defaults and bounds read from the command function's own Typer annotations, so nothing
about the commands is written twice. ``Path`` values get Typer's own checks (an existing
path that cannot be read is left to Typer, which words the error).

Anything else (``--help``, ``--version``, an unknown or repeated option, ``--opt=value``
after the command, a value that starts with ``-``, a missing or extra argument, a missing
required option, an out-of-range number, an option of another type) answers None, and
Typer parses the command as usual and words any usage error. Tests run the same argument
lists both ways and compare exit codes and output (reads) or the arguments the command
receives (writes). This module never decides a rule and never prints.
"""

from __future__ import annotations

import importlib
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

# command words -> (module, function)
FAST: dict[tuple[str, ...], tuple[str, str]] = {
    ("show",): ("mltrail.cli.core", "show"),
    ("history",): ("mltrail.cli.core", "history"),
    ("list",): ("mltrail.cli.core", "list_"),
    ("lineage",): ("mltrail.cli.provenance", "lineage"),
    ("roles", "list"): ("mltrail.cli.roles", "list_"),
    ("ledger", "status"): ("mltrail.cli.ledger_cmd", "status"),
    ("register",): ("mltrail.cli.core", "register"),
    ("transition",): ("mltrail.cli.core", "transition"),
}
_GLOBAL_VALUES = ("--home", "--as")
_NUMBER = re.compile(r"[0-9]{1,18}")
_UNSUPPORTED = object()  # an option this module leaves to Typer when given
_UnionType = type(int | None)


class _Spec:
    """A command's positional arguments and options, from its Typer annotations."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        from typer.models import ArgumentInfo, OptionInfo
        from typer.utils import get_params_from_function

        self.args: list[tuple[str, Any, Any]] = []  # (name, type, info)
        self.flags: dict[str, str] = {}
        self.options: dict[str, tuple[str, Any, Any]] = {}  # decl -> (name, type, info)
        self.lists: set[str] = set()  # options that may be repeated (list[...])
        self.required: set[str] = set()
        for name, meta in get_params_from_function(fn).items():  # Typer's own reading
            info, base = meta.default, meta.annotation
            if isinstance(info, ArgumentInfo):
                kind = _kind(base, info)
                if kind not in (str, Path) or info.default is not ...:
                    raise TypeError(f"{fn.__name__}: argument {name} is not a plain str or Path")
                self.args.append((name, kind, info))
                continue
            if not isinstance(info, OptionInfo):
                raise TypeError(f"{fn.__name__}: parameter {name} has no Typer annotation")
            decls = [d for d in info.param_decls or () if d.startswith("-")]
            plain = not (info.callback or info.is_eager or info.envvar or info.parser
                         or any("/" in d for d in decls))
            if typing.get_origin(_optional(base)) is list:
                (item,) = typing.get_args(_optional(base))
                kind = str if item is str else _UNSUPPORTED
                self.lists.add(name)
            else:
                kind = _kind(base, info)
            if not decls or not plain:
                kind = _UNSUPPORTED
            if info.default is ...:
                self.required.add(name)
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
            if name in self.lists:
                kwargs.setdefault(name, []).append(value)
                continue
            if name in kwargs:
                return None
            kwargs[name] = value
        if len(positional) != len(self.args) or not self.required <= kwargs.keys():
            return None
        for (name, kind, info), text in zip(self.args, positional, strict=True):
            value = _value(kind, info, text)
            if value is None:
                return None
            kwargs[name] = value
        return kwargs


def _optional(base: Any) -> Any:
    """``X`` for ``X | None``, else ``base``."""
    args = [a for a in typing.get_args(base) if a is not type(None)]
    return args[0] if typing.get_origin(base) in (typing.Union, _UnionType) and len(args) == 1 \
        else base


def _kind(base: Any, info: Any) -> Any:
    """How a value of this annotation is read here: bool, int, str, Path or unsupported."""
    one = _optional(base)
    if base is bool:
        return bool
    if base is int:
        return int
    if one is str:
        return str
    if one is Path and _plain_path(info):
        return Path
    return _UNSUPPORTED


def _plain_path(info: Any) -> bool:
    """Typer's default Path checks: may exist or not, file or folder, readable if it does."""
    return (not info.exists and info.file_okay and info.dir_okay and info.readable
            and not (info.writable or info.resolve_path or info.allow_dash or info.path_type))


def _value(kind: Any, info: Any, text: str) -> Any:
    if kind is str:
        return text
    if kind is Path:  # Typer's check on an existing path (coerce_cli_path), else its words
        return None if os.path.exists(text) and not os.access(text, os.R_OK) else Path(text)
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
    target = FAST.get(tuple(argv[i:i + 2])) or FAST.get(tuple(argv[i:i + 1]))
    if target is None:
        return None
    size = 2 if tuple(argv[i:i + 2]) in FAST else 1
    fn = getattr(importlib.import_module(target[0]), target[1])
    kwargs = _Spec(fn).parse(argv[i + size:])
    if kwargs is None:
        return None
    return (lambda: fn(**kwargs)), glob

