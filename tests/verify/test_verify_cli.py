"""`likeness verify`: help text, JSON Lines output, evidence packs, missing paths."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.media import write_image
from likeness.media.synthetic import astronaut

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def test_every_option_has_help():
    result = CliRunner().invoke(app, ["verify", "--help"])
    assert result.exit_code == 0
    for option in ("--json", "--report", "--workers", "--anchor", "--force"):
        assert option in result.output


def test_json_lines_and_report(consent_world, tmp_path):
    home = str(consent_world.workspace.home)
    photo = tmp_path / "photo.jpg"
    write_image(photo, astronaut(), quality=90)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["--home", home, "verify", str(photo), str(empty), "--json", "--workers", "1", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["verdict"] for r in lines] == ["no-enrolled-artist", "error"]
    assert {"path", "sha256", "verdict", "c2pa", "watermark", "faces", "errors"} <= set(lines[0])
    assert (report / "results.json").exists() and len(list(report.glob("*.zip"))) == 2


def test_missing_path_fails_cleanly(consent_world, tmp_path):
    result = CliRunner().invoke(app, ["--home", str(consent_world.workspace.home), "verify", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output
