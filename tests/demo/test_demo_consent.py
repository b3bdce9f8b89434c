"""The demo's consent step: the rights holders sign on their machine, never in the workspace."""

from __future__ import annotations

from rich.console import Console

from likeness.consent.holder import HolderMachine
from likeness.demo import ARTIST, ORG, setup_consent


def test_demo_holders_sign_beside_the_workspace_and_can_revoke(workspace) -> None:
    console = Console(record=True, width=200)
    result = setup_consent(workspace, console)
    text = console.export_text()
    assert "music_video" in text and "refused: prohibited_use" in text
    assert workspace.registry.grant_state(result.grant_id) == "active"
    assert [r.state for r in workspace.registry.list_releases()] == ["active"]
    machine = HolderMachine.beside(workspace.home)
    assert (machine.folder / f"{ARTIST}-holder.pem").stat().st_mode & 0o777 == 0o600
    assert not (workspace.keys_dir / "holders").exists()
    assert not [p for p in workspace.home.rglob("*.pem") if "orgs" not in p.parts and "c2pa" not in p.parts]
    workspace.registry.import_signed(machine.revoke(result.grant_id, reason="demo: consent withdrawn"))
    assert workspace.registry.grant_state(result.grant_id) == "revoked"
    assert workspace.policy.authorize_release("jun", ORG)
