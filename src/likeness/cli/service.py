"""CLI for the service: ``likeness serve``, ``likeness worker``, ``likeness user``, ``likeness token``."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.text import Text

from likeness.cli.common import (
    console,
    err_console,
    fail,
    mapped_errors,
    open_workspace,
    printable,
    settings_from,
)

user_app = typer.Typer(help="The service's users and their roles (admin, studio, legal, viewer).", no_args_is_help=True)
token_app = typer.Typer(
    help="API tokens for scripts: stored hashed, scoped to a role, revocable.", no_args_is_help=True
)

ROLE_HELP = (
    "admin (users, tokens, settings), studio (extract, train, render), legal (verify, evidence), viewer (read only)"
)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Also run jobs in this process (a laptop).")
    ] = False,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy", help="Trust X-Forwarded-Proto/For from a TLS proxy on 127.0.0.1 (Secure cookies, HSTS)."
        ),
    ] = False,
) -> None:
    """Run the agency's service: the API under /api/v1 and the console, over this workspace."""
    import uvicorn

    from likeness.service.app import create_app

    settings = settings_from(ctx)
    with mapped_errors():
        app = create_app(settings, with_worker=with_worker)
    err_console.print(
        f"likeness service on http://{printable(host)}:{port}/  (public page /, console /console, rights-holder portal "
        "/portal, API /api/v1, schema /api/v1/openapi.json)"
    )
    portal_note = portal_origin_note(settings.portal_origin, host, port)
    if portal_note:
        err_console.print(Text.assemble(("note:", "yellow"), f" {printable(portal_note)}"))
    if not with_worker:
        err_console.print("jobs run in 'likeness worker' processes (or start this with --with-worker)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        proxy_headers=behind_proxy,
        forwarded_allow_ips="127.0.0.1" if behind_proxy else None,
    )


def worker(
    ctx: typer.Context,
    max_jobs: Annotated[
        int | None, typer.Option("--max-jobs", min=1, help="Stop after this many jobs (default: run until stopped).")
    ] = None,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between looks at an empty queue.")] = 1.0,
) -> None:
    """Run the service's jobs (verify, ...) from the database until stopped; run several for more throughput."""
    import logging

    from likeness.service.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with mapped_errors():
        workspace = open_workspace(ctx)
        count = run_worker(workspace, poll_s=poll, max_jobs=max_jobs)
    err_console.print(f"worker stopped after {count} job(s)")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        fail("the passwords differ")
    return first


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Lower-case user name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)] = "viewer",
    org: Annotated[str | None, typer.Option("--org", help="Organisation slug (default: the only one).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the user name).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user (the first admin is made here); on the ledger."""
    from likeness.service.accounts import Accounts
    from likeness.service.roles import parse_role

    try:
        parsed_role = parse_role(role)
    except ValueError as exc:
        fail(str(exc))
    password = _password(password_stdin)
    with mapped_errors():
        workspace = open_workspace(ctx)
        try:
            user = Accounts(workspace).add_user(
                username, password, parsed_role, org=org, display_name=name, actor="cli"
            )
        except ValueError as exc:
            fail(str(exc))
    console.print(f"added {user.username} ({user.role.value}) to {user.org_slug}")


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users, their organisation and role."""
    from likeness.service.accounts import Accounts

    with mapped_errors():
        users = Accounts(open_workspace(ctx, read_only=True)).list_users()
    for user in users:
        console.print(f"{user.username}\t{user.role.value}\t{user.org_slug}\t{'active' if user.active else 'inactive'}")


@user_app.command("role")
def user_role(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[str, typer.Argument(help=ROLE_HELP)],
) -> None:
    """Change a user's role; on the ledger."""
    from likeness.service.accounts import Accounts

    with mapped_errors():
        try:
            user = Accounts(open_workspace(ctx)).set_role(username, role)
        except ValueError as exc:
            fail(str(exc))
    console.print(f"{user.username} is now {user.role.value}")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Whose token it is.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "script",
    role: Annotated[str | None, typer.Option("--role", help="The user's own role (default) or viewer.")] = None,
    days: Annotated[
        int | None, typer.Option("--days", min=1, max=3650, help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Create an API token (printed once on standard output); on the ledger."""
    from likeness.service.accounts import Accounts

    with mapped_errors():
        accounts = Accounts(open_workspace(ctx))
        try:
            secret, info = accounts.create_token(accounts.get_user(username), name, role, expires_in_days=days)
        except ValueError as exc:
            fail(str(exc))
    err_console.print(f"token {info.id} ({info.role.value}) for {username}; it is shown only now:")
    typer.echo(secret)


def portal_origin_note(origin: str, host: str, port: int) -> str | None:
    """Why invitation links and passkeys would not work on this server, or None.

    Passkeys are bound to ``LIKENESS_PORTAL_ORIGIN``: served elsewhere, invitation links point
    at another address and browsers refuse the passkey ceremony.

    >>> portal_origin_note("http://localhost:8000", "127.0.0.1", 8000) is None
    True
    >>> portal_origin_note("http://localhost:8000", "127.0.0.1", 8765)[:48]
    'the rights-holder portal expects http://localhos'
    """
    from urllib.parse import urlsplit

    parts = urlsplit(origin)
    expected_port = parts.port or (443 if parts.scheme == "https" else 80)
    local = {"localhost", "127.0.0.1", "::1"}
    same_host = parts.hostname == host or (parts.hostname in local and host in local) or host in ("0.0.0.0", "::")
    if parts.scheme == "https" or (same_host and expected_port == port):
        return None  # behind a TLS proxy the public origin differs from the bind address by design
    return (
        f"the rights-holder portal expects {origin} (LIKENESS_PORTAL_ORIGIN): invitation links point "
        f"there and passkeys are bound to it; set it to this server's address, e.g. http://localhost:{port}"
    )


def register(app: typer.Typer) -> None:
    """Add the service's commands to the root app."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
