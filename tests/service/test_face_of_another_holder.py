"""Through the service: a reference photo of a face another rights holder's subject holds is
refused, with the reason the CLI gives, and nothing is enrolled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import cv2

from likeness.consent.canonical import now_utc
from likeness.faceset import enroll_reference_photos
from likeness.media.synthetic import astronaut
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.conftest import add_subject, issue_grant

PROBLEM = "application/problem+json"


def _mina_and_hana(world, tmp_path: Path) -> Path:
    """mina enrolled from the astronaut; hana, a subject of studio's under a new rights holder
    with a training grant (what a references job asks for); the astronaut's photo."""
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    registry = world.workspace.registry
    assert enroll_reference_photos(world.workspace, "mina", [photo]).added == 1
    add_subject(registry, "hana", "Hana", kind="virtual_idol", owner_org="studio")
    issue_grant(registry, "hana", "studio", ["training"], valid_until=now_utc() + timedelta(days=1), purpose="test")
    return photo


def test_a_references_job_with_another_holder_s_face_fails_with_the_reason(service_world, tmp_path):
    world = service_world
    photo = _mina_and_hana(world, tmp_path)
    with photo.open("rb") as handle:
        response = world.token_client(Role.STUDIO).post(
            "/api/v1/subjects/hana/references", files={"file": ("hana.png", handle, "application/octet-stream")}
        )
    assert response.status_code == 202, response.text
    assert Worker(world.workspace).run_one() is not None
    job = world.token_client(Role.VIEWER).get(f"/api/v1/jobs/{response.json()['id']}").json()
    assert job["state"] == "failed", job
    assert "the face is mina's, a subject of another rights holder enrolled by organisation 'studio'" in job["error"]
    assert len(world.workspace.registry.reference_embeddings("hana")) == 0
    hana = world.workspace.registry.get_subject("hana").id
    assert world.workspace.ledger.find("subject.reference_added", subject_id=hana) == []


def test_the_refusal_is_a_409_problem_that_says_whose_face_it_is(service_world, tmp_path):
    world = service_world
    photo = _mina_and_hana(world, tmp_path)

    @world.app.post("/api/v1/test-enrol-face")
    def enrol() -> None:
        enroll_reference_photos(world.workspace, "hana", [photo])

    response = world.client().post("/api/v1/test-enrol-face")
    assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:likeness:problem:face-of-another-holder"
    assert body["title"] == "The face is another rights holder's subject's"
    assert body["detail"].startswith(f"{photo}: the face is mina's, a subject of another rights holder")
