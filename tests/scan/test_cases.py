"""Cases: a render and its reposts (re-encoded, downscaled, mirrored, byte-identical) group into
one case; everything else stays out; ``cases list/show/export`` write a takedown bundle."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.scan import ResultsDataset, scan_collection
from likeness.scan.cases import group_cases

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

COPIES = {"render.png", "render_same_bytes.png", "render_resaved.jpg", "render_mirrored.jpg", "render_360p.jpg"}


def test_reposts_of_a_render_are_one_case_and_export_as_a_bundle(mina_world, collection, tmp_path):
    out = tmp_path / "results"
    scan_collection(mina_world.workspace, [collection], out, engine="local", workers=1, report_dir=tmp_path / "packs")
    rows = ResultsDataset(out).rows()
    packs = {Path(r["location"]).name for r in rows if r["evidence"]}
    assert packs == {"mina_portrait.jpg"}  # evidence packs only for files that need review

    (case,) = group_cases(rows)
    assert {Path(m.row["location"]).name for m in case.members} == COPIES
    assert {Path(m.row["location"]).name for m in case.members if m.mirrored} == {"render_mirrored.jpg"}
    assert case.verdicts.get("authorized-synthetic", 0) >= 2
    assert case.first_seen <= case.last_seen
    assert Path(case.best.row["location"]).name in {"render.png", "render_same_bytes.png"}

    from likeness.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["cases", "list", str(out), "--json"])
    assert listed.exit_code == 0, listed.output
    (summary,) = [json.loads(line) for line in listed.output.splitlines()]
    assert summary["case_id"] == case.case_id and summary["members"] == 5
    shown = runner.invoke(app, ["cases", "show", str(out), case.case_id])
    assert shown.exit_code == 0 and "(mirrored)" in shown.output and "render_360p.jpg" in shown.output
    assert runner.invoke(app, ["cases", "show", str(out), "case-nope"]).exit_code == 1

    exported = runner.invoke(app, ["cases", "export", str(out), "--to", str(tmp_path / "bundles")])
    assert exported.exit_code == 0, exported.output
    locations = list(csv.DictReader(io.StringIO((tmp_path / "bundles" / f"{case.case_id}-locations.csv").read_text())))
    assert {Path(r["location"]).name for r in locations} == COPIES
    with zipfile.ZipFile(tmp_path / "bundles" / f"{case.case_id}-evidence.zip") as bundle:
        names = set(bundle.namelist())
        assert {"case.json", "locations.csv"} <= names
        assert any(n.startswith("original/") for n in names)
        assert json.loads(bundle.read("case.json"))["members"][0]["location"]
        assert list(csv.DictReader(io.StringIO(bundle.read("locations.csv").decode())))


def test_a_chain_of_near_duplicates_is_one_case_and_strangers_stay_apart():
    def row(name: str, phash: str, mirror: str, when: str) -> dict:
        return {
            "location": name,
            "sha256": name * 4,
            "verdict": "no-face",
            "scanned_at": when,
            "phashes": [phash],
            "phashes_mirror": [mirror],
            "size_bytes": 1,
        }

    rows = [
        row("a", "0000000000000000", "ffffffffffffffff", "1"),
        row("b", "00000000000003ff", "fffffffffffffc00", "2"),  # 10 bits from a
        row("c", "00000000000fffff", "fffffffffff00000", "3"),  # 10 bits from b, 20 from a
        row("d", "f0f0f0f0f0f0f0f0", "0f0f0f0f0f0f0f0f", "4"),  # 28-36 bits from every hash
        row("e", "fffffffffffffff0", "000000000000000f", "5"),  # its mirror is 4 bits from a
    ]
    (case,) = group_cases(rows)
    assert {m.row["location"] for m in case.members} == {"a", "b", "c", "e"}
    assert {m.row["location"] for m in case.members if m.mirrored} == {"e"}
    assert group_cases(rows, max_distance=3) == []


def test_a_mirrored_downscaled_reencode_of_a_clip_joins_its_case(tmp_path):
    import numpy as np

    from likeness.media.synthetic import animate_portrait, astronaut
    from likeness.media.video import VideoEncoder
    from likeness.scan.perceptual import file_hashes

    frames = list(animate_portrait(astronaut(), n_frames=30, size=(320, 240), seed=1))
    with VideoEncoder(tmp_path / "clip.mp4", width=320, height=240, fps=10, crf=20) as encoder:
        for frame in frames:
            encoder.write(frame)
    with VideoEncoder(tmp_path / "repost.mp4", width=160, height=120, fps=10, crf=32) as encoder:
        for frame in frames:
            encoder.write(np.ascontiguousarray(frame[::2, ::-2]))
    rows = []
    for index, name in enumerate(("clip.mp4", "repost.mp4")):
        hashes = file_hashes(tmp_path / name, "video")
        assert len(hashes) >= 3  # sampled frames, each hashed
        rows.append(
            {
                "location": name,
                "sha256": f"{index}" * 64,
                "verdict": "no-enrolled-artist",
                "scanned_at": str(index),
                "phashes": [h.phash for h in hashes],
                "phashes_mirror": [h.mirror for h in hashes],
                "size_bytes": 1,
            }
        )
    (case,) = group_cases(rows)
    assert [m.mirrored for m in case.members] == [False, True]


def test_a_case_export_is_written_whole_and_a_failed_one_leaves_no_temporary(tmp_path, monkeypatch):
    """The CSV was written in place and the zip renamed into place unsynced; a failed rename left
    ``.zip.part`` behind."""
    from likeness.scan.cases import Case, CaseMember, export_case
    from tests.durability import assert_written_whole, failing_placements, hidden_files, watch_disk

    row = {"location": "https://example.invalid/a.mp4", "verdict": "no-face", "scanned_at": "1", "sha256": "ab" * 32}
    case = Case("c" * 32, (CaseMember(row, mirrored=False),))
    log = watch_disk(monkeypatch)
    csv_path, zip_path = export_case(case, tmp_path / "out")
    assert_written_whole(log, csv_path)
    assert_written_whole(log, zip_path)
    monkeypatch.undo()
    failing_placements(monkeypatch)
    with pytest.raises(OSError, match="Input/output"):
        export_case(case, tmp_path / "again")
    assert hidden_files(tmp_path) == [] and not (tmp_path / "again" / zip_path.name).exists()
