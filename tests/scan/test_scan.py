"""``likeness scan`` on this process and the local pool: one row per file, resumable, sources."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.scan import ResultsDataset, scan_collection
from likeness.scan.sources import collect_items
from tests.scan.conftest import EXPECTED_VERDICTS

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def _by_name(rows):
    return {Path(r["location"]).name: r for r in rows}


def _verification_events(world):
    return world.workspace.ledger.events("verification.completed")


def test_scan_in_process_writes_one_row_per_file_and_a_rerun_skips_them(mina_world, collection, tmp_path):
    out = tmp_path / "results"
    summary = scan_collection(mina_world.workspace, [collection], out, engine="local", workers=1)
    rows = ResultsDataset(out).rows()
    assert len(rows) == summary.files == 10 and len({r["location"] for r in rows}) == 10
    by_name = _by_name(rows)
    for name, verdict in EXPECTED_VERDICTS.items():
        assert by_name[name]["verdict"] == verdict, (name, by_name[name])
    render = by_name["render.png"]
    assert render["watermark_payload"] and render["render_job_id"] and render["c2pa_state"]
    assert by_name["mina_portrait.jpg"]["matched_subjects"] == ["mina"]
    assert by_name["truncated.jpg"]["errors"] and by_name["truncated.jpg"]["phashes"] == []
    assert len(render["phashes"]) == 1 and len(render["phashes_mirror"]) == 1
    # identical bytes are verified once; the other location copies the row
    assert by_name["render_same_bytes.png"]["same_as"] == render["location"]
    assert summary.verified == 9 and summary.copied == 1
    assert all(r["verify_s"] is not None for r in rows if r["same_as"] is None)
    # the parent recorded one verification per readable file verified
    assert len(_verification_events(mina_world)) == 7
    assert mina_world.workspace.ledger.verify().ok

    again = scan_collection(mina_world.workspace, [collection], out, engine="local", workers=1)
    assert (again.skipped, again.verified, again.copied) == (10, 0, 0)
    assert len(ResultsDataset(out).rows()) == 10 and len(_verification_events(mina_world)) == 7


def test_an_interrupted_scan_resumes_without_verifying_anything_twice(mina_world, collection, tmp_path):
    out = tmp_path / "results"
    seen: list[str] = []

    def interrupt_after_three(row):
        seen.append(row["location"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_collection(
            mina_world.workspace, [collection], out, engine="local", workers=1, on_file=interrupt_after_three
        )
    first = {r["location"] for r in ResultsDataset(out).rows()}
    assert first == set(seen) and len(first) == 3  # what finished before the interruption was kept

    resumed = scan_collection(mina_world.workspace, [collection], out, engine="local", workers=1)
    assert resumed.skipped == 3 and not first & set(resumed.verified_locations)
    rows = ResultsDataset(out).rows()
    assert len(rows) == 10 and len({r["location"] for r in rows}) == 10
    payloads = [e.payload["path"] for e in _verification_events(mina_world)]
    assert len(payloads) == len(set(payloads))  # no file verified (and recorded) twice


def test_manifests_and_the_fsspec_memory_filesystem(mina_world, collection, tmp_path):
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    memory = fsspec.filesystem("memory")
    memory.pipe("/tips/stranger.jpg", (collection / "stranger.jpg").read_bytes())
    memory.pipe("/tips/nested/landscape.png", (collection / "landscape.png").read_bytes())
    memory.pipe("/tips/notes.txt", b"not media")
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows(
            [
                ["path", "source"],
                [str(collection / "mina_portrait.jpg"), "tip"],
                ["memory://tips/stranger.jpg", "platform report"],
            ]
        )
    pq.write_table(pa.table({"location": [str(collection / "render.png")]}), tmp_path / "manifest.parquet")
    items = collect_items(["memory://tips", manifest, tmp_path / "manifest.parquet"])
    assert [i.location for i in items] == [
        "memory:///tips/nested/landscape.png",
        "memory:///tips/stranger.jpg",
        str(collection / "mina_portrait.jpg"),
        str(collection / "render.png"),
    ]
    assert all(i.sha256 for i in items) and items[0].data is not None

    out = tmp_path / "results"
    summary = scan_collection(
        mina_world.workspace, ["memory://tips", manifest, tmp_path / "manifest.parquet"], out, engine="local", workers=1
    )
    assert summary.files == 4
    verdicts = {r["location"]: r["verdict"] for r in ResultsDataset(out).rows()}
    assert verdicts == {
        "memory:///tips/nested/landscape.png": "no-face",
        "memory:///tips/stranger.jpg": "no-enrolled-artist",
        str(collection / "mina_portrait.jpg"): "enrolled-artist-unlabelled",
        str(collection / "render.png"): "authorized-synthetic",
    }


def test_scan_cli_on_the_local_pool(mina_world, collection, tmp_path):
    from likeness.cli import app

    out = tmp_path / "results"
    home = str(mina_world.workspace.home)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "--home",
            home,
            "scan",
            str(collection / "reposts"),
            str(collection / "empty.jpg"),
            "--out",
            str(out),
            "--engine",
            "local",
            "--workers",
            "2",
        ],
    )
    assert result.exit_code == 1, result.output  # empty.jpg: verdict error
    assert "5 file(s): 5 verified, 0 identical" in result.output
    assert len(ResultsDataset(out).rows()) == 5 and len({r["worker"] for r in ResultsDataset(out).rows()}) >= 1
    again = runner.invoke(app, ["--home", home, "scan", str(collection / "reposts"), "--out", str(out)])
    assert again.exit_code == 0 and "0 verified" in again.output and "4 skipped" in again.output
    refused = runner.invoke(
        app, ["--home", home, "scan", str(collection), "--out", str(out), "--scheduler", "tcp://x:8786"]
    )
    assert refused.exit_code == 1 and "--engine dask" in refused.output


def test_ctrl_c_in_the_scan_cli_says_what_the_results_keep_and_a_rerun_scans_the_rest(
    mina_world, collection, tmp_path, monkeypatch
):
    # The scan ended on Ctrl-C with exit status 130 and not a word of what it had kept.
    import likeness.scan
    from likeness.cli import app

    scan = likeness.scan.scan_collection

    def interrupted_after_three(*args, on_file, **kwargs):
        seen: list[str] = []

        def count(row):
            on_file(row)
            seen.append(row["location"])
            if len(seen) == 3:
                raise KeyboardInterrupt

        return scan(*args, on_file=count, **kwargs)

    monkeypatch.setattr(likeness.scan, "scan_collection", interrupted_after_three)
    out = tmp_path / "results"
    home = str(mina_world.workspace.home)
    command = ["--home", home, "scan", str(collection), "--out", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"interrupted: 3 of 10 file(s) are in {out}; rerun the same command to scan the rest "
        "(files already in the results are skipped)"
    )
    assert len(ResultsDataset(out).rows()) == 3
    monkeypatch.setattr(likeness.scan, "scan_collection", scan)
    again = CliRunner().invoke(app, command)
    assert "10 file(s): 3 already scanned" in again.output and f"3 skipped (already in {out})" in again.output
    assert len(ResultsDataset(out).rows()) == 10


def test_a_pool_worker_killed_mid_scan_costs_a_retry_not_a_row(mina_world, collection, tmp_path):
    import os
    import signal

    import psutil

    compared = ("sha256", "verdict", "rule", "watermark_payload", "matched_subjects", "errors", "phashes")

    def rows_of(out):
        rows = ResultsDataset(out).rows()
        assert len(rows) == len({r["location"] for r in rows}) == 10
        return {r["location"]: tuple(str(r[c]) for c in compared) for r in rows}

    scan_collection(mina_world.workspace, [collection], tmp_path / "a", engine="local", workers=1)
    killed: list[int] = []

    def kill_a_pool_worker(_row) -> None:
        if killed:
            return
        workers = [
            p
            for p in psutil.Process().children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())
        ]
        assert workers
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)

    summary = scan_collection(
        mina_world.workspace, [collection], tmp_path / "b", engine="local", workers=2, on_file=kill_a_pool_worker
    )
    assert killed and summary.verified + summary.copied == 10
    assert rows_of(tmp_path / "b") == rows_of(tmp_path / "a")


def test_a_revocation_changes_the_verifier_version_and_the_file_is_verified_again(mina_world, collection, tmp_path):
    from likeness.scan.results import latest_rows

    out = tmp_path / "results"
    render = collection / "render.png"
    first = scan_collection(mina_world.workspace, [render], out, engine="local", workers=1)
    mina_world.revoke_grant()
    second = scan_collection(mina_world.workspace, [render], out, engine="local", workers=1)
    assert second.verifier_version != first.verifier_version and second.verified == 1
    rows = ResultsDataset(out).rows()
    assert [r["verdict"] for r in rows] == ["authorized-synthetic", "synthetic-consent-revoked"]
    assert latest_rows(rows)[str(render)]["verdict"] == "synthetic-consent-revoked"
    assert scan_collection(mina_world.workspace, [render], out, engine="local", workers=1).skipped == 1


def test_scan_out_naming_a_file_is_refused_before_the_scan(mina_world, collection, tmp_path):
    # It used to verify every file, then end in FileExistsError's traceback when writing.
    from likeness.cli import app

    taken = tmp_path / "notes.txt"
    taken.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["--home", str(mina_world.workspace.home), "scan", str(collection / "reposts"), "--out", str(taken)]
    )
    assert result.exit_code == 1 and f"{taken}: not a folder" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert taken.read_text(encoding="utf-8") == "mine"


def test_scan_out_that_cannot_be_made_is_refused_before_any_file_is_verified(mina_world, collection, tmp_path):
    # Under a file (or on a read-only disk): before, the first batch was verified and its
    # verification.completed events appended, then the write said 'Not a directory'.
    from likeness.cli import app

    taken = tmp_path / "notes.txt"
    taken.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["--home", str(mina_world.workspace.home), "scan", str(collection), "--out", str(taken / "results")]
    )
    assert result.exit_code == 1, result.output
    assert f"{taken / 'results'}: cannot make the results folder (Not a directory)" in result.output, result.output
    assert not _verification_events(mina_world) and "to verify" not in result.output


def test_a_results_write_that_fails_puts_its_batch_on_the_ledger_once(mina_world, collection, tmp_path, monkeypatch):
    # A full disk at the first part: before, the ``finally`` flushed the same batch again,
    # appending each of its verification.completed events twice.
    import errno

    def full(self, rows):
        list(rows)
        raise OSError(errno.ENOSPC, "No space left on device", str(self.folder))

    monkeypatch.setattr(ResultsDataset, "append", full)
    with pytest.raises(OSError, match="No space left"):
        scan_collection(
            mina_world.workspace, [collection], tmp_path / "results", engine="local", workers=1, flush_every=4
        )
    payloads = [e.payload["path"] for e in _verification_events(mina_world)]
    assert payloads and len(payloads) == len(set(payloads)), payloads
