"""The ``mltrail`` command: global options and the command groups.

Each group lives in its own module; this one only wires them together and turns every
failure into one line on stderr and an exit code (DESIGN.md): 0 success, 1 a
verification failed, 2 bad input, a usage error or a refused operation, 3 an internal
error (a bug, please report it; ``--debug`` shows the traceback). It must never print a
traceback for any input without ``--debug``.

Typer ships its own copy of Click (``typer._click``); its usage errors derive from the
public :class:`typer.TyperException`, which is what is caught here (pinned in
pyproject.toml: ``typer>=0.29,<0.30``). A stand-alone ``click`` may also be installed by
other packages; its exceptions are caught too, in case an older typer is used.

Plain read commands (``show ds --json``, ``roles list``, ...) and plain ``register`` and
``transition`` calls are made without Typer's parser (:mod:`mltrail.cli.fast`, which
reads their options from the same annotations); everything else, help and every usage
error included, goes through Typer.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any, NoReturn

import typer

from mltrail.cli.common import STATE, err_console, escape
from mltrail.errors import MltrailError

# Top-level commands, by the module whose ``install(app)`` adds them.
COMMANDS: dict[str, tuple[str, ...]] = {
    "mltrail.cli.core": ("init", "register", "transition", "show", "history", "list"),
    "mltrail.cli.provenance": ("run", "verify", "lineage", "export", "anchor", "import"),
    "mltrail.cli.serve": ("serve-model", "serve-proxy"),
    "mltrail.cli.node": ("serve", "token"),
}
# Command groups: name -> (module holding ``app``, help).
GROUPS: dict[str, tuple[str, str]] = {
    "id": ("mltrail.cli.ids", "Participants' identities (encrypted keystores).\n\n"
          "Example: mltrail id create alice"),
    "roles": ("mltrail.cli.roles", "Grant, revoke and list roles.\n\n"
             "Example: mltrail roles grant alice model_developer"),
    "ledger": ("mltrail.cli.ledger_cmd", "Check the ledger, rebuild its index, show its status.\n\n"
              "Example: mltrail ledger check --json"),
    "pol": ("mltrail.cli.pol", "Proof-of-Learning: train, verify, dispute.\n\n"
           "Example: mltrail pol train proof --epochs 2 --k 20"),
    "audit": ("mltrail.cli.audit", "Audit an inference service.\n\n"
             "Example: mltrail audit run --target http://127.0.0.1:8000 --max-queries 80"),
    "oracle": ("mltrail.cli.oracle", "The auditor network: oracles, stakes, rounds.\n\n"
              "Example: mltrail oracle status --json"),
}
# Commands another module adds to a group: group -> (module, function taking the group's app).
EXTENSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "audit": (("mltrail.cli.oracle", "install_audit"),),
    "pol": (("mltrail.cli.distributed", "install_pol"),),
}
_GLOBAL_WITH_VALUE = ("--home", "--as")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("mltrail")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            v = "unknown"
        sys.stdout.write(f"mltrail {v}\n")
        raise typer.Exit(0)


def _global(
    home: Annotated[str | None, typer.Option("--home", help="The .mltrail home to use.",
                                             envvar="MLTRAIL_HOME")] = None,
    identity: Annotated[str | None, typer.Option("--as", help="Act as this identity.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True,
        callback=_version)] = False,
) -> None:
    STATE.home, STATE.identity, STATE.debug = home or None, identity, debug


def _first_command(argv: list[str]) -> str | None:
    """The command word in ``argv`` (global options and their values skipped)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_app(command: str | None = None) -> typer.Typer:
    """The Typer app with every command, or only what ``command`` needs.

    Typer inspects every registered function's signature on each run, so building only the
    needed part keeps a read command fast. An unknown or absent command gets the whole app
    (for help, and for "no such command" with suggestions).
    """
    app = typer.Typer(name="mltrail", no_args_is_help=True, pretty_exceptions_enable=False,
                      add_completion=False,
                      help="Accountable ML: a provenance ledger, Proof-of-Learning and "
                           "inference audits.\n\nExample: mltrail --as alice register "
                           "data.csv --kind dataset")
    app.callback()(_global)
    known = command in GROUPS or any(command in names for names in COMMANDS.values())
    for module, names in COMMANDS.items():
        if not known or command in names:
            importlib.import_module(module).install(app)
    for name, (module, help_text) in GROUPS.items():
        if not known or command == name:
            group = importlib.import_module(module).app
            for ext_module, fn in EXTENSIONS.get(name, ()):
                getattr(importlib.import_module(ext_module), fn)(group)
            app.add_typer(group, name=name, help=help_text)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, for tools that want ``mltrail.cli.main:app``
        return build_app()
    raise AttributeError(name)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usage_error(exc: Exception) -> NoReturn:
    """A usage error from Typer's (or Click's) parser: one line, exit 2."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        err_console.print(ctx.get_help(), markup=False, highlight=False)  # bare group: help
        sys.exit(2)
    fmt = getattr(exc, "format_message", None)
    message = _one_line(fmt() if callable(fmt) else str(exc))
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    err_console.print(f"[bold red]error:[/] {escape(message)}{escape(where)}", highlight=False)
    sys.exit(2)


def run() -> None:
    """Entry point: run the app, mapping every failure to one line and an exit code."""
    from mltrail.cli.fast import plan

    try:
        fast = plan(sys.argv[1:])  # a plain command: no Typer parsing (cli/fast.py)
        if fast is not None:
            call, glob = fast
            STATE.home, STATE.identity, STATE.debug = (glob["home"] or None, glob["identity"],
                                                       glob["debug"])
            call()
        else:
            build_app(_first_command(sys.argv[1:]))(prog_name="mltrail", standalone_mode=False)
    except MltrailError as exc:
        if STATE.debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(exc.diagnostics())}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(2)
    except typer.TyperException as exc:  # typer's own click: usage errors, bad values
        _usage_error(exc)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (``| head``): say so once, exit 2
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        err_console.print("error: the output was closed before all of it was written",
                          highlight=False)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # a stand-alone click's usage errors, and anything unforeseen
        if "click" in sys.modules:
            import click

            if isinstance(exc, click.exceptions.ClickException):
                _usage_error(exc)
        if STATE.debug:
            raise
        err_console.print(f"[bold red]internal error (please report):[/] {type(exc).__name__}: "
                          f"{escape(_one_line(str(exc)))} (rerun with --debug for the traceback)",
                          highlight=False)
        sys.exit(3)


if __name__ == "__main__":
    run()
