"""`mltrail serve-model` and `mltrail serve-proxy` (being written; see the audit issue)."""

from __future__ import annotations

import typer


def install(app: typer.Typer) -> None:
    """Add the serve commands to the top-level app."""
