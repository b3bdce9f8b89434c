"""CLI for the third-party and shipped files the product loads (``likeness.assets``)."""

from __future__ import annotations

import typer

from likeness.cli.common import console, fail


def assets() -> None:
    """List every file the product loads from an installed package (weights, fonts): package,
    path, SHA-256, licence and whether the installed file matches. Exits 1 when one is
    missing or altered."""
    from rich.table import Table

    from likeness.assets import asset_states

    states = asset_states()
    table = Table("asset", "state", "package", "path in package", "sha256", "licence")
    for row in states:
        item = row.asset
        table.add_row(item.name, row.state, item.package, item.path, item.sha256[:16] + "…", item.licence)
    console.print(table)
    bad = [row.asset.name for row in states if row.state != "ok"]
    if bad:
        fail(f"{len(bad)} asset(s) missing or altered: {', '.join(bad)}; reinstall their packages")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("assets")(assets)
