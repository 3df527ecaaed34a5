"""`mltrail oracle ...` and `mltrail audit request|result`: the auditor network's CLI.

A thin shell over :mod:`mltrail.oracle`: one library call per command. Refusals come
from the contracts and are printed with their reason (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mltrail.cli.common import JsonOpt, console, emit, home

app = typer.Typer(no_args_is_help=True)

WhoArg = Annotated[str, typer.Argument(help="An address or a local identity name.")]
AmountArg = Annotated[str, typer.Argument(help="Whole tokens.")]
RoundArg = Annotated[int, typer.Argument(help="Round number.", min=1)]


def _market() -> Any:
    from mltrail.cli.common import STATE
    from mltrail.cli.core import ask_password
    from mltrail.oracle.market import Market

    return Market.open(home(), identity=STATE.identity, password=ask_password)


def _ledger() -> Any:
    from mltrail.cli.common import open_ledger

    return open_ledger()


def _tx(what: str, tx: Any, as_json: bool, **extra: Any) -> None:
    data = {**extra, **tx.as_dict()}
    emit(data, as_json, f"{what}  tx {tx.tx_hash} block {tx.block} gas {tx.gas_used}")


@app.command("deploy")
def deploy(supply: Annotated[int, typer.Option("--supply", min=0, help="Tokens to mint to "
                                               "the admin.")] = 0,
           as_json: JsonOpt = False) -> None:
    """Deploy the token and the market once for this consortium (admin).

    Example: mltrail oracle deploy --supply 1000000
    """
    from mltrail.oracle.deploy import deploy_network

    with _ledger() as led:
        d = deploy_network(led, supply=supply)
    emit(d.as_dict(), as_json, f"oracle network deployed: token {d.network.token}, market "
         f"{d.network.market} (granted the audit role); gas {d.gas_used}")


@app.command("join")
def join(token: Annotated[str, typer.Option("--token", help="Address of the network's token "
                                            "contract.")],
         market: Annotated[str, typer.Option("--market", help="Address of the network's "
                                             "market contract.")],
         as_json: JsonOpt = False) -> None:
    """Record another member's oracle network in this home (checked on chain).

    Example: mltrail oracle join --token 0x5FbDB2315678afecb367f032d93F642f64180aa3
    --market 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512
    """
    from mltrail.oracle.deploy import join_network

    cfg = join_network(home(), token, market)
    emit(cfg.model_dump(), as_json, f"joined oracle network: market {cfg.market}")


@app.command("admit")
def admit(who: WhoArg, as_json: JsonOpt = False) -> None:
    """Admit an oracle to the network (admin).

    Example: mltrail oracle admit olivia
    """
    with _market() as m:
        _tx(f"admitted {who}", m.admit(who), as_json, oracle=m.resolve_account(who))


@app.command("remove")
def remove(who: WhoArg, as_json: JsonOpt = False) -> None:
    """Remove an oracle from the network (admin).

    Example: mltrail oracle remove olivia
    """
    with _market() as m:
        _tx(f"removed {who}", m.remove(who), as_json, oracle=m.resolve_account(who))


@app.command("mint")
def mint(who: WhoArg, amount: AmountArg, as_json: JsonOpt = False) -> None:
    """Mint tokens to an account (admin).

    Example: mltrail oracle mint olivia 500
    """
    from mltrail.oracle.market import parse_amount

    with _market() as m:
        _tx(f"minted {amount} to {who}", m.mint(who, parse_amount(amount)), as_json)


@app.command("transfer")
def transfer(who: WhoArg, amount: AmountArg, as_json: JsonOpt = False) -> None:
    """Send tokens to an account.

    Example: mltrail --as olivia oracle transfer bob 10
    """
    from mltrail.oracle.market import parse_amount

    with _market() as m:
        _tx(f"sent {amount} to {who}", m.transfer(who, parse_amount(amount)), as_json)


@app.command("stake")
def stake(amount: AmountArg, as_json: JsonOpt = False) -> None:
    """Stake tokens as this oracle.

    Example: mltrail --as olivia oracle stake 100
    """
    from mltrail.oracle.market import parse_amount

    with _market() as m:
        tx = m.stake(parse_amount(amount))
        _tx(f"staked {amount}", tx, as_json, stake=m.oracle_status()["stake"])


@app.command("unstake")
def unstake(amount: AmountArg, as_json: JsonOpt = False) -> None:
    """Withdraw stake (refused while a round you committed to is open).

    Example: mltrail --as olivia oracle unstake 50
    """
    from mltrail.oracle.market import parse_amount

    with _market() as m:
        tx = m.unstake(parse_amount(amount))
        _tx(f"withdrew {amount}", tx, as_json, stake=m.oracle_status()["stake"])


@app.command("params")
def params(
    commit_window: Annotated[int | None, typer.Option(
        "--commit-window", min=1, help="Blocks oracles have to commit.")] = None,
    reveal_window: Annotated[int | None, typer.Option(
        "--reveal-window", min=1, help="Blocks oracles have to reveal after the commits.")] = None,
    min_stake: Annotated[int | None, typer.Option(
        "--min-stake", min=0, help="Whole tokens an oracle must stake to take a round.")] = None,
    slash: Annotated[int | None, typer.Option(
        "--slash", min=0, help="Whole tokens taken from an oracle that misses or lies.")] = None,
    quorum: Annotated[int | None, typer.Option(
        "--quorum", min=1, max=32, help="Reveals needed to settle a round.")] = None,
    min_fee: Annotated[int | None, typer.Option(
        "--min-fee", min=0, help="Smallest fee, in whole tokens, a round may pay.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the market's parameters, or set some of them (admin; windows in blocks).

    Example: mltrail oracle params --commit-window 20 --reveal-window 20 --quorum 3
    """
    changes = {"commit_window": commit_window, "reveal_window": reveal_window,
               "min_stake": min_stake, "slash_amount": slash, "quorum": quorum,
               "min_fee": min_fee}
    with _market() as m:
        if any(v is not None for v in changes.values()):
            tx = m.set_params(**changes)
            _tx("parameters set", tx, as_json, params=m.params())
        else:
            emit(m.params(), as_json)


@app.command("status")
def status(who: Annotated[str | None, typer.Argument(help="Oracle (default: you).")] = None,
           as_json: JsonOpt = False) -> None:
    """An oracle's stake, rounds, earnings and slashes.

    Example: mltrail oracle status olivia --json
    """
    from mltrail.oracle.daemon import oracle_report

    with _market() as m:
        st = oracle_report(m, who)
    emit(st, as_json, lambda: console.print(
        f"oracle {st['address']}  admitted={st['admitted']}  stake={st['stake']}  "
        f"earned={st['earned']}  slashed={st['slashed']}  balance={st['balance']}  "
        f"rounds: committed {st['rounds']['committed']}, revealed {st['rounds']['revealed']}, "
        f"paid {st['rounds']['paid']}, slashed {st['rounds']['slashed']}, "
        f"open {st['open_rounds']}"))


@app.command("run")
def run(
    reference: Annotated[str | None, typer.Option("--reference", help="URL of the genuine "
                                                  "supplier to compare with.")] = None,
    queries: Annotated[int, typer.Option("--queries", min=8, max=450, help="Probes per audit; "
                                         "below 59 no identity test reaches its power and "
                                         "the audit cannot pass.")] = 64,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between looks "
                                        "at the chain.")] = 0.5,
    tick: Annotated[float, typer.Option("--tick", min=0.1, help="Seconds of an idle chain "
                                        "before sending an empty tx so windows advance.")] = 5.0,
    log_file: Annotated[Path | None, typer.Option("--log", help="Also append the log "
                                                  "here.")] = None,
) -> None:
    """Run this identity's oracle daemon until interrupted.

    Example: mltrail --as olivia oracle run --queries 64 --log oracle.log
    """
    import time

    from mltrail.oracle.daemon import Daemon
    from mltrail.oracle.metrics import AuditOptions

    def log(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        if log_file is not None:
            with open(log_file, "a") as fh:
                fh.write(stamped + "\n")

    with _market() as m:
        Daemon(m, AuditOptions(reference_url=reference, queries=queries), poll_s=poll,
               tick_s=tick, log=log).run()


@app.command("finalize")
def finalize(round_id: RoundArg, as_json: JsonOpt = False) -> None:
    """Close a round whose reveals are in or whose reveal window has passed.

    Example: mltrail oracle finalize 1 --json
    """
    with _market() as m:
        _tx(f"round {round_id} finalised", m.finalize(round_id), as_json, round=round_id)


@app.command("commit")
def commit(round_id: RoundArg, reference: Annotated[str | None, typer.Option(
               "--reference", help="URL of the genuine service to compare against.")] = None,
           as_json: JsonOpt = False) -> None:
    """By hand: audit a round's service and commit to the findings (kept for reveal).

    Example: mltrail --as olivia oracle commit 1 --reference http://127.0.0.1:8001
    """
    from mltrail.oracle.daemon import Daemon
    from mltrail.oracle.metrics import AuditOptions

    with _market() as m:
        f, tx = Daemon(m, AuditOptions(reference_url=reference)).commit_round(round_id)
        _tx(f"round {round_id}: committed {f.commitment[:18]}", tx, as_json,
            round=round_id, commitment=f.commitment)


@app.command("reveal")
def reveal(round_id: RoundArg, salt: Annotated[str | None, typer.Option(
               "--salt", help="Reveal with this salt instead of the stored one.")] = None,
           as_json: JsonOpt = False) -> None:
    """By hand: reveal the findings committed to in a round.

    Example: mltrail --as olivia oracle reveal 1
    """
    from mltrail.oracle.daemon import Daemon

    with _market() as m:
        tx = Daemon(m).reveal_round(round_id, salt)
        _tx(f"round {round_id}: revealed", tx, as_json, round=round_id)


def request(
    service: Annotated[str, typer.Argument(help="Service artefact id.")],
    fee: Annotated[str, typer.Option("--fee", help="Tokens paid to the oracles.")],
    metrics: Annotated[list[str] | None, typer.Option(
        "--metrics", help="agreement, accuracy, robustness, latency, availability or all "
        "(comma-separated or repeated).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Open an audit round for SERVICE on the oracle network, paying FEE.

    The oracles audit the endpoint of SERVICE's signed claims on the ledger; a service
    without usable claims is refused (exit 2) before any fee is paid.

    Example: mltrail --as carol audit request svc-v1 --fee 30 --metrics agreement,accuracy
    """
    from mltrail.audit.claims import load_claims
    from mltrail.errors import InputError, VerificationError
    from mltrail.oracle.market import open_round

    with _ledger() as led:
        sid = led.resolve(service)
        try:
            endpoint = load_claims(led, sid).claims.endpoint
        except VerificationError as exc:
            raise InputError(f"service {sid[:12]} has no usable ledger claims: "
                             f"{exc.message}") from exc
    with _market() as m:
        info, tx = open_round(m, sid, metrics, fee)
    data = {"round": info.round, "service": sid, "endpoint": endpoint,
            "metrics": info.metrics, "fee": info.fee, "commit_end": info.commit_end,
            "reveal_end": info.reveal_end, **tx.as_dict()}
    emit(data, as_json, f"round [bold]{info.round}[/] opened for {sid[:12]} at {endpoint} "
         f"({', '.join(data['metrics'])}"
         f"); commit by block {info.commit_end}, reveal by {info.reveal_end}; "
         f"tx {tx.tx_hash} gas {tx.gas_used}")


def result(round_id: RoundArg, check_probes: Annotated[bool, typer.Option(
        "--check-probes", help="Redraw each revealed oracle's private probes from its salt "
        "and compare with the digest it committed to.")] = False,
        as_json: JsonOpt = False) -> None:
    """Show a round's consensus and each oracle's revealed values.

    Example: mltrail audit result 1 --check-probes --json
    """
    from mltrail.oracle.daemon import check_probes as check

    with _market() as m:
        res = m.result(round_id)
        if check_probes:
            ok = check(m, res)
            for rv in res.reveals:
                rv["probes_match"] = ok.get(rv["oracle"])
    data = res.as_dict()

    def human() -> None:
        from rich.table import Table

        r = res.round
        color = {"pass": "green", "fail": "red"}.get(r.verdict or "", "yellow")
        if res.escalated_to:
            console.print(f"round {r.round}: a tied vote, escalated to round "
                          f"{res.escalated_to} (fee carried over)")
        console.print(f"round {r.round} service {r.service[:12]}: [bold]{r.status}[/]"
                      + (f", verdict [bold {color}]{r.verdict}[/]" if r.verdict else "")
                      + f"  ({r.revealed}/{r.committed} revealed, committee {r.committee})")
        if res.medians:
            console.print("  medians: " + "  ".join(f"{k}={v:g}" for k, v in
                                                   res.medians.items()))
        t = Table("oracle", "verdict", *r.metrics, "outcome")
        for rv in res.reveals:
            o = rv["oracle"]
            out = (f"paid {res.paid[o]}" if o in res.paid else
                   f"slashed {res.slashed[o]['amount']}" if o in res.slashed else "-")
            if "probes_match" in rv:
                out += "" if rv["probes_match"] else " (probes do not match commitment)"
            t.add_row(o[:10], rv["verdict"], *[f"{rv['values'].get(k, 0):g}"
                                               for k in r.metrics], out)
        for o, s in res.slashed.items():
            if not any(rv["oracle"] == o for rv in res.reveals):
                t.add_row(o[:10], "-", *["-" for _ in r.metrics],
                          f"slashed {s['amount']} ({s['reason']})")
        console.print(t)
        if res.moved is not None and r.status == "consensus":
            console.print(f"  service moved on chain: {res.moved}  evidence {res.evidence}")

    emit(data, as_json, human)


def install_audit(audit_app: typer.Typer) -> None:
    """Add ``request`` and ``result`` to the ``mltrail audit`` group (once per app)."""
    if any(c.name in ("request", "result") for c in audit_app.registered_commands):
        return
    audit_app.command("request")(request)
    audit_app.command("result")(result)
