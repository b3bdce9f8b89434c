"""CLI for the database's roles: the SQL that gives the application role least privilege.

``likeness db app-role-sql likeness_app | psql "$OWNER_URL"`` (see docs/security.md).
"""

from __future__ import annotations

from typing import Annotated

import typer

from likeness.cli.common import fail

db_app = typer.Typer(help="Database roles on PostgreSQL: owner versus application.", no_args_is_help=True)


@db_app.command("app-role-sql")
def app_role_sql(
    role: Annotated[str, typer.Argument(help="The application's PostgreSQL role, e.g. 'likeness_app'.")],
    schema: Annotated[str, typer.Option("--schema", help="Schema the migrations created the tables in.")] = "public",
) -> None:
    """Print the GRANTs for ROLE: SELECT and INSERT only, no UPDATE, DELETE, TRUNCATE or triggers.

    Pipe it to psql connected as the schema owner (the role that ran 'likeness init'), after
    every migration.
    """
    from likeness.consent.privileges import app_role_sql as build

    try:
        typer.echo(build(role, schema=schema), nl=False)
    except ValueError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(db_app, name="db")
