"""Upload → verify job → result, exactly as ``likeness verify`` does; and bad uploads."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from likeness.service.app import create_app
from likeness.service.job_kinds import uploads_root
from likeness.service.roles import Role
from likeness.service.uploads import sanitise_filename
from likeness.service.worker import Worker
from likeness.verify.pipeline import verify_path

from .conftest import PASSWORD


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _token(world, user) -> str:
    return world.accounts.create_token(user, "tests")[0]


def _uploaded_files(world):
    return sorted(p for p in uploads_root(world.workspace).rglob("*") if p.is_file())


def test_verify_upload_runs_as_the_cli_does_and_is_on_the_ledger(service_world, astronaut, tmp_path):
    from tests.conftest import ConsentWorld

    # the enrolled gallery: mina's reference is the astronaut
    world = ConsentWorld(service_world.workspace, tmp_path)
    world.enroll_faces()
    legal = service_world.token_client(Role.LEGAL)
    response = legal.post(
        "/api/v1/verifications", files={"file": ("../../mina at the show.png", _png(astronaut), "text/plain")}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["params"]["name"] == "mina at the show.png"
    assert job["params"]["media_type"] == "image" and job["params"]["container"] == "png"

    done = Worker(service_world.workspace).run_one()
    assert done.id == job["id"] and done.state == "succeeded", done.error
    result = legal.get(f"/api/v1/jobs/{job['id']}").json()["result"]
    verification = result["verification"]
    assert verification["path"] == "mina at the show.png"  # not the server's folder

    # the CLI's function on the same bytes gives the same verdict and evidence
    copy = tmp_path / "copy.png"
    copy.write_bytes(_png(astronaut))
    cli = verify_path(service_world.workspace, copy, record=False)
    assert verification["verdict"] == cli.verdict.code
    assert verification["verdict_evidence"] == list(cli.verdict.evidence)
    assert [f["match"]["slug"] for f in verification["faces"]["faces"] if f["match"]] == ["mina"]

    events = [e.payload for e in service_world.workspace.ledger.events("verification.completed")]
    assert events[-1]["sha256"] == verification["sha256"] and events[-1]["verdict"] == verification["verdict"]

    html = legal.get(f"/api/v1/jobs/{job['id']}/evidence/html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]
    pack = legal.get(f"/api/v1/jobs/{job['id']}/evidence/json").json()
    assert pack["sha256"] == verification["sha256"]
    assert legal.get(f"/api/v1/jobs/{job['id']}/evidence/zip").content[:2] == b"PK"

    # progress as Server-Sent Events: the finished job's state, then the end
    stream = legal.get(f"/api/v1/jobs/{job['id']}/events")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "event: job" in stream.text and stream.text.rstrip().endswith("data: {}")
    assert json.loads(stream.text.split("data: ", 1)[1].split("\n", 1)[0])["state"] == "succeeded"


def test_other_organisations_do_not_see_a_job(service_world):
    service_world.workspace.registry.add_org("rival", "Rival")
    rival = service_world.accounts.add_user("rival-legal", PASSWORD, Role.LEGAL, org="rival")
    secret, _ = service_world.accounts.create_token(rival, "rival")
    studio = service_world.token_client(Role.LEGAL)
    job = studio.post("/api/v1/verifications", files={"file": ("a.png", _png(np.zeros((8, 8, 3), np.uint8)))}).json()
    other = service_world.client(headers={"Authorization": f"Bearer {secret}"})
    assert other.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert other.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other.get("/api/v1/jobs").json()["jobs"] == []


def test_upload_limits_by_sniffed_type(settings, workspace):
    from tests.service.conftest import build_service_world

    small = settings.model_copy(update={"upload_max_image_bytes": 2000, "upload_max_video_bytes": 4000})
    world = build_service_world(small, workspace)
    world.app = create_app(small, workspace=workspace, accounts=world.accounts)
    legal = world.token_client(Role.LEGAL)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    big_png = _png(noise)
    assert len(big_png) > 4000
    too_big = legal.post("/api/v1/verifications", files={"file": ("clip.mp4", big_png, "video/mp4")})
    assert too_big.status_code == 413 and too_big.json()["type"].endswith("upload-too-large")
    assert "image larger than 2000 bytes" in too_big.json()["detail"]  # the PNG's limit, not the name's
    assert _uploaded_files(world) == []


@pytest.mark.parametrize(
    "content", [b"#!/bin/sh\nrm -rf /\n" * 4, b"<svg xmlns='http://www.w3.org/2000/svg'/>" * 2, b"\x00" * 32]
)
def test_files_that_are_not_media_are_refused_whatever_their_name(service_world, content):
    legal = service_world.token_client(Role.LEGAL)
    response = legal.post("/api/v1/verifications", files={"file": ("photo.jpg", content, "image/jpeg")})
    assert response.status_code == 415 and response.json()["type"].endswith("unsupported-media")
    assert _uploaded_files(service_world) == []


def test_bad_forms_are_problems(service_world):
    legal = service_world.token_client(Role.LEGAL)
    cases = [
        legal.post("/api/v1/verifications", files={"other": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(16))}),
        legal.post("/api/v1/verifications", data={"note": "no file"}),
        legal.post("/api/v1/verifications", content=b"raw bytes", headers={"content-type": "application/octet-stream"}),
        legal.post(
            "/api/v1/verifications",
            content=b"--x\r\nbroken",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        legal.post("/api/v1/verifications", files={"file": ("empty.png", b"")}),
        legal.post(
            "/api/v1/verifications",
            content=b"--" + b"b" * 5000 + b"\r\n",
            headers={"content-type": "multipart/form-data; boundary=" + "b" * 5000},
        ),
    ]
    for response in cases:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert _uploaded_files(service_world) == []
    assert not any(uploads_root(service_world.workspace).glob("*/")), "an upload folder was left behind"


def test_console_upload_needs_the_csrf_field_before_any_byte_is_written(service_world, astronaut):
    client = service_world.client()
    csrf = service_world.login(client, "legal")
    refused = client.post(
        "/verify", files={"file": ("a.png", _png(astronaut))}, data={"csrf_token": "forged"}, follow_redirects=False
    )
    assert refused.status_code == 403 and _uploaded_files(service_world) == []
    accepted = client.post(
        "/verify", data={"csrf_token": csrf}, files={"file": ("a.png", _png(astronaut))}, follow_redirects=False
    )
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/jobs/")
    assert len(_uploaded_files(service_world)) == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("", "upload"),
        ("...", "upload"),
        (".hidden.png", "hidden.png"),
        ("a\x00b\nc.png", "abc.png"),
        ("뮤직비디오 1.mp4", "뮤직비디오 1.mp4"),
        ("x" * 300 + ".png", "x" * 110 + ".png"),
        ("$(rm -rf).jpg", "rm -rf_.jpg"),
    ],
)
def test_file_names_are_sanitised(name, expected):
    assert sanitise_filename(name) == expected


def test_with_worker_runs_jobs_inside_the_service_process(settings, workspace, astronaut):
    import time

    from tests.service.conftest import build_service_world

    world = build_service_world(settings, workspace)
    world.app = create_app(settings, workspace=workspace, accounts=world.accounts, with_worker=True)
    try:
        legal = world.token_client(Role.LEGAL)
        job = legal.post("/api/v1/verifications", files={"file": ("a.png", _png(astronaut))}).json()
        deadline = time.monotonic() + 120
        while (state := legal.get(f"/api/v1/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state["state"] == "succeeded" and state["result"]["verification"]["verdict"] == "no-enrolled-artist"
    finally:
        world.app.state.services.worker.stop()
        world.app.state.services.worker_thread.join(timeout=30)


def test_a_video_upload_is_verified_and_a_too_large_one_refused_by_the_video_limit(
    settings, workspace, astronaut, tmp_path
):
    from likeness.media.synthetic import write_clip
    from tests.service.conftest import build_service_world

    clip = write_clip(tmp_path / "fancam.mp4", astronaut, seconds=1.0, fps=10, size=(320, 240), with_audio=False)
    size = clip.stat().st_size
    world = build_service_world(settings.model_copy(update={"upload_max_video_bytes": size - 1}), workspace)
    small = world.settings
    world.app = create_app(small, workspace=workspace, accounts=world.accounts)
    legal = world.token_client(Role.LEGAL)
    refused = legal.post("/api/v1/verifications", files={"file": ("fancam.png", clip.read_bytes(), "image/png")})
    assert refused.status_code == 413 and f"video larger than {size - 1} bytes" in refused.json()["detail"]

    roomy = settings.model_copy(update={"upload_max_video_bytes": size})
    world.app = create_app(roomy, workspace=workspace, accounts=world.accounts)
    legal = world.token_client(Role.LEGAL)
    created = legal.post("/api/v1/verifications", files={"file": ("fancam.mp4", clip.read_bytes())})
    assert created.status_code == 202 and created.json()["params"]["media_type"] == "video"
    done = Worker(workspace).run_one()
    assert done.state == "succeeded", done.error
    verification = done.result["verification"]
    assert verification["media_type"] == "video" and verification["verdict"] == "no-enrolled-artist"
    assert legal.get(f"/jobs/{done.id}/upload").status_code == 404  # videos are not echoed back


def test_an_upload_path_edited_in_the_database_cannot_reach_files_outside_the_uploads(service_world, astronaut):
    """A database editor points a job's upload at an organisation's private key: the console's
    upload route must refuse it, not serve the key as an image."""
    import sqlite3

    legal = service_world.token_client(Role.LEGAL)
    job = legal.post("/api/v1/verifications", files={"file": ("a.png", _png(astronaut), "image/png")}).json()
    assert legal.get(f"/jobs/{job['id']}/upload").status_code == 200
    key = next(service_world.workspace.keys_dir.rglob("*.pem"))
    database = service_world.settings.resolved_home / "likeness.db"
    for target in (str(key), f"../../keys/{key.relative_to(service_world.workspace.keys_dir)}"):
        with sqlite3.connect(database) as connection:
            connection.execute(
                "UPDATE jobs SET params = json_set(params, '$.upload', ?) WHERE id = ?", (target, job["id"])
            )
        response = legal.get(f"/jobs/{job['id']}/upload")
        assert response.status_code == 404, target
        assert b"PRIVATE KEY" not in response.content


def test_a_users_uploads_in_progress_are_bounded(service_world, astronaut):
    """The upload rate limit counts starts, and each upload holds its part file until it ends: a
    signed-in client (or a leaked service key) could keep any number arriving slowly at once.
    Beyond ``uploads_per_user`` still arriving, the next is refused; other users still upload."""
    slots = service_world.app.state.services.uploads
    legal = service_world.accounts.get_user("legal")
    file = {"file": ("a.png", _png(astronaut), "image/png")}
    colleague = service_world.accounts.add_user("legal2", PASSWORD, Role.LEGAL)
    colleague_client = service_world.client(headers={"Authorization": "Bearer " + _token(service_world, colleague)})
    with slots.hold(f"user:{legal.id}"), slots.hold(f"user:{legal.id}"), slots.hold(f"user:{legal.id}"):
        with slots.hold(f"user:{legal.id}"):  # uploads_per_user (4) still arriving
            refused = service_world.token_client(Role.LEGAL).post("/api/v1/verifications", files=file)
            other = colleague_client.post("/api/v1/verifications", files=file)
        assert refused.status_code == 429 and refused.json()["cause"] == "uploads-in-progress", refused.text
        assert refused.json()["detail"].startswith("4 uploads from this account are still in progress")
        assert other.status_code == 202, other.text
        assert service_world.token_client(Role.LEGAL).post("/api/v1/verifications", files=file).status_code == 202
    assert _uploaded_files(service_world) and len(_uploaded_files(service_world)) == 2
