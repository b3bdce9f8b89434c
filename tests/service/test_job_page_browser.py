"""A job's page in the browser follows the job live: its release line ("released N times by a
worker shutting down") and its attempt count change with the rest of the page, in English and
Korean."""

from __future__ import annotations

from likeness.service.jobs import FREE_RELEASES, JobQueue
from likeness.service.roles import Role
from tests.browser import LOCALES, free_port, new_page, serving, sign_in

from .conftest import PASSWORD

WORDS = {
    "en": ("released once by a worker shutting down", "released 2 times by a worker shutting down"),
    "ko": ("작업자 종료로 대기열에 1번 돌아옴", "작업자 종료로 대기열에 2번 돌아옴"),
}


def test_the_job_page_shows_each_release_as_it_happens(browser, service_world):
    """The line was drawn once, with the page: a job released while its page was open (or one
    first released then) kept saying nothing, or an older count, while its state moved on."""
    org_id = service_world.accounts.get_user(Role.VIEWER.value).org_id
    queue = JobQueue(service_world.workspace.engine, lease_s=60)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(service_world.app, port):
        for language, locale in LOCALES.items():
            job = queue.enqueue("verify", {"name": "v.jpg"}, org_id=org_id)
            context, page, errors = new_page(browser, "laptop", locale)
            try:
                page.goto(f"{base}/login?next=/jobs/{job.id}")
                sign_in(page, base, "viewer", PASSWORD, f"/jobs/{job.id}")
                line = page.locator("[data-job-releases]")
                assert line.is_hidden()
                once, twice = WORDS[language]
                for worker, words in (("w1", once), ("w2", twice)):
                    assert queue.claim(worker) is not None and queue.release(job.id, worker)
                    page.wait_for_function(
                        "words => document.querySelector('[data-job-releases]').textContent.includes(words)",
                        arg=words,
                        timeout=15_000,
                    )
                assert line.is_visible() and f"{FREE_RELEASES}" in line.text_content()
                assert errors == [], errors
            finally:
                context.close()
            queue.cancel(job.id, org_id=org_id)
