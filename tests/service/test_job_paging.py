"""Job lists page by (created_at, id): jobs enqueued in the same microsecond straddling a page
boundary are each listed once, on the API and on the console's jobs page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from likeness.service.jobs import JobQueue
from likeness.service.roles import Role

SAME_INSTANT = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)


def enqueue_at_one_instant(service_world, count: int) -> set[str]:
    org_id = service_world.accounts.get_user(Role.VIEWER.value).org_id
    queue = JobQueue(service_world.workspace.engine, clock=lambda: SAME_INSTANT)
    return {queue.enqueue("verify", {"name": f"v{i}.jpg"}, org_id=org_id).id for i in range(count)}


def test_api_pages_list_each_job_of_one_instant_once(service_world):
    enqueued = enqueue_at_one_instant(service_world, 7)
    client = service_world.token_client(Role.VIEWER)
    listed: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    for _ in range(5):
        page = client.get("/api/v1/jobs", params=params)
        assert page.status_code == 200, page.text
        listed += [job["id"] for job in page.json()["jobs"]]
        if page.json()["next_before"] is None:
            break
        params["before"] = page.json()["next_before"]
    assert sorted(listed) == sorted(enqueued)


def test_console_older_link_lists_each_job_of_one_instant_once(service_world):
    enqueued = enqueue_at_one_instant(service_world, 52)
    client = service_world.client()
    service_world.login(client, Role.VIEWER.value)
    first = client.get("/jobs", headers={"accept": "text/html"})
    older = re.search(r'href="(/jobs\?before=[^"]+)"', first.text)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&"), headers={"accept": "text/html"})
    listed = re.findall(r'href="/jobs/([0-9a-f]{32})"', first.text) + re.findall(
        r'href="/jobs/([0-9a-f]{32})"', second.text
    )
    assert sorted(listed) == sorted(enqueued)


def test_a_cursor_that_is_not_a_page_cursor_is_refused_by_name(service_world):
    """Compared as text, "garbage" sorted after every date (the first page again) and "'" before
    all (an empty list): a cursor no page gave is a 422 naming it, on the API and the console."""
    enqueue_at_one_instant(service_world, 2)
    client = service_world.token_client(Role.VIEWER)
    for cursor in ("garbage", "' OR 1=1 --", "~", "~~~", "2026-12-01~", "é~ü", "2026-12-01T09:00:00.123456Z~a~b"):
        page = client.get("/api/v1/jobs", params={"before": cursor})
        assert page.status_code == 422, (cursor, page.text)
        assert "not a page cursor" in page.json()["detail"]
    bare = client.get("/api/v1/jobs", params={"before": "2026-12-01T09:00:00.123457Z"})
    assert bare.status_code == 200 and len(bare.json()["jobs"]) == 2
    browser = service_world.client()
    service_world.login(browser, Role.VIEWER.value)
    page = browser.get("/jobs", params={"before": "garbage" * 1000}, headers={"accept": "text/html"})
    assert page.status_code == 422 and "not a page cursor" in page.text
