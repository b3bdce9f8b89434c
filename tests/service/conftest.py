"""Service fixtures: a workspace with organisation ``studio`` (the consent world), one user per
role with a password and an API token, and an in-process client of the app.

Passwords are hashed with cheap argon2 parameters here (the product uses argon2-cffi's
defaults); everything else is the product's code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from likeness.config import Settings
from likeness.service.accounts import Accounts
from likeness.service.app import create_app
from likeness.service.roles import Role
from likeness.workspace import Workspace

PASSWORD = "correct horse battery staple"
SRC = Path(__file__).resolve().parents[2] / "src"


def worker_process(home: Path, **settings: object) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of a ``likeness worker`` process that runs one job of the
    workspace at ``home``, with ``settings`` as ``LIKENESS_...`` variables."""
    command = [sys.executable, "-m", "likeness.cli", "--home", str(home), "worker", "--max-jobs", "1", "--poll", "0.1"]
    env = {**os.environ, "PYTHONPATH": str(SRC), **{f"LIKENESS_{k.upper()}": str(v) for k, v in settings.items()}}
    return command, env


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class ServiceWorld:
    settings: Settings
    workspace: Workspace
    accounts: Accounts
    app: object
    tokens: dict[Role, str] = field(default_factory=dict)
    consent: Any = None  # tests.conftest.ConsentWorld: studio, mina's grant, jun's release

    def client(self, **kwargs) -> TestClient:
        return TestClient(self.app, **kwargs)

    def token_client(self, role: Role, **kwargs) -> TestClient:
        client = TestClient(self.app, **kwargs)
        client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def login(self, client: TestClient, username: str, password: str = PASSWORD) -> str:
        """Sign in through the console form; returns the session's CSRF token."""
        page = client.get("/login")
        assert page.status_code == 200
        csrf = client.cookies.get("likeness_login_csrf")
        response = client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf, "next": "/console"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        session = self.accounts.session_for(client.cookies.get("likeness_session"))
        return session.csrf_token


def build_service_world(settings: Settings, workspace: Workspace) -> ServiceWorld:
    from tests.conftest import build_consent_world

    consent = build_consent_world(workspace, settings.resolved_home.parent)
    accounts = Accounts(workspace, hasher=cheap_hasher())
    world = ServiceWorld(settings, workspace, accounts, create_app(settings, workspace=workspace, accounts=accounts))
    world.consent = consent
    for role in Role:
        user = accounts.add_user(role.value, PASSWORD, role, display_name=f"{role.value.title()} user")
        world.tokens[role] = accounts.create_token(user, f"{role.value} tests")[0]
    return world


@pytest.fixture
def service_world(settings: Settings, workspace: Workspace) -> Iterator[ServiceWorld]:
    yield build_service_world(settings, workspace)


@pytest.fixture
def live_service(service_world: ServiceWorld, tmp_path: Path) -> Iterator[str]:
    """The app on a loopback port (Uvicorn in a thread) with a worker thread beside it."""
    from tests.browser import free_port, serving, working
    from tests.conftest import ConsentWorld

    ConsentWorld(service_world.workspace, tmp_path).enroll_faces()
    port = free_port()
    with serving(service_world.app, port), working(service_world.workspace, join_s=60):
        yield f"http://127.0.0.1:{port}"
