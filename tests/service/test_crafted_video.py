"""Trial finding 3: a crafted MP4 (one keyframe, then thousands of copies of a 25-byte P-frame,
every one a reference frame) must not hold the public checker, a report request, a worker or
``likeness verify``. The clips are made in the test (``tests.media.crafted_clips``)."""

from __future__ import annotations

import threading
import time

import pytest
from typer.testing import CliRunner

from likeness.cli import app as cli_app
from likeness.media import write_image
from likeness.media.synthetic import grace_hopper
from likeness.service.app import create_app
from likeness.service.jobs import JobQueue
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.media.crafted_clips import skip_frame_clip

from .public_media import allow_many_checks

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
VERIFY = "/api/v1/public/verify"


def post(client, route, path):
    return client.post(route, files={"file": (path.name, path.read_bytes(), "video/mp4")})


@pytest.fixture(scope="module")
def refused_clip(tmp_path_factory):
    """The trial's file at a smaller scale: 40,000 frames of 1080p in 1.2 MB (a minute of
    decoding), which the size check refuses before decoding."""
    return skip_frame_clip(tmp_path_factory.mktemp("crafted") / "skip40k.mp4", 40_000)


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory):
    """20,000 frames of 1080p in 600 KB: under the size check (10 minutes at 60 fps pass
    whatever their size), so only the decode loop's checks stop it; a full decode of its
    reference frames takes tens of seconds here."""
    return skip_frame_clip(tmp_path_factory.mktemp("crafted") / "skip20k.mp4", 20_000)


def world_with(settings, workspace, **changes):
    from tests.service.conftest import build_service_world

    changed = settings.model_copy(update=changes)
    world = build_service_world(changed, workspace)
    world.app = create_app(changed, workspace=workspace, accounts=world.accounts)
    allow_many_checks(world.app)
    return world


def test_the_public_check_refuses_the_crafted_clip_at_once_and_serves_the_next_visitor(
    settings, workspace, refused_clip, tmp_path
):
    world = world_with(settings, workspace, public_verify_timeout_s=5.0)
    client = world.client()
    started = time.monotonic()
    answer = post(client, VERIFY, refused_clip)
    assert answer.status_code == 200, answer.text
    verdict = answer.json()
    assert verdict["verdict"] == "error"
    assert "too many frames for its size" in " ".join(verdict["verdict_evidence"])
    photo = write_image(tmp_path / "p.png", grace_hopper())
    assert post(client, VERIFY, photo).status_code == 200  # the next visitor is served
    assert time.monotonic() - started < 5


def test_a_check_past_its_deadline_frees_the_checker_for_the_next_visitor(settings, workspace, slow_clip, tmp_path):
    world = world_with(settings, workspace, public_verify_timeout_s=2.0)
    client = world.client()
    photo = write_image(tmp_path / "p.png", grace_hopper())
    assert post(client, VERIFY, photo).status_code == 200  # the verifier's models are loaded
    started = time.monotonic()
    answer = post(client, VERIFY, slow_clip)
    assert answer.status_code == 503 and answer.json()["type"].endswith("analysis-timeout")
    assert time.monotonic() - started < 4
    # Straight after: before the fix the analysis went on decoding and kept the checker's lock,
    # so this visitor waited out the timeout too and got a 503.
    following = time.monotonic()
    assert post(client, VERIFY, photo).status_code == 200
    assert time.monotonic() - following < 2


def test_a_report_of_the_crafted_clip_answers_within_the_timeout(settings, workspace, slow_clip):
    world = world_with(settings, workspace, public_verify_timeout_s=2.0)
    started = time.monotonic()
    opened = post(world.client(), "/api/v1/public/reports", slow_clip)
    assert opened.status_code == 201, opened.text
    assert time.monotonic() - started < 5  # the case is opened; its worker job verifies the file
    job = JobQueue.for_workspace(world.workspace).get(opened.json()["case_id"])
    assert job.kind == "verify" and job.state == "queued"


def test_a_worker_verifying_the_crafted_clip_stops_within_seconds_of_a_cancel(service_world, slow_clip):
    legal = service_world.token_client(Role.LEGAL)
    job = post(legal, "/api/v1/verifications", slow_clip).json()
    queue = JobQueue.for_workspace(service_world.workspace)
    worker = threading.Thread(target=Worker(service_world.workspace).run_one, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while queue.get(job["id"]).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the clip is being decoded
    cancelled_at = time.monotonic()
    assert legal.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    worker.join(timeout=15)
    stopped_after = time.monotonic() - cancelled_at
    final = queue.get(job["id"])
    assert final.state == "cancelled", (final.state, final.error)
    # Before the fix the worker noticed only when the decode was over (tens of seconds here,
    # minutes for the trial's file).
    assert stopped_after < 3, stopped_after


def test_likeness_verify_gives_a_one_line_reason_not_a_hang(workspace, refused_clip):
    started = time.monotonic()
    result = CliRunner().invoke(cli_app, ["--home", str(workspace.home), "verify", str(refused_clip), "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 10
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["error", str(refused_clip)]
    assert "declares 40,000 frames in 1,207,620 bytes" in lines[1] and "too many frames for its size" in lines[1]
    assert "Traceback" not in result.output
