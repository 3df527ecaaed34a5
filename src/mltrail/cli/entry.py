"""The installed ``mltrail`` command: to the warm agent if one serves, else run here.

Kept to the standard library until it knows where the command runs, so a command handed
to the agent (:mod:`mltrail.agent`) costs an interpreter start and a socket round trip.
A command that ran here and was not a plain read starts an agent for the next ones.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Entry point of the ``mltrail`` command."""
    from mltrail.agent.client import forward, start_in_background

    outcome = forward(sys.argv[1:])
    if outcome.code is not None:
        sys.exit(outcome.code)
    from mltrail.cli.common import STATE
    from mltrail.cli.main import run as run_here

    try:
        run_here()
    finally:
        if outcome.start_agent and not STATE.fast:
            start_in_background()
