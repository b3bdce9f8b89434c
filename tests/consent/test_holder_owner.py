"""A rights holder always has exactly one onboarding organisation, read from what a database
editor cannot write. Found as an attacker in a workspace of two agencies, haneul and byeol: a
holder enrolled with no organisation named belonged to nobody, so byeol could recover the key of
haneul's artist; for holders enrolled before ``holder.created`` named one, the owner was read
from ``subject.created`` events, which an editor can append, and an ambiguous or forged answer
let anyone recover."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from typer.testing import CliRunner

from likeness.cli import app
from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.holder import sign_adoption
from likeness.consent.holder_portal import HolderPortal
from likeness.consent.integrity import OWNERLESS, LedgerConsent, consent_row_problems
from likeness.consent.registry import ADOPTION_EVENT, RecoveryAttestation, adoption_payload
from likeness.consent.tables import RightsHolder, Subject
from likeness.errors import ConsentError, EnrollingOrgUnnamed, RegistryError
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_org_key_pins import _invented_org, _recovery

CHECKED = RecoveryAttestation("enrolment contract of 2024 checked", "J. Park (legal)", "notarised_document")


def _pem(ws: Workspace, name: str) -> bytes:
    return holder_machine(ws.registry).public_key(name)


def _legacy_holder(ws: Workspace, slug: str, *, passkey_only: bool = False) -> RightsHolder:
    """A holder as workspaces enrolled them before ``holder.created`` named an organisation."""
    raw = b"" if passkey_only else keys.public_raw_from_pem(_pem(ws, slug))
    holder = RightsHolder(
        id=uuid.uuid4().hex,
        slug=slug,
        name=slug,
        kind="artist",
        public_key=raw.hex(),
        key_fingerprint="passkey-only" if passkey_only else keys.fingerprint(raw),
        created_at=utc_iso(now_utc()),
    )
    with ws.session() as session:
        session.add(holder)
        session.commit()
        session.refresh(holder)
        session.expunge(holder)
    ws.ledger.append(
        "holder.created",
        {
            "holder_id": holder.id,
            "slug": slug,
            "name": slug,
            "kind": "artist",
            "key_fingerprint": holder.key_fingerprint,
            "public_key": holder.public_key,
        },
    )
    return holder


def _appended_subject(ws: Workspace, holder_id: str, owner_org_id: str) -> None:
    """An unsigned ``subject.created`` a database editor appends (what a version before subject
    events were signed wrote too)."""
    subject_id = uuid.uuid4().hex
    ws.ledger.append(
        "subject.created",
        {
            "subject_id": subject_id,
            "slug": f"s{subject_id[:6]}",
            "name": "x",
            "kind": "artist",
            "holder_id": holder_id,
            "owner_org_id": owner_org_id,
            "public_name": False,
        },
    )


def adopt(ws: Workspace, holder: str, org: str) -> None:
    """``org`` adopts ``holder`` as the product does: the request, the holder's signature on
    their machine (key named after the holder), the import."""
    body = ws.registry.request_adoption(holder, org=org, attestation=CHECKED)
    ws.registry.import_signed(sign_adoption(body, holder_machine(ws.registry).key(holder)))


def _owner(ws: Workspace, holder_id: str) -> str | None:
    with ws.session() as session:
        return LedgerConsent(session).holder_owner(holder_id)


def _recover(ws: Workspace, holder: str, org: str) -> str:
    return ws.registry.recover_holder_key(
        holder, org=org, attestation=CHECKED, new_public_key_pem=_pem(ws, f"new{org}")
    )


def _nothing_enrolled(ws: Workspace) -> None:
    with ws.session() as session:
        assert session.scalars(select(RightsHolder)).all() == []
        assert session.scalars(select(Subject)).all() == []
    assert ws.ledger.find("holder.created") == [] and ws.ledger.find("subject.created") == []


# --- 1. a new holder names their organisation ------------------------------------------------


def test_a_holder_enrolled_among_several_organisations_without_naming_one_is_refused(two_agencies):
    ws = two_agencies
    for enrol in (
        lambda: ws.registry.add_subject("mina", "Mina", holder_public_key_pem=_pem(ws, "mina-holder")),
        lambda: ws.registry.add_holder("mina-holder", "Mina", kind="artist", public_key_pem=_pem(ws, "mina-holder")),
        lambda: HolderPortal(ws).add_passkey_holder("mina-holder", "Mina", kind="artist"),
    ):
        with pytest.raises(EnrollingOrgUnnamed) as refused:
            enrol()
        assert refused.value.orgs == ("byeol", "haneul")
        assert "several organisations (byeol, haneul)" in str(refused.value) and "--org" in str(refused.value)
        _nothing_enrolled(ws)
    ws.registry.add_subject("mina", "Mina", holder_public_key_pem=_pem(ws, "mina-holder"), org="haneul")
    holder = ws.registry.get_holder("mina-holder")
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id
    with pytest.raises(RegistryError, match="onboarded by another organisation"):
        _recover(ws, "mina-holder", "byeol")


def _cli(home, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["--home", str(home), *args], env=env)


def _cli_two_agencies(tmp_path: Path) -> tuple[Path, str]:
    """A workspace home of two agencies (haneul, byeol) made with the CLI, and the public key
    file a holder made on their own machine."""
    home = tmp_path / "home"
    assert _cli(home, "init", "--org", "haneul").exit_code == 0
    assert _cli(home, "org", "add", "byeol").exit_code == 0
    machine = tmp_path / "holder-machine"
    assert _cli(home, "holder", "keygen", "--out", str(machine), "--name", "mina").exit_code == 0
    return home, str(machine / "mina.pub.pem")


def test_subject_add_without_an_organisation_among_several_exits_1_naming_them(tmp_path):
    home, pem = _cli_two_agencies(tmp_path)
    refused = _cli(home, "subject", "add", "mina", "--holder-public-key", pem)
    assert refused.exit_code == 1, refused.output
    assert "several organisations (byeol, haneul)" in refused.output and "--org" in refused.output
    assert "Traceback" not in refused.output and not isinstance(refused.exception, EnrollingOrgUnnamed)
    # the configured organisation names one
    enrolled = _cli(
        home,
        "subject",
        "add",
        "mina",
        "--holder-public-key",
        pem,
        env={"LIKENESS_ORG": "byeol"},
    )
    assert enrolled.exit_code == 0, enrolled.output
    ws = Workspace.open(Settings(home=home))
    try:
        (created,) = ws.ledger.find("holder.created")
        assert created.payload["org_id"] == ws.registry.get_org("byeol").id
    finally:
        ws.close()


# --- 2. holders enrolled before: only signed claims, else nobody -----------------------------


def test_an_appended_subject_event_makes_no_one_owner_of_a_legacy_holder(before_subjects_sealed, two_agencies):
    """Before: one appended ``subject.created`` naming byeol made byeol the owner; a second
    organisation among them made the owner ambiguous, and then anyone could recover."""
    ws = two_agencies
    from tests.consent.test_reference_binding import _legacy_subject

    holder = _legacy_subject(ws, "mina")  # an artist: no owner organisation
    _appended_subject(ws, holder.id, ws.registry.get_org("byeol").id)
    assert _owner(ws, holder.id) is None
    for org in ("byeol", "haneul"):
        with pytest.raises(RegistryError) as refused:
            _recover(ws, "mina-holder", org)
        assert OWNERLESS in str(refused.value) and "adopt-holder" in str(refused.value)
    before = ws.registry.holder_fingerprint(holder.id)
    byeol_key = keys.load_private_key(ws.registry.org_key_path("byeol"))
    _recovery(ws, holder.id, before, ws.registry.get_org("byeol").id, byeol_key)
    assert ws.registry.holder_fingerprint(holder.id) == before
    _appended_subject(ws, holder.id, ws.registry.get_org("haneul").id)
    assert _owner(ws, holder.id) is None


def test_a_legacy_holders_owner_is_their_first_signed_invitation_never_an_unsigned_one(
    before_subjects_sealed, workspace
):
    ws = workspace
    ws.registry.add_org("haneul", "Haneul Entertainment")
    holder = _legacy_holder(ws, "sora-holder", passkey_only=True)
    HolderPortal(ws).invite("sora-holder", "haneul", created_by="x")  # signed while haneul was alone
    ws.registry.add_org("byeol", "Byeol Entertainment")
    byeol = ws.registry.get_org("byeol")
    forged = {"invitation_id": uuid.uuid4().hex, "holder_id": holder.id, "org_id": byeol.id}
    ws.ledger.append("holder.invited", {**forged, "org_fingerprint": byeol.key_fingerprint})  # unsigned
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id
    HolderPortal(ws).invite("sora-holder", "haneul", created_by="x")
    with pytest.raises(ConsentError, match="onboarded by another organisation"):
        HolderPortal(ws).invite("sora-holder", "byeol", created_by="x")
    other = _legacy_holder(ws, "yuri-holder", passkey_only=True)
    ws.ledger.append("holder.invited", {**forged, "holder_id": other.id, "org_fingerprint": byeol.key_fingerprint})
    assert _owner(ws, other.id) is None
    with pytest.raises(ConsentError, match="no organisation that onboarded the holder"):
        HolderPortal(ws).invite("yuri-holder", "byeol", created_by="x")


def test_the_organisation_that_enrolled_a_legacy_holder_adopts_them_and_no_other_can(
    before_subjects_sealed, two_agencies
):
    ws = two_agencies
    holder = _legacy_holder(ws, "mina-holder")
    haneul, byeol = ws.registry.get_org("haneul"), ws.registry.get_org("byeol")
    with pytest.raises(RegistryError, match="no statement"):
        ws.registry.request_adoption("mina-holder", org="haneul", attestation=RecoveryAttestation(" ", "J. Park", "x"))
    adopt(ws, "mina-holder", "haneul")
    assert _owner(ws, holder.id) == haneul.id
    assert _recover(ws, "mina-holder", "haneul")
    with pytest.raises(RegistryError, match="onboarded by another organisation"):
        _recover(ws, "mina-holder", "byeol")
    with pytest.raises(RegistryError, match="onboarded by organisation 'haneul' already"):
        ws.registry.request_adoption("mina-holder", org="byeol", attestation=CHECKED)
    # byeol signs an adoption anyway, even with the holder's signature: it is ignored and named
    byeol_key = keys.load_private_key(ws.registry.org_key_path("byeol"))
    body = adoption_payload(
        holder_id=holder.id,
        holder_fingerprint=holder.key_fingerprint,
        org_id=byeol.id,
        org_name=byeol.name,
        org_fingerprint=byeol.key_fingerprint,
        attestation=CHECKED.as_payload(),
        adopted_at=utc_iso(now_utc()),
    )
    mina_key = holder_machine(ws.registry).key("mina-holder")
    holder_signature = keys.sign(mina_key, canonical_bytes(body))
    signed = {**body, "holder_signature": holder_signature, "signature": keys.sign(byeol_key, canonical_bytes(body))}
    ws.ledger.append(ADOPTION_EVENT, signed)
    assert _owner(ws, holder.id) == haneul.id
    assert any(
        f"{ADOPTION_EVENT} ignored: the holder is adopted by organisation 'haneul' already" in p.problem
        for p in consent_row_problems(ws)
    )


@pytest.mark.parametrize("signer", ["a key of its own", "an invented organisation", "byeol, with no attestation"])
def test_an_adoption_a_database_editor_writes_makes_no_one_owner(before_subjects_sealed, two_agencies, signer):
    ws = two_agencies
    holder = _legacy_holder(ws, "mina-holder")
    byeol = ws.registry.get_org("byeol")
    org_id, fingerprint, key = byeol.id, byeol.key_fingerprint, Ed25519PrivateKey.generate()
    attestation = CHECKED.as_payload()
    if signer == "an invented organisation":
        org_id, key = _invented_org(ws)
        fingerprint = keys.fingerprint(keys.public_raw(key))
    elif signer == "byeol, with no attestation":
        key, attestation = keys.load_private_key(ws.registry.org_key_path("byeol")), {}
    body = adoption_payload(
        holder_id=holder.id,
        holder_fingerprint=holder.key_fingerprint,
        org_id=org_id,
        org_name="Byeol Entertainment",
        org_fingerprint=fingerprint,
        attestation=attestation,
        adopted_at="now",
    )
    holder_signature = keys.sign(holder_machine(ws.registry).key("mina-holder"), canonical_bytes(body))
    ws.ledger.append(
        ADOPTION_EVENT,
        {**body, "holder_signature": holder_signature, "signature": keys.sign(key, canonical_bytes(body))},
    )
    assert _owner(ws, holder.id) is None
    assert any(f"{ADOPTION_EVENT} ignored" in p.problem for p in consent_row_problems(ws))
    with pytest.raises(RegistryError, match="no organisation that onboarded"):
        _recover(ws, "mina-holder", "byeol")


def test_in_a_single_organisation_workspace_the_only_one_owns_a_legacy_holder(before_subjects_sealed, workspace):
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    holder = _legacy_holder(workspace, "mina-holder")
    assert _owner(workspace, holder.id) == workspace.registry.get_org("haneul").id
    assert _recover(workspace, "mina-holder", "haneul")
    assert not [w for w in audit_workspace(workspace).warnings if "mina-holder" in w]


# --- 3. audit verify names them ---------------------------------------------------------------


def test_audit_verify_names_an_ownerless_holder_and_lists_the_adoption(before_subjects_sealed, two_agencies):
    ws = two_agencies
    _legacy_holder(ws, "mina-holder")
    ws.registry.add_subject("jun", "Jun", kind="performer", holder_public_key_pem=_pem(ws, "jun-holder"), org="byeol")
    report = audit_workspace(ws)
    (named,) = [w for w in report.warnings if "rights holder" in w]
    assert "'mina-holder'" in named and "several (byeol, haneul)" in named and "adopt-holder mina-holder" in named
    assert report.ok and report.adoptions == ()
    adopt(ws, "mina-holder", "haneul")
    report = audit_workspace(ws)
    assert not [w for w in report.warnings if "rights holder" in w]
    (adopted,) = report.adoptions
    assert "'mina-holder': adopted by Haneul Entertainment" in adopted and "J. Park (legal)" in adopted
    assert "signed by the rights holder's key" in adopted
    shown = _cli(ws.home, "audit", "verify")
    assert "adoption:" in shown.output and "adopted by Haneul Entertainment" in shown.output


def test_adding_a_second_organisation_warns_of_the_holders_it_leaves_without_an_owner(
    before_subjects_sealed, workspace
):
    """A second organisation makes a holder enrolled before holders named their organisation
    ownerless (no organisation may invite them or recover their key); `org add` said nothing,
    and only `audit verify` told."""
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    _legacy_holder(workspace, "mina-holder")
    workspace.registry.add_subject("jun", "Jun", kind="performer", holder_public_key_pem=_pem(workspace, "jun-holder"))
    added = _cli(workspace.home, "org", "add", "byeol")
    assert added.exit_code == 0, added.output
    text = " ".join(added.output.split())
    assert "organisation byeol added" in text
    assert "warning: rights holder 'mina-holder'" in text and "adopt-holder mina-holder" in text
    assert "jun-holder" not in text  # enrolled with its organisation named: it has an owner


def _copied_org(ws: Workspace, slug: str) -> str:
    """An ``org.created`` a database editor appends repeating organisation ``slug``'s event
    (its slug and key, so the workspace's key file for the slug holds that key) under a new id."""
    with ws.session() as session:
        created = LedgerConsent(session).org_created(ws.registry.get_org(slug).id)
    assert created is not None
    org_id = uuid.uuid4().hex
    ws.ledger.append("org.created", {**created.payload, "org_id": org_id})
    return org_id


def test_a_copied_organisation_does_not_leave_the_only_ones_holders_without_an_owner(before_subjects_sealed, workspace):
    """A copy counted as a second pinned organisation: a legacy holder the only organisation
    onboards had none, so nobody could recover their key, and audit said only that the copy's
    row was missing."""
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    holder = _legacy_holder(workspace, "mina-holder")
    copy = _copied_org(workspace, "haneul")
    haneul = workspace.registry.get_org("haneul").id
    assert _owner(workspace, holder.id) == haneul
    with workspace.session() as session:
        view = LedgerConsent(session)
        assert view.pinned_orgs() == [haneul] and view.org_key(copy) is None
    assert _recover(workspace, "mina-holder", "haneul")
    (named,) = [p for p in consent_row_problems(workspace) if p.record_id == copy and "not pinned" in p.problem]
    assert "HOME/keys/orgs/haneul.pem pins organisation" in named.problem and "pins one organisation" in named.problem


def test_an_organisation_event_appended_ahead_of_a_slug_does_not_take_it_from_the_one_added_under_it(workspace):
    """Only a copy of the key file's organisation is refused: an editor's ``org.created`` for a
    slug not yet added, with a key of their own, does not keep ``org add`` from pinning it."""
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    ahead, _ = _invented_org(workspace, slug="byeol")
    byeol = workspace.registry.add_org("byeol", "Byeol").id
    with workspace.session() as session:
        view = LedgerConsent(session)
        assert view.org_key(byeol) is not None and view.org_key(ahead) is None
        assert view.pinned_orgs() == [workspace.registry.get_org("haneul").id, byeol]


def test_the_first_events_of_one_type_are_indexed_by_each_member_asked_for(consent_world) -> None:
    """One reading asks for ``subject.created`` by subject and by rights holder: each gets its
    own index, not the one made first."""
    ws = consent_world.workspace
    mina = ws.registry.get_subject("mina")
    with ws.session() as session:
        view = LedgerConsent(session)
        by_subject = view._first_events("subject.created", "subject_id")
        by_holder = view._first_events("subject.created", "holder_id")
    assert mina.id in by_subject and mina.id not in by_holder
    assert by_holder[mina.holder_id].payload["subject_id"] == mina.id
