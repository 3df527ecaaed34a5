"""The ``mltrail`` command: global options and the command groups.

Each group lives in its own module; this one only wires them together and turns
:class:`~mltrail.errors.MltrailError` into one line and an exit code.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from mltrail.cli import audit, core, ids, ledger_cmd, node, pol, roles, serve
from mltrail.cli.common import STATE, err_console
from mltrail.errors import MltrailError

app = typer.Typer(
    name="mltrail",
    help="Accountable ML: a provenance ledger, Proof-of-Learning and inference audits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    home: Annotated[str | None, typer.Option("--home", help="The .mltrail home to use.",
                                             envvar="MLTRAIL_HOME")] = None,
    identity: Annotated[str | None, typer.Option("--as", help="Act as this identity.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    STATE.home, STATE.identity, STATE.debug = home, identity, debug


core.install(app)
serve.install(app)
node.install(app)
app.add_typer(ids.app, name="id", help="Participants' identities (encrypted keystores).")
app.add_typer(roles.app, name="roles", help="Grant, revoke and list roles.")
app.add_typer(ledger_cmd.app, name="ledger", help="Check or rebuild the ledger's event index.")
app.add_typer(pol.app, name="pol", help="Proof-of-Learning: train, verify, dispute.")
app.add_typer(audit.app, name="audit", help="Audit an inference service.")


def run() -> None:
    """Entry point: run the app, mapping mltrail errors to one line and an exit code."""
    try:
        app(standalone_mode=False)
    except MltrailError as exc:
        if STATE.debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(exc.diagnostics())}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and anything unforeseen
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if STATE.debug:
            raise
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
                          "(rerun with --debug for the traceback)", highlight=False)
        sys.exit(3)


if __name__ == "__main__":
    run()
