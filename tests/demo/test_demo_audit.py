"""The demo's closing audit: it anchors the ledger outside the workspace and checks against it."""

from __future__ import annotations

from rich.console import Console

from likeness.demo import print_audit_trail


def test_demo_audit_anchors_outside_the_workspace_and_finds_an_edit(consent_world) -> None:
    workspace = consent_world.workspace
    console = Console(record=True, width=200)
    print_audit_trail(workspace, console)
    text = console.export_text()
    assert "ledger intact" in text and "consent rows match" in text
    anchors = list((workspace.home.parent / f"{workspace.home.name}-anchors").rglob("ledger-head-*.json"))
    assert len(anchors) == 1 and workspace.home not in anchors[0].parents

    # A revocation row deleted behind the product's back is named, not reported as intact.
    consent_world.revoke_grant()
    from sqlalchemy import text as sql

    with workspace.engine.begin() as connection:
        connection.execute(sql("DELETE FROM grant_revocations"))
    console = Console(record=True, width=200)
    print_audit_trail(workspace, console)
    text = console.export_text()
    assert "ledger intact" not in text and "audit problem" in text
