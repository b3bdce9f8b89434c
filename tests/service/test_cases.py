"""Report a file from the public page → a case in the console → triage → evidence zip; the
life cycle on the ledger, the reporter's words kept off it."""

from __future__ import annotations

import os
import re
import stat

import pytest

from likeness.media import write_image
from likeness.media.synthetic import astronaut
from likeness.service.cases import cases_folder
from likeness.service.roles import Role
from likeness.service.worker import Worker

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
