"""The names a rights holder reads before signing are the names their signature covers (attack
report finding 2): a v2 grant or release payload signs the organisation, subject and holder as
the ledger's events name them, and the preview stills; neither an edited request file, nor a
renamed row, nor a request event written by a database editor puts other names before them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from likeness.cli import app
from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, canonical_sha256
from likeness.consent.grant_requests import (
    GRANT_TYPE,
    RELEASE_TYPE,
    ConsentRequest,
    SignedConsent,
    make_request,
    parties_of,
    request_payload,
    requested_event,
)
from likeness.consent.registry import grant_row
from likeness.errors import ConsentError
from likeness.media import synthetic, write_image
from likeness.workspace import Workspace

runner = CliRunner()


def run(home: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


@pytest.fixture
def agencies(tmp_path: Path) -> Path:
    """Two agencies: Studio Haneul onboards Mina (and a second subject, 'Mina Ad', under her
    holder); Byeol Agency is the other one. Mina's key lives on her own machine."""
    home = tmp_path / "home"
    run(home, "init", "--org", "haneul", "--org-name", "Studio Haneul")
    run(home, "org", "add", "byeol", "--name", "Byeol Agency")
    run(home, "holder", "keygen", "--out", str(tmp_path / "mina-laptop"), "--name", "mina")
    common = ("--virtual", "--owner-org", "haneul", "--org", "haneul")
    public = str(tmp_path / "mina-laptop" / "mina.pub.pem")
    run(home, "subject", "add", "mina", "--name", "Mina", *common, "--holder-public-key", public)
    run(home, "subject", "add", "mina-ad", "--name", "Mina Ad", *common, "--holder", "mina-holder")
    return home


def _key(home: Path) -> str:
    return str(home.parent / "mina-laptop" / "mina.pem")


def _request(home: Path, subject: str, org: str, *extra: str) -> Path:
    out = home.parent / f"request-{subject}-{org}.json"
    run(
        home,
        "consent",
        "request",
        subject,
        "--org",
        org,
        "--use",
        "advertising",
        "--until",
        "+30d",
        *extra,
        "--out",
        str(out),
    )
    return out


def _edited(path: Path, edit) -> Path:
    body = json.loads(path.read_text())
    edit(body)
    edited = path.with_name(f"edited-{path.name}")
    edited.write_text(json.dumps(body))
    return edited


def _sign(home: Path, request: Path, *extra: str, code: int = 0) -> str:
    out = request.with_name(f"signed-{request.name}")
    return run(home, "holder", "sign", str(request), "--key", _key(home), "--out", str(out), "--yes", *extra, code=code)


def _workspace(home: Path) -> Workspace:
    return Workspace.open(Settings(home=home))


# --- what the holder reads is what is signed ------------------------------------------------


def test_a_relabelled_organisation_block_is_not_what_the_holder_reads(agencies):
    """Byeol relabels its own request as coming from Studio Haneul: the holder still reads Byeol."""

    def relabel(body):
        body["organisation"].update(name="Studio Haneul", slug="haneul")

    shown = _sign(agencies, _edited(_request(agencies, "mina", "byeol"), relabel))
    assert "Byeol Agency asks Mina" in shown and "Studio Haneul" not in shown
    assert "organisation 'byeol'" in shown


def test_a_relabelled_subject_block_is_not_what_the_holder_reads(agencies):
    """Haneul asks for 'Mina Ad' (another face) with the file's subject block saying Mina."""

    def relabel(body):
        body["subject"].update(name="Mina", slug="mina")

    shown = _sign(agencies, _edited(_request(agencies, "mina-ad", "haneul"), relabel))
    assert "face and likeness of Mina Ad." in shown and "subject 'mina-ad'" in shown


def test_a_renamed_organisations_row_is_refused_at_drafting(agencies):
    """A database editor names byeol's row 'Studio Haneul' before byeol drafts: refused, naming
    the row and the ledger's name, and nothing is requested."""
    with _workspace(agencies).session() as session:
        session.execute(text("UPDATE organisations SET name = 'Studio Haneul' WHERE slug = 'byeol'"))
        session.commit()
    out = home_out = agencies.parent / "request.json"
    refused = run(
        agencies, "consent", "request", "mina", "--org", "byeol", "--use", "advertising", "--until", "+30d",
        "--out", str(out), code=1,
    )  # fmt: skip
    assert "org_altered" in refused and "'Studio Haneul' (the ledger says 'Byeol Agency')" in refused
    assert not home_out.exists()
    assert not _workspace(agencies).ledger.find("grant.requested")


def test_preview_stills_swapped_in_the_request_file_are_refused(agencies, tmp_path):
    """The org puts other stills' digests in the file: the holder's tool checks the signed ones."""
    shown_stills, real = tmp_path / "shown", tmp_path / "real"
    shown_stills.mkdir()
    real.mkdir()
    drafted_with = write_image(real / "drafted.png", synthetic.astronaut()[:32, :32])
    shown = write_image(shown_stills / "shown.png", synthetic.grace_hopper()[:32, :32])
    request = _request(agencies, "mina", "haneul", "--preview", str(drafted_with))

    def swap(body):
        body["preview_sha256"] = [keys_sha(shown)]

    refused = _sign(agencies, _edited(request, swap), "--previews", str(shown_stills), code=1)
    assert "preview_sha256 is not the list its payload signs" in refused
    # The file as drafted: the stills it signs are checked, and the ones shown are not them.
    refused = _sign(agencies, request, "--previews", str(shown_stills), code=1)
    assert keys_sha(drafted_with) in refused and "do not match" in refused
    assert "all 1 the request signs are there" in _sign(agencies, request, "--previews", str(real))


def keys_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the whole flow, and what came before -------------------------------------------------------


def test_a_v2_grant_and_release_are_requested_signed_imported_and_authorized(agencies, tmp_path):
    request = _request(agencies, "mina", "byeol", "--purpose", "Spring campaign")
    assert "Byeol Agency asks Mina" in _sign(agencies, request)
    imported = run(agencies, "consent", "import", str(request.with_name(f"signed-{request.name}")))
    assert "imported for organisation 'Byeol Agency' (byeol), subject 'Mina' (mina)" in imported
    assert "authorized" in run(agencies, "consent", "check", "mina", "--use", "advertising", "--org", "byeol")
    ws = _workspace(agencies)
    issued = ws.ledger.find("grant.issued")[0].payload
    assert issued["type"] == GRANT_TYPE and (issued["org_name"], issued["subject_slug"]) == ("Byeol Agency", "mina")
    # A performer's release signs the performer's name and kind.
    run(agencies, "holder", "keygen", "--out", str(tmp_path / "jun-laptop"), "--name", "jun")
    jun = (
        "--performer",
        "--name",
        "Jun",
        "--org",
        "byeol",
        "--holder-public-key",
        str(tmp_path / "jun-laptop" / "jun.pub.pem"),
    )
    run(agencies, "subject", "add", "jun", *jun)
    release, signed = tmp_path / "release.json", tmp_path / "release-signed.json"
    run(agencies, "release", "request", "jun", "--org", "byeol", "--until", "+30d", "--out", str(release))
    shown = run(
        agencies,
        "holder",
        "sign",
        str(release),
        "--key",
        str(tmp_path / "jun-laptop" / "jun.pem"),
        "--out",
        str(signed),
        "--yes",
    )
    assert "Byeol Agency asks" in shown and "subject 'jun', performer" in shown
    run(agencies, "consent", "import", str(signed))
    payload = json.loads(signed.read_text())["payload"]
    assert payload["type"] == RELEASE_TYPE and payload["subject_kind"] == "performer"
    report = audit_workspace(_workspace(agencies))
    assert report.ok, report.problems


def test_a_v1_request_is_not_signed_but_a_v1_consent_signed_before_imports_and_authorizes(agencies):
    """A request drafted by an earlier version (ids only) is refused by the holder's tool in one
    line; the consent the holder signed for it then imports and authorizes."""
    ws = _workspace(agencies)
    reg = ws.registry
    drafted = ConsentRequest.from_json(json.loads(_request(agencies, "mina", "haneul").read_text()))
    v1_terms = make_request(**{**vars(drafted.terms), "request_id": "a" * 32})
    holder = reg.get_holder("mina-holder")
    payload = {k: v for k, v in drafted.payload.items() if k not in parties_of(drafted.payload).members()}
    payload = {**payload, "type": "likeness.grant.v1", "grant_id": v1_terms.request_id}
    del payload["preview_sha256"]
    ws.ledger.append(
        "grant.requested", requested_event(v1_terms, holder_id=holder.id, created_by="cli", payload=payload)
    )
    old = reg.request_file(v1_terms.request_id)
    old_file = agencies.parent / "old-request.json"
    old_file.write_text(json.dumps(old.as_json()))
    refused = _sign(agencies, old_file, code=1)
    assert "ask the organisation for a new request" in refused and "Sign this" not in refused
    key = keys.load_private_key(Path(_key(agencies)))
    signed_before = agencies.parent / "signed-before.json"
    signature = keys.sign(key, canonical_bytes(payload))
    signed_before.write_text(
        json.dumps(SignedConsent(payload, signature, keys.public_raw(key).hex(), "", old).as_json())
    )
    run(agencies, "consent", "import", str(signed_before))
    assert ws.policy.authorize("mina", "advertising", "haneul").grant_id == v1_terms.request_id
    assert audit_workspace(ws).ok


# --- a database editor writes the request event or the grant itself ----------------------------


def _forged_request(ws: Workspace, names: dict) -> tuple[ConsentRequest, dict]:
    """A ``grant.requested`` event appended by a database editor: byeol's request, its payload
    naming ``names`` (what the holder then reads and signs)."""
    reg = ws.registry
    subject, org, holder = reg.get_subject("mina"), reg.get_org("byeol"), reg.get_holder("mina-holder")
    terms = make_request(
        request_id="f" * 32, subject_id=subject.id, org_id=org.id, uses=["advertising"],
        valid_from="2026-01-01T00:00:00Z", valid_until="2099-01-01T00:00:00Z", max_renders=None,
        allow_unlabelled=False, purpose="", preview_sha256=[], requested_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    parties = reg.signed_parties(org.id, subject.id, holder.id)
    from likeness.consent.grant_requests import offline_payload

    payload = offline_payload(
        terms, holder_id=holder.id, holder_fingerprint=reg.holder_fingerprint("mina-holder"), parties=parties
    )
    payload.update(names)
    ws.ledger.append("grant.requested", requested_event(terms, holder_id=holder.id, created_by="cli", payload=payload))
    assert request_payload(terms)["request_id"] == payload["grant_id"]
    from likeness.consent.registry import consent_request_file

    request = consent_request_file(
        payload, parties_of(payload), "mina-holder", previews=(), requested_at=terms.requested_at
    )
    return request, payload


def test_names_forged_in_a_request_event_are_refused_at_import_and_at_every_decision(agencies):
    ws = _workspace(agencies)
    request, payload = _forged_request(ws, {"org_name": "Studio Haneul", "org_slug": "haneul"})
    key = keys.load_private_key(Path(_key(agencies)))
    signed = SignedConsent(payload, keys.sign(key, canonical_bytes(payload)), keys.public_raw(key).hex(), "", request)
    path = agencies.parent / "forged-signed.json"
    path.write_text(json.dumps(signed.as_json()))
    refused = run(agencies, "consent", "import", str(path), code=1)
    assert str(path) in refused and "grant_altered" in refused
    assert "org_name 'Studio Haneul' (the ledger says 'Byeol Agency')" in refused
    # The editor writes the grant row and its event past the import: no decision accepts it.
    row = grant_row(payload, signed.signature)
    with ws.session() as session:
        session.add(row)
        session.commit()
    ws.ledger.append(
        "grant.issued", {**payload, "payload_sha256": canonical_sha256(payload), "signature": signed.signature}
    )
    with pytest.raises(ConsentError) as caught:
        ws.policy.authorize("mina", "advertising", "byeol")
    assert caught.value.reason == "grant_altered" and "the ledger says 'Byeol Agency'" in str(caught.value)
    assert not audit_workspace(ws).ok
