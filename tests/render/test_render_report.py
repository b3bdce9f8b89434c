"""Render reports: thumbnails of synthetic frames are marked like outputs (label + the job's
watermark, issue 24), and reports of outputs sharing a name never overwrite each other."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np

from likeness.media.images import read_image_bytes
from likeness.media.synthetic import astronaut, compose_group, grace_hopper
from likeness.provenance.watermark import extract_watermark
from likeness.provenance.writer import watermark_payload_for
from likeness.render import render_media
from likeness.render.report import RenderReport, report_paths, write_report
from tests.render.conftest import video_report


def _thumbnails(html: str, alt: str = "after") -> list[np.ndarray]:
    return [
        read_image_bytes(base64.b64decode(data))
        for data in re.findall(rf'alt="{alt} \(AI-generated\)" src="data:image/png;base64,([^"]+)"', html)
    ]


def test_after_thumbnails_carry_the_job_s_watermark_and_same_stem_reports_do_not_collide(
    trained_world, tmp_path
) -> None:
    target = tmp_path / "group.png"
    group = compose_group([astronaut(), grace_hopper()], size=(1024, 512))
    cv2.imwrite(str(target), cv2.cvtColor(group, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    first = render_media(
        trained_world.workspace, trained_world.model_dir, target, out / "a.png", use="fan_message", org="studio"
    )
    second = render_media(
        trained_world.workspace, trained_world.model_dir, target, out / "a.jpg", use="fan_message", org="studio"
    )
    assert Path(first.report_html).name == "a.render.html" and Path(second.report_html).name == "a.jpg.render.html"
    assert sorted(p.name for p in out.iterdir()) == [
        "a.jpg",
        "a.jpg.render.html",
        "a.jpg.render.json",
        "a.png",
        "a.render.html",
        "a.render.json",
    ]
    for report in (first, second):
        page = Path(report.report_html).read_text(encoding="utf-8")
        thumbnails = _thumbnails(page)
        assert len(thumbnails) == 1
        # The face crops of the swapped face (one track: the image) are marked the same way.
        faces = _thumbnails(page, "after, face")
        assert len(faces) >= 1
        thumbnails += faces[:1]
        for marked in thumbnails:
            assert extract_watermark(marked).payload == watermark_payload_for(report.job_id)
        reading = extract_watermark(thumbnails[0])
        events = trained_world.workspace.ledger.find("render.completed", watermark_payload=reading.payload.hex())
        assert [e.payload["job_id"] for e in events] == [report.job_id]


def test_report_names_fall_back_to_the_output_name_then_the_job_id(tmp_path) -> None:
    def report(output: str, job_id: str) -> RenderReport:
        return video_report(tmp_path / output, job_id)

    names = [
        report_paths(tmp_path, "a", report(output, job))[0].name
        for output, job in (
            ("a.mp4", "1" * 32),
            ("a.png", "2" * 32),
            ("a.mp4", "3" * 32),
            ("a.mp4", "4" * 32),
            ("a.mp4", "4" * 32),
        )
    ]
    assert names == [
        "a.render.json",
        "a.png.render.json",
        "a.mp4.render.json",
        f"a.mp4.{'4' * 32}.render.json",
        f"a.mp4.{'4' * 32}.2.render.json",
    ]
    assert len({p.name for p in tmp_path.iterdir()}) == 10  # json and html of each, none overwritten


def test_the_report_records_the_mask_options_in_json_and_html(tmp_path) -> None:
    import json
    from dataclasses import asdict

    from likeness.render import RefineOptions, RenderOptions

    options = json.loads(
        json.dumps(asdict(RenderOptions(refine=RefineOptions(eyes=True, thin_rims=True))), default=str)
    )
    report = video_report(tmp_path / "o.mp4", "5" * 32, options=options)
    write_report(report, tmp_path, "o", [])
    saved = json.loads((tmp_path / "o.render.json").read_text(encoding="utf-8"))["options"]["refine"]
    assert (saved["mouth"], saved["eyes"], saved["occlusion"], saved["thin_rims"]) == (False, True, True, True)
    page = (tmp_path / "o.render.html").read_text(encoding="utf-8")
    assert "mask options: --mouth off, --eyes on, --occlusion on, --thin-rims on" in page


def test_the_mask_options_line_counts_the_faces_thin_rims_was_skipped_for(tmp_path) -> None:
    import json

    options = {"refine": {"mouth": False, "eyes": False, "occlusion": True, "thin_rims": True}}
    report = video_report(tmp_path / "o.mp4", "6" * 32, options=options)
    report.thin_rims_skipped_faces = 3
    write_report(report, tmp_path, "o", [])
    line = (
        "--mouth off, --eyes off, --occlusion on, --thin-rims on (--thin-rims skipped for 3 faces whose "
        "spectacle zone could not be built; they kept the mask without it)"
    )
    saved = json.loads((tmp_path / "o.render.json").read_text(encoding="utf-8"))
    assert (saved["mask_options"], saved["thin_rims_skipped_faces"]) == (line, 3)
    assert f"mask options: {line}" in (tmp_path / "o.render.html").read_text(encoding="utf-8")


def test_a_file_name_with_a_right_to_left_override_is_shown_as_written(tmp_path) -> None:
    # 'take\u202egnp.mp4' read 'take4pm.png' in the page (the terminal already showed \u202e)
    report = video_report(tmp_path / "out\u202egnp.mp4", "6" * 32, target="take\u202egnp.mp4")
    write_report(report, tmp_path, "o", [])
    page = (tmp_path / "o.render.html").read_text(encoding="utf-8")
    assert "\u202e" not in page
    assert "target: take\\u202egnp.mp4" in page and "out\\u202egnp.mp4" in page


def test_the_report_files_are_written_whole(tmp_path, monkeypatch) -> None:
    """The reserved report names were filled in place: a render killed while its report was
    written left an empty or torn ``.render.json``/``.render.html`` under the render."""
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    log = watch_disk(monkeypatch)
    report = video_report(tmp_path / "o.mp4", "6" * 32)
    write_report(report, tmp_path, "o", [])
    assert_written_whole(log, tmp_path / "o.render.json")
    assert_written_whole(log, tmp_path / "o.render.html")
    assert hidden_files(tmp_path) == []
