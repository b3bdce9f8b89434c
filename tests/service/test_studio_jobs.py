"""Studio jobs through the service: reference photos, extract, train and export, then a render
with the exported model, all on generated media and asked of the policy engine exactly as the
CLI commands ask it, for the caller's organisation."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import pytest

from likeness.media.synthetic import astronaut, grace_hopper, write_clip
from likeness.service.job_kinds import faceset_folder, model_folder
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.conftest import add_subject, revoke_grant, revoke_release

from .conftest import worker_process

#: A tiny, fast training run: the point is the path through the service, not the model.
TINY_TRAINING = {
    "model": "df_tiny",
    "resolution": 64,
    "iterations": 4,
    "batch_size": 4,
    "checkpoint_every": 2,
    "preview_every": 2,
    "identity_metrics": False,
    "expression_metrics": False,
    "accept_gaps": True,
}


def _png(path: Path, rgb) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("studio-media")
    return {
        "mina.png": _png(folder / "mina.png", astronaut()),
        "jun.png": _png(folder / "jun.png", grace_hopper()),
        "mina.mp4": write_clip(folder / "mina.mp4", astronaut(), seconds=0.6, size=(320, 240), with_audio=False),
        "jun.mp4": write_clip(folder / "jun.mp4", grace_hopper(), seconds=0.6, size=(320, 240), with_audio=False),
    }


def _upload(client, url: str, path: Path, **fields):
    with path.open("rb") as handle:
        return client.post(url, data=fields, files={"file": (path.name, handle, "application/octet-stream")})


def _run(world, response) -> dict:
    """Run the job ``response`` queued to its end in this process; its final state."""
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    ran = Worker(world.workspace).run_one()
    assert ran is not None and ran.id == job_id
    return world.token_client(Role.VIEWER).get(f"/api/v1/jobs/{job_id}").json()


def _enrol(world, studio, media) -> None:
    for slug in ("mina", "jun"):
        job = _run(world, _upload(studio, f"/api/v1/subjects/{slug}/references", media[f"{slug}.png"]))
        assert job["state"] == "succeeded", job["error"]
        assert job["result"]["subject"] == slug and job["result"]["added"] == 1


def test_extract_train_export_and_render_through_the_api(service_world, media):
    world = service_world
    studio = world.token_client(Role.STUDIO)
    _enrol(world, studio, media)
    assert {s["slug"]: s["references"] for s in studio.get("/api/v1/subjects").json()} == {"mina": 1, "jun": 1}

    extracted = {}
    for slug in ("mina", "jun"):
        job = _run(world, _upload(studio, "/api/v1/extractions", media[f"{slug}.mp4"], subject=slug, dedup="-1"))
        assert job["state"] == "succeeded", job["error"]
        assert job["result"]["subject"] == slug and job["result"]["faces"] >= 12
        events = world.workspace.ledger.find("faceset.created")
        assert job["result"]["ledger_event_id"] in {e.event_id for e in events}
        assert (faceset_folder(world.workspace, job["id"]) / "manifest.json").is_file()
        extracted[slug] = job["id"]

    body = {"source": extracted["mina"], "target": extracted["jun"], **TINY_TRAINING}
    train = _run(world, studio.post("/api/v1/trainings", json=body))
    assert train["state"] == "succeeded", train["error"]
    assert train["result"]["iterations"] == 4 and train["result"]["previews"]
    viewer = world.token_client(Role.VIEWER)
    plot = viewer.get(f"/api/v1/jobs/{train['id']}/outputs/metrics.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    preview = viewer.get(f"/api/v1/jobs/{train['id']}/outputs/{train['result']['previews'][-1]}")
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    # The checkpoint is no output: only the plot, its table and the labelled previews are served.
    assert viewer.get(f"/api/v1/jobs/{train['id']}/outputs/checkpoint.pt").status_code == 404
    trained = world.workspace.ledger.find("model.trained")
    assert [e.payload["model_dir"] for e in trained] == [str(model_folder(world.workspace, train["id"]))]
    page = viewer.get(f"/jobs/{train['id']}", headers={"accept-language": "ko"})
    assert page.status_code == 200 and "손실과 동일성" in page.text
    assert (
        f"/api/v1/jobs/{train['id']}/outputs/metrics.png" in page.text and train["result"]["previews"][-1] in page.text
    )
    events = viewer.get(f"/api/v1/jobs/{train['id']}/events")
    assert "event: end" in events.text and '"state": "succeeded"' in events.text

    export = _run(world, studio.post("/api/v1/exports", json={"model": train["id"]}))
    assert export["state"] == "succeeded", export["error"]
    models = studio.get("/api/v1/models").json()
    assert [(m["id"], m["subject"], m["performer"]) for m in models] == [(export["result"]["model"], "mina", "jun")]

    # likeness render --mouth through the service: the render report records the option it ran with
    render = _run(
        world,
        _upload(studio, "/api/v1/renders", media["jun.png"], model=models[0]["id"], use="music_video", mouth="on"),
    )
    assert render["state"] == "succeeded", render["error"]
    assert render["result"]["options"] == {"mouth": True, "eyes": False, "thin_rims": False}
    report = viewer.get(f"/api/v1/jobs/{render['id']}/outputs/{render['result']['report']['json']}").json()
    assert (report["options"]["refine"]["mouth"], report["options"]["refine"]["eyes"]) == (True, False)
    output = render["result"]["outputs"][0]
    assert output["watermark_payload"] and world.workspace.ledger.find("render.completed")
    assert world.workspace.ledger.verify().ok

    # Revoked consent stops every studio step, through the service as through the CLI.
    registry = world.workspace.registry
    revoke_grant(registry, registry.list_grants(subject="mina")[0].id, reason="test revocation")
    refused = [
        _run(world, studio.post("/api/v1/trainings", json=body)),
        _run(world, studio.post("/api/v1/exports", json={"model": train["id"]})),
        _run(world, _upload(studio, "/api/v1/extractions", media["mina.mp4"], subject="mina")),
        _run(world, _upload(studio, "/api/v1/subjects/mina/references", media["mina.png"])),
        _run(world, _upload(studio, "/api/v1/renders", media["jun.png"], model=models[0]["id"], use="music_video")),
    ]
    assert [(job["state"], "revoked" in (job["error"] or "")) for job in refused] == [("failed", True)] * 5
    assert not (model_folder(world.workspace, refused[0]["id"]) / "checkpoint.pt").exists()
    assert not any(faceset_folder(world.workspace, refused[2]["id"]).glob("*.png"))
    assert len(world.workspace.ledger.find("model.exported")) == 1
    assert len(world.workspace.ledger.find("faceset.created")) == 2
    assert len(world.workspace.ledger.find("render.completed")) == 1


def test_a_performer_without_a_release_cannot_be_extracted_or_enrolled(service_world, media):
    world = service_world
    studio = world.token_client(Role.STUDIO)
    registry = world.workspace.registry
    revoke_release(registry, registry.list_releases(performer="jun")[0].id, reason="test revocation")
    for response in (
        _upload(studio, "/api/v1/subjects/jun/references", media["jun.png"]),
        _upload(studio, "/api/v1/extractions", media["jun.png"], subject="jun"),
    ):
        job = _run(world, response)
        assert job["state"] == "failed" and "revoked" in job["error"], job
    assert world.workspace.ledger.find("faceset.created") == []
    assert len(registry.reference_embeddings("jun")) == 0


def test_studio_routes_refuse_what_is_not_the_organisation_s(service_world, media):
    world = service_world
    studio, legal = world.token_client(Role.STUDIO), world.token_client(Role.LEGAL)
    odd = _run(world, _upload(studio, "/api/v1/extractions", media["mina.png"], subject="mina", dedup="lots"))
    assert odd["state"] == "failed" and "dedup 'lots'" in odd["error"]
    world.workspace.registry.add_org("rival", "Rival Agency")
    add_subject(world.workspace.registry, "hana", "Hana", kind="virtual_idol", owner_org="rival")
    missing = _upload(studio, "/api/v1/subjects/hana/references", media["mina.png"])
    assert missing.status_code == 404 and missing.json()["type"].endswith("not-found")
    verify = _upload(legal, "/api/v1/verifications", media["mina.png"])
    assert verify.status_code == 202
    # A verify job is no faceset and no model: the ids must be extract and train jobs.
    for url, body in (
        ("/api/v1/trainings", {"source": verify.json()["id"], "target": verify.json()["id"]}),
        ("/api/v1/exports", {"model": verify.json()["id"]}),
    ):
        response = studio.post(url, json=body)
        assert response.status_code == 404, response.text
    bad = studio.post("/api/v1/trainings", json={"source": "../../etc", "target": "x"})
    assert bad.status_code == 422 and bad.json()["errors"]
    not_media = studio.post(
        "/api/v1/extractions", data={"subject": "mina"}, files={"file": ("a.png", b"not an image at all", "image/png")}
    )
    assert not_media.status_code == 415
    no_subject = _upload(studio, "/api/v1/extractions", media["mina.png"])
    assert no_subject.status_code == 400 and "subject" in no_subject.json()["detail"]
    queued = studio.post("/api/v1/trainings", json={"source": verify.json()["id"], "target": verify.json()["id"]})
    assert queued.status_code == 404
    assert legal.post("/api/v1/extractions", data={"subject": "mina"}).status_code == 403


def test_a_queued_training_is_cancelled_by_studio_not_by_legal(service_world, media):
    world = service_world
    studio, legal = world.token_client(Role.STUDIO), world.token_client(Role.LEGAL)
    queue = world.app.state.services.queue
    org_id = world.accounts.get_user("studio").org_id
    extract = queue.enqueue("extract", {"subject": "mina"}, org_id=org_id)
    job = studio.post("/api/v1/trainings", json={"source": extract.id, "target": extract.id}).json()
    assert legal.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 403
    cancelled = studio.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


@pytest.mark.slow
def test_a_training_whose_worker_is_killed_resumes_from_its_checkpoint(service_world, media):
    """kill -9 of a ``likeness worker`` process mid-training: another takes the job over after
    the lease and continues from the last checkpoint (``likeness train --resume``), so the
    checkpoints on the ledger count on from where the killed worker stopped."""
    world = service_world
    studio = world.token_client(Role.STUDIO)
    _enrol(world, studio, media)
    extracted = {}
    for slug in ("mina", "jun"):
        extracted[slug] = _run(
            world, _upload(studio, "/api/v1/extractions", media[f"{slug}.mp4"], subject=slug, dedup="-1")
        )["id"]
    body = {**TINY_TRAINING, "iterations": 20, "checkpoint_every": 5, "preview_every": 0}
    created = studio.post("/api/v1/trainings", json={"source": extracted["mina"], "target": extracted["jun"], **body})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    queue = world.app.state.services.queue
    command, env = worker_process(world.workspace.home, job_lease_s=1)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(world.workspace.ledger.find("model.checkpointed")) < 2:
            assert first.poll() is None, (queue.get(job_id).state, queue.get(job_id).error)
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = max(e.payload["iteration"] for e in world.workspace.ledger.find("model.checkpointed"))
    assert queue.get(job_id).state == "running" and killed_at < 20

    second = subprocess.run(command, env=env, timeout=600, check=False, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    done = queue.get(job_id)
    assert done.state == "succeeded" and done.attempts == 2, done.error
    assert done.result["iterations"] == 20
    iterations = [e.payload["iteration"] for e in world.workspace.ledger.find("model.checkpointed")]
    # A fresh start would checkpoint iteration 5 again: the run went on from where it was killed.
    # The event is recorded before its file (save_bound_checkpoint), so a kill between the two
    # leaves the previous checkpoint and the killed-at iteration is checkpointed once more.
    assert iterations == sorted(iterations) and iterations[-1] == 20 and killed_at in iterations
    assert iterations.count(5) == 1 or killed_at == 5
    assert all(iterations.count(i) == 1 for i in iterations if i != killed_at), iterations
    assert len(world.workspace.ledger.find("model.trained")) == 1


def test_a_references_job_seals_its_events_with_the_callers_organisation(service_world, media):
    """jun, a performer, has no owner, and with a second organisation the workspace has no only
    one: the job seals with the key of the organisation that asked for it."""
    world = service_world
    registry = world.workspace.registry
    registry.add_org("rival", "Rival Agency")
    job = _run(world, _upload(world.token_client(Role.STUDIO), "/api/v1/subjects/jun/references", media["jun.png"]))
    assert job["state"] == "succeeded", job["error"]
    (event,) = world.workspace.ledger.find("subject.reference_added")
    assert event.payload["org_id"] == registry.get_org("studio").id
    assert len(registry.reference_embeddings("jun")) == 1
