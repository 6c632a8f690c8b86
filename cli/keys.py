"""``breach keys``: API keys for ``breach serve``, one role each, shown once."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from breachflow.cli.common import actor, console, errors, fmt
from breachflow.cli.terminal import SafeTable
from breachflow.models import runtime
from breachflow.models.apikey import Role, create_key, keys, revoke_key

keys_app = typer.Typer(help="API keys for the HTTP API (breach serve).", no_args_is_help=True)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. alertmanager, alice.")],
    role: Annotated[Role, typer.Option(help="What it may do.")],
) -> None:
    """Create a key and print it: it is stored hashed and cannot be shown again."""
    with runtime.database().unit_of_work() as session:
        token = create_key(session, name, role, actor())
    sys.stdout.write(token + "\n")
    errors.print(f"Key {name!r} ({role}) created. Store it now: it will not be shown again.")


@keys_app.command("list")
def list_keys() -> None:
    """Every key with its role, who created it and whether it is revoked."""
    with runtime.database().unit_of_work() as session:
        rows = keys(session)
        session.expunge_all()
    table = SafeTable(title="API keys", title_justify="left")
    for column in ("name", "role", "prefix", "created", "by", "revoked"):
        table.add_column(column)
    for key in rows:
        revoked = f"{fmt(key.revoked_at)} by {key.revoked_by}" if key.revoked_at else "—"
        table.add_row(key.name, key.role, key.prefix, fmt(key.created_at), key.created_by, revoked)
    console.print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: the next request with it is refused."""
    with runtime.database().unit_of_work() as session:
        key = revoke_key(session, name, actor())
        when = key.revoked_at
    console.print(f"Key {name!r} revoked ({fmt(when)}).")
