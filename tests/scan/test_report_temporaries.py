"""An evidence folder (``--report``) a killed writer left temporaries in: the next scan removes
those whose writer is gone, and nothing else. Before, each stayed there for good (every temporary
has a random name, so no later write reuses one), and removing every temporary at the start would
have pulled files from under a concurrent scan into the same folder."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.durable import ORPHAN_AGE_S
from tests.durability import Writer, untouched_for

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_a_scan_removes_the_temporaries_of_writers_that_are_gone_and_nothing_else(workspace, tmp_path, command):
    report = tmp_path / "report"
    report.mkdir()
    earlier = {
        report / f"earlier.jpg-3fa2c1d09e4b{suffix}": b"an earlier pack" for suffix in (".json", ".html", ".zip")
    }
    for path, payload in earlier.items():
        path.write_bytes(payload)
    (report / "results.json").write_bytes(b"an earlier scan's results")
    empty = tmp_path / "empty.jpg"  # verdict error, at once: nothing to load for it
    empty.write_bytes(b"")
    with Writer(report / "killed.jpg-0123456789ab.zip") as killed, Writer(report / "busy.jpg-ba9876543210.zip") as busy:
        killed.kill()  # mid-write, as an OOM kill ends a worker
        for writer in (killed, busy):
            untouched_for(writer.temporary, ORPHAN_AGE_S + 60)
        args = ["--home", str(workspace.home), command, str(empty), "--report", str(report), "--workers", "1"]
        args += ["--out", str(tmp_path / "results")] if command == "scan" else []
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output  # the empty file's verdict is error
        assert not killed.temporary.exists()
        assert busy.temporary.read_bytes() == b"PK half a zip"  # a concurrent scan's, still being written
    assert all(path.read_bytes() == payload for path, payload in earlier.items())
    if command == "scan":  # verify writes its own results.json; scan's results are the Parquet --out
        assert (report / "results.json").read_bytes() == b"an earlier scan's results"


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_the_report_option_says_what_happens_to_temporaries(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    said = " ".join(result.output.split())
    assert "killed writer left there are removed first (only those whose process has ended" in said
    assert f"untouched for {ORPHAN_AGE_S // 60} minutes)" in said
