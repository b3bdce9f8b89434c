"""The portal against a database editor: sign-in trusts only passkeys registered on the ledger,
and one grant request row edited in the database does not lock the holder out of the grants
they may need to revoke."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from likeness.consent.passkeys import b64url
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _ceremony, _challenge, _csrf, _invite, _register, _request
from tests.service.conftest import build_service_world


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _sign_in(client: TestClient, authenticator: SoftAuthenticator):
    started = client.post("/portal/api/signin/options", json={}).json()
    assertion = authenticator.sign(_challenge(started["publicKey"]["challenge"]))
    return client.post(
        "/portal/api/signin",
        json={"ceremony_id": started["ceremony_id"], "credential": authenticator.response(assertion)},
    )


def _holder_of(world, authenticator: SoftAuthenticator) -> str:
    with world.workspace.engine.begin() as conn:
        return conn.execute(
            text("SELECT holder_id FROM holder_passkeys WHERE credential_id = :c"),
            {"c": b64url(authenticator.credential_id)},
        ).scalar_one()


def test_a_passkey_row_inserted_in_the_database_does_not_sign_in(world) -> None:
    holder = SoftAuthenticator()
    _register(TestClient(world.app, base_url=ORIGIN), _invite(world), holder)
    intruder = SoftAuthenticator()
    with world.workspace.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO holder_passkeys (id, holder_id, credential_id, public_key, rp_id, origin, sign_count,"
                " label, created_at) VALUES ('planted', :h, :c, :k, 'localhost', :o, 0, 'primary',"
                " '2026-01-01T00:00:00Z')"
            ),
            {"h": _holder_of(world, holder), "c": b64url(intruder.credential_id), "k": intruder.cose_key, "o": ORIGIN},
        )
    browser = TestClient(world.app, base_url=ORIGIN)
    refused = _sign_in(browser, intruder)
    assert refused.status_code == 403 and refused.json()["reason"] == "credential_not_holders"
    assert "likeness_holder" not in browser.cookies
    assert _sign_in(TestClient(world.app, base_url=ORIGIN), holder).status_code == 200


def test_a_passkey_rows_public_key_swapped_in_the_database_does_not_sign_in(world) -> None:
    holder = SoftAuthenticator()
    _register(TestClient(world.app, base_url=ORIGIN), _invite(world), holder)
    intruder = SoftAuthenticator(credential_id=holder.credential_id)  # the holder's credential id, another key
    with world.workspace.engine.begin() as conn:
        conn.execute(
            text("UPDATE holder_passkeys SET public_key = :k WHERE credential_id = :c"),
            {"k": intruder.cose_key, "c": b64url(holder.credential_id)},
        )
    refused = _sign_in(TestClient(world.app, base_url=ORIGIN), intruder)
    assert refused.status_code == 403 and refused.json()["reason"] == "signature_invalid", refused.text


def test_one_edited_request_row_leaves_the_holders_grants_in_reach(world) -> None:
    holder = SoftAuthenticator()
    browser = TestClient(world.app, base_url=ORIGIN)
    _register(browser, _invite(world), holder)
    csrf = _csrf(world, browser)
    signed = _ceremony(browser, csrf, f"/portal/api/requests/{_request(world)}/sign", holder)
    grant_id = signed.json()["grant_id"]
    edited, untouched = _request(world), _request(world)
    with world.workspace.engine.begin() as conn:
        payload = conn.execute(text("SELECT payload FROM grant_requests WHERE id = :i"), {"i": edited}).scalar_one()
        conn.execute(
            text("UPDATE grant_requests SET payload = :p WHERE id = :i"),
            {"p": payload.replace("Spring", "Autumn"), "i": edited},
        )
    home = browser.get("/portal")
    assert home.status_code == 200, home.text
    assert f"/portal/grants/{grant_id}" in home.text  # where the holder revokes
    assert f"/portal/requests/{untouched}" in home.text and f"/portal/requests/{edited}" not in home.text
    assert browser.get(f"/portal/requests/{edited}").status_code in (403, 404)


def test_audit_names_a_planted_or_edited_passkey_row(world) -> None:
    from likeness.consent.integrity import consent_row_problems

    holder = SoftAuthenticator()
    _register(TestClient(world.app, base_url=ORIGIN), _invite(world), holder)
    assert consent_row_problems(world.workspace) == []
    intruder = SoftAuthenticator()
    with world.workspace.engine.begin() as conn:
        conn.execute(
            text("UPDATE holder_passkeys SET public_key = :k WHERE credential_id = :c"),
            {"k": intruder.cose_key, "c": b64url(holder.credential_id)},
        )
        conn.execute(
            text(
                "INSERT INTO holder_passkeys (id, holder_id, credential_id, public_key, rp_id, origin, sign_count,"
                " label, created_at) VALUES ('planted', :h, :c, :k, 'localhost', :o, 0, 'primary',"
                " '2026-01-01T00:00:00Z')"
            ),
            {"h": _holder_of(world, holder), "c": b64url(intruder.credential_id), "k": intruder.cose_key, "o": ORIGIN},
        )
    named = [p.problem for p in consent_row_problems(world.workspace)]
    assert any("passkey row planted (primary) has no registration on the ledger" in d for d in named), named
    assert any("differs from its registration" in d for d in named), named
