"""The portal over HTTP with the software authenticator: invite → passkey → request → sign →
see the grant → revoke; the agency's invitation and request API; the holder as a principal of
its own (no service role reaches the portal, no holder session reaches the agency's pages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from likeness.service.roles import Role
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.service.conftest import build_service_world

LAST_DAY = (datetime.now(UTC) + timedelta(days=200)).date()


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _invite(world, holder="haneul-holder", subject="haneul", kind="artist") -> str:
    client = world.token_client(Role.ADMIN, base_url=ORIGIN)
    response = client.post(
        "/api/v1/portal/invitations",
        json={"holder": holder, "holder_name": "Kim Haneul", "holder_kind": kind, "subject": subject},
    )
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert url.startswith(f"{ORIGIN}/portal/invite/")
    return url.rsplit("/", 1)[1]


def _register(client: TestClient, token: str, authenticator: SoftAuthenticator) -> None:
    options = client.post("/portal/api/register/options", json={"token": token}).json()
    challenge = _challenge(options["publicKey"]["challenge"])
    assert options["publicKey"]["authenticatorSelection"]["userVerification"] == "required"
    response = client.post(
        "/portal/api/register",
        json={"ceremony_id": options["ceremony_id"], "token": token, "credential": authenticator.register(challenge)},
    )
    assert response.status_code == 200, response.text


def _challenge(text: str) -> bytes:
    from likeness.consent.passkeys import unb64url

    return unb64url(text)


def _csrf(world, client: TestClient) -> str:
    from likeness.service.portal import portal_of

    class _Request:  # portal_of needs only request.app
        app = world.app

    return portal_of(_Request()).session_for(client.cookies.get("likeness_holder")).csrf_token


def _ceremony(client, csrf, base, authenticator, body=None, **sign):
    options = client.post(f"{base}/options", json=body or {}, headers={"x-csrf-token": csrf})
    assert options.status_code == 200, options.text
    started = options.json()
    assertion = authenticator.sign(_challenge(started["publicKey"]["challenge"]), **sign)
    return client.post(
        base,
        json={"ceremony_id": started["ceremony_id"], "credential": authenticator.response(assertion)},
        headers={"x-csrf-token": csrf},
    )


def _request(world, uses=("music_video", "training")) -> str:
    client = world.token_client(Role.LEGAL, base_url=ORIGIN)
    response = client.post(
        "/api/v1/portal/requests",
        json={
            "subject": "haneul",
            "uses": list(uses),
            "valid_until": LAST_DAY.isoformat(),
            "max_renders": 20,
            "purpose": "Spring comeback music video",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["request_id"]


def test_the_whole_flow_over_http(world) -> None:
    token = _invite(world)
    holder = TestClient(world.app, base_url=ORIGIN)
    page = holder.get(f"/portal/invite/{token}")
    assert page.status_code == 200 and "data-passkey-register" in page.text and "Studio Haneul" in page.text
    authenticator = SoftAuthenticator()
    _register(holder, token, authenticator)
    assert "Signed in as Kim Haneul" in holder.get("/portal").text
    csrf = _csrf(world, holder)

    request_id = _request(world)
    home = holder.get("/portal").text
    words = f"{LAST_DAY.day} {LAST_DAY.strftime('%B')} {LAST_DAY.year}"
    assert f"Studio Haneul asks to use your face in music videos until {words}, at most 20 videos." in home
    reading = holder.get(f"/portal/requests/{request_id}").text
    assert "They may not use it for virtual stage performances, fan messages, advertising and tributes." in reading
    assert "Every video will carry a visible AI label." in reading
    assert "sexual content" in reading  # the prohibited uses, always shown

    signed = _ceremony(holder, csrf, f"/portal/api/requests/{request_id}/sign", authenticator)
    assert signed.status_code == 200, signed.text
    grant_id = signed.json()["grant_id"]
    authz = world.workspace.policy.authorize("haneul", "music_video", "studio")
    assert authz.grant_id == grant_id
    # The passkey signed the names the page showed, as the ledger names the parties.
    issued = world.workspace.ledger.find("grant.issued", grant_id=grant_id)[0].payload
    assert issued["type"] == "likeness.grant.v2" and issued["org_name"] == "Studio Haneul"
    assert (issued["subject_slug"], issued["holder_name"]) == ("haneul", "Kim Haneul")
    grant_page = holder.get(f"/portal/grants/{grant_id}").text
    assert 'data-grant-state="active"' in grant_page and "authorization.issued" in grant_page

    export = holder.get("/portal/audit.json")
    assert export.status_code == 200
    from likeness.consent.holder_portal import verify_export

    assert verify_export(json.loads(export.text))

    revoked = _ceremony(holder, csrf, f"/portal/api/grants/{grant_id}/revoke", authenticator, {"reason": "no more"})
    assert revoked.status_code == 200, revoked.text
    assert 'data-grant-state="revoked"' in holder.get(f"/portal/grants/{grant_id}").text
    from likeness.consent import require_authorization
    from likeness.errors import ConsentError

    with pytest.raises(ConsentError) as caught:
        require_authorization(authz, step="render")
    assert caught.value.reason == "revoked"


def test_an_invitation_is_used_once_and_the_page_says_why(world) -> None:
    token = _invite(world)
    holder = TestClient(world.app, base_url=ORIGIN)
    _register(holder, token, SoftAuthenticator())
    again = TestClient(world.app, base_url=ORIGIN)
    page = again.get(f"/portal/invite/{token}")
    assert 'data-refused="invitation_used"' in page.text
    options = again.post("/portal/api/register/options", json={"token": token})
    assert options.status_code == 403 and options.json()["reason"] == "invitation_used"
    assert 'data-refused="invitation_unknown"' in again.get("/portal/invite/nope").text


def test_a_prohibited_use_cannot_even_be_asked(world) -> None:
    _invite(world)
    client = world.token_client(Role.LEGAL, base_url=ORIGIN)
    response = client.post(
        "/api/v1/portal/requests", json={"subject": "haneul", "uses": ["music_video", "nsfw"], "valid_until": "+30d"}
    )
    assert response.status_code == 403 and response.json()["reason"] == "prohibited_use"
    # the console's form says so in the reader's language, by the refusal's reason
    for lang, sentence in (
        ("en", "That use can never be granted, whoever consents to it."),
        ("ko", "이 용도는 누가 동의하더라도 허락될 수 없습니다."),
    ):
        console = world.client(base_url=ORIGIN, cookies={"likeness_lang": lang})
        csrf = world.login(console, "legal")
        fields = {"subject": "haneul", "uses": ["music_video", "nsfw"], "valid_until": "2099-01-30", "csrf_token": csrf}
        page = console.post("/consent/holders/request", data=fields, headers={"accept": "text/html"})
        assert page.status_code == 403 and f"<p data-problem-sentence>{sentence}</p>" in page.text, page.text[:600]


def test_a_purpose_that_reads_otherwise_than_signed_is_a_400(world) -> None:
    """Trial 11: the portal shows the purpose as written; a right-to-left override in it made the
    holder read another sentence than the one signed."""
    _invite(world)
    client = world.token_client(Role.LEGAL, base_url=ORIGIN)
    before = world.workspace.ledger.count()
    response = client.post(
        "/api/v1/portal/requests",
        json={"subject": "haneul", "uses": ["music_video"], "valid_until": "+30d", "purpose": "MV \u202edegnahc"},
    )
    assert response.status_code == 400 and "U+202E" in response.json()["detail"], response.text
    assert world.workspace.ledger.count() == before


def test_signing_on_the_wrong_origin_is_refused(world) -> None:
    token = _invite(world)
    holder = TestClient(world.app, base_url=ORIGIN)
    authenticator = SoftAuthenticator()
    _register(holder, token, authenticator)
    request_id = _request(world)
    response = _ceremony(
        holder,
        _csrf(world, holder),
        f"/portal/api/requests/{request_id}/sign",
        authenticator,
        origin="https://phish.example",
    )
    assert response.status_code == 403 and response.json()["reason"] == "wrong_origin"


def test_the_holder_is_a_principal_of_its_own(world) -> None:
    token = _invite(world)
    holder = TestClient(world.app, base_url=ORIGIN)
    _register(holder, token, SoftAuthenticator())
    # a holder session is no service session
    assert holder.get("/api/v1/jobs").status_code == 401
    # a service user's token is no holder session
    staff = world.token_client(Role.ADMIN, base_url=ORIGIN)
    assert staff.get("/portal/audit.json", follow_redirects=False).status_code in (401, 303)
    # the holder API refuses a request without the session's CSRF token
    assert holder.post("/portal/api/passkeys/options", json={}).status_code == 403
    # studio and viewer may not ask for consent
    for role in (Role.STUDIO, Role.VIEWER):
        client = world.token_client(role, base_url=ORIGIN)
        assert client.post("/api/v1/portal/invitations", json={"holder": "x-holder"}).status_code == 403


def test_sign_in_with_a_passkey_and_add_a_recovery_passkey(world) -> None:
    token = _invite(world)
    first = TestClient(world.app, base_url=ORIGIN)
    authenticator = SoftAuthenticator()
    _register(first, token, authenticator)
    csrf = _csrf(world, first)
    # a second passkey, added while signed in
    recovery = SoftAuthenticator()
    options = first.post("/portal/api/passkeys/options", json={}, headers={"x-csrf-token": csrf}).json()
    excluded = [c["id"] for c in options["publicKey"]["excludeCredentials"]]
    assert excluded == [authenticator.response(authenticator.sign(b"x", count=0))["id"]]
    vouching = first.post(
        "/portal/api/passkeys",
        json={
            "ceremony_id": options["ceremony_id"],
            "credential": recovery.register(_challenge(options["publicKey"]["challenge"])),
        },
        headers={"x-csrf-token": csrf},
    )
    assert vouching.status_code == 200, vouching.text
    signing = vouching.json()  # the current passkey signs the new one's registration
    vouch = authenticator.sign(_challenge(signing["publicKey"]["challenge"]))
    added = first.post(
        "/portal/api/passkeys/confirm",
        json={"ceremony_id": signing["ceremony_id"], "credential": authenticator.response(vouch)},
        headers={"x-csrf-token": csrf},
    )
    assert added.status_code == 200, added.text
    # a new browser signs in with the recovery passkey (discoverable: no user name)
    second = TestClient(world.app, base_url=ORIGIN)
    started = second.post("/portal/api/signin/options", json={}).json()
    assert started["publicKey"]["allowCredentials"] == [] and started["publicKey"]["userVerification"] == "required"
    assertion = recovery.sign(_challenge(started["publicKey"]["challenge"]))
    signed_in = second.post(
        "/portal/api/signin", json={"ceremony_id": started["ceremony_id"], "credential": recovery.response(assertion)}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert "Signed in as Kim Haneul" in second.get("/portal").text
    # the same sign-in ceremony cannot be used twice, and a replayed counter is refused
    again = second.post(
        "/portal/api/signin", json={"ceremony_id": started["ceremony_id"], "credential": recovery.response(assertion)}
    )
    assert again.status_code == 404 and "already used" in again.json()["detail"]
    fresh = second.post("/portal/api/signin/options", json={}).json()
    stale = recovery.sign(_challenge(fresh["publicKey"]["challenge"]), count=assertion.sign_count())
    replayed = second.post(
        "/portal/api/signin", json={"ceremony_id": fresh["ceremony_id"], "credential": recovery.response(stale)}
    )
    assert replayed.status_code == 403 and replayed.json()["reason"] == "counter_regressed"


def test_the_agency_invites_from_the_console_page(world) -> None:
    client = world.client(base_url=ORIGIN)
    csrf = world.login(client, "admin")
    page = client.get("/consent/holders")
    assert page.status_code == 200 and "Invite a rights holder" in page.text
    made = client.post(
        "/consent/holders/invite",
        data={
            "holder": "idol-holder",
            "holder_name": "Studio Haneul (owner)",
            "holder_kind": "agency",
            "subject": "nova",
            "subject_name": "NOVA",
            "csrf_token": csrf,
        },
    )
    assert made.status_code == 200 and "data-invitation-url" in made.text
    assert f"{ORIGIN}/portal/invite/" in made.text
    subject = world.workspace.registry.get_subject("nova")
    assert subject.kind == "virtual_idol"  # an agency holds a virtual idol it owns
    forged = client.post("/consent/holders/invite", data={"holder": "x-holder", "csrf_token": "wrong"})
    assert forged.status_code == 403


def test_a_preview_still_that_is_a_pixel_bomb_or_over_the_image_limit_is_refused_naming_it(settings, workspace):
    """A 388 kB PNG whose header says 20000x20000 was a 500 "an unexpected error" on the console's
    request form (Pillow's ``DecompressionBombError``, not caught), and a preview of any size was
    read whole into memory (ten 2 GB files: 20 GB). Previews are now read like every other image
    upload: at most ``upload_max_image_bytes`` each (413) and ``DEFAULT_MAX_PIXELS`` (415), named;
    nothing is drafted. A 40 MB still is shrunk to 1280 px for the holder's phone, as before."""
    import io

    import numpy as np
    from PIL import Image

    world = build_service_world(settings.model_copy(update={"upload_max_image_bytes": 1_000_000}), workspace)
    _invite(world)
    client = world.client(base_url=ORIGIN)
    csrf = world.login(client, "legal")
    asked_before = len(world.workspace.ledger.find("grant.requested"))

    def ask(name: str, still: bytes):
        fields = {"subject": "haneul", "uses": ["music_video"], "valid_until": "2099-01-30", "purpose": "MV"}
        return client.post(
            "/consent/holders/request",
            data={**fields, "csrf_token": csrf},
            files=[("previews", (name, still, "image/png"))],
            headers={"accept": "application/json"},
        )

    bomb = io.BytesIO()
    Image.new("L", (20000, 20000)).save(bomb, "PNG")
    refused = ask("bomb.png", bomb.getvalue())
    assert refused.status_code == 415, refused.text
    assert "bomb.png" in refused.json()["detail"] and "too large" in refused.json()["detail"]
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(noise, "PNG")
    assert len(noise.getvalue()) > 1_000_000
    refused = ask("noise.png", noise.getvalue())
    assert refused.status_code == 413, refused.text
    assert "noise.png" in refused.json()["detail"]
    # a PNG whose text chunk inflates to 20 MB is an image with too much metadata, not a corrupt one
    from tests.media.test_media_images import _with_inflating_chunk

    refused = ask("poster.png", _with_inflating_chunk(b"zTXt"))
    assert refused.status_code == 415, refused.text
    detail = refused.json()["detail"]
    assert "poster.png" in detail and "metadata too large" in detail and "corrupt" not in detail
    assert len(world.workspace.ledger.find("grant.requested")) == asked_before
    still = io.BytesIO()
    Image.new("RGB", (2000, 1000), (200, 120, 80)).save(still, "JPEG")
    assert ask("still.jpg", still.getvalue()).status_code == 200
    requested = world.workspace.ledger.find("grant.requested")[asked_before:]
    assert len(requested) == 1 and len(requested[0].payload["preview_sha256"]) == 1
