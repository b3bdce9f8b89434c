"""The app's surface: OpenAPI 3.1, RFC 9457 problems for every error, security headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from likeness.errors import RegistryError
from likeness.service.app import create_app
from likeness.service.roles import Role
from likeness.service.security import CSP, LANG_COOKIE

PROBLEM = "application/problem+json"


def test_openapi_is_3_1_and_every_operation_declares_its_permission_and_problems(service_world):
    schema = service_world.client().get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) >= 15
    for operation in operations:
        assert operation["x-permission"], operation["operationId"]
        assert "default" in operation["responses"]
        assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    # no console pages and no third-party documentation pages in the API
    assert not any(p.startswith(("/login", "/docs", "/redoc")) for p in schema["paths"])
    assert service_world.client().get("/docs").status_code == 404


def test_unknown_path_wrong_method_and_bad_parameters_are_problems(service_world):
    client = service_world.token_client(Role.VIEWER)
    for response, status in (
        (client.get("/api/v1/no-such-thing"), 404),
        (client.delete("/api/v1/ledger"), 405),
        (client.get("/api/v1/jobs", params={"limit": "many"}), 422),
        (client.get("/api/v1/ledger", params={"after": -1}), 422),
        (client.get("/api/v1/jobs/0123"), 404),
    ):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["status"] == status and body["type"].startswith("urn:likeness:problem:")
        assert body["title"] and body["detail"]
    invalid = client.get("/api/v1/jobs", params={"limit": "many"}).json()
    assert invalid["errors"] == [{"where": "query.limit", "problem": invalid["errors"][0]["problem"]}]


def test_a_long_id_is_not_echoed_back_whole(service_world):
    # A long job id came back twice in the 404 (the detail and the instance): 200 KB answered
    # to a 100,000-character id, for anyone holding a token.
    client = service_world.token_client(Role.STUDIO)
    long_id = "a" * 50_000  # httpx sends URLs up to 64 KiB
    response = client.get(f"/api/v1/jobs/{long_id}")
    assert response.status_code == 404, response.text[:200]
    body = response.json()
    assert len(response.content) < 2_000, len(response.content)
    assert body["detail"].startswith("no job aaaa") and body["detail"].endswith("…")
    assert body["instance"].startswith("/api/v1/jobs/aaaa") and body["instance"].endswith("…")


def test_malformed_json_body_is_a_problem(service_world):
    client = service_world.token_client(Role.VIEWER)
    response = client.post("/api/v1/tokens", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


def test_unexpected_exception_is_a_500_problem_without_traceback(service_world, caplog):
    app = service_world.app

    @app.get("/api/v1/test-crash")
    def crash() -> None:
        raise RuntimeError("secret internals /srv/likeness/key.pem")

    response = service_world.client(raise_server_exceptions=False).get("/api/v1/test-crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["error_id"] and body["error_id"] in body["detail"]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.headers["content-security-policy"] == CSP  # headers even on a crash
    assert any(body["error_id"] in r.getMessage() for r in caplog.records)


def _enrolling_routes(service_world, **options: str) -> str:
    """Routes (``/api/v1/test-enrol``, ``/console/test-enrol``) that enrol subject sora under
    jun's rights holder with ``options``, once byeol joined the workspace; the holder's slug."""
    app, registry = service_world.app, service_world.workspace.registry
    registry.add_org("byeol", "Byeol Entertainment")
    holder = registry.get_subject("jun").holder_slug

    @app.post("/api/v1/test-enrol")
    @app.post("/console/test-enrol")
    def enrol() -> None:
        registry.add_subject("sora", "Sora", holder=holder, **options)

    return holder


def test_a_subject_enrolled_naming_no_organisation_among_several_is_a_409_that_says_so(service_world):
    """Not a 404: nothing is missing, the request must name the organisation that enrols."""
    _enrolling_routes(service_world)
    sentence = "subject 'sora': this workspace has several organisations (byeol, studio) and none was named"
    response = service_world.client().post("/api/v1/test-enrol")
    assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:likeness:problem:enrolling-org-unnamed"
    assert body["title"] == "No enrolling organisation was named"
    assert body["detail"].startswith(sentence) and "--org" in body["detail"]
    for lang, title in (("en", "No enrolling organisation was named"), ("ko", "등록하는 소속사가 지정되지 않았습니다")):
        page = service_world.client(cookies={LANG_COOKIE: lang}).post(
            "/console/test-enrol", headers={"accept": "text/html"}
        )
        assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
        assert f"409 · {title}" in page.text and sentence.replace("'", "&#39;") in page.text


def test_a_subject_enrolled_under_another_organisations_holder_is_a_409_that_says_so(service_world):
    """Not a 404: the holder exists, and only the organisation that onboarded them enrols."""
    holder = _enrolling_routes(service_world, org="byeol")
    sentence = f"subject 'sora': organisation 'byeol' may not enrol it under rights holder '{holder}'"
    response = service_world.client().post("/api/v1/test-enrol")
    assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:likeness:problem:enroller-not-onboarding-org"
    assert body["detail"].startswith(sentence) and "onboarded by organisation 'studio'" in body["detail"]
    titles = (
        ("en", "Only the holder&#39;s onboarding organisation enrols their subjects"),
        ("ko", "권리자를 등록한 소속사만 그 권리자의 대상을 등록할 수 있습니다"),
    )
    for lang, title in titles:
        page = service_world.client(cookies={LANG_COOKIE: lang}).post(
            "/console/test-enrol", headers={"accept": "text/html"}
        )
        assert page.status_code == 409 and f"409 · {title}" in page.text
    with pytest.raises(RegistryError, match="no subject 'sora'"):
        service_world.workspace.registry.get_subject("sora")


def test_security_headers_and_strict_csp_on_api_console_and_errors(service_world):
    client = service_world.client()
    for path in ("/api/v1/health", "/login", "/api/v1/nothing", "/static/console.css"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
    assert "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
    assert client.get("/api/v1/health").headers["cache-control"] == "no-store"
    # over HTTPS (as behind a TLS terminator that sets the scheme): HSTS too
    https = service_world.client(base_url="https://testserver")
    assert "max-age" in https.get("/api/v1/health").headers["strict-transport-security"]


def test_console_errors_are_pages_for_browsers_and_sign_in_redirects(service_world):
    client = service_world.client()
    page = client.get("/jobs", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/jobs"
    missing = client.get("/nowhere", headers={"accept": "text/html"})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "404" in missing.text


def test_a_large_json_body_is_refused_before_it_is_read_whole(service_world):
    client = service_world.token_client(Role.VIEWER)
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/tokens", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"x" * 65536

    streamed = client.post("/api/v1/tokens", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_a_database_that_refuses_writes_is_a_503_naming_no_server_file(service_world, caplog):
    # The CLI names the database file (workspace._engine's hook); the service tells its client
    # less, and its log the rest. Before, a read-only database was an unhandled 500.
    import sqlalchemy

    engine = service_world.workspace.engine

    def query_only(connection, _record) -> None:
        connection.execute("PRAGMA query_only=ON")  # what a read-only file does to a write

    sqlalchemy.event.listen(engine, "connect", query_only)
    engine.dispose()
    try:
        response = service_world.token_client(Role.STUDIO).post("/api/v1/tokens", json={"name": "laptop"})
    finally:
        sqlalchemy.event.remove(engine, "connect", query_only)
        engine.dispose()
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    detail = response.json()["detail"]
    assert detail.startswith("the database refused the write; quote ") and "likeness.db" not in response.text
    logged = [r.getMessage() for r in caplog.records if "database refused a write" in r.getMessage()]
    assert logged and "likeness.db: cannot write the database (attempt to write a readonly database)" in logged[0]


def test_a_database_another_writer_holds_is_a_503_to_retry(service_world):
    # Trial 10: SQLite giving up on another connection's write lock (after its busy timeout,
    # 30 s in the product, 0.1 s here) was an "unexpected error" 500.
    import sqlite3

    import sqlalchemy

    engine = service_world.workspace.engine

    def short_wait(connection, _record) -> None:
        connection.execute("PRAGMA busy_timeout=100")

    sqlalchemy.event.listen(engine, "connect", short_wait)
    engine.dispose()
    holder = sqlite3.connect(service_world.settings.resolved_home / "likeness.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        client = service_world.token_client(Role.STUDIO, raise_server_exceptions=False)
        response = client.post("/api/v1/tokens", json={"name": "laptop"})
    finally:
        holder.rollback()
        holder.close()
        sqlalchemy.event.remove(engine, "connect", short_wait)
        engine.dispose()
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM, response.text
    assert response.headers["retry-after"] == "5" and response.json()["title"] == "The database is busy"
    assert "likeness.db" not in response.text


def test_shutdown_closes_the_public_checker_and_stops_the_worker(settings, workspace, astronaut, tmp_path):
    from likeness.media import write_image
    from tests.service.conftest import build_service_world

    world = build_service_world(settings, workspace)
    app = create_app(settings, workspace=workspace, accounts=world.accounts, with_worker=True)
    services = app.state.services
    with TestClient(app):
        services.public_checker.verify(write_image(tmp_path / "a.png", astronaut), wait_s=120)
        verifier = services.public_checker._verifier
        assert verifier._image_detector is not None
    assert services.public_checker._verifier is None and verifier._image_detector is None
    assert services.worker.stopping.is_set() and not services.worker_thread.is_alive()


def test_shutdown_puts_the_worker_s_running_job_back_in_the_queue(settings, workspace):
    # Shutdown waited 10 s for the in-process worker's job and then left it "running" under a
    # lease nobody renewed; another worker could take it only once the lease ran out.
    import threading
    import time

    from likeness.service.jobs import JobQueue
    from likeness.service.roles import Permission
    from likeness.service.worker import JOB_KINDS, JobKind, register_kind
    from tests.service.conftest import build_service_world

    started = threading.Event()

    def long_job(context):
        for step in range(600):
            started.set()
            context.report(step / 600, f"step {step}")
            time.sleep(0.05)
        return {}

    register_kind(JobKind("test-long", Permission.READ, long_job))
    try:
        world = build_service_world(settings, workspace)
        app = create_app(settings, workspace=workspace, accounts=world.accounts, with_worker=True)
        org = workspace.registry.get_org("studio")
        job = JobQueue(workspace.engine).enqueue("test-long", {}, org_id=org.id)
        with TestClient(app):
            assert started.wait(30)
    finally:
        JOB_KINDS.pop("test-long", None)
    back = JobQueue(workspace.engine).get(job.id)
    assert back.state == "queued" and back.lease_owner is None and back.attempts == 0, back
    assert not app.state.services.worker_thread.is_alive()
