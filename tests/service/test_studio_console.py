"""The console's studio page: consent shown before anything is submitted, and forms that queue
the same jobs as the API (CSRF checked, the job asking the policy engine), in-process."""

from __future__ import annotations

import re

import cv2
import pytest

from likeness.media.synthetic import astronaut
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.conftest import add_subject


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "mina stage.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    return path


def _studio(world):
    client = world.client()
    csrf = world.login(client, "studio")
    return client, csrf


def _post_file(client, url, path, **fields):
    with path.open("rb") as handle:
        return client.post(url, data=fields, files={"file": (path.name, handle, "image/png")}, follow_redirects=False)


def _job(world, response):
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/jobs/[0-9a-f]{32}", location), location
    org_id = world.accounts.get_user("studio").org_id
    return world.app.state.services.queue.get(location.rsplit("/", 1)[1], org_id=org_id)


def test_the_studio_page_shows_what_consent_allows_before_anything_is_submitted(service_world):
    world = service_world
    client, _csrf = _studio(world)
    head = world.workspace.ledger.head()
    page = client.get("/studio")
    assert page.status_code == 200
    assert "Training grant in force until" in page.text and "Release in force until" in page.text
    assert '<option value="mina">' in page.text.replace("\n", "")  # selectable
    # Drawing the page asks the registry, not the policy engine: nothing lands on the ledger.
    assert world.workspace.ledger.head() == head

    world.consent.revoke_grant()
    page = client.get("/studio", headers={"accept-language": "ko"})
    assert re.search(r"✗ \d{4}-\d\d-\d\d에 철회됨", page.text), "the refusal and its date, in Korean"
    assert '<option value="mina" disabled>' in page.text
    world.workspace.registry.add_org("rival", "Rival Agency")
    add_subject(world.workspace.registry, "hana", "Hana", kind="virtual_idol", owner_org="rival")
    assert "hana" not in client.get("/studio").text  # another organisation's subject is not listed
    for role in (Role.VIEWER, Role.LEGAL, Role.ADMIN):
        assert world.token_client(role).get("/studio").status_code == 403


def test_the_forms_queue_the_api_s_jobs_with_csrf_and_the_job_still_asks_consent(service_world, photo):
    world = service_world
    client, csrf = _studio(world)
    job = _job(world, _post_file(client, "/studio/references", photo, csrf_token=csrf, subject="mina"))
    assert (job.kind, job.params["subject"], job.params["name"]) == ("references", "mina", "mina stage.png")
    assert _post_file(client, "/studio/references", photo, subject="mina").status_code == 403  # no CSRF token
    assert _post_file(client, "/studio/references", photo, csrf_token="x" * 43, subject="mina").status_code == 403
    refused = _post_file(client, "/studio/extractions", photo, csrf_token=csrf, subject="hana")
    assert refused.status_code == 404 and "hana" in refused.text
    extract = _job(world, _post_file(client, "/studio/extractions", photo, csrf_token=csrf, subject="mina", dedup="-1"))
    assert (extract.kind, extract.params["subject"], extract.params["dedup"]) == ("extract", "mina", "-1")

    # The page only advises: a revoked grant still stops a job submitted from it.
    Worker(world.workspace).run_one()  # the reference job, while the grant holds
    world.consent.revoke_grant()
    late = _job(world, _post_file(client, "/studio/extractions", photo, csrf_token=csrf, subject="mina"))
    queue, org_id = world.app.state.services.queue, extract.org_id
    while (ran := Worker(world.workspace).run_one()) is not None and ran.id != late.id:
        pass
    late = queue.get(late.id, org_id=org_id)
    assert late.state == "failed" and "revoked" in late.error


def test_the_training_and_export_forms_make_the_same_job_as_the_api(service_world):
    world = service_world
    client, csrf = _studio(world)
    queue = world.app.state.services.queue
    org_id = world.accounts.get_user("studio").org_id
    source, target = (queue.enqueue("extract", {"subject": s}, org_id=org_id).id for s in ("mina", "jun"))
    form = {
        "csrf_token": csrf,
        "source": source,
        "target": target,
        "recipe": "",
        "iterations": "4",
        "minutes": "",
        "model": "df_tiny",
        "resolution": "64",
        "batch_size": "",
        "skip_identity_metrics": "on",
        "accept_gaps": "on",
    }
    train = _job(world, client.post("/studio/trainings", data=form, follow_redirects=False))
    api = world.token_client(Role.STUDIO).post(
        "/api/v1/trainings",
        json={
            "source": source,
            "target": target,
            "iterations": 4,
            "model": "df_tiny",
            "resolution": 64,
            "identity_metrics": False,
            "expression_metrics": False,
            "accept_gaps": True,
        },
    )
    assert train.kind == "train" and train.params == api.json()["params"]

    bad = client.post("/studio/trainings", data={**form, "iterations": "0"}, follow_redirects=False)
    assert bad.status_code == 422 and "iterations" in bad.text
    verify = queue.enqueue("verify", {"upload": "none/x.png"}, org_id=org_id).id
    assert client.post("/studio/trainings", data={**form, "source": verify}, follow_redirects=False).status_code == 404
    no_csrf = client.post("/studio/trainings", data={**form, "csrf_token": ""}, follow_redirects=False)
    assert no_csrf.status_code == 403

    export = _job(
        world, client.post("/studio/exports", data={"csrf_token": csrf, "model": train.id}, follow_redirects=False)
    )
    assert (export.kind, export.params) == ("export", {"model": train.id})
    assert (
        client.post("/studio/exports", data={"csrf_token": csrf, "model": source}, follow_redirects=False).status_code
        == 404
    )
    assert (
        client.post("/studio/exports", data={"csrf_token": csrf, "model": "../x"}, follow_redirects=False).status_code
        == 422
    )


def test_the_consent_page_shows_each_subject_s_reference_photos(service_world):
    world = service_world
    world.consent.enroll_faces()
    viewer = world.token_client(Role.VIEWER)
    page = viewer.get("/consent").text
    photos = re.findall(r'src="/consent/photos/(\w+)/([0-9a-f]{64})"', page)
    assert sorted(slug for slug, _ in photos) == ["jun", "mina"]
    for slug, sha in photos:
        picture = viewer.get(f"/consent/photos/{slug}/{sha}")
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    mina_sha = dict(photos)["mina"]
    assert viewer.get(f"/consent/photos/jun/{mina_sha}").status_code == 404  # not jun's photo
    assert viewer.get("/consent/photos/mina/" + "0" * 64).status_code == 404
    assert viewer.get("/consent/photos/mina/..%2F..%2Fkeys").status_code == 404
