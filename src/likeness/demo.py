"""The end-to-end demo on embedded defaults: SQLite registry, package portraits, generated media.

Story: an agency (Studio Haneul) owns a virtual idol, Mina, whose look comes from a package
portrait; a consenting performer, Jun, gives a release for his footage. The rights holder signs
a grant; the policy engine authorizes and refuses; every step lands on the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.workspace import Workspace

ORG = "haneul"
ARTIST = "mina"
PERFORMER = "jun"


@dataclass
class DemoResult:
    home: Path
    grant_id: str = ""
    release_id: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)


def setup_consent(workspace: Workspace, console: Console) -> DemoResult:
    """Enrol the organisation, the virtual idol and the performer; sign a grant and a release."""
    registry = workspace.registry
    result = DemoResult(home=workspace.home)
    registry.add_org(ORG, "Studio Haneul Entertainment")
    registry.add_subject(ARTIST, "Mina (virtual idol)", kind="virtual_idol", owner_org=ORG)
    registry.add_subject(PERFORMER, "Jun (performer)", kind="performer")
    until = now_utc() + timedelta(days=90)
    result.grant_id = registry.issue_grant(
        ARTIST, ORG, ["training", "music_video", "fan_message"], valid_until=until, max_renders=20,
        purpose="Debut music video and fan messages for the virtual idol Mina",
    )
    result.release_id = registry.issue_release(
        PERFORMER, ORG, valid_until=until, purpose="Body double footage for Mina's debut MV"
    )
    console.print(f"[bold]1. Consent[/]  grant {result.grant_id[:8]} (training, music_video, fan_message; "
                  f"20 renders) signed by Mina's rights holder; release {result.release_id[:8]} by Jun")
    checks = Table("subject", "use", "grantee", "decision")
    for subject, use, org in (
        (ARTIST, "training", ORG),
        (ARTIST, "music_video", ORG),
        (ARTIST, "advertising", ORG),
        (ARTIST, "sexual_content", ORG),
    ):
        try:
            authz = workspace.policy.authorize(subject, use, org)
            decision = f"[green]authorized[/] (grant {authz.grant_id[:8]})"
        except ConsentError as exc:
            decision = f"[red]refused[/]: {exc.reason}"
        checks.add_row(subject, use, org, decision)
    console.print(checks)
    return result


def print_audit_trail(workspace: Workspace, console: Console) -> None:
    report = workspace.ledger.verify()
    table = Table("seq", "event", "hash", title="Audit trail (hash-chained ledger)")
    for event in workspace.ledger.events():
        table.add_row(str(event.seq), event.event_type, event.hash[:16])
    console.print(table)
    state = "[green]intact[/]" if report.ok else f"[red]BROKEN at row {report.broken_seq}[/]"
    console.print(f"ledger {state}: {report.rows} rows, head {report.head_hash[:16]}…")


def run_demo(settings: Settings, console: Console) -> DemoResult:
    workspace = Workspace.init(settings)
    try:
        result = setup_consent(workspace, console)
        print_audit_trail(workspace, console)
        console.print(f"\nworkspace: {workspace.home}")
        return result
    finally:
        workspace.close()
