"""``likeness audit verify --anchor DIR``: a folder named on the command line that holds no
anchor fails the check (finding 27); the configured default folders only warn."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from likeness.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    result = runner.invoke(app, ["--home", str(home), "init", "--org", "studio"])
    assert result.exit_code == 0, result.output
    return home


def run(home, *args: str, code: int = 0, env: dict | None = None):
    result = runner.invoke(app, ["--home", str(home), *args], env=env)
    assert result.exit_code == code, (args, result.output)
    return result


def test_named_folder_without_an_anchor_fails(home, tmp_path):
    anchors = tmp_path / "anchors"
    org_folder = anchors / "studio"
    run(home, "audit", "anchor", "--to", str(org_folder))
    assert "ledger intact" in run(home, "audit", "verify", "--anchor", str(org_folder)).output
    # The parent of the folder the anchors are in holds none of them: not "intact".
    out = " ".join(run(home, "audit", "verify", "--anchor", str(anchors), code=1).output.split())
    assert "anchor_missing" in out and f"no anchor in {anchors}" in out and "NOT intact" in out
    # One good folder does not excuse a named empty one.
    run(home, "audit", "verify", "--anchor", str(org_folder), "--anchor", str(anchors), code=1)


def test_configured_folder_without_an_anchor_only_warns(home, tmp_path):
    kept = tmp_path / "kept"
    run(home, "audit", "anchor", "--to", str(kept))
    assert "matches anchor" in run(home, "audit", "verify", env={"LIKENESS_ANCHOR_DIRS": str(kept)}).output
    empty = tmp_path / "configured"
    empty.mkdir()
    result = run(home, "audit", "verify", env={"LIKENESS_ANCHOR_DIRS": str(empty)})
    out = " ".join(result.output.split())
    assert "warning" in out and "no anchor" in out and "ledger intact" in out
