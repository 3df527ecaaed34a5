"""`mltrail pol` commands (being written; see the pol issue)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
