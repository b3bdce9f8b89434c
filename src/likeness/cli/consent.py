"""CLI: workspace, organisations, subjects, consent grants, performer releases, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from likeness.cli.common import (
    console,
    err_console,
    fail,
    mapped_errors,
    new_output_file,
    notice,
    open_workspace,
    printable,
    read_input,
    settings_from,
    write_new_json,
)
from likeness.consent.integrity import ownerless_holders
from likeness.durable import write_atomic
from likeness.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports the consent package only inside commands (start-up time)
    from likeness.consent.registry import RecoveryAttestation

org_app = typer.Typer(help="Organisations (agencies, studios): the grantees of consent.", no_args_is_help=True)
subject_app = typer.Typer(help="Subjects: artists, virtual idols and performers.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent grants signed by rights holders.", no_args_is_help=True)
release_app = typer.Typer(help="Performer releases for swap-target footage.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained ledger: verify, anchor, signed head, log.", no_args_is_help=True)

PreviewOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--preview",
        metavar="FILE",
        help="Preview still of what will be made (repeatable); its sha256 goes in the request.",
    ),
]
RequestOut = Annotated[Path, typer.Option("--out", help="Where to write the request file for the rights holder.")]


def init(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option("--org", help="Also register this organisation (slug).")] = None,
    org_name: Annotated[
        str | None, typer.Option("--org-name", help="Display name of --org (default: the slug).")
    ] = None,
) -> None:
    """Create a workspace: database, keys folder (0700), outputs folder. Run again, it leaves
    the workspace as it is; ``--org`` registers the workspace's first organisation only (add
    another with 'likeness org add', which says what that changes)."""
    from likeness.workspace import Workspace, shown_url

    added = None
    with mapped_errors():
        settings = settings_from(ctx)
        workspace = Workspace.init(settings)
        _legacy_keys_notice(workspace)  # an upgraded workspace that still keeps holders' keys
        orgs = {o.slug: o for o in workspace.registry.list_orgs()}
        known = orgs.get(org or "")
        if org and known is None and orgs:
            # A second organisation leaves holders enrolled before holders named theirs without
            # one: 'org add' warns of that, and init would do it unasked.
            fail(
                f"this workspace has organisation(s) {', '.join(orgs)} already; 'init --org' registers only the "
                f"first: add '{org}' with 'likeness org add {org}' (it says what a second organisation changes)"
            )
        if org and not (known is not None and org_name in (None, known.name)):
            added = workspace.registry.add_org(org, org_name)  # a name another org has is refused here
            _signing_setup(workspace, org)
    console.print(Text.assemble(("workspace ready", "green"), f" at {printable(settings.resolved_home)}"))
    if added is not None:
        console.print(f"  organisation {added.slug} added (key {added.key_fingerprint[:24]}…)")
    if known is not None:
        # The README's first line run again: the workspace is as it asks, which is no error.
        console.print(f"  organisation {known.slug} was already registered (likeness org list)")
    console.print(f"  database  {printable(shown_url(settings.resolved_database_url))}")
    console.print(f"  keys      {printable(settings.keys_dir)}")
    console.print(f"  outputs   {printable(settings.outputs_dir)}")


def _signing_setup(workspace, org_slug: str) -> None:
    """Create the organisation's C2PA signing chain when the provenance package provides it."""
    try:
        from likeness.provenance.certificates import ensure_signing_setup
    except ImportError:  # pragma: no cover - provenance ships with the product
        return
    organisation = workspace.registry.get_org(org_slug)
    ensure_signing_setup(workspace.keys_dir / "c2pa", organisation.name)


@org_app.command("add")
def org_add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short id, e.g. 'haneul-ent'.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the slug).")] = None,
) -> None:
    """Register an organisation and create its signing key (0600) and C2PA certificates."""
    with mapped_errors():
        workspace = open_workspace(ctx)
        org = workspace.registry.add_org(slug, name)
        _signing_setup(workspace, slug)
        # A second organisation leaves holders enrolled before holders named theirs without one.
        ownerless = ownerless_holders(workspace)
    console.print(f"organisation {org.slug} added (key {org.key_fingerprint[:24]}…)")
    for line in ownerless:
        console.print(Text.assemble(("warning:", "bold yellow"), f" {printable(line)}"))


@org_app.command("list")
def org_list(ctx: typer.Context) -> None:
    """List organisations."""
    with mapped_errors():
        orgs = open_workspace(ctx, read_only=True).registry.list_orgs()
    table = Table("slug", "name", "key fingerprint", "created")
    for org in orgs:
        table.add_row(org.slug, printable(org.name), org.key_fingerprint[:32] + "…", org.created_at)
    console.print(table)


@subject_app.command("add")
def subject_add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short id, e.g. 'mina'.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the slug).")] = None,
    virtual: Annotated[bool, typer.Option("--virtual", help="A virtual idol owned by --owner-org.")] = False,
    performer: Annotated[bool, typer.Option("--performer", help="A performer whose footage is a swap target.")] = False,
    owner_org: Annotated[str | None, typer.Option("--owner-org", help="Owning organisation of a virtual idol.")] = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Organisation enrolling the subject, the only one that seals its references, and a new "
            "rights holder, the only one that may invite them or recover their key (default: --owner-org, "
            "the configured org, else the workspace's only one; with several organisations and none of "
            "these, nothing is enrolled).",
        ),
    ] = None,
    holder: Annotated[
        str | None,
        typer.Option(
            "--holder",
            help="Existing rights holder slug (else one is created); only the organisation that onboarded "
            "them may enrol a subject under them (a holder the ledger names no organisation for is adopted "
            "first: likeness consent adopt-holder).",
        ),
    ] = None,
    holder_kind: Annotated[
        str | None,
        typer.Option(
            "--holder-kind",
            help="A new rights holder's kind: artist, guardian, estate, agency or performer (default: artist for an "
            "artist, agency for --virtual, performer for --performer); not with --holder.",
        ),
    ] = None,
    holder_public_key: Annotated[
        Path | None,
        typer.Option(
            "--holder-public-key",
            help="The new rights holder's Ed25519 public key (PEM, from 'likeness holder keygen' on their machine); "
            "required unless --holder names an enrolled holder, and refused with it.",
        ),
    ] = None,
    photo: Annotated[
        list[Path] | None, typer.Option("--photo", metavar="FILE", help="Reference photo(s) for identity (repeatable).")
    ] = None,
    public_name: Annotated[
        bool,
        typer.Option(
            "--public-name",
            help="The rights holder allows the public verification page to show the name "
            "(else it says 'an artist this agency represents').",
        ),
    ] = False,
) -> None:
    """Enrol a subject with its rights holder, registered by their public key (the private key
    stays on the holder's machine)."""
    if virtual and performer:
        err_console.print(Text.assemble(("error:", "red"), " --virtual and --performer exclude each other"))
        raise typer.Exit(2)
    kind = "virtual_idol" if virtual else "performer" if performer else "artist"
    with mapped_errors():
        workspace = open_workspace(ctx)
        pem = read_input(holder_public_key, "holder public key") if holder_public_key else None
        record = workspace.registry.add_subject(
            slug,
            name or slug,
            kind=kind,
            holder=holder,
            holder_kind=holder_kind,
            holder_public_key_pem=pem,
            owner_org=owner_org or (settings_from(ctx).org if virtual else None),
            public_name=public_name,
            org=org or owner_org or settings_from(ctx).org,
        )
        console.print(
            f"subject {record.slug} ({record.kind}) enrolled; rights holder "
            f"{record.holder_slug} key {record.holder_fingerprint[:24]}…"
        )
        if photo:
            from likeness.faceset import enroll_reference_photos

            report = enroll_reference_photos(workspace, record.slug, photo)
            console.print(f"reference photos: {report.added} enrolled")
            for path, reason in report.skipped:
                console.print(Text.assemble("  ", ("skipped", "yellow"), f" {printable(path)}: {printable(reason)}"))
            if not report.ok:
                reasons = "; ".join(f"{path}: {reason}" for path, reason in report.skipped)
                fail(
                    f"no usable reference photo ({reasons}); subject '{record.slug}' is enrolled without one: "
                    f"add one with 'likeness subject photos add {record.slug} PHOTO'"
                )


@subject_app.command("list")
def subject_list(ctx: typer.Context) -> None:
    """List subjects with their rights holders and reference photo counts."""
    with mapped_errors():
        workspace = open_workspace(ctx, read_only=True)
        subjects = workspace.registry.list_subjects()
        table = Table("slug", "name", "kind", "rights holder", "references")
        for s in subjects:
            table.add_row(
                s.slug,
                printable(s.name),
                s.kind,
                s.holder_slug,
                str(len(workspace.registry.reference_embeddings(s.id))),
            )
    console.print(table)


@consent_app.command("request")
def consent_request(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Subject slug.")],
    use: Annotated[
        list[str],
        typer.Option(
            "--use",
            metavar="USE",
            help="Requested use (repeatable): training, music_video, virtual_stage, fan_message, advertising, tribute.",
        ),
    ],
    until: Annotated[str, typer.Option("--until", help="End of validity: YYYY-MM-DD, ISO time, or +30d.")],
    out: RequestOut,
    org: Annotated[str | None, typer.Option("--org", help="Grantee organisation (default: the only one).")] = None,
    valid_from: Annotated[str | None, typer.Option("--from", help="Start of validity (default now).")] = None,
    max_renders: Annotated[
        int | None, typer.Option("--max-renders", help="Maximum number of renders (default: no limit).")
    ] = None,
    allow_unlabelled: Annotated[
        bool, typer.Option("--allow-unlabelled", help="Ask to omit the visible AI label (watermark and C2PA stay).")
    ] = False,
    purpose: Annotated[str, typer.Option("--purpose", help="Free-text purpose, shown to the rights holder.")] = "",
    preview: PreviewOption = None,
) -> None:
    """Draft a grant request (REQUEST.json) for the subject's rights holder to read and sign on
    their own machine ('likeness holder sign'); import the answer with 'consent import'."""
    from likeness.consent.registry import parse_when

    with mapped_errors():
        new_output_file(out)  # before drafting: a request nobody receives would stay pending
        stills = _preview_stills(preview)
        workspace = open_workspace(ctx)
        _legacy_keys_notice(workspace)
        grantee = workspace.registry.default_org(org or settings_from(ctx).org)
        request = workspace.registry.request_grant(
            subject,
            grantee.slug,
            use,
            valid_until=parse_when(until, end_of_day=True),
            valid_from=parse_when(valid_from) if valid_from else None,
            max_renders=max_renders,
            allow_unlabelled=allow_unlabelled,
            purpose=purpose,
            previews=stills,
        )
        _write_request(out, request)
    console.print(
        f"grant request {request.record_id} for {printable(subject)} → {printable(out)} (send it to the rights holder)"
    )


@consent_app.command("export-request")
def consent_export_request(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The grant request's id (drafted here or in the portal).")],
    out: RequestOut,
) -> None:
    """Write a pending grant request (drafted here or in the holder portal) as REQUEST.json for
    a holder who signs offline with their Ed25519 key. Refused for a passkey-only holder."""
    with mapped_errors():
        workspace = open_workspace(ctx)
        request = workspace.registry.request_file(request_id)
        _write_request(out, request)
    console.print(f"grant request {request.record_id} → {printable(out)} (send it to the rights holder)")


def _write_request(path: Path, request) -> None:
    write_new_json(path, request.as_json())


def _preview_stills(previews: list[Path] | None) -> list[Path]:
    """The ``--preview`` files, each checked to be an image this product reads (the holder is
    shown them before signing): a MediaError names a missing, empty or non-image file."""
    from likeness.media import read_image

    for path in previews or ():
        read_image(path)
    return list(previews or ())


def _legacy_keys_notice(workspace) -> None:
    from likeness.consent.key_migration import legacy_keys_warning

    warning = legacy_keys_warning(workspace.keys_dir)
    if warning:
        notice(warning)


@consent_app.command("import")
def consent_import(
    ctx: typer.Context,
    signed: Annotated[
        Path,
        typer.Argument(
            help="A signed grant, release, revocation, key rotation, passkey vouch or adoption from the rights holder."
        ),
    ],
) -> None:
    """Import a grant, release, revocation, key rotation, passkey vouch or adoption signed on the
    rights holder's machine.

    Refused with the reason when it names a prohibited use (prohibited_use), answers no request
    of this workspace (not_requested), differs from the request (grant_altered,
    release_altered), or is not signed by the holder's registered key (signature_invalid,
    release_signature_invalid)."""
    from likeness.cli.holder import read_consent_file
    from likeness.consent.grant_requests import (
        ADOPTION_TYPE,
        ROTATION_TYPE,
        VOUCH_TYPE,
        SignedConsent,
    )
    from likeness.errors import ConsentError

    with mapped_errors():
        workspace = open_workspace(ctx)
        _legacy_keys_notice(workspace)
        parsed = read_consent_file(signed, SignedConsent.from_json)
        try:
            record_id = workspace.registry.import_signed(parsed)
        except ConsentError as exc:  # the operator learns which file was refused
            raise ConsentError(exc.reason, f"{printable(signed)}: {exc}") from None
        parties = workspace.registry.consent_parties(parsed.payload)
    if parsed.payload_type == ROTATION_TYPE:
        console.print(f"key rotation imported: the rights holder now signs with key {record_id}")
        return
    if parsed.payload_type == VOUCH_TYPE:
        console.print(f"passkey {record_id} registered (vouched for by the holder's registered key)")
        return
    if parsed.payload_type == ADOPTION_TYPE:
        console.print(
            f"rights holder {printable(record_id)} adopted by {printable(parties)} (signed by the holder's registered "
            "key and the organisation's): only it may invite them or recover their key"
        )
        return
    what = parsed.payload_type.removeprefix("likeness.").rsplit(".v", 1)[0]
    named = f" for {printable(parties)}" if parties else ""
    console.print(f"{what} {record_id} imported{named} (signature verified with the holder's registered key)")


@consent_app.command("migrate-keys")
def consent_migrate_keys(
    ctx: typer.Context,
    export: Annotated[
        Path, typer.Option("--export", help="Folder outside the workspace to move holders' private keys to.")
    ],
) -> None:
    """Move rights holders' private keys out of a workspace made before offline signing.

    Each key file in HOME/keys/holders/ is copied to --export (0600), recorded on the ledger
    (holder.key_exported: holder and fingerprint, never the key) and deleted from the workspace.
    Hand each file to its holder, then delete the export. Grants already signed stay valid."""
    from likeness.consent.key_migration import export_holder_keys

    with mapped_errors():
        moved = export_holder_keys(open_workspace(ctx), export)
    if not moved:
        console.print("no rights-holder private keys in this workspace: nothing to move")
    for key in moved:
        state = "in force" if key.in_force else "not in force"
        fingerprint = key.fingerprint or "unreadable"
        console.print(f"moved {key.holder_slug}'s key ({fingerprint}, {state}) → {printable(key.exported_to)}")


@consent_app.command("list")
def consent_list(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Only this grantee.")] = None,
) -> None:
    """List grants with their current state."""
    with mapped_errors():
        grants = open_workspace(ctx, read_only=True).registry.list_grants(subject=subject, org=org)
    table = Table("grant", "subject", "grantee", "uses", "valid until", "renders", "state")
    table.columns[0].no_wrap = True
    for g in grants:
        renders = f"{g.renders_used}/{g.max_renders}" if g.max_renders else str(g.renders_used)
        table.add_row(g.id[:8], g.subject_slug, g.org_slug, ", ".join(g.uses), g.valid_until, renders, g.state)
    console.print(table)


@consent_app.command("show")
def consent_show(
    ctx: typer.Context,
    grant: Annotated[str, typer.Argument(help="Grant id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one grant in full."""
    from dataclasses import asdict

    with mapped_errors():
        registry = open_workspace(ctx, read_only=True).registry
        record = registry.grant_record(registry.find_grant_id(grant))
    data = asdict(record)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        # the purpose and the names are whoever drafted or signed the grant
        console.print(f"{key:>18}  {printable(', '.join(value) if isinstance(value, tuple) else value)}")


@consent_app.command("check")
def consent_check(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Subject slug.")],
    use: Annotated[str, typer.Option("--use", help="The use to check.")],
    org: Annotated[
        str | None, typer.Option("--org", help="Grantee organisation (default: settings or the only org).")
    ] = None,
) -> None:
    """Exit 0 if SUBJECT may be used for USE by ORG now, else 1 with the reason."""
    from likeness.errors import ConsentError

    with mapped_errors():
        workspace = open_workspace(ctx)
        grantee = org or settings_from(ctx).org or workspace.registry.default_org().slug
        try:
            authz = workspace.policy.authorize(subject, use, grantee)
        except ConsentError as exc:
            console.print(Text.assemble(("not authorized", "red"), f" ({exc.reason}): {printable(exc)}"))
            raise typer.Exit(1) from None
    console.print(
        Text.assemble(
            ("authorized", "green"),
            f": {authz.subject_slug} for {authz.use} by {authz.org_slug} "
            f"under grant {authz.grant_id[:12]} (valid until {authz.valid_until})",
        )
    )


# The attestation options recover-key, recover-passkey and adopt-holder share (``_attestation``).
Statement = Annotated[
    str,
    typer.Option(
        "--statement", help="What was established about the person, e.g. 'identity checked against passport'."
    ),
]
VerifiedBy = Annotated[str, typer.Option("--verified-by", help="Who checked it (a named person and role).")]
Method = Annotated[
    str, typer.Option("--method", help="How: in_person, notarised_document or legal_representative (nothing else).")
]
RecoveringOrg = Annotated[
    str | None, typer.Option("--org", help="Organisation whose key signs the recovery (default: the only one).")
]
Evidence = Annotated[
    Path | None,
    typer.Option("--evidence", help="Evidence file kept outside the workspace; only its sha256 goes on the ledger."),
]


def _attestation(statement: str, verified_by: str, method: str, evidence: Path | None) -> RecoveryAttestation:
    """The attestation ``recover-key``, ``recover-passkey`` and ``adopt-holder`` sign: who
    checked the holder and how, with only the evidence file's sha256 (the file stays outside the
    workspace; an empty one, or one over ``EVIDENCE_MAX_BYTES``, is refused naming it)."""
    from likeness.consent.registry import RecoveryAttestation

    return RecoveryAttestation(
        statement=statement,
        verified_by=verified_by,
        method=method,
        evidence_sha256=_evidence_digest(evidence) if evidence else None,
    )


def _evidence_digest(path: Path) -> str:
    from likeness.consent.registry import evidence_sha256

    try:
        with path.open("rb") as stream:
            return evidence_sha256(iter(lambda: stream.read(1 << 20), b""), source=str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the evidence ({exc.strerror or exc})") from None


@consent_app.command("recover-key")
def consent_recover_key(
    ctx: typer.Context,
    holder: Annotated[str, typer.Argument(help="Rights holder slug whose key was lost.")],
    statement: Statement,
    verified_by: VerifiedBy,
    method: Method,
    new_public_key: Annotated[
        Path,
        typer.Option("--new-public-key", help="The holder's new Ed25519 public key (PEM), made on their own machine."),
    ],
    org: RecoveringOrg = None,
    evidence: Evidence = None,
) -> None:
    """Recover a rights holder who lost their key: a holder.key_recovered event signed by the
    organisation, with an attestation (see docs/consent.md for what this does and does not prove)."""
    with mapped_errors():
        workspace = open_workspace(ctx)
        grantee = workspace.registry.default_org(org or settings_from(ctx).org)
        attestation = _attestation(statement, verified_by, method, evidence)
        pem = read_input(new_public_key, "new public key")
        fingerprint = workspace.registry.recover_holder_key(
            holder, org=grantee.slug, attestation=attestation, new_public_key_pem=pem
        )
    console.print(f"rights holder {printable(holder)} recovered by {grantee.slug}; new key {fingerprint[:24]}…")


@consent_app.command("recover-passkey")
def consent_recover_passkey(
    ctx: typer.Context,
    holder: Annotated[str, typer.Argument(help="Slug of a passkey-only rights holder who lost every passkey.")],
    statement: Statement,
    verified_by: VerifiedBy,
    method: Method,
    passkeys_lost: Annotated[
        bool,
        typer.Option(
            "--passkeys-lost",
            help="The holder says every passkey they have is lost: needed while one is in force, which the "
            "recovery retires.",
        ),
    ] = False,
    org: RecoveringOrg = None,
    evidence: Evidence = None,
    days: Annotated[int, typer.Option("--days", min=1, max=30, help="Days the link stays valid.")] = 7,
) -> None:
    """Send a passkey-only holder who lost every passkey a one-time recovery link: a
    holder.invited event (purpose recovery) signed by the organisation, with an attestation. Their
    old passkeys sign nothing from then on; the link makes one new passkey (docs/consent.md)."""
    from datetime import timedelta

    from likeness.consent.holder_portal import HolderPortal

    with mapped_errors():
        settings = settings_from(ctx)
        workspace = open_workspace(ctx)
        grantee = workspace.registry.default_org(org or settings.org)
        attestation = _attestation(statement, verified_by, method, evidence)
        _, token = HolderPortal(workspace).invite_to_recover(
            holder,
            grantee.slug,
            created_by=verified_by,
            attestation=attestation,
            passkeys_lost=passkeys_lost,
            ttl=timedelta(days=days),
        )
    origin = settings.portal_origin.rstrip("/")
    console.print(
        f"passkey recovery for rights holder {printable(holder)} signed by {grantee.slug}: their earlier passkeys "
        "sign nothing from now on"
    )
    console.print(f"recovery link (give it to the holder yourself, once): {origin}/portal/invite/{token}")


@consent_app.command("adopt-holder")
def consent_adopt_holder(
    ctx: typer.Context,
    holder: Annotated[
        str, typer.Argument(help="Slug of a rights holder the ledger names no onboarding organisation for.")
    ],
    statement: Statement,
    verified_by: VerifiedBy,
    method: Method,
    out: Annotated[Path, typer.Option("--out", help="Where to write the adoption for the holder to sign.")],
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="The organisation that enrolled the holder, whose key signs (default: the only one)."
        ),
    ] = None,
    evidence: Evidence = None,
) -> None:
    """Draft the adoption of a rights holder enrolled before holders were bound to an
    organisation, in a workspace with several (audit verify names such holders), by the one
    that enrolled them, with an attestation of who checked it and how. The holder signs it on
    their own machine ('likeness holder sign-adoption'); 'consent import' of the signed file
    puts it on the ledger, countersigned by the organisation. Until then no organisation may
    invite them or recover their key; audit verify lists the adoption."""
    with mapped_errors():
        workspace = open_workspace(ctx)
        adopter = workspace.registry.default_org(org or settings_from(ctx).org)
        attestation = _attestation(statement, verified_by, method, evidence)
        body = workspace.registry.request_adoption(holder, org=adopter.slug, attestation=attestation)
        write_new_json(out, body)
    console.print(
        f"adoption of rights holder {printable(holder)} by {adopter.slug} → {printable(out)}: the holder signs it "
        "with 'likeness holder sign-adoption', then import it with 'likeness consent import'"
    )


@release_app.command("request")
def release_request(
    ctx: typer.Context,
    performer: Annotated[str, typer.Argument(help="Performer slug.")],
    until: Annotated[str, typer.Option("--until", help="End of validity: YYYY-MM-DD, ISO time, or +30d.")],
    out: RequestOut,
    org: Annotated[str | None, typer.Option("--org", help="Organisation (default: the only one).")] = None,
    valid_from: Annotated[str | None, typer.Option("--from", help="Start of validity (default now).")] = None,
    purpose: Annotated[str, typer.Option("--purpose", help="What the footage may be used for.")] = "",
    preview: PreviewOption = None,
) -> None:
    """Draft a release request for the performer to sign on their own machine; import the
    answer with 'consent import'."""
    from likeness.consent.registry import parse_when

    with mapped_errors():
        new_output_file(out)  # before drafting, as for a grant request
        stills = _preview_stills(preview)
        workspace = open_workspace(ctx)
        grantee = workspace.registry.default_org(org or settings_from(ctx).org)
        request = workspace.registry.request_release(
            performer,
            grantee.slug,
            valid_until=parse_when(until, end_of_day=True),
            valid_from=parse_when(valid_from) if valid_from else None,
            purpose=purpose,
            previews=stills,
        )
        _write_request(out, request)
    console.print(
        f"release request {request.record_id} for {printable(performer)} → {printable(out)} (send it to the performer)"
    )


@release_app.command("list")
def release_list(
    ctx: typer.Context,
    performer: Annotated[str | None, typer.Option("--performer", help="Only this performer.")] = None,
) -> None:
    """List performer releases with their current state."""
    with mapped_errors():
        releases = open_workspace(ctx, read_only=True).registry.list_releases(performer=performer)
    table = Table("release", "performer", "organisation", "valid until", "state")
    table.columns[0].no_wrap = True
    for r in releases:
        table.add_row(r.id[:8], r.performer_slug, r.org_slug, r.valid_until, r.state)
    console.print(table)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchor",
            metavar="DIR",
            help="Anchor folder to check against (repeatable; default: LIKENESS_ANCHOR_DIRS). "
            "A folder named here that holds no anchor fails the check.",
        ),
    ] = None,
    head: Annotated[
        Path | None, typer.Option("--head", help="A head exported earlier with 'audit head --out'.")
    ] = None,
) -> None:
    """Check the ledger: hash chain, latest anchor, consent rows against their events, guards.

    Exit codes: 0 the ledger is intact (a warning, e.g. no anchor in the configured folders, is
    printed but does not fail); 1 anything is wrong: a broken chain, a truncated or rewritten
    tail, an anchor signed by another key, a folder named with --anchor that holds no anchor, a
    consent row that disagrees with its ledger event, a forged render refund, a missing
    append-only trigger. Each problem is printed with its kind and what it is about.
    """
    from likeness.consent.audit import audit_workspace

    with mapped_errors():
        workspace = open_workspace(ctx, read_only=True)
        report = audit_workspace(workspace, anchor_dirs=anchor or None, head_files=[head] if head else ())
    for warning in report.warnings:
        console.print(Text.assemble(("warning:", "bold yellow"), f" {printable(warning)}"))
    for label, notes in (("recovery:", report.recoveries), ("adoption:", report.adoptions)):
        for note in notes:  # rare and organisation-signed: for auditors to check with the holder
            console.print(Text.assemble((label, "bold cyan"), f" {printable(note)}"))
    for problem in report.problems:
        # messages quote ledger and file text (a withdrawal's reason): shown as written, escaped
        said = f" {printable(problem.subject)}: {printable(problem.message)}"
        console.print(Text.assemble((str(problem.kind), "red"), said))
    if not report.ok:
        console.print(Text.assemble(("ledger NOT intact", "red"), f": {report.failure_summary()}"))
        raise typer.Exit(1)
    anchored = (
        f", matches anchor at row {report.anchor.seq} ({report.anchor.at}, {report.anchors_found} anchors)"
        if report.anchor
        else ""
    )
    console.print(
        Text.assemble(
            ("ledger intact", "green"), f": {report.chain.rows} rows, head {report.chain.head_hash}{anchored}"
        )
    )


@audit_app.command("anchor")
def audit_anchor(
    ctx: typer.Context,
    to: Annotated[
        list[Path] | None,
        typer.Option(
            "--to",
            metavar="DIR",
            help="Folder outside the workspace to keep the head in (repeatable; default: LIKENESS_ANCHOR_DIRS).",
        ),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organisation whose key signs the head (default: settings or the only org)."),
    ] = None,
) -> None:
    """Keep the signed ledger head in folders outside the workspace (one new file each time).

    Refused for a folder inside the workspace, and when the ledger is already broken or no
    longer holds the folder's latest anchor.
    """
    from likeness.consent.audit import anchor_workspace

    with mapped_errors():
        head, written = anchor_workspace(open_workspace(ctx), folders=to or None, org=org)
    for location in written:
        console.print(f"anchored row {head['seq']} ({head['hash'][:16]}…) in {printable(location)}")


@audit_app.command("head")
def audit_head(
    ctx: typer.Context,
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organisation whose key signs the head (default: settings or the only org)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the signed head to this file.")] = None,
) -> None:
    """Print the current ledger head, signed with the organisation key."""
    with mapped_errors():
        signed = open_workspace(ctx).signed_head(org)
    text = json.dumps(signed, indent=2)
    if out:
        try:
            write_atomic(out, (text + "\n").encode())
        except OSError as exc:  # a missing folder, a folder given as the file
            fail(f"{out}: cannot write the signed head ({exc.strerror or exc})")
    typer.echo(text)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type, e.g. grant.issued.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show the last N events.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show the ledger's most recent events."""
    with mapped_errors():
        events = open_workspace(ctx, read_only=True).ledger.events(event_type, limit=limit)
    if as_json:
        for e in events:
            typer.echo(json.dumps(e.as_dict()))
        return
    table = Table("seq", "time", "event", "details", "hash")
    for e in events:
        details = ", ".join(
            f"{k}={str(v)[:14]}"
            for k, v in e.payload.items()
            if k
            in ("slug", "subject", "use", "org", "reason", "grant_id", "job_id", "verdict", "output_sha256", "purpose")
        )
        # payload text (a holder's revocation reason, a withdrawal's) is shown as written, not as markup
        table.add_row(str(e.seq), e.created_at, e.event_type, printable(details), e.hash[:12])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(org_app, name="org")
    app.add_typer(subject_app, name="subject")
    app.add_typer(consent_app, name="consent")
    app.add_typer(release_app, name="release")
    app.add_typer(audit_app, name="audit")
