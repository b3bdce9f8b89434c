"""Coverage report: the pure summary/gap logic, and the rendered self-contained page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import FacesetError
from likeness.faceset import load_faceset
from likeness.faceset.report import (
    RECOMMENDED_FACES,
    contact_sheet,
    coverage_gaps,
    coverage_summary,
    pick_for_contact_sheet,
    write_coverage_report,
)

from .test_faceset_format import build_faceset


def records(n: int, *, seed: int = 0, **columns) -> list[dict]:
    """Index-like dicts; columns default to a well-covered faceset, overridable per column."""
    rng = np.random.default_rng(seed)
    base = {
        "yaw": rng.uniform(-60, 60, n),
        "pitch": rng.uniform(-35, 35, n),
        "roll": rng.uniform(-10, 10, n),
        "mouth_openness": rng.uniform(0.0, 0.7, n),
        "eye_openness": rng.uniform(0.02, 0.35, n),
        "brightness": rng.uniform(0.1, 0.9, n),
        "sharpness": rng.uniform(50, 500, n),
        "face_size": rng.uniform(80, 400, n),
        "source": [f"clip{i % 3}.mp4" for i in range(n)],
        "track_id": rng.integers(0, 20, n),
    }
    base.update({k: np.asarray(v) if not isinstance(v, list) else v for k, v in columns.items()})
    return [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in base.items()} for i in range(n)]


def test_well_covered_faceset_has_no_gaps() -> None:
    assert coverage_gaps(coverage_summary(records(RECOMMENDED_FACES + 50))) == []


def test_frontal_only_faceset_reports_missing_turns() -> None:
    n = 400
    rng = np.random.default_rng(1)
    gaps = coverage_gaps(coverage_summary(records(n, yaw=rng.uniform(-20, 20, n), pitch=rng.uniform(-8, 8, n))))
    text = " ".join(gaps)
    assert "No faces looking left beyond 30 degrees" in text
    assert "No faces looking right beyond 30 degrees" in text
    assert "No faces looking up" in text and "No faces looking down" in text
    assert "open-mouth" not in text


def test_only_left_turns_missing_when_right_is_covered() -> None:
    n = 400
    rng = np.random.default_rng(2)
    # head_pose convention: yaw > 0 = the subject looking to their own left.
    gaps = " ".join(coverage_gaps(coverage_summary(records(n, yaw=rng.uniform(-60, 10, n)))))
    assert "looking left beyond 30" in gaps
    assert "looking right" not in gaps


def test_expression_and_light_gaps() -> None:
    n = 400
    gaps = " ".join(
        coverage_gaps(
            coverage_summary(
                records(n, mouth_openness=np.full(n, 0.05), eye_openness=np.full(n, 0.3), brightness=np.full(n, 0.5))
            )
        )
    )
    assert "No open-mouth frames" in gaps
    assert "closed eyes" in gaps
    assert "similarly lit" in gaps


def test_small_single_source_faceset_is_told_so() -> None:
    gaps = coverage_gaps(coverage_summary(records(12, source=["one.mp4"] * 12)))
    assert gaps[0].startswith("Only 12 faces")
    assert any("single source" in gap for gap in gaps)


def test_empty_faceset() -> None:
    assert coverage_summary([]) == {"faces": 0}
    assert coverage_gaps({"faces": 0}) == ["The faceset has no faces."]


def test_summary_counts_pose_grid_and_shares() -> None:
    summary = coverage_summary(
        records(4, yaw=[-45.0, 0.0, 40.0, 5.0], pitch=[0.0, 0.0, 0.0, 25.0], track_id=[1, 1, 2, 3])
    )
    assert summary["faces"] == 4 and summary["tracks"] == 3 and summary["sources"] == 3
    assert summary["share"]["looking_subject_left"] == 0.25
    assert summary["share"]["looking_subject_right"] == 0.25
    assert summary["share"]["looking_up"] == 0.25
    assert sum(map(sum, summary["pose_grid"]["counts"])) == 4
    json.dumps(summary)  # JSON-serialisable as written to summary.json


def test_contact_sheet_layout_and_checks() -> None:
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (50, 50, 3), dtype=np.uint8) for _ in range(7)]
    sheet = contact_sheet(crops, columns=3, thumb=20, gap=2)
    assert sheet.shape == (3 * 22 + 2, 3 * 22 + 2, 3) and sheet.dtype == np.uint8
    with pytest.raises(FacesetError):
        contact_sheet([])
    with pytest.raises(FacesetError, match="uint8"):
        contact_sheet([np.zeros((8, 8), np.float32)])


def test_contact_sheet_pick_spreads_over_yaw(tmp_path: Path) -> None:
    faceset = load_faceset(build_faceset(tmp_path / "fs", n=9, records_override=lambda i: {"yaw": float(10 * i - 40)}))
    picks = pick_for_contact_sheet(faceset.records, limit=3)
    assert [faceset[i].yaw for i in picks] == [-40.0, 0.0, 40.0]


def test_write_coverage_report_is_self_contained(tmp_path: Path) -> None:
    faceset = load_faceset(build_faceset(tmp_path / "fs", n=6))
    report = write_coverage_report(faceset, tmp_path / "report")
    html = report.html_path.read_text(encoding="utf-8")
    # Every picture is embedded, nothing is linked from outside the file.
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 5  # contact sheet, pose scatter, 3 histograms
    for src in sources:
        assert src.startswith("data:image/")
        base64.b64decode(src.split(",", 1)[1], validate=True)
    assert "No faces looking" in html or "Only 6 faces" in html
    assert faceset.faceset_sha256 in html
    summary = json.loads(report.summary_path.read_text())
    assert summary["faceset_sha256"] == faceset.faceset_sha256
    assert summary["coverage"]["faces"] == 6
    assert summary["gaps"] == report.gaps and report.gaps
    assert report.contact_sheet_path is not None and report.contact_sheet_path.stat().st_size > 0


def test_a_toothy_smile_counts_as_an_open_mouth(astronaut, grace_hopper) -> None:
    """scikit-image's astronaut smiles showing her teeth: no 'no open-mouth frames' gap for her."""
    from likeness.faces import FaceDetector, align_face, mouth_openness

    detector = FaceDetector(max_faces=1)
    try:
        measured = []
        for rgb in (astronaut, grace_hopper):
            landmarks = np.asarray(detector.detect(rgb)[0].landmarks, np.float32)
            measured.append(mouth_openness(align_face(rgb, landmarks, size=256).landmarks))
    finally:
        detector.close()
    smile, closed = measured
    summary = coverage_summary(records(1, mouth_openness=[smile]))
    assert summary["share"]["mouth_open"] == 1.0
    assert not any("open-mouth" in gap for gap in coverage_gaps(summary))
    assert coverage_summary(records(1, mouth_openness=[closed]))["share"]["mouth_open"] == 0.0
