"""A passkey recovery sent from the console's holders page (``/consent/holders/recover``): only
an administrator of the organisation that onboards the holder gets the link, once, with the
attestation the CLI asks for on the ledger; every other role, another organisation's
administrator, a missing CSRF token and a blank attestation are refused with nothing written."""

from __future__ import annotations

import hashlib

import pytest

from likeness.service.roles import Role
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _invite, _register
from tests.service.conftest import PASSWORD, build_service_world

ATTESTED = {
    "holder": "haneul-holder",
    "verified_by": "J. Park, rights team",
    "method": "in_person",
    "statement": "identity checked against passport",
    "passkeys_lost": "on",
}


@pytest.fixture
def world(settings, workspace):
    world = build_service_world(settings, workspace)
    _register(world.client(base_url=ORIGIN), _invite(world), SoftAuthenticator())
    return world


def _recoveries(world) -> list:
    return [e for e in world.workspace.ledger.find("holder.invited") if e.payload.get("purpose") == "recovery"]


def _signed_in(world, username: str):
    client = world.client(base_url=ORIGIN)
    return client, world.login(client, username)


def test_an_admin_of_the_enrolling_organisation_gets_the_link_once(world) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    assert 'action="/consent/holders/recover"' in client.get("/consent/holders").text
    sent = client.post("/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf})
    assert sent.status_code == 200, sent.text[:400]
    assert "data-recovery-url" in sent.text
    token = sent.text.split(f"{ORIGIN}/portal/invite/", 1)[1].split("<", 1)[0]
    (event,) = _recoveries(world)
    assert event.payload["created_by"] == "admin" and event.payload["passkeys_lost"] is True
    assert event.payload["attestation"] == {
        "statement": ATTESTED["statement"],
        "verified_by": ATTESTED["verified_by"],
        "method": "in_person",
        "evidence_sha256": None,
    }
    assert "data-recovery-link" in client.get(f"/portal/invite/{token}").text
    assert "data-recovery-url" not in client.get("/consent/holders").text  # shown once, never listed


@pytest.mark.parametrize("role", [Role.LEGAL, Role.STUDIO, Role.VIEWER])
def test_another_role_is_refused_and_writes_nothing(world, role) -> None:
    client, csrf = _signed_in(world, role.value)
    refused = client.post("/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf})
    assert refused.status_code == 403, refused.text[:400]
    assert _recoveries(world) == []
    if role is Role.LEGAL:  # legal invites and asks on this page, but is not offered a recovery
        page = client.get("/consent/holders").text
        assert 'action="/consent/holders/invite"' in page and "/consent/holders/recover" not in page


def test_an_api_token_of_another_role_is_refused_too(world) -> None:
    refused = world.token_client(Role.LEGAL, base_url=ORIGIN).post("/consent/holders/recover", data=ATTESTED)
    assert refused.status_code == 403
    assert _recoveries(world) == []


def test_an_admin_of_another_organisation_is_refused(world) -> None:
    world.workspace.registry.add_org("rival", "Rival Entertainment")
    world.accounts.add_user("rival-admin", PASSWORD, Role.ADMIN, org="rival")
    client, csrf = _signed_in(world, "rival-admin")
    refused = client.post(
        "/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf}, headers={"accept": "application/json"}
    )
    assert refused.status_code == 403, refused.text[:400]
    assert "another organisation" in refused.text and ORIGIN + "/portal/invite/" not in refused.text
    assert _recoveries(world) == []


def test_without_the_csrf_token_nothing_is_sent(world) -> None:
    client, _csrf = _signed_in(world, Role.ADMIN.value)
    for token in ("", "x" * 40):
        refused = client.post("/consent/holders/recover", data={**ATTESTED, "csrf_token": token})
        assert refused.status_code == 403
    assert _recoveries(world) == []


@pytest.mark.parametrize("blank", ["statement", "verified_by"])
def test_a_blank_attestation_is_a_bad_form(world, blank) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    refused = client.post(
        "/consent/holders/recover",
        data={**ATTESTED, blank: "  ", "csrf_token": csrf},
        headers={"accept": "application/json"},
    )
    assert refused.status_code == 400, refused.text[:400]
    assert f"no {blank}" in refused.json()["detail"]
    assert _recoveries(world) == []


def test_a_holder_with_a_passkey_in_force_needs_it_stated_lost(world) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    sent = {k: v for k, v in ATTESTED.items() if k != "passkeys_lost"}
    refused = client.post(
        "/consent/holders/recover", data={**sent, "csrf_token": csrf}, headers={"accept": "application/json"}
    )
    assert refused.status_code == 403 and "state them lost" in refused.text
    assert _recoveries(world) == []


def _evidence(world, client, csrf, evidence, **form):
    return client.post(
        "/consent/holders/recover",
        data={**ATTESTED, "csrf_token": csrf, **form},
        files={"evidence": evidence},
        headers={"accept": "application/json"},
    )


def test_an_evidence_upload_is_recorded_by_its_digest(world) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    form = client.get("/consent/holders").text.split('action="/consent/holders/recover"', 1)[1].split("</form>")[0]
    assert 'enctype="multipart/form-data"' in form and 'type="file" name="evidence"' in form
    scan = b"%PDF-1.4 passport page checked in person\n" * 100
    sent = client.post(
        "/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf}, files={"evidence": ("scan.pdf", scan)}
    )
    assert sent.status_code == 200, sent.text[:400]
    digest = hashlib.sha256(scan).hexdigest()
    assert "data-evidence-sha256" in sent.text and digest in sent.text
    (event,) = _recoveries(world)
    assert event.payload["attestation"]["evidence_sha256"] == digest
    assert not any(p.is_file() and p.read_bytes() == scan for p in world.workspace.home.rglob("*"))  # digest only


def test_no_file_chosen_is_no_evidence(world) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    sent = _evidence(world, client, csrf, ("", b"", "application/octet-stream"))
    assert sent.status_code == 200, sent.text[:400]
    (event,) = _recoveries(world)
    assert event.payload["attestation"]["evidence_sha256"] is None


def test_empty_or_too_large_evidence_is_refused_as_the_cli_refuses_it(world, monkeypatch) -> None:
    from likeness.consent import registry

    client, csrf = _signed_in(world, Role.ADMIN.value)
    empty = _evidence(world, client, csrf, ("scan.pdf", b""))
    assert empty.status_code == 400 and "scan.pdf: the evidence file is empty" in empty.json()["detail"]
    monkeypatch.setattr(registry, "EVIDENCE_MAX_BYTES", 1000)
    over = _evidence(world, client, csrf, ("scan.pdf", b"x" * 1001))
    assert over.status_code == 413 and "scan.pdf: evidence may have at most 1000 bytes" in over.json()["detail"]
    declared = _evidence(world, client, csrf, ("scan.pdf", b"x" * 100_000))  # refused from its length, unread
    assert declared.status_code == 413, declared.text[:400]
    assert _recoveries(world) == []


def test_with_evidence_the_csrf_role_and_form_checks_stand(world) -> None:
    client, _csrf = _signed_in(world, Role.ADMIN.value)
    assert _evidence(world, client, "", ("scan.pdf", b"scan")).status_code == 403
    legal, legal_csrf = _signed_in(world, Role.LEGAL.value)
    assert _evidence(world, legal, legal_csrf, ("scan.pdf", b"scan")).status_code == 403
    admin, csrf = _signed_in(world, Role.ADMIN.value)
    assert _evidence(world, admin, csrf, ("scan.pdf", b"scan"), holder="h" * 65).status_code == 422
    assert _evidence(world, admin, csrf, ("scan.pdf", b"scan"), extra="1").status_code == 422
    assert _recoveries(world) == []


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ("In person", "Notarised document", "Legal representative")),
        ("ko", ("직접 대면 확인", "공증 서류", "법정 대리인")),
    ],
)
def test_the_recovery_method_choices_read_as_words_with_the_code_as_value(world, language, words) -> None:
    client, _ = _signed_in(world, Role.ADMIN.value)
    page = client.get("/consent/holders", headers={"Accept-Language": language}).text
    select = page.split('<select name="method">', 1)[1].split("</select>", 1)[0]
    for code, word in zip(("in_person", "notarised_document", "legal_representative"), words, strict=True):
        assert f'<option value="{code}">{word}</option>' in select
    assert ">in_person<" not in select and ">notarised_document<" not in select


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", "A newer recovery link was sent after this one"), ("ko", "이 링크 뒤에 새 복구 링크가 보내졌거나")],
)
def test_a_superseded_recovery_link_says_so_in_words(world, language, words) -> None:
    client, csrf = _signed_in(world, Role.ADMIN.value)
    links = []
    for _ in range(2):
        sent = client.post("/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf})
        links.append(sent.text.split(f"{ORIGIN}/portal/invite/", 1)[1].split("<", 1)[0])
    reader = world.client(base_url=ORIGIN)
    stale = reader.get(f"/portal/invite/{links[0]}", headers={"Accept-Language": language}).text
    assert 'data-refused="invitation_superseded"' in stale and words in stale
    unknown = reader.get("/portal/invite/nope", headers={"Accept-Language": language}).text
    assert 'data-refused="invitation_unknown"' in unknown and words not in unknown  # a guess learns nothing new
    assert "data-recovery-link" in reader.get(f"/portal/invite/{links[1]}").text


@pytest.mark.parametrize(
    ("edit", "language", "words"),
    [
        ("DELETE FROM rights_holders WHERE slug = 'haneul-holder'", "en", "Your record at the agency was changed or"),
        ("DELETE FROM rights_holders WHERE slug = 'haneul-holder'", "ko", "회원님의 기록이 바뀌었거나 삭제되어"),
        ("UPDATE rights_holders SET name = 'Someone Else' WHERE slug = 'haneul-holder'", "en", "changed or removed"),
    ],
    ids=["removed-en", "removed-ko", "edited-en"],
)
def test_a_recovery_link_whose_holder_row_was_removed_or_edited_says_so_in_words(world, edit, language, words) -> None:
    """Before: a removed holder row answered the link with a JSON 404 naming the holder's id, and
    an edited one greeted the holder by the edited name."""
    from sqlalchemy import text

    client, csrf = _signed_in(world, Role.ADMIN.value)
    sent = client.post("/consent/holders/recover", data={**ATTESTED, "csrf_token": csrf})
    link = sent.text.split(f"{ORIGIN}/portal/invite/", 1)[1].split("<", 1)[0]
    with world.workspace.engine.begin() as connection:  # a database editor
        connection.execute(text("PRAGMA foreign_keys = OFF"))
        connection.execute(text(edit))
    page = world.client(base_url=ORIGIN).get(f"/portal/invite/{link}", headers={"Accept-Language": language})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-refused="holder_altered"' in page.text and words in page.text
    assert "Someone Else" not in page.text and "data-passkey-register" not in page.text
