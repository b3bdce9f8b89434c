"""The API and two workers append to the ledger at the same time on PostgreSQL: the hash chain
stays intact and no event is lost (at least 200 interleaved appends)."""

from __future__ import annotations

import threading
from itertools import pairwise

from likeness.config import Settings
from likeness.service.accounts import Accounts
from likeness.service.app import create_app
from likeness.service.jobs import JobQueue
from likeness.service.roles import Permission, Role
from likeness.service.worker import JOB_KINDS, JobKind, Worker, register_kind
from likeness.workspace import Workspace

from .conftest import PASSWORD, cheap_hasher

JOBS, EVENTS_PER_JOB, API_APPENDS = 8, 15, 90


def test_api_and_two_workers_append_concurrently_on_postgresql(postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    settings = Settings(home=tmp_path / "home", database_url=postgres_url, jobs_per_org=4)
    workspace = Workspace.init(settings)
    opened = []
    try:
        org = workspace.registry.add_org("studio").id
        accounts = Accounts(workspace, hasher=cheap_hasher())
        user = accounts.add_user("legal", PASSWORD, Role.LEGAL)
        token, _ = accounts.create_token(user, "load")
        app = create_app(settings, workspace=workspace, accounts=accounts)

        def appending(context):
            for index in range(EVENTS_PER_JOB):
                context.workspace.ledger.append("test.worker_event", {"job": context.job.id, "index": index})
            return {"appended": EVENTS_PER_JOB}

        register_kind(JobKind("test-ledger", Permission.READ, appending))
        queue = JobQueue(workspace.engine, per_org_limit=4)
        jobs = [queue.enqueue("test-ledger", {}, org_id=org) for _ in range(JOBS)]
        before = workspace.ledger.count()

        workers = []
        for index in range(2):
            own = Workspace.open(settings)
            opened.append(own)
            workers.append(Worker(own, queue=JobQueue(own.engine, per_org_limit=4), worker_id=f"w{index}"))

        def api_calls() -> None:
            client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
            for index in range(API_APPENDS):
                assert client.post("/api/v1/tokens", json={"name": f"t{index}", "role": "viewer"}).status_code == 201

        threads = [threading.Thread(target=api_calls)]
        threads += [
            threading.Thread(target=w.run_forever, kwargs={"poll_s": 0.05, "max_jobs": JOBS // 2}) for w in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert all(queue.get(j.id).state == "succeeded" for j in jobs)
        expected = JOBS * EVENTS_PER_JOB + API_APPENDS
        assert expected >= 200
        assert workspace.ledger.count() - before == expected
        report = workspace.ledger.verify()
        assert report.ok, report.problem
        worker_events = workspace.ledger.events("test.worker_event")
        assert len({(e.payload["job"], e.payload["index"]) for e in worker_events}) == JOBS * EVENTS_PER_JOB
        # interleaved: the API's events sit between the workers' events, not after them
        kinds = [e.event_type for e in workspace.ledger.page(after=before, limit=expected)]
        switches = sum(1 for a, b in pairwise(kinds) if a != b)
        assert switches >= 10
    finally:
        JOB_KINDS.pop("test-ledger", None)
        for own in opened:
            own.close()
        workspace.close()
