"""Report a file from the public page → a case in the console → triage → evidence zip; the
life cycle on the ledger, the reporter's words kept off it."""

from __future__ import annotations

import os
import re
import stat
from datetime import timedelta

import pytest

from likeness.consent.canonical import now_utc
from likeness.media import write_image
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.service.cases import cases_folder, concerned_orgs
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.conftest import add_subject, issue_grant, revoke_grant

from .conftest import PASSWORD
from .public_media import enroll_mina

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
CONTACT, NOTE = "fan@example.org", "Seen on a fan account, <b>looks fake</b>"


def report(client, path, **fields):
    return client.post(
        "/api/v1/public/reports", data=fields, files={"file": (path.name, path.read_bytes(), "image/jpeg")}
    )


def test_report_opens_a_case_that_legal_triages_and_exports(service_world, tmp_path):
    enroll_mina(service_world.consent)
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    opened = report(service_world.client(), photo, contact=CONTACT, note=NOTE)
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    ledger = service_world.workspace.ledger
    [event] = ledger.find("case.opened", case_id=case_id)
    assert event.payload["has_contact"] and event.payload["has_note"]
    assert CONTACT not in str(event.payload) and "looks fake" not in str(event.payload)  # personal data stays off
    kept = cases_folder(service_world.workspace) / f"{case_id}.json"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600

    done = Worker(service_world.workspace).run_one()
    assert done.id == case_id and done.state == "succeeded", done.error
    assert done.result["verification"]["verdict"] == "enrolled-artist-unlabelled"

    legal = service_world.client()
    csrf = service_world.login(legal, "legal")
    listing = legal.get("/cases")
    assert listing.status_code == 200 and "fake.jpg" in listing.text
    page = legal.get(f"/cases/{case_id}")
    assert CONTACT in page.text and "&lt;b&gt;looks fake&lt;/b&gt;" in page.text  # escaped, not markup
    marked = legal.post(
        f"/cases/{case_id}/mark",
        data={"state": "takedown-requested", "comment": "sent to the platform", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert marked.status_code == 303
    assert re.search(r"data-case-state>\s*takedown-requested", legal.get(f"/cases/{case_id}").text)
    assert legal.post(f"/cases/{case_id}/mark", data={"state": "deleted", "csrf_token": csrf}).status_code == 400
    assert legal.post(f"/cases/{case_id}/mark", data={"state": "triaged"}).status_code == 403  # no CSRF token
    exported = legal.get(f"/cases/{case_id}/evidence.zip")
    assert exported.status_code == 200 and exported.content[:2] == b"PK"
    types = [e.event_type for e in ledger.events() if e.payload.get("case_id") == case_id]
    assert types == ["case.opened", "case.marked", "case.evidence_exported"]
    assert ledger.verify().ok


def test_only_legal_sees_a_case_and_the_reporters_contact(service_world, tmp_path):
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    case_id = report(service_world.client(), photo, contact=CONTACT).json()["case_id"]
    viewer = service_world.token_client(Role.VIEWER)
    assert viewer.get(f"/cases/{case_id}").status_code == 403
    assert viewer.get("/cases").status_code == 403
    assert CONTACT not in viewer.get(f"/api/v1/jobs/{case_id}").text  # the job carries no contact
    # another organisation's legal team does not see it
    service_world.workspace.registry.add_org("rival", "Rival")
    rival = service_world.accounts.add_user("rival-legal", PASSWORD, Role.LEGAL, org="rival")
    secret, _ = service_world.accounts.create_token(rival, "rival")
    other = service_world.client(headers={"Authorization": f"Bearer {secret}"})
    assert other.get(f"/cases/{case_id}").status_code == 404
    assert "fake.jpg" not in other.get("/cases").text


def test_a_report_goes_to_the_organisation_the_file_concerns_and_the_reporter_is_not_told(service_world, tmp_path):
    """mina (a virtual idol of studio) appears unlabelled; the default organisation is another
    one, which gets a stranger's report but not mina's."""
    enroll_mina(service_world.consent)
    registry = service_world.workspace.registry
    registry.add_org("rival", "Rival Entertainment")
    service_world.workspace.settings.org = "rival"
    mina = write_image(tmp_path / "mina.jpg", astronaut(), quality=90)
    stranger = write_image(tmp_path / "stranger.jpg", grace_hopper(), quality=90)
    public = service_world.client()
    checked = public.post("/api/v1/public/verify", files={"file": (mina.name, mina.read_bytes(), "image/jpeg")})
    assert checked.json()["verdict"] == "enrolled-artist-unlabelled"  # the card names no organisation
    opened = report(public, mina, note="fake")
    assert opened.status_code == 201
    assert set(opened.json()) == {"case_id", "state"}
    for word in ("studio", "rival", "Haneul", "Rival"):
        assert word not in opened.text
    stray = report(public, stranger).json()["case_id"]  # concerns nobody: the default organisation

    cases = {e.payload["case_id"]: e.payload["org_id"] for e in service_world.workspace.ledger.find("case.opened")}
    assert cases[opened.json()["case_id"]] == registry.get_org("studio").id
    assert cases[stray] == registry.get_org("rival").id
    studio_legal = service_world.token_client(Role.LEGAL)
    listing = studio_legal.get("/cases").text
    assert "mina.jpg" in listing and "stranger.jpg" not in listing
    rival = service_world.accounts.add_user("rival-legal", PASSWORD, Role.LEGAL, org="rival")
    secret, _ = service_world.accounts.create_token(rival, "rival")
    rival_legal = service_world.client(headers={"Authorization": f"Bearer {secret}"})
    listing = rival_legal.get("/cases").text
    assert "stranger.jpg" in listing and "mina.jpg" not in listing


def test_concerned_organisations_from_what_the_verifier_found(service_world):
    """The grant's organisation first; else a virtual idol's owner, or every organisation with an
    active grant for an artist (a revoked grant's organisation is not told); unknown ones skipped."""
    registry = service_world.workspace.registry
    registry.add_org("rival", "Rival Entertainment")
    registry.add_org("third", "Third Label")
    add_subject(registry, "hana", "Hana", kind="artist", org="studio")
    for org in ("studio", "rival"):
        issue_grant(registry, "hana", org, ["fan_message"], valid_until=now_utc() + timedelta(days=5))
    revoke_grant(
        registry, issue_grant(registry, "hana", "third", ["fan_message"], valid_until=now_utc() + timedelta(days=5))
    )

    def slugs(verification):
        return [org.slug for org in concerned_orgs(service_world.workspace, verification)]

    def face(slug):
        return {"faces": {"faces": [{"match": {"subject_id": registry.get_subject(slug).id}}]}}

    assert slugs({"watermark": {"grant": {"org_slug": "rival", "state": "revoked"}}, **face("mina")}) == ["rival"]
    assert slugs({"c2pa": {"consent": {"org_slug": "nobody", "state": "active"}}, **face("mina")}) == ["studio"]
    # a manifest naming a grant this registry does not know is a claim: the face decides
    assert slugs({"c2pa": {"consent": {"org_slug": "rival", "state": "unknown"}}, **face("mina")}) == ["studio"]
    assert slugs(face("mina")) == ["studio"]
    assert sorted(slugs(face("hana"))) == ["rival", "studio"]
    assert slugs({"faces": {"faces": [{"match": None}]}}) == [] and slugs(None) == []


def test_a_case_stays_on_the_cases_page_after_many_ordinary_verifications(service_world, tmp_path):
    """The trial's cases200: 200 ordinary verify jobs of the organisation pushed every case off
    the page, which read only the newest 200 verify jobs."""
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    case_id = report(service_world.client(), photo).json()["case_id"]
    services = service_world.app.state.services
    org_id = services.queue.get(case_id).org_id
    params = {"upload": "x/y.jpg", "media_type": "image", "container": "jpeg", "size_bytes": 1}
    for i in range(201):
        services.queue.enqueue("verify", {**params, "name": f"v{i}.jpg"}, org_id=org_id)
    legal = service_world.client()
    service_world.login(legal, "legal")
    listing = legal.get("/cases")
    assert listing.status_code == 200 and f"/cases/{case_id}" in listing.text


def _kept_reports(world) -> list:
    from likeness.service.job_kinds import uploads_root

    root = uploads_root(world.workspace)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_same_file_reported_twice_is_one_case_with_both_reports(service_world, tmp_path):
    """The trial's finding 5: the same bytes reported twice were stored twice, opened two cases,
    queued two jobs and put two case.opened on the ledger."""
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    client = service_world.client()
    first = report(client, photo, contact=CONTACT, note=NOTE)
    assert first.status_code == 201, first.text
    again = report(client, photo, contact="second@example.org", note="also seen on another site")
    assert again.status_code == 201, again.text
    case_id = first.json()["case_id"]
    assert again.json()["case_id"] == case_id
    ledger = service_world.workspace.ledger
    assert len(ledger.find("case.opened")) == 1
    [added] = ledger.find("case.reported_again", case_id=case_id)
    assert added.payload == {"case_id": case_id, "has_contact": True, "has_note": True}  # no personal data
    services = service_world.app.state.services
    assert [j.id for j in services.queue.list(kind="verify")] == [case_id]
    assert len(_kept_reports(service_world)) == 1  # the second copy is deleted
    kept = cases_folder(service_world.workspace) / f"{case_id}.json"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    legal = service_world.client()
    service_world.login(legal, "legal")
    page = legal.get(f"/cases/{case_id}").text
    assert CONTACT in page and "second@example.org" in page and "also seen on another site" in page
    assert "case.reported_again" in page


def test_reported_files_stop_at_the_daily_storage_quota(service_world, tmp_path):
    from likeness.service.app import create_app

    first = write_image(tmp_path / "a.jpg", astronaut(), quality=90)
    second = write_image(tmp_path / "b.jpg", grace_hopper(), quality=90)
    quota = first.stat().st_size + second.stat().st_size - 1  # room for the first, not for both
    settings = service_world.settings.model_copy(update={"public_report_bytes_per_day": quota})
    service_world.app = create_app(settings, workspace=service_world.workspace, accounts=service_world.accounts)
    client = service_world.client()
    assert report(client, first).status_code == 201
    kept = _kept_reports(service_world)
    refused = report(client, second)
    assert refused.status_code == 429 and refused.json()["type"].endswith("rate-limited"), refused.text
    assert int(refused.headers["retry-after"]) > 3600
    assert _kept_reports(service_world) == kept  # nothing of the refused file is kept
    assert report(client, first).status_code == 201  # a further report of a kept file still counts


def test_the_daily_report_quota_reads_only_the_last_days_cases(service_world, monkeypatch):
    """Every report asks the quota, and cases only accumulate: it reads the last day's
    ``case.opened`` events as an index range, not the whole history (before: every event ever,
    0.44-0.52 s a request at 20,000 of them, on the event loop)."""
    import likeness.consent.ledger as ledger_module
    from likeness.consent.canonical import utc_iso
    from likeness.service.cases import check_report_quota

    ledger = service_world.workspace.ledger
    two_days_ago = now_utc() - timedelta(days=2)
    with monkeypatch.context() as patched:
        patched.setattr(ledger_module, "now_utc", lambda: two_days_ago)
        for n in range(30):
            ledger.append("case.opened", {"case_id": f"old{n}", "size_bytes": 10**9, "sha256": f"{n:064x}"})
    ledger.append("case.opened", {"case_id": "new", "size_bytes": 7, "sha256": "f" * 64})
    read = []
    original = ledger_module._event
    monkeypatch.setattr(ledger_module, "_event", lambda row: read.append(row.event_id) or original(row))
    services = service_world.app.state.services
    check_report_quota(services, 0)  # 30 GB two days ago count for nothing today
    assert len(read) == 1
    with service_world.workspace.engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT seq FROM ledger WHERE event_type = 'case.opened' AND created_at > ?",
            (utc_iso(now_utc()),),
        ).all()
    assert "ix_ledger_type_created" in str(plan)


def test_the_report_quota_is_read_off_the_event_loop(service_world, tmp_path, monkeypatch):
    """A database read in the async route held every other request meanwhile."""
    import asyncio

    import likeness.service.cases as cases_module

    original, on_the_loop = cases_module.check_report_quota, []

    def watched(services, size_bytes):
        try:
            asyncio.get_running_loop()
            on_the_loop.append(size_bytes)
        except RuntimeError:
            pass  # a worker thread: no loop running here
        return original(services, size_bytes)

    monkeypatch.setattr(cases_module, "check_report_quota", watched)
    photo = write_image(tmp_path / "a.jpg", astronaut(), quality=90)
    assert report(service_world.client(), photo).status_code == 201
    assert on_the_loop == []


def test_a_file_closed_with_no_action_is_deleted_after_the_keep_days(service_world, tmp_path):
    from likeness.service.app import create_app
    from likeness.service.job_kinds import job_upload_path

    settings = service_world.settings.model_copy(update={"public_report_keep_days": 0})  # at the next report
    service_world.app = create_app(settings, workspace=service_world.workspace, accounts=service_world.accounts)
    client = service_world.client()
    services = service_world.app.state.services
    closed, acted_on = (
        report(client, write_image(tmp_path / f"{n}.jpg", picture, quality=90)).json()["case_id"]
        for n, picture in (("closed", astronaut()), ("acted", grace_hopper()))
    )
    worker = Worker(service_world.workspace)
    while worker.run_one() is not None:
        pass
    legal = service_world.client()
    csrf = service_world.login(legal, "legal")
    for case_id, state in ((closed, "closed-no-action"), (acted_on, "takedown-requested")):
        legal.post(f"/cases/{case_id}/mark", data={"state": state, "csrf_token": csrf}, follow_redirects=False)
    uploads = {c: job_upload_path(service_world.workspace, services.queue.get(c).params) for c in (closed, acted_on)}
    fresh = write_image(tmp_path / "new.jpg", astronaut()[::2, ::2].copy(), quality=90)
    assert report(client, fresh).status_code == 201
    assert not uploads[closed].exists() and not uploads[closed].parent.exists()
    assert uploads[acted_on].is_file()  # a case legal acts on keeps its file
    ledger = service_world.workspace.ledger
    assert [e.payload["case_id"] for e in ledger.find("case.upload_expired")] == [closed]
    page = legal.get(f"/cases/{closed}")
    assert page.status_code == 200 and "case.upload_expired" in page.text
    assert legal.get(f"/cases/{closed}/evidence.zip").status_code == 200  # the evidence pack stays


def test_the_same_file_reported_twice_at_once_is_one_case(service_world, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: report(service_world.client(), photo, note=f"report {n}"), range(2)))
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert len(service_world.workspace.ledger.find("case.opened")) == 1
    assert len(_kept_reports(service_world)) == 1


def test_the_reporters_words_are_written_whole_in_a_0600_file(tmp_path, monkeypatch):
    """The file was renamed into place unsynced, and a failed rename left its temporary behind;
    it stays 0600 from its temporary's creation on, whatever the umask."""
    from likeness.service.cases import _write_private
    from tests.durability import assert_written_whole, failing_placements, hidden_files, watch_disk

    path = tmp_path / "case.json"
    log = watch_disk(monkeypatch)
    previous = os.umask(0)
    try:
        _write_private(path, {"contact": "fan@example.invalid", "note": "reposted"})
    finally:
        os.umask(previous)
    assert assert_written_whole(log, path).mode == 0o600 and stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.undo()
    failing_placements(monkeypatch)
    with pytest.raises(OSError, match="Input/output"):
        _write_private(tmp_path / "other.json", {"contact": "", "note": ""})
    assert hidden_files(tmp_path) == []
