"""Durable jobs: claim, per-organisation limit, lease takeover, cancel, failures, kill -9,
on SQLite and (two concurrent workers) on PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from likeness.config import Settings
from likeness.errors import MediaError
from likeness.service.errors import Conflict
from likeness.service.jobs import FREE_RELEASES, JobQueue, LeaseLost
from likeness.service.roles import Permission
from likeness.service.tables import Job
from likeness.service.worker import JOB_KINDS, JobKind, Worker, register_kind
from likeness.workspace import Workspace

SRC = Path(__file__).resolve().parents[2] / "src"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def orgs(workspace):
    studio = workspace.registry.add_org("studio", "Studio Haneul")
    rival = workspace.registry.add_org("rival", "Rival Agency")
    return studio.id, rival.id


@pytest.fixture
def test_kinds():
    """Job kinds for exercising the queue itself (the product's kinds are tested elsewhere)."""
    calls: list[str] = []

    def steps(context):
        for step in range(int(context.job.params.get("steps", 3))):
            calls.append(context.job.id)
            context.report(step / 3, f"step {step}")
            time.sleep(float(context.job.params.get("pause", 0)))
        return {"steps": context.job.params.get("steps", 3)}

    def bad_media(context):
        raise MediaError("clip.mp4", "truncated moov atom")

    def bug(context):
        raise RuntimeError("an internal detail")

    kinds = [
        JobKind("test-steps", Permission.READ, steps),
        JobKind("test-media-error", Permission.READ, bad_media),
        JobKind("test-bug", Permission.READ, bug),
    ]
    for kind in kinds:
        register_kind(kind)
    yield calls
    for kind in kinds:
        JOB_KINDS.pop(kind.name, None)


def test_claim_takes_the_oldest_and_each_job_once(workspace, orgs):
    queue = JobQueue(workspace.engine)
    first = queue.enqueue("test-steps", {}, org_id=orgs[0])
    second = queue.enqueue("test-steps", {}, org_id=orgs[1])
    claimed = queue.claim("w1")
    assert claimed.id == first.id and claimed.state == "running" and claimed.attempts == 1
    assert claimed.lease_owner == "w1" and claimed.lease_expires_at
    assert queue.claim("w2").id == second.id
    assert queue.claim("w3") is None


def test_the_per_organisation_limit_holds_and_other_organisations_go_on(workspace, orgs):
    queue = JobQueue(workspace.engine, per_org_limit=1)
    a1 = queue.enqueue("test-steps", {}, org_id=orgs[0])
    queue.enqueue("test-steps", {}, org_id=orgs[0])
    b1 = queue.enqueue("test-steps", {}, org_id=orgs[1])
    assert queue.claim("w1").id == a1.id
    assert queue.claim("w2").id == b1.id  # studio is at its limit; rival is not
    assert queue.claim("w3") is None
    queue.finish(a1.id, "w1", state="succeeded", result={})
    assert queue.claim("w3").org_id == orgs[0]


def test_a_job_whose_worker_died_is_taken_over_after_its_lease(workspace, orgs):
    clock = Clock()
    queue = JobQueue(workspace.engine, lease_s=30, clock=clock)
    job = queue.enqueue("test-steps", {}, org_id=orgs[0])
    assert queue.claim("dead-worker").id == job.id
    clock.advance(10)
    assert queue.claim("w2") is None  # lease still held
    clock.advance(25)
    taken = queue.claim("w2")
    assert taken.id == job.id and taken.attempts == 2 and taken.lease_owner == "w2"
    assert "taken over" in taken.message
    with pytest.raises(LeaseLost):
        queue.heartbeat(job.id, "dead-worker")
    assert queue.finish(job.id, "dead-worker", state="succeeded", result={}) is False
    assert queue.finish(job.id, "w2", state="succeeded", result={"ok": True}) is True
    assert queue.get(job.id).result == {"ok": True}


def test_a_job_that_kills_every_worker_fails_after_its_attempts(workspace, orgs):
    clock = Clock()
    queue = JobQueue(workspace.engine, lease_s=5, clock=clock)
    job = queue.enqueue("test-steps", {}, org_id=orgs[0], max_attempts=2)
    for worker in ("w1", "w2"):
        assert queue.claim(worker).id == job.id
        clock.advance(6)
    assert queue.claim("w3") is None
    failed = queue.get(job.id)
    assert failed.state == "failed" and "every attempt" in failed.error


def test_heartbeats_keep_the_lease(workspace, orgs):
    clock = Clock()
    queue = JobQueue(workspace.engine, lease_s=5, clock=clock)
    job = queue.enqueue("test-steps", {}, org_id=orgs[0])
    queue.claim("w1")
    for _ in range(5):
        clock.advance(4)
        queue.heartbeat(job.id, "w1", progress=0.5, message="half")
    assert queue.claim("w2") is None
    assert queue.get(job.id).progress == 0.5


def test_worker_runs_a_job_and_records_progress_and_result(workspace, orgs, test_kinds):
    queue = JobQueue(workspace.engine)
    job = queue.enqueue("test-steps", {"steps": 3}, org_id=orgs[0])
    done = Worker(workspace, queue=queue).run_one()
    assert done.id == job.id and done.state == "succeeded" and done.progress == 1.0
    assert done.result == {"steps": 3} and done.finished_at and done.lease_owner is None
    assert Worker(workspace, queue=queue).run_one() is None


def test_cancel_a_queued_job_and_a_running_one(workspace, orgs, test_kinds):
    queue = JobQueue(workspace.engine, lease_s=3)
    queued = queue.enqueue("test-steps", {}, org_id=orgs[0])
    assert queue.cancel(queued.id).state == "cancelled"
    with pytest.raises(Conflict):
        queue.cancel(queued.id)
    running = queue.enqueue("test-steps", {"steps": 200, "pause": 0.02}, org_id=orgs[0])
    worker = Worker(workspace, queue=queue)
    thread = threading.Thread(target=worker.run_one)
    thread.start()
    deadline = time.monotonic() + 20
    while queue.get(running.id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    queue.cancel(running.id)
    thread.join(timeout=30)
    final = queue.get(running.id)
    assert final.state == "cancelled" and final.cancel_requested
    assert test_kinds.count(running.id) < 200


def test_a_worker_that_shuts_down_puts_its_running_job_back_in_the_queue(workspace, orgs, test_kinds):
    # The service's shutdown (and `likeness worker`'s SIGTERM) stopped claiming but let the running
    # job go on: the shutdown gave up waiting after 10 s and the job stayed "running" under a dead
    # lease until it ran out, and that claim counted against the job's attempts. Now the job stops
    # at its next progress report and goes back to the queue at once, its attempt not counted.
    queue = JobQueue(workspace.engine, lease_s=60)
    running = queue.enqueue("test-steps", {"steps": 500, "pause": 0.02}, org_id=orgs[0])
    worker = Worker(workspace, queue=queue)
    thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.05})
    thread.start()
    deadline = time.monotonic() + 20
    while test_kinds.count(running.id) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    back = queue.get(running.id)
    assert back.state == "queued" and back.lease_owner is None and back.attempts == 0, back
    assert "its worker shut down" in back.message
    assert test_kinds.count(running.id) < 500
    # Another worker takes it straight away (no lease to wait out), as its first attempt.
    taken = queue.claim("another-worker")
    assert taken is not None and taken.id == running.id and taken.attempts == 1


def test_a_job_released_again_and_again_fails_after_its_attempts(workspace, orgs):
    # A job whose worker is stopped every time it runs it (a job that gets its worker stopped, an
    # operator restarting workers in a loop) was released with its claim never counted: claimed
    # 20 times here and still queued, for ever. Past FREE_RELEASES releases each counts.
    queue = JobQueue(workspace.engine, lease_s=60)
    job = queue.enqueue("test-steps", {}, org_id=orgs[0], max_attempts=2)
    claims = 0
    for _ in range(20):
        if queue.claim(f"w{claims}") is None:
            break
        assert queue.release(job.id, f"w{claims}")
        claims += 1
    assert claims == FREE_RELEASES + 2, claims
    failed = queue.get(job.id)
    assert failed.state == "failed" and failed.attempts == 2 and "shut down" in failed.error, failed
    # a few releases are free: the next claim after one is the job's first attempt
    other = queue.enqueue("test-steps", {}, org_id=orgs[0], max_attempts=2)
    for _ in range(FREE_RELEASES):
        queue.claim("w")
        queue.release(other.id, "w")
    assert queue.get(other.id).attempts == 0 and queue.claim("w").attempts == 1


def test_failures_become_plain_reasons(workspace, orgs, test_kinds):
    queue = JobQueue(workspace.engine)
    media = queue.enqueue("test-media-error", {}, org_id=orgs[0])
    bug = queue.enqueue("test-bug", {}, org_id=orgs[0])
    unknown = queue.enqueue("no-such-kind", {}, org_id=orgs[0])
    worker = Worker(workspace, queue=queue, kinds=("test-media-error", "test-bug", "no-such-kind"))
    for _ in range(3):
        worker.run_one()
    assert queue.get(media.id).error == "clip.mp4: truncated moov atom"
    assert queue.get(bug.id).error.startswith("internal error (RuntimeError)")
    assert "an internal detail" not in queue.get(bug.id).error
    assert "unknown job kind" in queue.get(unknown.id).error


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time
    from likeness.config import Settings
    from likeness.service.roles import Permission
    from likeness.service.worker import JobKind, Worker, register_kind
    from likeness.workspace import Workspace

    def slow(context):
        for step in range(40):
            context.report(step / 40, f"step {step}")
            time.sleep(0.1)
        return {"finished_by": sys.argv[2]}

    register_kind(JobKind("test-slow", Permission.READ, slow))
    workspace = Workspace.open(Settings(home=sys.argv[1], job_lease_s=1.0))
    Worker(workspace, worker_id=sys.argv[2]).run_forever(poll_s=0.1, max_jobs=1)
""")


def test_kill_minus_9_of_a_worker_mid_job_is_recovered_by_another(workspace, orgs, tmp_path):
    queue = JobQueue(workspace.engine, lease_s=1.0)
    job = queue.enqueue("test-slow", {}, org_id=orgs[0])
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    home = str(workspace.home)
    first = subprocess.Popen([sys.executable, str(script), home, "first"], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = queue.get(job.id)
            if state.state == "running" and state.progress > 0.1:
                break
            time.sleep(0.1)
        assert queue.get(job.id).lease_owner == "first"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.run([sys.executable, str(script), home, "second"], env=env, timeout=120, check=False)
    assert second.returncode == 0
    done = queue.get(job.id)
    assert done.state == "succeeded" and done.attempts == 2 and done.result == {"finished_by": "second"}


# --- PostgreSQL -------------------------------------------------------------------------


def test_two_workers_on_postgresql_claim_each_job_once_within_the_org_limit(postgres_url, tmp_path, test_kinds):
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    workspace = Workspace.init(settings)
    try:
        studio = workspace.registry.add_org("studio").id
        rival = workspace.registry.add_org("rival").id
        queue = JobQueue(workspace.engine, per_org_limit=2)
        peak: dict[str, int] = {studio: 0, rival: 0}
        lock = threading.Lock()

        def observing(context):
            with workspace.engine.connect() as conn:
                running = conn.execute(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.org_id == context.job.org_id, Job.state == "running")
                ).scalar()
            with lock:
                peak[context.job.org_id] = max(peak[context.job.org_id], running)
            time.sleep(0.05)
            return {"by": context.job.lease_owner}

        register_kind(JobKind("test-observe", Permission.READ, observing))
        jobs = [queue.enqueue("test-observe", {}, org_id=studio if i % 3 else rival) for i in range(30)]
        workers = []
        for index in range(4):  # two worker processes' worth of threads each with its own engine
            own = Workspace.open(settings)
            workers.append((own, Worker(own, queue=JobQueue(own.engine, per_org_limit=2), worker_id=f"w{index}")))
        threads = [threading.Thread(target=w.run_forever, kwargs={"poll_s": 0.05}) for _, w in workers]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(queue.get(j.id).state != "succeeded" for j in jobs):
            time.sleep(0.1)
        for _, worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=30)
        finals = [queue.get(j.id) for j in jobs]
        assert all(j.state == "succeeded" and j.attempts == 1 for j in finals)
        assert len({j.result["by"] for j in finals}) >= 2  # the work was shared
        assert max(peak.values()) <= 2
        for own, _ in workers:
            own.close()
    finally:
        JOB_KINDS.pop("test-observe", None)
        workspace.close()


def test_concurrent_claims_on_postgresql_never_hand_out_a_job_twice(postgres_url, tmp_path):
    _claim_race(Settings(home=tmp_path / "home", database_url=postgres_url))


def test_concurrent_claims_on_sqlite_never_hand_out_a_job_twice(tmp_path):
    _claim_race(Settings(home=tmp_path / "home"))


def _claim_race(settings: Settings) -> None:
    workspace = Workspace.init(settings)
    try:
        org = workspace.registry.add_org("studio").id
        queue = JobQueue(workspace.engine, per_org_limit=100)
        for _ in range(40):
            queue.enqueue("verify", {}, org_id=org)
        claimed: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def claimer(index: int) -> None:
            opened = Workspace.open(settings)
            own = JobQueue(opened.engine, per_org_limit=100)
            barrier.wait()
            try:
                while (job := own.claim(f"w{index}")) is not None:
                    with lock:
                        claimed.append(job.id)
            finally:
                opened.close()

        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(claimed) == 40 and len(set(claimed)) == 40
    finally:
        workspace.close()


def test_a_jobs_releases_are_shown_on_the_api_and_the_console(service_world):
    """``jobs.releases`` was kept but shown nowhere: a job put back in the queue twice by a worker
    shutting down says so, with the releases after which claims count as attempts."""
    from likeness.service.roles import Role

    org_id = service_world.accounts.get_user(Role.VIEWER.value).org_id
    queue = JobQueue(service_world.workspace.engine, lease_s=60)
    job = queue.enqueue("verify", {"name": "v.jpg"}, org_id=org_id)
    for worker in ("w1", "w2"):
        assert queue.claim(worker) is not None and queue.release(job.id, worker)
    client = service_world.token_client(Role.VIEWER)
    assert client.get(f"/api/v1/jobs/{job.id}").json()["releases"] == 2
    english = client.get(f"/jobs/{job.id}", headers={"accept-language": "en"}).text
    assert f"released 2 times by a worker shutting down; attempts count after {FREE_RELEASES}" in english
    korean = client.get(f"/jobs/{job.id}", headers={"accept-language": "ko"}).text
    assert f"작업자 종료로 대기열에 2번 돌아옴 · {FREE_RELEASES}번을 넘으면 시도로 셈" in korean
    fresh = queue.enqueue("verify", {"name": "w.jpg"}, org_id=org_id)
    assert client.get(f"/api/v1/jobs/{fresh.id}").json()["releases"] == 0
    # a fresh job's line is there for the live page to fill, hidden and empty
    assert re.search(r"<p [^>]*data-job-releases[^>]* hidden></p>", client.get(f"/jobs/{fresh.id}").text)


def test_a_release_at_the_integer_limit_saturates_on_postgresql(postgres_url, tmp_path):
    _release_at_the_limit(Settings(home=tmp_path / "home", database_url=postgres_url))


def test_a_release_at_the_integer_limit_saturates_on_sqlite(tmp_path):
    _release_at_the_limit(Settings(home=tmp_path / "home"))


def _release_at_the_limit(settings: Settings) -> None:
    """``jobs.releases`` is a 32-bit column on PostgreSQL: a job released 2^31-1 times (or
    edited so) failed its next release with "integer out of range", so its worker could not put
    it back, while SQLite counted on past what PostgreSQL holds. Both stay at the limit."""
    from sqlalchemy import update

    limit = 2**31 - 1
    workspace = Workspace.init(settings)
    try:
        queue = JobQueue(workspace.engine, lease_s=60)
        job = queue.enqueue("test-steps", {}, org_id=workspace.registry.add_org("studio").id, max_attempts=5)
        assert queue.claim("w1") is not None
        with workspace.engine.begin() as conn:
            conn.execute(update(Job).where(Job.id == job.id).values(releases=limit))
        assert queue.release(job.id, "w1")
        back = queue.get(job.id)
        assert back.releases == limit and back.state == "queued" and back.attempts == 1, back
    finally:
        workspace.close()
