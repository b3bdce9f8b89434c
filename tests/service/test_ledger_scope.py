"""The ledger routes and page in a workspace of two organisations: a reader sees their own
organisation's events whole and another organisation's only as redacted rows (sequence, type,
time, hashes); workspace-wide events stay visible; a single-organisation workspace is as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from likeness.consent.canonical import now_utc
from likeness.consent.ledger import LedgerEvent
from likeness.service.job_kinds import uploads_root
from likeness.service.ledger_scope import event_organisation, event_references
from likeness.service.roles import Role
from tests.conftest import add_subject
from tests.service.conftest import PASSWORD

#: What only the other organisation's events carry: its user, its artist, the sign-in address.
RIVAL_SECRETS = ("rival-viewer", "Sora Byeol", "sora-holder", "Rival Entertainment", "쇼츠")


@pytest.fixture
def two_orgs(service_world):
    """``studio`` (the service world's users; mina, jun) and ``rival`` (its viewer, its artist
    sora and a grant request for her), each with a sign-in and a grant request."""
    registry = service_world.workspace.registry
    until = now_utc() + timedelta(days=30)
    registry.add_org("rival", "Rival Entertainment")
    add_subject(registry, "sora", "Sora Byeol", kind="virtual_idol", owner_org="rival")
    registry.draft_grant("sora", "rival", ["training"], valid_until=until, purpose="rival's request")
    registry.draft_grant("mina", "studio", ["training"], valid_until=until, purpose="studio's request")
    service_world.accounts.add_user("rival-viewer", PASSWORD, Role.VIEWER, org="rival")
    service_world.login(service_world.client(), "rival-viewer")
    service_world.login(service_world.client(), "viewer")
    # a verification the rival's job ran on its upload (a Korean name: escaped in the job's JSON)
    rival = registry.get_org("rival").id
    service_world.app.state.services.queue.enqueue(
        "verify", {"upload": "0f1e/쇼츠.png", "name": "쇼츠.png"}, org_id=rival
    )
    uploads = uploads_root(service_world.workspace)
    service_world.workspace.ledger.append(
        "verification.completed",
        {"path": str(uploads / "0f1e" / "쇼츠.png"), "name": "쇼츠.png", "verdict": "authentic"},
    )
    return service_world


def _org_id(world, slug: str) -> str:
    return world.workspace.registry.get_org(slug).id


def _ledger(client, **params) -> list[dict]:
    response = client.get("/api/v1/ledger", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def _whole(events, event_type, **members) -> dict:
    found = [
        e
        for e in events
        if e["event_type"] == event_type and e["payload"] and all(e["payload"].get(k) == v for k, v in members.items())
    ]
    assert len(found) == 1, (event_type, members, found)
    assert found[0]["other_organisation"] is False
    return found[0]


def test_each_event_the_two_organisations_append_belongs_to_one_of_them(two_orgs):
    """The one function decides every event of the world: studio's, rival's, or the workspace's."""
    from sqlalchemy.orm import Session

    from likeness.service.ledger_scope import page_owners

    events = two_orgs.workspace.ledger.page(limit=500)
    with Session(two_orgs.workspace.engine) as session:
        owners = page_owners(session, events)
    studio, rival = _org_id(two_orgs, "studio"), _org_id(two_orgs, "rival")
    owner_by_type: dict[tuple[str, str], set[str | None]] = {}
    for event in events:
        label = str(event.payload.get("slug") or event.payload.get("username") or event.payload.get("subject_id"))
        owner_by_type.setdefault((event.event_type, label), set()).add(event_organisation(event.payload, owners))
    rival_subject = two_orgs.workspace.registry.get_subject("sora").id
    assert owner_by_type[("org.created", "rival")] == {rival}
    assert owner_by_type[("org.created", "studio")] == {studio}
    assert owner_by_type[("subject.created", "sora")] == {rival}
    assert owner_by_type[("holder.created", "sora-holder")] == {rival}
    assert owner_by_type[("holder.created", "mina-holder")] == {studio}
    assert owner_by_type[("grant.requested", rival_subject)] == {rival}
    assert owner_by_type[("service.user_added", "rival-viewer")] == {rival}
    assert owner_by_type[("service.login", "rival-viewer")] == {rival}
    assert owner_by_type[("service.login", "viewer")] == {studio}
    assert owner_by_type[("service.token_created", "viewer")] == {studio}
    assert owner_by_type[("verification.completed", "None")] == {rival}
    # jun is a performer no organisation owns: his only release is studio's
    assert owner_by_type[("subject.created", "jun")] == {studio}
    assert all(None not in owner for owner in owner_by_type.values()), owner_by_type


@pytest.mark.parametrize(
    ("payload", "owners", "expected"),
    [
        ({"org_id": "A", "user_id": "u"}, {("user", "u"): "B"}, "A"),  # named directly: that decides
        ({"org_id": None, "holder_id": "h"}, {("holder", "h"): "B"}, "B"),  # a recovery passkey
        ({"username": "ghost", "client": "10.0.0.9"}, {}, None),  # a failed sign-in under no user's name
        ({"subject": "sora", "org": "rival"}, {("org_slug", "rival"): "B"}, "B"),  # a refused draft
        ({"case_id": "j"}, {("job", "j"): "A"}, "A"),
        ({"grant_id": "g", "payload": {"org_id": "B"}}, {}, "B"),  # an older request's nested terms
        ({"path": "/srv/service/uploads/f1/clip.png"}, {("upload", "f1/clip.png"): "A"}, "A"),
        ({"path": "/home/me/clip.png"}, {}, None),  # a command-line verification
        ({"anchor": "head", "seq": 9}, {}, None),
        # the rest of what the product appends, by the member that decides it
        ({"token_id": "t", "username": "ana", "by": "admin"}, {("username", "ana"): "A"}, "A"),  # token_revoked
        ({"request_id": "r", "holder_id": "h", "reason": "no"}, {("grant", "r"): "B"}, "B"),  # grant.declined
        ({"grant_id": "g", "revoked_at": "t"}, {("grant", "g"): "A"}, "A"),  # grant.revoked
        ({"release_id": "r", "revoked_at": "t"}, {("release", "r"): "B"}, "B"),  # release.revoked
        ({"authorization_id": "z", "kind": "grant", "reason": "expired"}, {("authorization", "z"): "A"}, "A"),
        ({"holder_id": "h", "previous_fingerprint": "f"}, {("holder", "h"): "B"}, "B"),  # key rotated/exported
        ({"subject_id": "s", "subject_slug": "sora", "model": "m"}, {("subject", "s"): "B"}, "B"),  # detector.*
        ({"subject_id": "s", "source_sha256": "d"}, {("subject", "s"): None}, None),  # a shared subject
        # case.marked: the case decides, not the member of staff who marked it (`by`)
        ({"case_id": "c", "state": "closed", "by": "legal"}, {("job", "c"): "A", ("username", "legal"): "B"}, "A"),
    ],
)
def test_event_organisation_follows_what_a_payload_names(payload, owners, expected):
    assert event_organisation(payload, owners) == expected


def test_references_are_only_strings():
    assert event_references({"user_id": None, "job_id": 3, "grant_id": ""}) == []


def test_a_viewer_reads_their_organisations_events_whole_and_the_others_redacted(two_orgs):
    client = two_orgs.token_client(Role.VIEWER)
    response = client.get("/api/v1/ledger", params={"limit": 500})
    events = response.json()["events"]
    for secret in RIVAL_SECRETS:
        assert secret not in response.text
    _whole(events, "grant.requested", org_id=_org_id(two_orgs, "studio"), purpose="studio's request")
    assert _whole(events, "service.login", username="viewer")["payload"]["client"] == "testclient"
    _whole(events, "subject.created", slug="mina")
    redacted = [e for e in events if e["other_organisation"]]
    assert {e["event_type"] for e in redacted} >= {
        "org.created",
        "holder.created",
        "subject.created",
        "grant.requested",
        "service.user_added",
        "service.login",
        "verification.completed",
    }
    assert all(e["payload"] is None for e in redacted)
    # the chain can still be followed across them
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(events, events[1:], strict=False))
    assert client.get("/api/v1/ledger/verify").json()["ok"] is True


def test_the_other_organisations_viewer_sees_the_mirror_image(two_orgs):
    client = two_orgs.client()
    two_orgs.login(client, "rival-viewer")
    events = _ledger(client)
    own_logins = [e for e in events if e["event_type"] == "service.login" and not e["other_organisation"]]
    assert [e["payload"]["username"] for e in own_logins] == ["rival-viewer", "rival-viewer"]
    assert _whole(events, "subject.created", slug="sora")["payload"]["name"] == "Sora Byeol"
    studio_logins = [e for e in events if e["event_type"] == "service.login" and e["other_organisation"]]
    assert studio_logins and all(e["payload"] is None for e in studio_logins)
    assert not any(e["payload"] and e["payload"].get("username") == "viewer" for e in events)


def test_the_event_type_filter_and_paging_keep_the_redaction(two_orgs):
    client = two_orgs.token_client(Role.VIEWER)
    logins = _ledger(client, event_type="service.login")
    assert {e["event_type"] for e in logins} == {"service.login"}
    assert [e["other_organisation"] for e in logins] == [True, False]  # the rival's sign-in, then studio's
    paged, after = [], 0
    while after is not None:
        page = client.get("/api/v1/ledger", params={"after": after, "limit": 3}).json()
        paged.extend(page["events"])
        after = page["next_after"]
    assert paged == _ledger(client)


def test_the_console_ledger_page_greys_the_other_organisations_events(two_orgs):
    client = two_orgs.client()
    two_orgs.login(client, "viewer")
    page = client.get("/ledger")
    assert page.status_code == 200
    assert "another organisation&#39;s event" in page.text
    assert page.text.count("data-other-organisation") >= 6
    for secret in RIVAL_SECRETS:
        assert secret not in page.text
    assert "<b>slug</b> mina" in page.text


def test_a_single_organisation_workspace_shows_every_event_whole(service_world):
    service_world.login(service_world.client(), "legal")
    client = service_world.token_client(Role.VIEWER)
    events = _ledger(client)
    expected = [
        {**e.as_dict(), "other_organisation": False, "unreadable": None}
        for e in service_world.workspace.ledger.page(limit=500)
    ]
    assert events == expected
    console = service_world.client()
    service_world.login(console, "viewer")
    page = console.get("/ledger").text
    assert "data-other-organisation" not in page and "<b>username</b> legal" in page


def test_a_page_of_verifications_of_many_uploads_reads_the_jobs_once(two_orgs):
    """Each verification of a service upload was decided by a scan of the jobs table of its own
    (a LIKE on its folder): a page of 500 of them was 500 scans, 2.2 s with 20,000 jobs (0.06 s
    in one pass), for any viewer to ask again and again. The owners stay per upload: a job of
    another organisation whose parameters only mention the folder decides nothing."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from likeness.service.ledger_scope import page_owners

    world = two_orgs
    queue, uploads = world.app.state.services.queue, uploads_root(world.workspace)
    studio, rival = _org_id(world, "studio"), _org_id(world, "rival")
    folders = [f"{k:04x}" for k in range(1, 8)]
    for k, folder in enumerate(folders):
        queue.enqueue("verify", {"upload": f"{folder}/clip.mp4", "name": "clip.mp4"}, org_id=(studio, rival)[k % 2])
    queue.enqueue(
        "verify", {"upload": "ffff/other.mp4", "name": "other.mp4", "note": f"{folders[0]}/clip.mp4"}, org_id=rival
    )
    world.workspace.ledger.append_many(
        [("verification.completed", {"path": str(uploads / f / "clip.mp4"), "verdict": "authentic"}) for f in folders]
    )
    events = world.workspace.ledger.page(after=world.workspace.ledger.head()[0] - len(folders), limit=500)

    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(world.workspace.engine, "before_cursor_execute", seen)
    try:
        with Session(world.workspace.engine) as session:
            owners = page_owners(session, events)
    finally:
        event.remove(world.workspace.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "FROM jobs" in s]) == 1
    assert [owners[("upload", f"{f}/clip.mp4")] for f in folders] == [
        (studio, rival)[k % 2] for k in range(len(folders))
    ]


@pytest.mark.parametrize("payload", ["[1, 2]", '{"grant_id": "a", "grant_id": "b"}'])
def test_a_row_whose_payload_cannot_be_read_is_shown_in_its_place_not_a_refused_page(two_orgs, payload):
    """A database editor appends one row whose payload is JSON but not an object (or names a
    member twice) with a chain that holds: every ledger page holding it, the console's first
    page included, was a 400 "Refused", so the row and every row after it could not be looked
    at where people look for them. The row now shows where it is and why; the rest as before."""
    from sqlalchemy import text

    from likeness.consent.ledger import event_hash

    world = two_orgs
    world.login(client := world.client(), "viewer")
    ledger = world.workspace.ledger
    seq, when, event_id = ledger.count() + 1, "2026-01-01T00:00:00Z", "f" * 32
    row = {"s": seq, "e": event_id, "w": when, "j": payload, "p": ledger.hash_at(seq - 1)}
    row["h"] = event_hash(
        seq=seq,
        event_id=event_id,
        event_type="grant.revoked",
        created_at=when,
        payload_json=payload,
        prev_hash=row["p"],
    )
    with world.workspace.engine.begin() as connection:
        connection.execute(text("INSERT INTO ledger VALUES (:s, :e, 'grant.revoked', :w, :j, :p, :h)"), row)
    world.workspace.ledger.append("service.user_added", {"username": "after-it", "user_id": "u-after"})

    events = _ledger(client, after=seq - 1)
    assert [e["seq"] for e in events] == [seq, seq + 1]
    unreadable = events[0]
    assert unreadable["payload"] is None and unreadable["hash"] == row["h"] and unreadable["prev_hash"] == row["p"]
    assert unreadable["unreadable"].startswith("its payload cannot be read (")
    assert events[1]["payload"]["username"] == "after-it" and events[1]["unreadable"] is None
    page = client.get("/ledger")
    assert page.status_code == 200
    assert "data-unreadable" in page.text and "its payload cannot be read" in page.text


def test_the_signed_head_carries_no_payload(two_orgs):
    head = two_orgs.token_client(Role.VIEWER).get("/api/v1/ledger/head").json()
    assert set(head) == {"type", "org_id", "org", "seq", "hash", "at", "key_fingerprint", "public_key", "signature"}
    assert head["org"] == "studio"


def test_redacted_rows_keep_what_the_chain_needs():
    from likeness.service.ledger_scope import redacted

    event = LedgerEvent(3, "e3", "service.login", "2026-01-01T00:00:00Z", {"client": "10.0.0.9"}, "a" * 64, "b" * 64)
    row = redacted(event)
    assert row == {
        "seq": 3,
        "event_id": "e3",
        "event_type": "service.login",
        "created_at": "2026-01-01T00:00:00Z",
        "payload": None,
        "other_organisation": True,
        "unreadable": None,
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
    }


def _fail_sign_in(world, username: str, client: str) -> None:
    from likeness.service.accounts import LoginFailed

    with pytest.raises(LoginFailed):
        world.accounts.authenticate(username, "not the password", client=client)


def test_a_failed_sign_in_under_no_users_name_is_redacted_for_every_organisation(two_orgs):
    """A failed sign-in under a name no user has names no organisation, so every organisation's
    readers were shown it whole, with the address it came from (perhaps the other organisation's
    staff mistyping their own name). No service user administers a workspace of several
    organisations: every reader gets the redacted row (``likeness audit log`` reads it)."""
    _fail_sign_in(two_orgs, "rival-vewer", "203.0.113.7")
    _fail_sign_in(two_orgs, "viewer", "198.51.100.4")  # a studio user's name: studio's event
    rival = two_orgs.client()
    two_orgs.login(rival, "rival-viewer")
    for client in (two_orgs.token_client(Role.VIEWER), two_orgs.token_client(Role.ADMIN), rival):
        response = client.get("/api/v1/ledger", params={"limit": 500, "event_type": "service.login_failed"})
        assert "rival-vewer" not in response.text and "203.0.113.7" not in response.text
        ghost, studios = response.json()["events"]
        assert ghost["payload"] is None and ghost["other_organisation"] is True
        assert (studios["payload"] is not None) == (client is not rival)
    page = two_orgs.client()
    two_orgs.login(page, "admin")
    text = page.get("/ledger").text
    assert "rival-vewer" not in text and "failed sign-in, not under a user of your organisation" in text


def test_a_failed_sign_in_under_no_users_name_is_read_whole_only_by_the_workspace_admin(service_world):
    _fail_sign_in(service_world, "ghost", "203.0.113.7")
    viewer = service_world.token_client(Role.VIEWER)
    (event,) = _ledger(viewer, event_type="service.login_failed")
    assert event["payload"] is None and event["other_organisation"] is True
    admin = service_world.token_client(Role.ADMIN)
    (event,) = _ledger(admin, event_type="service.login_failed")
    assert event["payload"]["username"] == "ghost" and event["payload"]["client"] == "203.0.113.7"
    console = service_world.client()
    service_world.login(console, "admin")
    assert "<b>username</b> ghost" in console.get("/ledger").text
    service_world.login(console, "studio")
    assert "ghost" not in console.get("/ledger").text
