"""An adoption names a legacy holder's organisation only with the rights holder's own signature.

Found as a second agency (byeol) sharing a workspace with haneul, holding its own pinned key:
an adoption signed by the organisation alone, or an invitation byeol signed and appended itself,
made byeol the onboarding organisation of haneul's legacy artist, and byeol then recovered the
artist's key to one of its own and signed a grant that ``authorize`` accepted; ``audit verify``
stayed clean."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update
from typer.testing import CliRunner

from likeness.cli import app
from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.grant_requests import SignedConsent
from likeness.consent.holder import HolderMachine, sign_adoption
from likeness.consent.integrity import consent_row_problems
from likeness.consent.registry import ADOPTION_EVENT, adoption_payload
from likeness.consent.tables import Organisation
from likeness.errors import ConsentError, ConsentRequestError, ReferenceSealerRefused, RegistryError
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_holder_owner import CHECKED, _legacy_holder, _owner

# The legacy artist these tests adopt was enrolled before subject events were signed.
pytestmark = pytest.mark.usefixtures("before_subjects_sealed")


def _takeover(ws: Workspace, tmp_path: Path) -> None:
    """What byeol does once it counts as mina's organisation: recover her key to one of its
    own, sign a grant with it and render."""
    machine = HolderMachine(tmp_path / "byeol-machine")
    ws.registry.recover_holder_key(
        "mina-holder", org="byeol", attestation=CHECKED, new_public_key_pem=machine.public_key("stolen")
    )
    request = ws.registry.request_grant("mina", "byeol", ["training"], valid_until=now_utc() + timedelta(days=5))
    ws.registry.import_signed(machine.sign(request, "stolen"))
    ws.policy.authorize("mina", "training", "byeol")


def _byeol(ws: Workspace) -> tuple[str, str, Ed25519PrivateKey]:
    org = ws.registry.get_org("byeol")
    return org.id, org.key_fingerprint, keys.load_private_key(ws.registry.org_key_path("byeol"))


def _refused_and_named(ws: Workspace, tmp_path: Path, holder_id: str, event_type: str) -> None:
    assert _owner(ws, holder_id) is None
    with pytest.raises(RegistryError, match="no organisation that onboarded"):
        _takeover(ws, tmp_path)
    named = [p.problem for p in consent_row_problems(ws) if f"{event_type} ignored" in p.problem]
    assert named, consent_row_problems(ws)
    assert not audit_workspace(ws).ok


def _append_byeol_invitation(ws: Workspace, holder_id: str) -> None:
    """An invitation byeol signs with its pinned key and appends itself."""
    org_id, fingerprint, byeol_key = _byeol(ws)
    body = {
        "invitation_id": uuid.uuid4().hex,
        "holder_id": holder_id,
        "org_id": org_id,
        "org_fingerprint": fingerprint,
        "token_sha256": "0" * 64,
        "created_by": "byeol admin",
        "expires_at": utc_iso(now_utc() + timedelta(days=7)),
    }
    ws.ledger.append("holder.invited", {**body, "signature": keys.sign(byeol_key, canonical_bytes(body))})


def _mina(ws: Workspace):
    """Haneul's artist mina as enrolled before ``subject.created`` and ``holder.created`` named
    an organisation: the ledger names none for her."""
    from tests.consent.test_reference_binding import _legacy_subject

    return _legacy_subject(ws, "mina")


@pytest.mark.parametrize("signed_by", ["the organisation alone", "the organisation and a key it made"])
def test_an_adoption_the_rights_holder_did_not_sign_makes_no_one_owner(two_agencies, tmp_path, signed_by):
    ws = two_agencies
    holder = _mina(ws)
    org_id, fingerprint, byeol_key = _byeol(ws)
    if signed_by == "the organisation alone":  # what `consent adopt-holder` wrote before
        body = {
            "type": "likeness.holder-adoption.v1",
            "holder_id": holder.id,
            "org_id": org_id,
            "org_fingerprint": fingerprint,
            "attestation": CHECKED.as_payload(),
            "adopted_at": utc_iso(now_utc()),
        }
        event = {**body, "signature": keys.sign(byeol_key, canonical_bytes(body))}
    else:
        body = adoption_payload(
            holder_id=holder.id,
            holder_fingerprint=holder.key_fingerprint,
            org_id=org_id,
            org_name="Byeol Entertainment",
            org_fingerprint=fingerprint,
            attestation=CHECKED.as_payload(),
            adopted_at=utc_iso(now_utc()),
        )
        made = Ed25519PrivateKey.generate()
        signatures = {"holder_signature": keys.sign(made, canonical_bytes(body))}
        event = {**body, **signatures, "signature": keys.sign(byeol_key, canonical_bytes(body))}
    ws.ledger.append(ADOPTION_EVENT, event)
    _refused_and_named(ws, tmp_path, holder.id, ADOPTION_EVENT)


def test_the_holders_signature_for_one_organisation_does_not_adopt_them_for_another(two_agencies, tmp_path):
    ws = two_agencies
    holder = _mina(ws)
    body = ws.registry.request_adoption("mina-holder", org="haneul", attestation=CHECKED)
    signed = sign_adoption(body, holder_machine(ws.registry).key("mina-holder"))
    org_id, fingerprint, byeol_key = _byeol(ws)
    moved = {**body, "org_id": org_id, "org_name": "Byeol Entertainment", "org_fingerprint": fingerprint}
    ws.ledger.append(
        ADOPTION_EVENT,
        {**moved, "holder_signature": signed.signature, "signature": keys.sign(byeol_key, canonical_bytes(moved))},
    )
    _refused_and_named(ws, tmp_path, holder.id, ADOPTION_EVENT)
    ws.registry.import_signed(signed)  # the holder's own adoption, for haneul, still counts
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id


def test_an_invitation_another_organisation_signs_among_several_makes_it_no_owner(two_agencies, tmp_path):
    """The claim a signed ``holder.invited`` made: byeol signs one for haneul's legacy holder
    and appends it (the portal refuses to write it)."""
    ws = two_agencies
    holder = _mina(ws)
    _append_byeol_invitation(ws, holder.id)
    _refused_and_named(ws, tmp_path, holder.id, "holder.invited")


def _relabelled_adoption(ws: Workspace) -> SignedConsent:
    """Byeol's adoption of haneul's legacy artist with haneul's name written over its own: the
    holder reads "Haneul Entertainment" and signs, unable to check the id or key beside it."""
    body = ws.registry.request_adoption("mina-holder", org="byeol", attestation=CHECKED)
    relabelled = {**body, "org_name": "Haneul Entertainment"}
    return sign_adoption(relabelled, holder_machine(ws.registry).key("mina-holder"))


def test_an_adoption_naming_another_organisations_name_is_refused_at_import(two_agencies, tmp_path):
    ws = two_agencies
    holder = _mina(ws)
    with pytest.raises(ConsentRequestError, match="names its organisation 'Haneul Entertainment', but organisation"):
        ws.registry.import_signed(_relabelled_adoption(ws))
    assert ws.ledger.find(ADOPTION_EVENT) == []
    assert _owner(ws, holder.id) is None


def test_an_adoption_naming_another_organisations_name_makes_no_one_owner(two_agencies, tmp_path):
    """Appended with both signatures valid (the import refuses it): the reading does not count it."""
    ws = two_agencies
    holder = _mina(ws)
    signed = _relabelled_adoption(ws)
    _, _, byeol_key = _byeol(ws)
    body = signed.payload
    ws.ledger.append(
        ADOPTION_EVENT,
        {**body, "holder_signature": signed.signature, "signature": keys.sign(byeol_key, canonical_bytes(body))},
    )
    _refused_and_named(ws, tmp_path, holder.id, ADOPTION_EVENT)
    named = " ".join(p.problem for p in consent_row_problems(ws))
    assert "names its organisation 'Haneul Entertainment'" in named and "'Byeol Entertainment' on the ledger" in named


def test_an_adoption_is_drafted_with_the_organisations_name_on_the_ledger(two_agencies):
    ws = two_agencies
    _mina(ws)
    with ws.session() as session:  # a database editor renames byeol's row
        session.execute(update(Organisation).where(Organisation.slug == "byeol").values(name="Haneul Entertainment"))
        session.commit()
    with pytest.raises(ConsentError) as refused:
        ws.registry.request_adoption("mina-holder", org="byeol", attestation=CHECKED)
    assert refused.value.reason == "org_altered"


def test_a_passkey_only_holder_has_no_key_to_sign_an_adoption_with(two_agencies):
    ws = two_agencies
    _legacy_holder(ws, "sora-holder", passkey_only=True)
    with pytest.raises(RegistryError, match="signs with passkeys only: an adoption counts only with the holder"):
        ws.registry.request_adoption("sora-holder", org="haneul", attestation=CHECKED)


def test_an_adoption_signed_with_another_key_is_refused_at_import(two_agencies, tmp_path):
    ws = two_agencies
    _mina(ws)
    body = ws.registry.request_adoption("mina-holder", org="haneul", attestation=CHECKED)
    other = HolderMachine(tmp_path / "elsewhere")
    other.public_key("mina-holder")
    with pytest.raises(ConsentError, match="addressed to key"):
        sign_adoption(body, other.key("mina-holder"))
    forged = sign_adoption(
        {**body, "holder_fingerprint": keys.fingerprint(keys.public_raw(other.key("mina-holder")))},
        other.key("mina-holder"),
    )
    with pytest.raises(ConsentError) as refused:
        ws.registry.import_signed(forged)
    assert refused.value.reason == "signature_invalid"
    assert ws.ledger.find(ADOPTION_EVENT) == []


def _cli(home: Path, *args: str):
    return CliRunner().invoke(app, ["--home", str(home), *args])


ATTESTATION = ("--statement", "enrolment contract checked", "--verified-by", "J. Park (legal)")


def _adoption_draft(tmp_path: Path):
    """A workspace of two agencies whose legacy holder mina-holder haneul drafts an adoption
    for (``tmp_path / "adoption.json"``): the workspace's home and the draft command's result."""
    home = tmp_path / "home"
    assert _cli(home, "init", "--org", "haneul").exit_code == 0
    assert _cli(home, "org", "add", "byeol").exit_code == 0
    ws = Workspace.open(Settings(home=home))
    try:
        _mina(ws)
    finally:
        ws.close()
    drafted = _cli(
        home,
        "consent",
        "adopt-holder",
        "mina-holder",
        "--org",
        "haneul",
        *ATTESTATION,
        "--method",
        "notarised_document",
        "--out",
        str(tmp_path / "adoption.json"),
    )
    return home, drafted


def test_the_holder_signs_the_adoption_on_their_machine_and_audit_shows_it(tmp_path):
    home, drafted = _adoption_draft(tmp_path)
    assert drafted.exit_code == 0, drafted.output
    assert "holder sign-adoption" in " ".join(drafted.output.split())
    machine = HolderMachine.beside(home)
    key = str(machine.key_path("mina-holder"))
    signed = CliRunner().invoke(
        app,
        [
            "holder",
            "sign-adoption",
            str(tmp_path / "adoption.json"),
            "--key",
            key,
            "--out",
            str(tmp_path / "signed.json"),
            "--yes",
        ],
    )
    assert signed.exit_code == 0, signed.output
    assert "enrolled you" in " ".join(signed.output.split()) and "Organisation 'haneul'" in signed.output
    imported = _cli(home, "consent", "import", str(tmp_path / "signed.json"))
    assert imported.exit_code == 0, imported.output
    assert "rights holder mina-holder adopted by organisation 'haneul' (haneul)" in imported.output
    shown = _cli(home, "audit", "verify")
    text = " ".join(shown.output.split())
    assert shown.exit_code == 0, shown.output
    assert "adoption: rights holder 'mina-holder': adopted by" in text and "signed by the rights holder's key" in text
    again = _cli(
        home,
        "consent",
        "adopt-holder",
        "mina-holder",
        "--org",
        "byeol",
        *ATTESTATION,
        "--method",
        "in_person",
        "--out",
        str(tmp_path / "again.json"),
    )
    assert again.exit_code == 1 and "onboarded by organisation 'haneul' already" in " ".join(again.output.split())
    assert "Traceback" not in again.output


def test_adding_an_organisation_does_not_undo_the_key_recovery_the_only_one_made(workspace, tmp_path):
    """A legacy holder's key recovered while haneul was the workspace's only organisation:
    adding byeol made the ledger name no owner for the holder, so the recovery stopped counting
    and the lost key (perhaps in a thief's hands) signed grants again."""
    ws = workspace
    ws.registry.add_org("haneul", "Haneul Entertainment")
    holder = _mina(ws)
    device = HolderMachine(tmp_path / "new-device")
    recovered = ws.registry.recover_holder_key(
        "mina-holder", org="haneul", attestation=CHECKED, new_public_key_pem=device.public_key("mina-new")
    )
    ws.registry.add_org("byeol", "Byeol Entertainment")
    assert ws.registry.holder_fingerprint(holder.id) == recovered
    request = ws.registry.request_grant("mina", "haneul", ["training"], valid_until=now_utc() + timedelta(days=5))
    lost = holder_machine(ws.registry).key("mina-holder")
    signed_with_lost = SignedConsent(
        payload=request.payload,
        signature=keys.sign(lost, canonical_bytes(request.payload)),
        public_key=keys.public_raw(lost).hex(),
        signed_at=utc_iso(now_utc()),
        request=request,
    )
    with pytest.raises(ConsentError) as refused:
        ws.registry.import_signed(signed_with_lost)
    assert refused.value.reason == "signature_invalid"
    with pytest.raises(ConsentError, match="no consent grant exists for subject"):
        ws.policy.authorize("mina", "training", "haneul")
    # the holder adopts haneul with the key they have now
    body = ws.registry.request_adoption("mina-holder", org="haneul", attestation=CHECKED)
    ws.registry.import_signed(sign_adoption(body, device.key("mina-new")))
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id


def test_an_invitation_another_organisation_signs_does_not_let_it_seal_the_subjects_references(two_agencies):
    """A subject enrolled naming no organisation while several were on the ledger is sealed by
    its holder's onboarding organisation: byeol's own invitation made it that, and a stranger's
    face became the subject's sealed reference."""
    from tests.consent.test_reference_binding import _sha, _vector

    ws = two_agencies
    holder = _mina(ws)
    _append_byeol_invitation(ws, holder.id)
    with pytest.raises(ReferenceSealerRefused, match="the ledger names no organisation that enrolled"):
        ws.registry.add_reference_embedding(
            "mina", _vector(7), source_name="stranger.jpg", source_sha256=_sha("stranger"), org="byeol"
        )
    assert ws.ledger.find("subject.reference_added") == []


@pytest.mark.parametrize(
    ("command", "what"),
    [
        ("sign-adoption", "it is not a holder adoption (likeness.holder-adoption.v2)"),
        ("vouch-passkey", "it is not a passkey vouch (likeness.passkey-vouch.v1)"),
    ],
)
def test_a_file_of_another_kind_is_refused_before_the_holder_is_asked_to_sign_it(tmp_path, command, what):
    """A grant request given to ``holder sign-adoption`` (or ``vouch-passkey``) was shown as a
    page of blanks ("Organisation None (id None, key None)") and the holder asked to sign it;
    only their yes was then refused."""
    home = tmp_path / "home"
    assert _cli(home, "init", "--org", "haneul").exit_code == 0
    machine = HolderMachine.beside(home)
    machine.public_key("mina-holder")
    public = machine.folder / "mina-holder.pub.pem"
    assert _cli(home, "subject", "add", "mina", "--holder-public-key", str(public)).exit_code == 0
    request = tmp_path / "request.json"
    drafted = _cli(home, "consent", "request", "mina", "--use", "training", "--until", "+5d", "--out", str(request))
    assert drafted.exit_code == 0, drafted.output
    key = str(machine.key_path("mina-holder"))
    out = tmp_path / "signed.json"
    result = CliRunner().invoke(app, ["holder", command, str(request), "--key", key, "--out", str(out)], input="y\n")
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert f"{request}: {what}" in text
    assert "None" not in text and "?" not in text  # nothing shown, nothing asked
    assert not out.exists()


@pytest.mark.parametrize("command", ["sign", "sign-adoption"])
def test_a_key_the_statement_is_not_addressed_to_is_refused_before_the_holder_reads_and_confirms(tmp_path, command):
    """A holder's other key (or another holder's) given to ``holder sign`` or ``sign-adoption``:
    the whole text was shown and the holder asked to confirm, and only then refused."""
    if command == "sign":
        home = tmp_path / "home"
        assert _cli(home, "init", "--org", "haneul").exit_code == 0
        machine = HolderMachine.beside(home)
        public = machine.folder / "mina-holder.pub.pem"
        machine.public_key("mina-holder")
        assert _cli(home, "subject", "add", "mina", "--holder-public-key", str(public)).exit_code == 0
        statement = tmp_path / "request.json"
        drafted = _cli(
            home, "consent", "request", "mina", "--use", "training", "--until", "+5d", "--out", str(statement)
        )
    else:
        home, drafted = _adoption_draft(tmp_path)
        statement, machine = tmp_path / "adoption.json", HolderMachine.beside(home)
    assert drafted.exit_code == 0, drafted.output
    machine.public_key("sora-holder")
    out = tmp_path / "signed.json"
    wrong = str(machine.key_path("sora-holder"))
    result = CliRunner().invoke(
        app, ["holder", command, str(statement), "--key", wrong, "--out", str(out)], input="y\n"
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "addressed to key" in text and "?" not in text  # refused before anything is asked
    assert "haneul" not in text.split("addressed to key")[0]  # and before the statement is shown
    assert not out.exists()


def test_an_attestation_method_not_listed_is_refused_before_anything_is_drafted(tmp_path):
    home, drafted = _adoption_draft(tmp_path)
    assert drafted.exit_code == 0, drafted.output
    refused = _cli(
        home,
        "consent",
        "adopt-holder",
        "mina-holder",
        "--org",
        "haneul",
        *ATTESTATION,
        "--method",
        "phone",
        "--out",
        str(tmp_path / "phone.json"),
    )
    assert refused.exit_code == 1, refused.output
    assert "method 'phone' is not one of in_person, notarised_document, legal_representative" in " ".join(
        refused.output.split()
    )
    assert not (tmp_path / "phone.json").exists()


def test_the_consoles_recovery_methods_are_the_ones_the_cli_accepts():
    from likeness.consent.registry import ATTESTATION_METHODS
    from likeness.service.portal import RECOVERY_METHODS

    assert tuple(RECOVERY_METHODS) == ATTESTATION_METHODS


def test_a_signed_adoption_and_an_unsigned_one_each_name_the_next_step(tmp_path):
    """``sign-adoption`` of the signed file said "it is not a holder adoption", and ``consent
    import`` of the unsigned draft "not a signed likeness consent": neither said what to do."""
    home, drafted = _adoption_draft(tmp_path)
    assert drafted.exit_code == 0, drafted.output
    draft, signed = tmp_path / "adoption.json", tmp_path / "signed.json"
    unsigned = " ".join(_cli(home, "consent", "import", str(draft)).output.split())
    assert f"{draft}: an unsigned statement (likeness.holder-adoption.v2)" in unsigned
    assert "give the file 'likeness holder sign-adoption' wrote from it" in unsigned
    key = str(HolderMachine.beside(home).key_path("mina-holder"))
    sign = ["holder", "sign-adoption", "--key", key, "--yes", "--out"]
    assert CliRunner().invoke(app, [*sign, str(signed), str(draft)]).exit_code == 0
    again = CliRunner().invoke(app, [*sign, str(tmp_path / "again.json"), str(signed)])
    assert again.exit_code == 1
    assert f"{signed}: already signed" in " ".join(again.output.split())
    assert "likeness consent import" in " ".join(again.output.split())
