"""CLI commands for the provenance area: the organisation's C2PA signing keys.

``likeness keys init [--org ORG]`` creates the signing setup (root CA + ES256 signer) and
``likeness keys show`` describes it. Neither ever prints key material: only certificate
fingerprints, subjects, expiry and file paths.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from likeness.cli.common import console, fail, mapped_errors, open_workspace, printable, settings_from

keys_app = typer.Typer(
    help="The organisation's C2PA signing keys (root CA and ES256 signing certificate).",
    no_args_is_help=True,
)


@keys_app.command("init")
def keys_init(
    ctx: typer.Context,
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organisation (slug) the certificates are issued to; default: the only one."),
    ] = None,
) -> None:
    """Create the C2PA signing setup (idempotent: an existing one is kept and shown)."""
    from likeness.provenance.certificates import ensure_signing_setup

    with mapped_errors():
        workspace = open_workspace(ctx)
        organisation = workspace.registry.default_org(org or settings_from(ctx).org)
        setup = ensure_signing_setup(workspace.keys_dir / "c2pa", workspace.registry.org_display_name(organisation.id))
    console.print(Text.assemble(("signing setup ready", "green"), f" for {printable(setup.org_name)}"))
    _describe(setup)


@keys_app.command("show")
def keys_show(ctx: typer.Context) -> None:
    """Show the signing certificate, trust anchors and key file locations (never the keys)."""
    from likeness.provenance.certificates import load_signing_setup, workspace_trust_anchors

    with mapped_errors():
        workspace = open_workspace(ctx)
        folder = workspace.keys_dir / "c2pa"
        if not (folder / "signer.pem").exists():
            fail(f"no signing setup in {folder} (create one with: likeness keys init)")
        setup = load_signing_setup(folder)
        anchors = workspace_trust_anchors(workspace)
    _describe(setup)
    trust = printable(workspace.home / "trust")
    console.print(f"  trust anchors     {len(anchors)} (own root + {len(anchors) - 1} in {trust})")


def _describe(setup) -> None:
    console.print(f"  organisation      {printable(setup.org_name)}")
    console.print(f"  signer sha256     {setup.signer_fingerprint}")
    console.print(f"  root CA sha256    {setup.root_fingerprint}")
    console.print(f"  signer expires    {setup.not_valid_after}")
    console.print(f"  certificate chain {printable(setup.chain_path)}")
    console.print(f"  trust anchor      {printable(setup.root_cert_path)}")
    mode = setup.key_path.stat().st_mode & 0o777  # as it is: loading refused a wider one
    console.print(f"  signing key       {printable(setup.key_path)} ({mode:04o})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(keys_app, name="keys")
