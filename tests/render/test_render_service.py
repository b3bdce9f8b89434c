"""Render jobs through the service: the same consent policy and labelled writer as
``likeness render``, for the caller's organisation, with a model chosen from the ledger."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import cv2
import pytest

from likeness.media.synthetic import grace_hopper, write_clip
from likeness.service.accounts import Accounts
from likeness.service.app import create_app
from likeness.service.job_kinds import render_output_folder
from likeness.service.jobs import JobQueue
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.service.conftest import worker_process


@pytest.fixture
def service(trained_world, tmp_path):
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    ws = trained_world.workspace
    accounts = Accounts(ws, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    studio = accounts.add_user("studio", "a long studio password", Role.STUDIO)
    legal = accounts.add_user("legal", "a long legal password", Role.LEGAL)
    app = create_app(ws.settings, workspace=ws, accounts=accounts)
    target = tmp_path / "jun on stage.png"
    cv2.imwrite(str(target), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))

    def client(user):
        return TestClient(app, headers={"Authorization": f"Bearer {accounts.create_token(user, 't')[0]}"})

    return client(studio), client(legal), target


def _render(client, target, model_id, use="music_video"):
    with target.open("rb") as handle:
        return client.post(
            "/api/v1/renders", data={"model": model_id, "use": use}, files={"file": (target.name, handle, "image/png")}
        )


def test_render_job_writes_a_labelled_output_on_the_ledger(trained_world, service):
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.certificates import workspace_trust_anchors

    studio, legal, target = service
    models = studio.get("/api/v1/models").json()
    assert [(m["subject"], m["performer"]) for m in models] == [("mina", "jun")]
    created = _render(studio, target, models[0]["id"])
    assert created.status_code == 202, created.text
    job = Worker(trained_world.workspace).run_one()
    assert job.state == "succeeded", job.error
    result = studio.get(f"/api/v1/jobs/{job.id}").json()["result"]
    assert result["subject"] == "mina" and result["performer"] == "jun" and result["faces_swapped"] >= 1
    output = result["outputs"][0]
    download = legal.get(f"/api/v1/jobs/{job.id}/outputs/{output['name']}")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == output["sha256"] == download.headers["digest-sha256"]
    path = render_output_folder(trained_world.workspace, job.id) / output["name"]
    reading = read_manifest(path, trust_anchors_pem=workspace_trust_anchors(trained_world.workspace))
    assert reading.state == "Trusted" and reading.consent_assertion["grant_id"] == trained_world.grant_id
    events = trained_world.workspace.ledger.find("render.completed", job_id=result["render_job_id"])
    assert len(events) == 1 and events[0].payload["watermark_payload"] == output["watermark_payload"]
    assert legal.get(f"/api/v1/jobs/{job.id}/outputs/{result['report']['html']}").status_code == 200
    page = legal.get(f"/jobs/{job.id}")
    assert page.status_code == 200 and output["name"] in page.text and output["sha256"] in page.text


@pytest.mark.parametrize(
    ("use", "revoke", "reason"),
    [
        ("music_video", "grant", "revoked"),
        ("music_video", "release", "revoked"),
        ("training", None, "training"),
        ("political_ad", None, "political_ad"),
    ],
)
def test_render_job_is_refused_by_the_consent_policy_and_writes_nothing(trained_world, service, use, revoke, reason):
    studio, _, target = service
    model_id = studio.get("/api/v1/models").json()[0]["id"]
    if revoke == "grant":
        trained_world.revoke_grant()
    elif revoke == "release":
        trained_world.revoke_release()
    assert _render(studio, target, model_id, use=use).status_code == 202
    job = Worker(trained_world.workspace).run_one()
    assert job.state == "failed" and reason in job.error
    folder = render_output_folder(trained_world.workspace, job.id)
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))
    assert trained_world.workspace.ledger.find("render.completed") == []


def test_only_studio_renders_and_only_its_organisation_s_models(trained_world, service):
    studio, legal, target = service
    model_id = studio.get("/api/v1/models").json()[0]["id"]
    assert _render(legal, target, model_id).status_code == 403
    missing = _render(studio, target, "0" * 32)
    assert missing.status_code == 202
    job = Worker(trained_world.workspace).run_one()
    assert job.state == "failed" and "no model" in job.error
    no_fields = studio.post("/api/v1/renders", files={"file": (target.name, target.read_bytes(), "image/png")})
    assert no_fields.status_code == 400 and "model, use" in no_fields.json()["detail"]


@pytest.mark.slow
def test_a_render_whose_worker_is_killed_resumes_from_its_checkpoint_in_another_worker(
    trained_world, service, tmp_path
):
    """kill -9 of a ``likeness worker`` process mid-render: nothing playable is left in the
    outputs folder, the lease runs out, a second worker process takes the job over and the
    render resumes from its checkpoint as the same render job (one ledger event, one count)."""
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.certificates import workspace_trust_anchors

    studio, _, _ = service
    workspace = trained_world.workspace
    clip = write_clip(tmp_path / "jun live.mp4", grace_hopper(), seconds=3.0, size=(320, 240), with_audio=False, seed=3)
    model_id = studio.get("/api/v1/models").json()[0]["id"]
    created = _render(studio, clip, model_id)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    queue = JobQueue.for_workspace(workspace)
    out_dir = render_output_folder(workspace, job_id)
    command, env = worker_process(workspace.home, job_lease_s=1, render_checkpoint_frames=5)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(out_dir.glob(".*.render-checkpoint/state.bin")):
            assert first.poll() is None, "the first worker ended before its render checkpointed"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    killed = queue.get(job_id)
    assert killed.state == "running" and killed.attempts == 1, killed
    # Only the sealed, hidden checkpoint (and the writer's hidden temporaries): nothing to play.
    assert [p.name for p in out_dir.iterdir() if not p.name.startswith(".")] == []

    second = subprocess.run(command, env=env, timeout=300, check=False, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    done = queue.get(job_id)
    assert done.state == "succeeded" and done.attempts == 2, done.error
    result = done.result
    assert result["resumed_from_frame"] >= 5 and result["frames_rendered"] == result["frames_total"] == 75
    output = out_dir / result["outputs"][0]["name"]
    assert hashlib.sha256(output.read_bytes()).hexdigest() == result["outputs"][0]["sha256"]
    reading = read_manifest(output, trust_anchors_pem=workspace_trust_anchors(workspace))
    assert reading.state == "Trusted" and reading.consent_assertion["grant_id"] == trained_world.grant_id
    assert len(workspace.ledger.find("render.completed", job_id=result["render_job_id"])) == 1
    assert len(workspace.ledger.find("render.completed")) == 1
    # The checkpoint went with the finished job, and the killed run's partial file with the rerun.
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []
    assert workspace.ledger.verify().ok
