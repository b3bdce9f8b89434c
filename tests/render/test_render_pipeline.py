"""End-to-end render with a really trained, exported model (``trained_world`` in conftest.py):
consent, content check, labelled output, audio, resume, revocation, model integrity.

Only ``test_malformed_model_output_is_a_model_error`` uses a stand-in model: a real exported
model cannot return a wrongly shaped output.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import likeness.render.pipeline as pipeline
from likeness.errors import ConsentError, FaceError, MediaError, ModelError
from likeness.media.synthetic import astronaut, compose_group, grace_hopper, write_audio_only
from likeness.media.video import iter_video_frames, probe_video
from likeness.render import RenderOptions, render_media


@pytest.fixture
def model_dir(trained_world) -> Path:
    return trained_world.model_dir


@pytest.fixture
def clip(performer_clip) -> Path:
    return performer_clip


def _options(**kwargs) -> RenderOptions:
    return RenderOptions(quality_every=10, **kwargs)


def test_video_render_is_labelled_complete_and_keeps_audio(trained_world, model_dir, clip, tmp_path) -> None:
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.certificates import workspace_trust_anchors

    ws = trained_world.workspace
    out = tmp_path / "out" / "render.mp4"
    out.parent.mkdir()
    report = render_media(ws, model_dir, clip, out, use="music_video", org="studio", options=_options())
    source, rendered = probe_video(clip), probe_video(out)
    assert report.frames_rendered == report.frames_total == 30
    assert rendered.frame_count == source.frame_count == 30
    assert rendered.has_audio and abs(rendered.audio_duration_s - source.audio_duration_s) < 0.05
    assert report.faces["swapped"] >= 28
    # FaceMesh ran on every other frame; the steady generated face lets most frames between be
    # interpolated (at most every second frame can be).
    assert 8 <= report.landmark_frames_interpolated <= 15
    # C2PA: trusted, with our consent assertion; the ledger knows the watermark payload.
    reading = read_manifest(out, trust_anchors_pem=workspace_trust_anchors(ws))
    assert reading.state == "Trusted", reading.reasons
    assert reading.consent_assertion["grant_id"] == trained_world.grant_id
    events = ws.ledger.find("render.completed", job_id=report.job_id)
    assert len(events) == 1
    assert events[0].payload["watermark_payload"] == report.outputs[0]["watermark_payload"]
    # Report files sit next to the output, with per-shot quality.
    saved = json.loads((out.parent / "render.render.json").read_text())
    assert saved["faces_swapped"] == report.faces["swapped"]
    assert saved["shots"] and saved["shots"][0]["flicker"] is not None
    # Each track: identity, mouth, eyes, sharpness, flicker, border, each with a verdict, and
    # before/after face crops; the generated portrait neither talks nor blinks.
    metrics = saved["shots"][0]["metrics"]
    assert metrics["identity"]["samples"] >= 1 and metrics["identity"]["threshold"] == 0.40
    assert metrics["mouth"]["verdict"] == "not_measured" and metrics["eyes"]["verdict"] == "not_measured"
    assert metrics["sharpness"]["value"] is not None and metrics["flicker"]["verdict"] != "not_measured"
    assert saved["shots"][0]["expression_samples"] >= 10 and saved["shots"][0]["frames_shown"]
    # This model was exported without the performer's faces, so it has no int8 copy to choose.
    assert saved["model_precision"] == {"used": "float", "why": "auto: no usable int8 copy (none was made at export)"}
    html = (out.parent / "render.render.html").read_text()
    assert "AI-generated" in html and "data:image/png;base64" in html
    assert 'alt="before: the performer"' in html and "@font-face" in html
    assert "swap model: float" in html
    assert not list(out.parent.glob(".*render-checkpoint"))


def test_int8_copy_renders_and_the_report_names_it(trained_world, model_dir, clip, tmp_path) -> None:
    from likeness.train import export_model

    int8_dir = tmp_path / "int8-model"
    exported = export_model(
        trained_world.workspace,
        trained_world.authorize("training"),
        trained_world.authorize_release(),
        model_dir,
        out_dir=int8_dir,
        performer_faces=trained_world.performer_faces(),
    )
    assert exported.card["int8"]["passed"]
    out = tmp_path / "int8.mp4"
    report = trained_world.render(int8_dir, clip, out, options=_options(precision="int8"))
    assert report.model_precision["used"] == "int8" and report.model_precision["why"].startswith("asked for")
    # The default, auto, takes the same copy on this CPU.
    auto = trained_world.render(int8_dir, clip, tmp_path / "auto.mp4", options=_options(write_report=False))
    assert auto.model_precision["used"] == "int8" and auto.model_precision["why"].startswith("auto: CPU")
    assert probe_video(out).frame_count == 30 and report.faces["swapped"] >= 28
    assert "swap model: int8" in (tmp_path / "int8.render.html").read_text()


def test_video_output_carries_the_ledger_watermark(trained_world, model_dir, clip, tmp_path) -> None:
    from likeness.provenance.watermark import extract_watermark_frames

    out = tmp_path / "marked.mp4"
    report = trained_world.render(model_dir, clip, out, options=_options(write_report=False))
    event = trained_world.workspace.ledger.find("render.completed", job_id=report.job_id)[0]
    reading = extract_watermark_frames([f.rgb for f in iter_video_frames(out)])
    assert reading.payload is not None and reading.payload.hex() == event.payload["watermark_payload"]


def test_refusals_leave_no_file(trained_world, model_dir, clip, tmp_path) -> None:
    ws = trained_world.workspace
    out = tmp_path / "refused.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(ws, model_dir, clip, out, use="music_video", org="nobody", options=_options())
    assert refused.value.reason in {"unknown_org", "no_grant", "wrong_grantee"}
    trained_world.revoke_release()
    with pytest.raises(ConsentError) as refused:
        render_media(ws, model_dir, clip, out, use="music_video", org="studio", options=_options())
    assert refused.value.reason.startswith("release") or refused.value.reason == "no_release"
    assert not out.exists()


def test_use_not_granted_is_refused(trained_world, model_dir, clip, tmp_path) -> None:
    with pytest.raises(ConsentError):
        render_media(trained_world.workspace, model_dir, clip, tmp_path / "x.mp4", use="sexual_content", org="studio")
    assert not (tmp_path / "x.mp4").exists()


def test_training_grant_renders_nothing(trained_world, model_dir, clip, tmp_path) -> None:
    """A grant whose use is 'training' (model evaluation) never yields final media."""
    out = tmp_path / "eval.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(trained_world.workspace, model_dir, clip, out, use="training", org="studio", options=_options())
    assert refused.value.reason == "use_not_for_step"
    assert not out.exists() and not list(tmp_path.glob(".eval*"))


def test_revocation_mid_render_stops_and_leaves_nothing(trained_world, model_dir, clip, tmp_path) -> None:
    out = tmp_path / "revoked.mp4"
    calls = []

    def revoke_at_ten(done: int, total) -> None:
        calls.append(done)
        if done == 10:
            trained_world.revoke_grant()

    with pytest.raises(ConsentError) as refused:
        trained_world.render(model_dir, clip, out, options=_options(recheck_every=5), progress=revoke_at_ten)
    assert refused.value.reason == "revoked"
    assert max(calls) < 20  # stopped within a recheck interval, not at the end
    assert not out.exists() and not list(tmp_path.glob("*revoked*")) and not list(tmp_path.glob(".*revoked*"))
    assert not trained_world.workspace.ledger.find("render.completed")


def test_interrupted_render_resumes_from_checkpoint(trained_world, model_dir, clip, tmp_path) -> None:
    out = tmp_path / "resumed.mp4"

    def interrupt(done: int, total) -> None:
        if done == 22:
            raise KeyboardInterrupt

    options = _options(checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        trained_world.render(model_dir, clip, out, options=options, progress=interrupt)
    assert not out.exists()
    state = json.loads((tmp_path / ".resumed.mp4.render-checkpoint" / "job.json").read_text())
    report = trained_world.render(model_dir, clip, out, options=options)
    assert report.resumed_from_frame == 20
    assert report.job_id == state["job_id"]  # same job: the grant counts the render once
    assert probe_video(out).frame_count == 30
    assert not (tmp_path / ".resumed.mp4.render-checkpoint").exists()
    # The tracks of the 20 frames before the checkpoint come back with its state.
    assert [(t["first_frame"], t["last_frame"], t["faces"]) for t in report.tracks] == [(0, 29, 30)]


def test_image_and_folder_render(trained_world, model_dir, tmp_path) -> None:
    from likeness.media.images import read_image

    folder = tmp_path / "stills"
    folder.mkdir()
    import cv2

    group = compose_group([astronaut(), grace_hopper()], size=(1024, 512))
    cv2.imwrite(str(folder / "group.png"), cv2.cvtColor(group, cv2.COLOR_RGB2BGR))
    cv2.imwrite(
        str(folder / "astronaut.png"), cv2.cvtColor(compose_group([astronaut()], size=(400, 400)), cv2.COLOR_RGB2BGR)
    )
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "rendered"
    report = render_media(trained_world.workspace, model_dir, folder, out, use="fan_message", org="studio")
    assert [Path(o["path"]).name for o in report.outputs] == ["group.png"]
    reasons = {Path(s["path"]).name: s["reason"] for s in report.skipped_inputs}
    assert set(reasons) == {"astronaut.png", "broken.png"}
    assert "performer" in reasons["astronaut.png"]
    assert not (out / "astronaut.png").exists()
    rendered = read_image(out / "group.png")
    assert rendered.shape == group.shape
    with pytest.raises(FaceError, match="nothing to render"):
        render_media(
            trained_world.workspace,
            model_dir,
            folder / "astronaut.png",
            tmp_path / "a.png",
            use="fan_message",
            org="studio",
        )


def test_bad_targets_give_typed_errors(trained_world, model_dir, tmp_path) -> None:
    audio = write_audio_only(tmp_path / "voice.m4a", 1.0)
    with pytest.raises(MediaError, match="no video stream"):
        trained_world.render(model_dir, audio, tmp_path / "o.mp4")
    with pytest.raises(MediaError, match="does not exist"):
        trained_world.render(model_dir, tmp_path / "missing.mp4", tmp_path / "o.mp4")
    with pytest.raises(ModelError, match="model_card"):
        trained_world.render(tmp_path, tmp_path / "missing.mp4", tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_explicit_content_is_refused_before_rendering(trained_world, model_dir, clip, tmp_path, monkeypatch) -> None:
    from likeness.render import content

    class ExplicitDetector:
        def detect(self, rgb):
            return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 10, 10]}]

    monkeypatch.setattr(content, "ContentDetector", ExplicitDetector)
    with pytest.raises(ConsentError) as refused:
        trained_world.render(model_dir, clip, tmp_path / "x.mp4")
    assert refused.value.reason == "prohibited_content"
    assert not (tmp_path / "x.mp4").exists()


def test_content_check_passes_portraits_and_truncated_video_renders_what_decodes(
    trained_world, model_dir, clip, tmp_path
) -> None:
    truncated = tmp_path / "truncated.mp4"
    data = clip.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "partial.mp4"
    try:
        report = trained_world.render(model_dir, truncated, out)
    except MediaError as exc:  # a cut that destroys the header is a clear error, never a crash
        assert "truncated" in str(exc) or "corrupt" in str(exc) or "moov" in str(exc).lower()
        assert not out.exists()
        return
    assert out.exists() and report.frames_rendered <= 30
    if report.frames_rendered < 30:
        assert report.decode_error


def test_render_code_never_writes_media_itself() -> None:
    """Only the labelled writer may encode synthetic pixels: no codec writers in likeness.render."""
    forbidden_calls = {"imwrite", "VideoEncoder", "save", "imsave", "transcode", "open_output"}
    forbidden_imports = {"likeness.media.video.VideoEncoder", "likeness.media.VideoEncoder"}
    folder = Path(pipeline.__file__).parent
    for source in folder.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                assert name not in forbidden_calls, f"{source.name}: calls {name}"
                if name == "write_image":  # only LabelledWriter.write_image, called on the writer
                    assert getattr(getattr(node.func, "value", None), "id", None) == "writer", source.name
                if name == "open" and getattr(getattr(node.func, "value", None), "id", None) == "av":
                    pytest.fail(f"{source.name}: opens a PyAV container")
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    assert f"{node.module}.{alias.name}" not in forbidden_imports, source.name
                    assert alias.name not in {"write_image", "VideoEncoder", "imwrite"}, source.name


def test_malformed_model_output_is_a_model_error(trained_world, model_dir, clip, tmp_path, monkeypatch) -> None:
    from likeness.train.swap_model import SwapModel

    def malformed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A mask of the wrong shape: what a broken ONNX file might return.
        return faces, np.ones((faces.shape[0], 1, 8, 8), np.float32)

    monkeypatch.setattr(SwapModel, "run", malformed)
    out = tmp_path / "broken.mp4"
    with pytest.raises(ModelError, match="mask"):
        trained_world.render(model_dir, clip, out, options=_options(write_report=False))
    assert not out.exists() and not list(tmp_path.glob(".broken*"))


def test_tampered_model_is_refused_before_rendering(trained_world, clip, tmp_path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_world.model_dir, copy)
    onnx = copy / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0xFF
    onnx.write_bytes(bytes(data))
    out = tmp_path / "t.mp4"
    with pytest.raises(ConsentError, match="model.onnx: hash") as refused:
        trained_world.render(copy, clip, out)
    assert refused.value.reason == "artefact_altered"
    assert not out.exists()
    assert not trained_world.workspace.ledger.find("render.completed")


def test_report_strip_keeps_the_source_frames_though_frames_are_rendered_in_place(
    trained_world, model_dir, clip, tmp_path, monkeypatch
) -> None:
    captured: list = []
    original = pipeline.write_report

    faces: list = []

    def capture(report, folder, stem, strip, face_frames=None, track_jobs=None):
        captured.extend(strip)
        faces.extend(sample for picks in (face_frames or {}).values() for _, sample in picks)
        return original(report, folder, stem, strip, face_frames, track_jobs)

    monkeypatch.setattr(pipeline, "write_report", capture)
    report = trained_world.render(model_dir, clip, tmp_path / "strip.mp4")
    # Read as the render reads its target (exact=True: the level the output keeps).
    source = [f.rgb for f in iter_video_frames(clip, autorotate=True, exact=True)]
    wanted = pipeline.sample_indices(len(source), 4)
    assert len(captured) == len(wanted) == 4 and report.frames_with_swaps > 0
    for index, (before, after, job_id) in zip(wanted, captured):
        assert job_id == report.job_id
        assert np.array_equal(before, source[index])  # the source frame, not the in-place render
        assert not np.array_equal(after, before)  # a swapped face went in
    # The report's face crops too: "before" is cut from the source frame, "after" holds the swap.
    from likeness.render.track_quality import FACE_CROP_SIDE, crop_from_region

    assert faces
    for sample in faces:
        expected = crop_from_region(source[sample.frame_index], (0, 0), sample.crop_affine, FACE_CROP_SIDE)
        assert np.mean(np.abs(sample.before.astype(int) - expected) <= 2) > 0.95
        assert np.abs(sample.after.astype(int) - expected).mean() > 1.0


@pytest.mark.parametrize("batch", [0, -1, 16, 2.0, True, "4"])
def test_swap_batch_outside_one_to_fifteen_frames_is_a_config_error(batch) -> None:
    from likeness.errors import ConfigError

    with pytest.raises(ConfigError, match="swap_batch must be an integer from 1 to 15"):
        RenderOptions(swap_batch=batch)


def test_the_report_names_the_tracks_swapped_and_those_left_alone(trained_world, model_dir, tmp_path) -> None:
    """A shot with the performer beside a bystander: the report said only "faces swapped 12;
    skipped: not_target 12" (face counts, no tracks), so a studio could not tell whose face was
    left alone, or from which frame to which."""
    from likeness.media import VideoEncoder

    group = compose_group([astronaut(), grace_hopper()], size=(960, 540))
    target = tmp_path / "two.mp4"
    with VideoEncoder(target, width=960, height=540, fps=25) as encoder:
        for _ in range(12):
            encoder.write(group)
    report = render_media(
        trained_world.workspace,
        model_dir,
        target,
        tmp_path / "out.mp4",
        use="music_video",
        org="studio",
        options=_options(),
    )
    tracks = {("left" if t["box"][0] < 480 else "right"): t for t in report.tracks}
    assert set(tracks) == {"left", "right"}
    assert tracks["right"]["swapped"] == 12 and tracks["right"]["left_alone"] == {}
    assert tracks["left"]["swapped"] == 0 and tracks["left"]["left_alone"] == {"not_target": 12}
    assert (tracks["left"]["first_frame"], tracks["left"]["last_frame"]) == (0, 11)
    saved = json.loads(Path(report.report_json).read_text(encoding="utf-8"))
    assert saved["tracks"] == json.loads(json.dumps(report.tracks))
    page = Path(report.report_html).read_text(encoding="utf-8")
    left = tracks["left"]["track_id"]
    assert f"Track {left}: left alone" in page and "12 faces, frames 0–11: not the released performer" in page
