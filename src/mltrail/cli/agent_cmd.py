"""``mltrail agent``: the warm process that runs commands without their start-up cost."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mltrail.agent import IDLE_S
from mltrail.cli.common import JsonOpt, emit
from mltrail.errors import InputError

app = typer.Typer(no_args_is_help=True)


def _line(info: dict[str, Any]) -> str:
    if info["running"]:
        return (f"agent running: pid {info['pid']}, {info['commands']} commands served, "
                f"up {info['uptime_s']:.0f} s, stops after {info['idle_s']:.0f} s idle")
    return f"no agent running ({info.get('reason', 'stopped')})"


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Whether an agent serves this installation, and since when.

    Example: mltrail agent status --json
    """
    from mltrail.agent.client import status as agent_status

    info = agent_status()
    emit(info, as_json, _line(info))


@app.command("start")
def start(
    idle: Annotated[float, typer.Option("--idle", min=1, max=7 * 86400,
                                        help="Seconds without a command before it exits.")
                    ] = IDLE_S,
    as_json: JsonOpt = False,
) -> None:
    """Start the agent now (commands otherwise start it when first needed).

    Example: mltrail agent start --idle 3600
    """
    from mltrail.agent import AgentUnavailable
    from mltrail.agent.client import start as agent_start

    try:
        info = agent_start(idle)
    except AgentUnavailable as exc:
        raise InputError(f"cannot start the agent: {exc}") from exc
    emit(info, as_json, _line(info))


@app.command("stop")
def stop(as_json: JsonOpt = False) -> None:
    """Stop the agent serving this installation (running commands finish).

    Example: mltrail agent stop
    """
    from mltrail.agent import AgentUnavailable
    from mltrail.agent.client import stop as agent_stop

    try:
        info = agent_stop()
    except AgentUnavailable as exc:
        raise InputError(str(exc)) from exc
    emit(info, as_json, f"agent {info['stopped']} stopped" if "stopped" in info
         else _line(info))
