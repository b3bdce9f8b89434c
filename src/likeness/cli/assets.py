"""CLI for the third-party and shipped files the product loads (``likeness assets``)."""

from __future__ import annotations

import typer
from rich.text import Text

from likeness.cli.common import console, fail

_STATE_STYLES = {"ok": "green", "missing": "bold red", "altered": "bold red"}


def assets() -> None:
    """List every file the product loads from an installed package (weights, fonts): package,
    path, size, SHA-256, licence and whether the installed file matches. Exits 1 when one is
    missing or altered."""
    from rich.padding import Padding
    from rich.table import Table

    from likeness.assets import asset_states

    states = asset_states()
    for row in states:
        item = row.asset
        # One block per asset rather than one wide table: a 64-digit SHA-256 and the licences
        # never fit in 80 columns beside five other fields, and a table cut them to "…".
        # The values fold (a digest splits across lines, never shortened) below 80 columns.
        console.print(Text.assemble((item.name, "bold"), "  ", (row.state, _STATE_STYLES.get(row.state, "red"))))
        fields = Table(show_header=False, box=None, padding=(0, 1, 0, 0))
        fields.add_column(no_wrap=True)
        fields.add_column(overflow="fold")
        fields.add_row("package", item.package)
        fields.add_row("path", item.path)
        fields.add_row("size", f"{item.size:,} bytes")
        fields.add_row("sha256", item.sha256)
        fields.add_row("licence", item.licence)
        console.print(Padding(fields, (0, 0, 0, 2), expand=False))
    bad = [row.asset.name for row in states if row.state != "ok"]
    if bad:
        fail(f"{len(bad)} asset(s) missing or altered: {', '.join(bad)}; reinstall their packages")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("assets")(assets)
