"""The service's app factory: ``create_app(settings)`` over the same workspace as the CLI.

Example::

    from likeness.config import Settings
    from likeness.service import create_app
    app = create_app(Settings(home="likeness-home"))   # uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from likeness import __version__
from likeness.config import Settings
from likeness.service.accounts import Accounts
from likeness.service.forms import strict_form
from likeness.service.jobs import JobQueue
from likeness.service.problems import (
    MEDIA_TYPE,
    PROBLEM_SCHEMA,
    CrashToProblem,
    install_problem_handlers,
)
from likeness.service.security import BodyLimit, RateLimiter, SecurityHeaders, UploadSlots
from likeness.service.uploads import UploadLimits

OPENAPI_PATH = "/api/v1/openapi.json"
#: How long shutdown waits for the in-process worker's job to stop at its next progress report
#: and go back to the queue; a job that reports no progress for longer is taken over by another
#: worker once its lease runs out.
WORKER_STOP_WAIT_S = 10.0


@dataclass
class Services:
    """What the routes use, built once per app."""

    settings: Settings
    workspace: Any
    accounts: Accounts
    queue: JobQueue
    limits: UploadLimits
    #: signed-in uploads still arriving: the rate limit counts starts, and each holds a part file
    uploads: UploadSlots
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(5, 300.0))
    upload_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(60, 60.0))
    #: Unauthenticated passkey sign-in ceremonies per client address (each one is a stored row).
    ceremony_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(20, 60.0))
    public_checker: Any = None  # likeness.service.public.PublicChecker
    public_limiter: RateLimiter | None = None
    worker: Any = None
    worker_thread: threading.Thread | None = None
    #: (the ledger head they were worked out at, ``public.page_names``)
    page_names_at: tuple[Any, str] | None = None


def create_app(
    settings: Settings, *, workspace: Any = None, accounts: Accounts | None = None, with_worker: bool = False
) -> FastAPI:
    """The FastAPI app. ``workspace``: an open ``Workspace`` (default: open ``settings``'
    workspace). ``with_worker``: also run jobs in a thread of this process (a laptop)."""
    from likeness.service import job_kinds  # noqa: F401  (registers the job kinds)
    from likeness.service.api import router as api_router
    from likeness.service.console import install_console
    from likeness.service.portal import install_portal
    from likeness.service.public import install_public
    from likeness.workspace import Workspace

    workspace = workspace or Workspace.open(settings)
    services = Services(
        settings=settings,
        workspace=workspace,
        accounts=accounts or Accounts(workspace),
        queue=JobQueue.for_workspace(workspace),
        limits=UploadLimits(settings.upload_max_image_bytes, settings.upload_max_video_bytes),
        uploads=UploadSlots(settings.uploads_per_user, settings.uploads_at_once, client="this account"),
    )
    app = FastAPI(
        lifespan=_lifespan,
        # Every form route refuses fields it does not take (likeness.service.forms).
        dependencies=[Depends(strict_form)],
        title="likeness",
        version=__version__,
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        description="Consent-bound face synthesis, labelling and verification: the agency's service.",
    )
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(api_router)
    install_console(app)
    install_public(app)
    install_portal(app)
    # Added last = outermost: the security headers wrap the crash handler's 500 too.
    app.add_middleware(BodyLimit)
    app.add_middleware(CrashToProblem)
    app.add_middleware(SecurityHeaders)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if with_worker:
        _start_worker_thread(services)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI 3.1 of the API routes, with RFC 9457 problems as every operation's error answer
    (FastAPI's own 422 schema is not what this service sends)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (likeness token create)"},
        "session": {"type": "apiKey", "in": "cookie", "name": "likeness_session"},
    }
    problem_response = {
        "description": "a problem (RFC 9457)",
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = problem_response
            if operation.get("x-permission") != "public":
                operation["security"] = [{"bearer": []}, {"session": []}]
    app.openapi_schema = schema
    return schema


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """On shutdown, stop the in-process worker and close the public checker's verifier (its
    MediaPipe graphs and ONNX sessions), which nothing else would release."""
    yield
    services = app.state.services
    if services.worker is not None:
        services.worker.stop()
    if services.worker_thread is not None:  # off the event loop: other requests still end
        await asyncio.to_thread(services.worker_thread.join, WORKER_STOP_WAIT_S)
    if services.public_checker is not None:
        services.public_checker.close()


def _start_worker_thread(services: Services) -> None:
    from likeness.service.worker import Worker

    worker = Worker(services.workspace)
    thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 1.0}, daemon=True, name="likeness-worker")
    thread.start()
    services.worker, services.worker_thread = worker, thread
