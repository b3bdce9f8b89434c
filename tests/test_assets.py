"""``likeness.assets``: the table of shipped files, the check on load and ``likeness assets``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness import assets
from likeness.errors import ModelError, ProvenanceError


def test_every_installed_asset_matches_its_table_row() -> None:
    states = assets.asset_states()
    assert [s.asset.name for s in states] == [a.name for a in assets.ASSETS]
    assert {s.state for s in states} == {"ok"}, [(s.asset.name, s.state, s.path) for s in states]
    for row in assets.ASSETS:
        assert len(row.sha256) == 64 and row.licence and row.package and row.used_by and row.size > 0


def test_the_occlusion_rows_and_the_occlusion_cards_name_the_same_files() -> None:
    from likeness.faces.occlusion import ASSET_NAMES, WEIGHTS_DIR, card_file

    assert sorted(ASSET_NAMES.values()) == ["occlusion-mask", "occlusion-thin-rims"]
    for onnx_file, name in ASSET_NAMES.items():
        card = json.loads((WEIGHTS_DIR / card_file(onnx_file)).read_text(encoding="utf-8"))
        row = assets.asset(name)
        assert (row.sha256, row.path, card["file"]) == (card["sha256"], f"faces/weights/{onnx_file}", onnx_file)
        assert row.size == (WEIGHTS_DIR / onnx_file).stat().st_size


def test_an_altered_file_is_refused_with_the_callers_error(tmp_path: Path) -> None:
    copy = tmp_path / "320n.onnx"
    copy.write_bytes(b"\0" * assets.asset("nudenet-320n").size)  # the right size, other bytes
    with pytest.raises(ModelError, match="nudenet-320n has SHA-256 .* not the"):
        assets.check_asset_file("nudenet-320n", copy)
    copy.write_bytes(b"not the detector")
    with pytest.raises(ModelError, match="nudenet-320n has 16 bytes, not the 12,150,158"):
        assets.check_asset_file("nudenet-320n", copy)
    with pytest.raises(ProvenanceError, match="cannot be read"):
        assets.check_asset_file("label-font", tmp_path / "absent.ttf", error=ProvenanceError)


def test_a_package_that_is_not_installed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "package_folder", lambda package: None)
    with pytest.raises(ModelError, match="nudenet is not installed"):
        assets.checked_asset("nudenet-320n")
    assert {s.state for s in assets.asset_states()} == {"missing"}


def test_loaders_ask_the_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from likeness.provenance.visible_label import label_font_path

    assert label_font_path() == assets.checked_asset("label-font")
    monkeypatch.setattr(assets, "package_folder", lambda package: tmp_path)
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "NanumGothicBold.ttf").write_bytes(b"\0" * assets.asset("label-font").size)
    with pytest.raises(ProvenanceError, match="label-font has SHA-256"):
        label_font_path()


def test_the_assets_command_lists_the_table() -> None:
    from likeness.cli import app

    result = CliRunner().invoke(app, ["assets"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    for row in assets.ASSETS:
        assert row.name in result.output


@pytest.mark.parametrize("width", [80, 60])
def test_the_assets_command_shows_every_name_size_and_whole_digest_in_a_narrow_terminal(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A table of six columns cut names, paths and digests to "…" at 80 columns.
    from likeness.cli import app
    from likeness.cli.common import console

    # Rich fixes a console's width from COLUMNS when it is made: made while another test (or
    # the shell) set COLUMNS, it would ignore this test's terminal width.
    monkeypatch.setattr(console, "_width", None)

    result = CliRunner().invoke(app, ["assets"], env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= width and "…" not in result.output
    blocks: dict[str, str] = {}  # asset name -> its block, whitespace removed (a folded digest joins)
    for line in lines:
        if not line.startswith(" "):
            name = line.split()[0]
            blocks[name] = ""
        blocks[name] += "".join(line.split())
    assert list(blocks) == [row.name for row in assets.ASSETS]
    for row in assets.ASSETS:
        block = blocks[row.name]
        assert f"size{row.size:,}bytes" in block and f"sha256{row.sha256}" in block, (row.name, block)


def test_the_assets_command_fails_when_one_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from likeness.cli import app

    monkeypatch.setattr(assets, "package_folder", lambda package: None)
    result = CliRunner().invoke(app, ["assets"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 1
