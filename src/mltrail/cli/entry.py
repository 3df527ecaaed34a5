"""The installed ``mltrail`` command: every command runs in its own process.

There is no background process: a command imports what it needs and exits. Reads skip
Typer's parser (:mod:`mltrail.cli.fast`) and never import the EVM; writes load py-evm
without the precompile tables the embedded chain never runs (:mod:`mltrail._lazy`).
Programs that need many fast writes keep one process: the Python API
(``mltrail.Ledger``) or a node's REST API (``mltrail serve``). ``MLTRAIL_AGENT``, which
used to choose a warm agent, is ignored.
"""

from __future__ import annotations


def run() -> None:
    """Entry point of the ``mltrail`` command."""
    from mltrail.cli.main import run as run_here

    run_here()
