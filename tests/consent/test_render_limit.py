"""The render limit holds under races: the count and the reservation are one transaction.

20 parallel attempts (threads; on SQLite also separate processes) against a grant allowing one
render: exactly one gets the slot, every round, on SQLite and on PostgreSQL. A refund frees the
slot exactly once; deleting reservation rows frees nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.workspace import Workspace
from tests.conftest import add_subject, issue_grant

ATTEMPTS = 20
ROUNDS = 3


def _limited_subject(ws: Workspace, slug: str, max_renders: int = 1) -> str:
    reg = ws.registry
    if not reg.list_orgs():
        reg.add_org("studio")
    add_subject(reg, slug, slug.title(), kind="artist")
    return issue_grant(
        reg,
        slug,
        "studio",
        ["music_video", "fan_message"],
        max_renders=max_renders,
        valid_until=now_utc() + timedelta(days=1),
    )


def _race(ws: Workspace, slug: str, round_no: int) -> Counter:
    """ATTEMPTS threads, each with its own authorization, reserve a slot at the same moment."""
    authorizations = [ws.policy.authorize(slug, "music_video", "studio") for _ in range(ATTEMPTS)]
    barrier = threading.Barrier(ATTEMPTS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            authorizations[i].consume_render(f"job-{round_no}-{i}")
            result = "reserved"
        except ConsentError as exc:
            result = exc.reason
        except Exception as exc:  # surfaced in the assertion, never swallowed
            result = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return Counter(outcomes)


def _check_rounds(ws: Workspace) -> None:
    for round_no in range(ROUNDS):
        slug = f"ari{round_no}"
        grant_id = _limited_subject(ws, slug)
        outcomes = _race(ws, slug, round_no)
        assert outcomes == Counter({"reserved": 1, "render_limit_reached": ATTEMPTS - 1}), outcomes
        assert ws.registry.render_count(grant_id) == 1
        assert len(ws.ledger.find("render.reserved", grant_id=grant_id)) == 1
    assert ws.ledger.verify().ok


def test_parallel_renders_on_sqlite_get_exactly_one_slot(workspace):
    _check_rounds(workspace)


def test_parallel_renders_on_postgresql_get_exactly_one_slot(postgres_url, tmp_path):
    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        _check_rounds(ws)
    finally:
        ws.close()


_WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from likeness.config import Settings
    from likeness.errors import ConsentError
    from likeness.workspace import Workspace

    home, go, job = sys.argv[1:4]
    ws = Workspace.open(Settings(home=Path(home)))
    authz = ws.policy.authorize("ari", "music_video", "studio")
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.002)
    try:
        authz.consume_render(job)
        print("reserved", flush=True)
    except ConsentError as exc:
        print(exc.reason, flush=True)
    ws.close()
""")


@pytest.mark.slow
def test_parallel_render_processes_on_sqlite_get_exactly_one_slot(workspace, tmp_path):
    grant_id = _limited_subject(workspace, "ari")
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(workspace.home), str(go), f"proc-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(ATTEMPTS)
    ]
    try:
        for worker in workers:  # every process authorized before anyone reserves
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        go.touch()
        outcomes = Counter()
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            outcomes[out.strip()] += 1
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert outcomes == Counter({"reserved": 1, "render_limit_reached": ATTEMPTS - 1}), outcomes
    assert workspace.registry.render_count(grant_id) == 1


def test_refund_frees_the_slot_exactly_once(workspace):
    grant_id = _limited_subject(workspace, "ari")
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-a")
    authz.consume_render("job-a")  # a resumed job counts once
    assert pytest.raises(ConsentError, authz.consume_render, "job-b").value.reason == "render_limit_reached"

    assert authz.refund_render("job-a", "signing failed") is True
    assert authz.refund_render("job-a", "signing failed") is False  # nothing left to give back
    assert authz.refund_render("job-never", "no face") is False
    assert workspace.registry.render_count(grant_id) == 0
    refunded = workspace.ledger.find("render.refunded", grant_id=grant_id)
    assert [e.payload["reason"] for e in refunded] == ["signing failed"]

    authz.consume_render("job-b")  # the freed slot, once
    assert pytest.raises(ConsentError, authz.consume_render, "job-c").value.reason == "render_limit_reached"
    authz.refund_render("job-b", "no face swapped")
    authz.consume_render("job-a")  # a refunded job that is run again counts again
    assert workspace.registry.render_count(grant_id) == 1


def test_parallel_refunds_free_one_slot(workspace):
    grant_id = _limited_subject(workspace, "ari")
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-a")
    barrier = threading.Barrier(8)
    freed: list[bool] = []

    def refund() -> None:
        barrier.wait()
        freed.append(authz.refund_render("job-a", "render failed"))

    threads = [threading.Thread(target=refund) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(freed) == [False] * 7 + [True]
    assert len(workspace.ledger.find("render.refunded", grant_id=grant_id)) == 1


def test_a_completed_render_is_not_refunded(workspace):
    _limited_subject(workspace, "ari", max_renders=3)
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-done")
    authz.record("render.completed", {"job_id": "job-done", "output_sha256": "0" * 64})
    error = pytest.raises(ConsentError, authz.refund_render, "job-done", "changed my mind").value
    assert error.reason == "render_completed"


def test_deleting_reservation_rows_frees_no_slot(workspace):
    """Attack: delete render_consumptions rows to reset the count; the ledger still counts."""
    grant_id = _limited_subject(workspace, "ari")
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-a")
    with workspace.engine.begin() as conn:
        conn.execute(text("DELETE FROM render_consumptions"))
    assert workspace.registry.render_count(grant_id) == 1
    assert pytest.raises(ConsentError, authz.consume_render, "job-b").value.reason == "render_limit_reached"
    refused = pytest.raises(ConsentError, workspace.policy.authorize, "ari", "fan_message", "studio").value
    assert refused.reason == "render_limit_reached"


def test_every_final_media_use_counts_against_the_limit(workspace):
    _limited_subject(workspace, "ari", max_renders=2)
    workspace.policy.authorize("ari", "music_video", "studio").consume_render("job-mv")
    workspace.policy.authorize("ari", "fan_message", "studio").consume_render("job-fan")
    for use in ("music_video", "fan_message"):
        error = pytest.raises(ConsentError, workspace.policy.authorize, "ari", use, "studio").value
        assert error.reason == "render_limit_reached"


def test_reservation_waits_for_a_held_grant(workspace):
    """While one transaction holds the grant, another reservation waits instead of counting."""
    from sqlalchemy.orm import Session

    from likeness.consent.ledger import begin_serialized

    grant_id = _limited_subject(workspace, "ari")
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    done = threading.Event()
    with Session(workspace.engine) as holder:
        begin_serialized(holder, f"likeness.grant.{grant_id}")
        worker = threading.Thread(target=lambda: (authz.consume_render("job-w"), done.set()))
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
        holder.rollback()
    worker.join(timeout=60)
    assert done.is_set() and workspace.registry.render_count(grant_id) == 1
