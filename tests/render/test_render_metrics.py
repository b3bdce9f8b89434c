"""Render metrics that tell the truth (issue 26): a frozen mouth, missing blinks, a blurred face
and a face beyond the identity threshold each fail; a performer who barely moves is "not
measured", never a pass; the report shows values, thresholds and verdicts, face crops, and
embeds its Korean font.

The generated clips are FaceMesh-layout landmark tracks of a head that turns and nods (the
motion that made the earlier whole-shape correlation score a frozen mouth 0.93), with a mouth
that opens and closes and eyes that blink on a script.
"""

from __future__ import annotations

import base64
import io
import re

import cv2
import numpy as np
import pytest

from likeness.faces.canonical import (
    CANONICAL_POINTS,
    INNER_LIP_LOWER,
    INNER_LIP_UPPER,
    LEFT_EYE_LIDS,
    RIGHT_EYE_LIDS,
)
from likeness.media.images import read_image_bytes
from likeness.media.synthetic import astronaut
from likeness.provenance.watermark import extract_watermark
from likeness.provenance.writer import watermark_payload_for
from likeness.render.quality import (
    MIN_SERIES_SAMPLES,
    identity_verdict,
    motion_agreement,
    mouth_opening,
    sharpness_ratio,
)
from likeness.render.report import (
    LABEL_BAND_PX,
    RenderReport,
    write_report,
)
from likeness.render.track_quality import FACE_CROP_SIDE, ShotQuality, measure_sample
from likeness.report_font import embedded_font_css

FRAMES = 60  # 2.4 s at 25 fps, sampled every other frame as the render does
JOB_ID = "0123456789abcdef0123456789abcdef"

# Points that move with the lower lip and jaw when the mouth opens (FaceMesh indices).
LOWER_FACE = (14, 17, 152, 176, 400, 150, 379, 136, 365, 87, 317, 178, 402, 84, 314, 18, 200, 199, 175)
UPPER_LID_INDICES = tuple(upper for upper, _ in RIGHT_EYE_LIDS + LEFT_EYE_LIDS)


def _face_3d(seed: int) -> np.ndarray:
    """(478, 3) points of a face in inter-ocular units: the canonical points where known, the rest
    seeded on the face's surface (they only need to move rigidly with the head). Different seeds
    are different people: the same layout, each point moved by a few hundredths."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.75, 0.75, 478)
    y = rng.uniform(-0.9, 0.9, 478)
    z = 0.45 * (x**2 + 0.5 * y**2)
    points = np.stack([x, y, z], axis=1)
    for index, xyz in CANONICAL_POINTS.items():
        points[index] = xyz
    # Lids: evenly between the eye corners, upper above, lower below.
    for lids, outer, inner in ((RIGHT_EYE_LIDS, 33, 133), (LEFT_EYE_LIDS, 263, 362)):
        for k, (upper, lower) in enumerate(lids):
            t = (k + 1) / 4
            mid = points[outer] * (1 - t) + points[inner] * t
            points[upper] = mid + [0, -0.045, 0]
            points[lower] = mid + [0, 0.045, 0]
    points[INNER_LIP_UPPER] = (0.0, 0.38, -0.10)
    points[INNER_LIP_LOWER] = (0.0, 0.38, -0.09)
    return points + np.random.default_rng(seed).normal(0, 0.015, points.shape)


def _track(face: np.ndarray, *, mouth: np.ndarray, eyes: np.ndarray, seed: int = 0) -> np.ndarray:
    """(T, 478, 2) pixel landmarks: ``face`` turning (yaw +-25 deg) and nodding (+-12 deg) in front of
    the camera, 110 px between the eyes, lips apart by ``mouth[t]`` inter-ocular units and
    upper lids lowered by ``eyes[t]`` (1 = shut)."""
    rng = np.random.default_rng(seed)
    frames = []
    for t, (opening, closing) in enumerate(zip(mouth, eyes)):
        points = face.copy()
        points[list(LOWER_FACE), 1] += opening
        for upper in UPPER_LID_INDICES:
            points[upper, 1] += 0.09 * closing
        yaw, pitch = np.radians(25 * np.sin(t / 7.0)), np.radians(12 * np.sin(t / 5.0 + 1))
        ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
        rotated = points @ (rx @ ry).T
        pixels = rotated[:, :2] * 110 + [320 + 15 * np.sin(t / 9), 240]
        frames.append(pixels + rng.normal(0, 0.3, pixels.shape))  # FaceMesh-like jitter
    return np.asarray(frames, np.float32)


def _talking(n: int = FRAMES) -> np.ndarray:
    t = np.arange(n)
    return np.clip(0.3 * np.sin(t / 1.6), 0, None)  # opens and closes, about 2.5 syllables a second


def _blinking(n: int = FRAMES) -> np.ndarray:
    eyes = np.zeros(n)
    for start in (10, 30, 48):
        eyes[start : start + 4] = 1.0
    return eyes


def _shot(performer: np.ndarray, output: np.ndarray) -> dict:
    shot = ShotQuality(track_id=0)
    for t in range(0, len(performer), 2):
        shot.add_expression(t, performer[t], output[t])
    return shot.summary()


def test_a_frozen_mouth_fails_however_the_head_moves() -> None:
    performer = _track(_face_3d(1), mouth=_talking(), eyes=np.zeros(FRAMES), seed=1)
    # Another face (the subject), same head motion, mouth frozen a little open.
    frozen = _track(_face_3d(2), mouth=np.full(FRAMES, 0.04), eyes=np.zeros(FRAMES), seed=2)
    following = _track(_face_3d(2), mouth=0.8 * _talking(), eyes=np.zeros(FRAMES), seed=3)

    mouth = _shot(performer, frozen)["metrics"]["mouth"]
    assert mouth["verdict"] == "fail", mouth
    assert mouth["amplitude_ratio"] < 0.25
    assert _shot(performer, following)["metrics"]["mouth"]["verdict"] == "pass"
    # The measure itself: lips apart over the eye distance, whatever the face's size.
    assert mouth_opening(performer[4]) > 0.15 and mouth_opening(frozen[4]) < 0.08


def test_an_output_face_facemesh_cannot_find_fails_expression() -> None:
    performer = _track(_face_3d(1), mouth=_talking(), eyes=_blinking(), seed=1)
    shot = ShotQuality(track_id=0)
    for t in range(0, FRAMES, 2):
        if t % 6:
            shot.miss_output_face()
        else:
            shot.add_expression(t, performer[t], performer[t])
    summary = shot.summary()
    assert summary["output_face_missed"] == 20
    for name in ("mouth", "eyes"):
        assert summary["metrics"][name]["verdict"] == "fail"
        assert "no face in the output in 20 of 30" in summary["metrics"][name]["reason"]


def test_a_performer_who_barely_moves_is_not_measured_never_a_pass() -> None:
    still = np.full(FRAMES, 0.01)
    performer = _track(_face_3d(1), mouth=still, eyes=np.zeros(FRAMES), seed=1)
    output = _track(_face_3d(2), mouth=still, eyes=np.zeros(FRAMES), seed=2)
    metrics = _shot(performer, output)["metrics"]
    assert metrics["mouth"]["verdict"] == "not_measured" and metrics["mouth"]["value"] is None
    assert "barely moves" in metrics["mouth"]["reason"]
    assert metrics["eyes"]["verdict"] == "not_measured"
    # Too few samples: not measured either, even for a perfect copy.
    series = _talking(MIN_SERIES_SAMPLES - 1)
    assert motion_agreement(series, series, kind="mouth").verdict == "not_measured"


def test_missing_blinks_fail_and_blinks_are_counted() -> None:
    performer = _track(_face_3d(1), mouth=np.zeros(FRAMES), eyes=_blinking(), seed=1)
    staring = _track(_face_3d(2), mouth=np.zeros(FRAMES), eyes=np.zeros(FRAMES), seed=2)
    blinking = _track(_face_3d(2), mouth=np.zeros(FRAMES), eyes=_blinking(), seed=3)

    eyes = _shot(performer, staring)["metrics"]["eyes"]
    assert eyes["verdict"] == "fail", eyes
    assert eyes["performer_blinks"] == 3 and eyes["output_blinks"] == 0
    good = _shot(performer, blinking)["metrics"]["eyes"]
    assert good["verdict"] == "pass" and good["output_blinks"] == 3
    # Eyes that narrow in time but never close correlate well and still stare.
    narrowing = _track(_face_3d(2), mouth=np.zeros(FRAMES), eyes=0.3 * _blinking(), seed=3)
    squint = _shot(performer, narrowing)["metrics"]["eyes"]
    assert squint["value"] > 0.6 and squint["output_blinks"] == 0 and squint["verdict"] == "fail", squint


def _face_frame() -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 frame with the astronaut's face about 200 px wide, and the affine to its 64 px crop."""
    portrait = astronaut()
    frame = cv2.resize(portrait, (640, 640))[60:540]
    scale = 64 / 220  # frame px -> crop px: a 220 px region around the face
    affine = np.array([[scale, 0, -scale * 230], [0, scale, -scale * 40]], np.float64)
    return frame, affine


def test_a_blurred_face_fails_sharpness_at_output_resolution() -> None:
    frame, affine = _face_frame()
    mask = np.zeros((64, 64), np.float32)
    cv2.ellipse(mask, (32, 34), (22, 28), 0, 0, 360, 1.0, -1)
    # The output: a 64 px face stretched back over its 220 px region (what a 64 px model does).
    inverse = cv2.invertAffineTransform(affine)
    small = cv2.warpAffine(frame, affine, (64, 64), flags=cv2.INTER_AREA)
    stretched = cv2.warpAffine(small, inverse, (640, 480), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    blurred = frame.copy()
    region = cv2.warpAffine(np.ones((64, 64), np.float32), inverse, (640, 480)) > 0.5
    blurred[region] = stretched[region]

    sample = measure_sample(0, frame, (0, 0), blurred, affine, 64, mask)
    assert sample.sharpness is not None and sample.sharpness < 0.5
    assert sample.before.shape == sample.after.shape == (FACE_CROP_SIDE, FACE_CROP_SIDE, 3)
    same = measure_sample(0, frame, (0, 0), frame.copy(), affine, 64, mask)
    assert same.sharpness == pytest.approx(1.0, abs=1e-6)
    # A region given by its origin in the frame measures the same as the whole frame.
    part = measure_sample(0, frame[20:400, 100:600].copy(), (100, 20), blurred, affine, 64, mask)
    assert part.sharpness == pytest.approx(sample.sharpness, rel=0.02)

    shot = ShotQuality(track_id=0)
    for n in range(3):
        shot.add_sample(measure_sample(n, frame, (0, 0), blurred, affine, 64, mask))
    assert shot.summary()["metrics"]["sharpness"]["verdict"] == "fail"
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert sharpness_ratio(flat, flat, np.ones((64, 64), np.float32)) is None


def test_identity_beyond_the_threshold_fails() -> None:
    # The render: 0.439 against 0.40.
    line = identity_verdict(np.array([0.43, 0.439, 0.45, 0.41, 0.44]), 0.40)
    assert line["verdict"] == "fail" and line["value"] == pytest.approx(0.439)
    assert line["threshold"] == 0.40 and "0.439 > 0.40" in line["reason"]
    assert identity_verdict(np.array([0.31, 0.33, 0.35, 0.36]), 0.40)["verdict"] == "pass"
    mixed = identity_verdict(np.array([0.30, 0.35, 0.38, 0.42, 0.45]), 0.40)
    assert mixed["verdict"] == "warn" and mixed["within_threshold_share"] == pytest.approx(0.6)
    assert identity_verdict(np.array([]), 0.40)["verdict"] == "not_measured"


def _report_with_one_track(tmp_path):
    frame, affine = _face_frame()
    mask = np.ones((64, 64), np.float32)
    shot = ShotQuality(track_id=3)
    performer = _track(_face_3d(1), mouth=_talking(), eyes=_blinking(), seed=1)
    frozen = _track(_face_3d(2), mouth=np.full(FRAMES, 0.04), eyes=np.zeros(FRAMES), seed=2)
    for t in range(0, FRAMES, 2):
        mouths = shot.add_expression(t, performer[t], frozen[t])
        if t % 10 == 0:
            sample = measure_sample(t, frame, (0, 0), frame, affine, 64, mask)
            sample.identity_distance = 0.42 + t / 1000
            sample.mouth_performer, sample.mouth_output = mouths
            shot.add_sample(sample)
            shot.offer_mouth_frame(sample)
    report = RenderReport(
        job_id=JOB_ID,
        target="한글 무대.mp4",
        output=str(tmp_path / "out.mp4"),
        kind="video",
        model_dir="m",
        subject_slug="mina",
        performer_slug="jun",
        use="music_video",
        org="studio",
        options={},
    )
    report.shots = [shot.summary()]
    write_report(report, tmp_path, "out", [], {3: shot.picked_frames()})
    return report


def test_report_shows_each_metric_with_threshold_verdict_and_face_crops(tmp_path) -> None:
    import json

    report = _report_with_one_track(tmp_path)
    saved = json.loads((tmp_path / "out.render.json").read_text(encoding="utf-8"))
    metrics = saved["shots"][0]["metrics"]
    assert {"identity", "mouth", "eyes", "sharpness", "occlusion", "flicker", "border_colour"} <= set(metrics)
    for line in metrics.values():
        assert line["verdict"] in ("pass", "warn", "fail", "not_measured") and "threshold" in line
    assert metrics["identity"]["verdict"] == "fail" and metrics["mouth"]["verdict"] == "fail"
    assert metrics["eyes"]["verdict"] == "fail" and saved["shots"][0]["verdict"] == "fail"
    # Nothing covers this face: not measured, and not a pass (tests/render/test_render_occlusion_damage.py).
    assert metrics["occlusion"]["verdict"] == "not_measured"

    page = (tmp_path / "out.render.html").read_text(encoding="utf-8")
    assert report.report_html.endswith("out.render.html")
    assert "distance_to_subject" not in page and "{" not in page.split("<body>")[1].split("<img")[0]
    assert "≤ 0.40" in page and "실패 · fail" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    after = [
        read_image_bytes(base64.b64decode(d))
        for d in re.findall(r'alt="after, face \(AI-generated\)" src="data:image/png;base64,([^"]+)"', page)
    ]
    before = re.findall(r'alt="before: the performer" src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(after) == len(before) >= 2  # worst and median identity, widest mouth disagreement
    # 256 px faces; the visible label sits in the band below the face, not over lips or eyes.
    assert all(a.shape[:2] == (FACE_CROP_SIDE + LABEL_BAND_PX, FACE_CROP_SIDE) for a in after)
    band = after[0][FACE_CROP_SIDE:].astype(int)
    assert band.max() > 200 and np.median(band) < 60
    assert extract_watermark(after[0]).payload == watermark_payload_for(JOB_ID)


def test_report_embeds_nanumgothic_with_the_page_s_hangul(tmp_path) -> None:
    from fontTools.ttLib import TTFont

    _report_with_one_track(tmp_path)
    page = (tmp_path / "out.render.html").read_text(encoding="utf-8")
    match = re.search(r"@font-face\{font-family:'NanumGothic';src:url\(data:font/woff;base64,([^)]+)\)", page)
    assert match and "font-family:'NanumGothic',sans-serif" in page
    font = TTFont(io.BytesIO(base64.b64decode(match.group(1))))
    cmap = font.getBestCmap()
    hangul = {ch for ch in re.sub(r"<[^>]+>", "", page) if "\uac00" <= ch <= "\ud7a3"}
    assert {"생", "성", "실", "패", "한", "글"} <= hangul
    assert all(ord(ch) in cmap for ch in hangul)
    assert "NanumGothic" in font["name"].getDebugName(1)
    assert len(embedded_font_css("AI 생성")) < 20_000  # a subset, not the 4.7 MB face


def test_report_fits_a_phone_and_renders_hangul_in_nanumgothic(tmp_path) -> None:
    """In Debian's chromium (no CJK font on these machines): no sideways scrolling at 390 px, the
    embedded NanumGothic is the face in use, face crops side by side."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed")
    report = _report_with_one_track(tmp_path)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            for width, crop_px in ((390, (150, 190)), (1280, (256, 256))):
                page = browser.new_page(viewport={"width": width, "height": 844})
                page.goto(f"file://{report.report_html}")
                page.evaluate("document.fonts.ready")
                scroll_width = page.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= width
                # The page's Hangul is drawn: the embedded face loaded (its glyphs: the test above).
                loaded = page.evaluate(
                    "[...document.fonts].filter(f => f.status === 'loaded').map(f => f.family.replace(/[\"']/g, ''))"
                )
                assert loaded == ["NanumGothic"]
                widths = page.evaluate(
                    "[...document.querySelectorAll('.crops img')].map(i => i.getBoundingClientRect().width)"
                )
                assert widths and all(crop_px[0] <= w <= crop_px[1] for w in widths), widths
                page.close()
        finally:
            browser.close()


def test_the_terminal_line_names_each_failing_metric_and_why(tmp_path) -> None:
    from likeness.render.report import track_verdict_line

    report = _report_with_one_track(tmp_path)
    line = track_verdict_line(report.shots[0])
    assert line.startswith("track 3: fail (")
    assert "identity fail: median distance" in line and "mouth fail:" in line and "eyes fail:" in line
    assert "flicker" not in line  # not measured is not a problem to report, nor a pass
