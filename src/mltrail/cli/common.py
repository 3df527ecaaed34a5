"""Shared CLI plumbing: global options, output in text or JSON, error reporting.

Commands call :func:`emit` to print a result (a dict for ``--json``, Rich text
otherwise) and raise :class:`~mltrail.errors.MltrailError` for failures; :func:`run`
in ``main`` turns those into one line on stderr and the DESIGN.md exit codes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from mltrail.errors import MltrailError

if TYPE_CHECKING:
    from rich.console import Console

    from mltrail.config import Home
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.reader import IndexReader

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]



class _LazyConsole:
    """A Rich console made on first use: Rich is imported only when something is printed
    through it (``--json`` output never is). Off a terminal (a pipe, a file) and without
    ``COLUMNS``, lines are not cut at 80 columns: ids, addresses and times stay whole."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            wide = not stream.isatty() and not os.environ.get("COLUMNS")
            self._console = Console(stderr=self._stderr, soft_wrap=True,
                                    width=PIPE_WIDTH if wide else None)
        return getattr(self._console, name)


PIPE_WIDTH = 400
console = cast("Console", _LazyConsole())
err_console = cast("Console", _LazyConsole(stderr=True))


def escape(text: str) -> str:
    """:func:`rich.markup.escape`, imported on first use."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@dataclass
class CliState:
    """Options given before the command: ``mltrail --home H --debug CMD``."""

    home: str | None = None
    debug: bool = False
    identity: str | None = None


STATE = CliState()


def home() -> Home:
    """The home selected by ``--home``, ``MLTRAIL_HOME`` or discovery."""
    from mltrail.config import find_home

    return find_home(STATE.home)


def open_ledger(identity: str | None = None) -> Ledger:
    """Open the ledger of the current home as ``identity`` (or the home's default).

    The home's files are checked first (:func:`mltrail.ledger.reader.load_home`), so a
    damaged home is one line, never an internal error.
    """
    import sqlite3

    from mltrail.cli.core import ask_password
    from mltrail.errors import InputError
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.reader import load_home

    h = home()
    load_home(h)
    try:
        return Ledger.open(h, identity=identity or STATE.identity, password=ask_password)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"home damaged: {h.root}: {exc}") from exc


def read_index() -> IndexReader:
    """A reader of the current home's index, brought up to the chain's head.

    When the index is current this touches neither py-evm nor eth-account (the fast path);
    otherwise the full ledger syncs the index from the chain first.
    """
    from mltrail.errors import LedgerError
    from mltrail.ledger.reader import IndexReader, load_home

    h = home()
    settings, lifecycle = load_home(h)
    reader = IndexReader.open(h, settings, lifecycle)
    if reader is not None:
        return reader
    with open_ledger() as led:
        led.sync()
    reader = IndexReader.open(h, settings, lifecycle, require_current=False)
    if reader is None:
        raise LedgerError(f"cannot read the index {h.index_db} after syncing it")
    return reader


def iso(timestamp: int) -> str:
    """A block timestamp as ISO 8601 UTC."""
    from mltrail.ledger.reader import iso_time

    return iso_time(timestamp)


def tx_fields(result: Any) -> dict[str, Any]:
    """A write's ``tx_hash``, ``block``, ``gas_used`` and ISO ``timestamp``."""
    data = dict(result.as_dict())
    if isinstance(data.get("timestamp"), int):
        data["timestamp"] = iso(data["timestamp"])
    return data


def emit(data: Any, as_json: bool, human: Callable[[], None] | str | None = None) -> None:
    """Print ``data`` as JSON, or call/print ``human`` for people. A full disk or a failing
    device under stdout is one line (exit 2), not an internal error."""
    try:
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        elif human is None:
            console.print_json(json.dumps(data, default=str))
        elif callable(human):
            human()
        else:
            console.print(human)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise MltrailError(f"cannot write the output: {exc.strerror or exc}") from exc


def actor(address: str, name: str | None, full: bool = False) -> str:
    """An account for people: ``name (0x12345678…)`` when a local identity has that address,
    else the address (cut to ``0x12345678…`` unless ``full``). Rich markup is escaped."""
    short = f"{address[:10]}…" if len(address) > 10 else address
    if name:
        return f"{escape(name)} ({short})"
    return escape(address if full else short)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) if all(
            not isinstance(v, dict | list) for v in value) else f"{len(value)} item(s)"
    return str(value)


def fields_table(data: dict[str, Any]) -> None:
    """Print ``data`` for people: one ``key  value`` line each, nested dicts flattened to
    ``outer.inner`` keys, empty values left out (``--json`` has everything)."""
    from rich.table import Table

    t = Table(show_header=False, box=None)

    def add(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                add(f"{prefix}{k}.", v)
            elif v is not None and v != []:
                t.add_row(f"[bold]{escape(prefix + k)}[/]", escape(_cell(v)))

    add("", data)
    console.print(t)


def show_progress(as_json: bool) -> bool:
    """Progress bars only on a terminal and never in JSON mode."""
    return not as_json and sys.stderr.isatty() and not os.environ.get("CI")


class Live:
    """A Rich progress bar's handles; every method is silent without a bar. Calling it is
    ``advance`` (what the workflows' ``advance(n)`` callbacks take)."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self.bar, self.task = bar, task

    def __call__(self, n: int = 1) -> None:
        self.advance(n)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def total(self, n: int) -> None:
        """The bar's total, once it is known."""
        if self.bar is not None:
            self.bar.update(self.task, total=n)

    def status(self, text: str) -> None:
        """The line beside the bar."""
        if self.bar is not None:
            self.bar.update(self.task, status=text)

    def line(self, text: str) -> None:
        """A line printed above the bar."""
        if self.bar is not None:
            self.bar.console.print(text, highlight=False)

    @contextmanager
    def counted(self, total: int | None) -> Iterator[Callable[[int], None]]:
        """The workflows' ``progress(total)`` on this bar."""
        if self.bar is not None and total is not None:
            self.bar.update(self.task, total=total)
        yield self.advance


@contextmanager
def progress(description: str, total: int | None, enabled: bool) -> Iterator[Live]:
    """A Rich progress bar on stderr (see :func:`show_progress`); yields its :class:`Live`,
    which is also its ``advance(n)``. Silent when not enabled."""
    if not enabled:
        yield Live()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # a real Console: Rich's Live enters it as a context manager, which the lazy proxy
    # (special methods are looked up on the type) cannot be
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                  console=Console(stderr=True), transient=True) as bar:
        yield Live(bar, bar.add_task(description, total=total, status=""))
