"""``mltrail roles``: grant, revoke and list roles (granting is the admin's)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mltrail.cli.common import (
    JsonOpt,
    actor,
    console,
    emit,
    escape,
    open_ledger,
    read_index,
    tx_fields,
)

app = typer.Typer(no_args_is_help=True)

Account = Annotated[str, typer.Argument(help="Address, or the name of a local identity.")]
Role = Annotated[str, typer.Argument(help="Role name from the lifecycle.")]


@app.command("grant")
def grant(account: Account, role: Role, as_json: JsonOpt = False) -> None:
    """Grant ROLE to ACCOUNT.

    Example: mltrail roles grant alice model_developer
    """
    with open_ledger() as led:
        r = led.grant_role(account, role)
    emit({"account": account, "role": role, **tx_fields(r)}, as_json,
         f"granted [bold]{escape(role)}[/] to {escape(account)}  tx {r.tx_hash} block {r.block} "
         f"gas {r.gas_used}")


@app.command("revoke")
def revoke(account: Account, role: Role, as_json: JsonOpt = False) -> None:
    """Revoke ROLE from ACCOUNT.

    Example: mltrail roles revoke alice model_developer
    """
    with open_ledger() as led:
        r = led.revoke_role(account, role)
    emit({"account": account, "role": role, **tx_fields(r)}, as_json,
         f"revoked [bold]{escape(role)}[/] from {escape(account)}  tx {r.tx_hash} block {r.block}")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every account holding a role, from the chain.

    Example: mltrail roles list --json
    """
    from mltrail.identity import names_by_address

    with read_index() as reader:
        masks = reader.roles()
        names = names_by_address(reader.home)
        data: list[dict[str, Any]] = [
            {"address": a, "name": names.get(a.lower()), "roles": reader.lifecycle.role_names(m)}
            for a, m in sorted(masks.items())]

    def human() -> None:
        from rich.table import Table

        t = Table("account", "roles")
        for d in data:
            t.add_row(actor(str(d["address"]), d["name"], full=True), ", ".join(d["roles"]))
        console.print(t)

    emit(data, as_json, human)


@app.command("transfer-admin")
def transfer_admin(account: Account, as_json: JsonOpt = False) -> None:
    """Offer the admin seat to ACCOUNT (it must run 'roles accept-admin').

    Example: mltrail roles transfer-admin bob
    """
    with open_ledger() as led:
        r = led.transfer_admin(account)
    emit({"account": account, **tx_fields(r)}, as_json,
         f"offered admin to {escape(account)}; it must run 'mltrail roles accept-admin'")


@app.command("accept-admin")
def accept_admin(as_json: JsonOpt = False) -> None:
    """Accept an admin handover offered to you.

    Example: mltrail --as bob roles accept-admin
    """
    with open_ledger() as led:
        r = led.accept_admin()
        me = led.address
    emit({"admin": me, **tx_fields(r)}, as_json, f"{me} is now the registry admin")
