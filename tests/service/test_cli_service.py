"""The service's commands: ``user add`` bootstraps the first admin, ``token create``, and
``likeness serve --with-worker`` / ``likeness worker`` as real processes on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest
from typer.testing import CliRunner

from likeness.cli import app

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "a long admin password"


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    result = runner.invoke(app, ["--home", str(home), "init", "--org", "studio"])
    assert result.exit_code == 0, result.output
    return home


def run(home, *args: str, code: int = 0, stdin: str | None = None):
    result = runner.invoke(app, ["--home", str(home), *args], input=stdin)
    assert result.exit_code == code, (args, result.output)
    return result


def test_user_add_bootstraps_the_first_admin_and_token_create_prints_a_secret(home):
    assert (
        "added root (admin) to studio"
        in run(home, "user", "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n").output
    )
    run(home, "user", "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n", code=1)
    assert (
        "unknown role"
        in run(home, "user", "add", "x1", "--role", "god", "--password-stdin", stdin=PASSWORD + "\n", code=1).output
    )
    assert "at least 12" in run(home, "user", "add", "x2", "--password-stdin", stdin="short\n", code=1).output
    run(home, "user", "add", "jiwoo", "--role", "legal", "--password-stdin", stdin=PASSWORD + "\n")
    assert "jiwoo is now viewer" in run(home, "user", "role", "jiwoo", "viewer").output
    listing = [line.split() for line in run(home, "user", "list").output.splitlines()]
    assert ["root", "admin", "studio", "active"] in listing and ["jiwoo", "viewer", "studio", "active"] in listing
    secret = run(home, "token", "create", "root", "--name", "backup script").stdout.strip().splitlines()[-1]
    assert secret.startswith("lk_")
    run(home, "token", "create", "jiwoo", "--role", "legal", code=1)  # more than jiwoo's role


def test_every_service_command_has_help():
    for path in (["serve"], ["worker"], ["user", "add"], ["user", "list"], ["user", "role"], ["token", "create"]):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.slow
def test_serve_and_worker_processes_verify_an_upload(home, astronaut, tmp_path):
    run(home, "user", "add", "legal", "--role", "legal", "--password-stdin", stdin=PASSWORD + "\n")
    secret = run(home, "token", "create", "legal").stdout.strip().splitlines()[-1]
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "LIKENESS_HOME": str(home)}
    launcher = "import sys; from likeness.cli import main; sys.argv[0] = 'likeness'; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", launcher, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", launcher, "worker", "--poll", "0.2", "--max-jobs", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/api/v1/health")
        image = tmp_path / "photo.jpg"
        cv2.imwrite(str(image), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
        headers = {"Authorization": f"Bearer {secret}"}
        with image.open("rb") as handle:
            created = httpx.post(
                f"{base}/api/v1/verifications",
                headers=headers,
                files={"file": ("photo.jpg", handle, "image/jpeg")},
                timeout=30,
            )
        assert created.status_code == 202, created.text
        job_url = base + created.headers["location"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            job = httpx.get(job_url, headers=headers, timeout=10).json()
            if job["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.3)
        assert job["state"] == "succeeded", job
        assert job["result"]["verification"]["verdict"] == "no-enrolled-artist"
        assert worker.wait(timeout=60) == 0  # --max-jobs 1
    finally:
        for process in (server, worker):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            if process.stdout:
                process.stdout.close()
