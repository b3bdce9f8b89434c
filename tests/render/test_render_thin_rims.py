"""``RefineOptions.thin_rims`` (``likeness render --thin-rims``): a thin light metal rim, about a
pixel of the 128 px crop, stays the performer's; without the option the swap paints over it
(the 64 px occlusion mask cannot see a rim that thin; issue 26)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from likeness.errors import ConfigError
from likeness.faces.canonical import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.media.synthetic import grace_hopper
from likeness.render.frame import FrameRenderer, RefineOptions

SILVER = (200, 200, 205)


def _rimmed_portrait() -> tuple[np.ndarray, np.ndarray, list]:
    """(grace_hopper with a thin silver oval rim round each eye, the rim's core pixels, her face).

    The rim is as wide as one pixel of the renderer's 128 px ``wf`` crop of this face."""
    from likeness.faces.align import align_face

    portrait = grace_hopper()
    with FaceDetector(mode="image") as detector:
        faces = detector.detect(portrait)
    points = np.asarray(faces[0].landmarks, np.float64)
    crop_per_frame = float(np.sqrt(abs(np.linalg.det(align_face(portrait, points, size=128).affine[:, :2]))))
    width = max(1, round(1.0 / crop_per_frame))
    span = float(np.linalg.norm(points[LEFT_IRIS_CENTER] - points[RIGHT_IRIS_CENTER]))
    rim = np.zeros(portrait.shape[:2], np.uint8)
    for eye in (RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER):
        centre = tuple(int(round(v)) for v in points[eye])
        cv2.ellipse(rim, centre, (round(0.33 * span), round(0.22 * span)), 0, 0, 360, 1, width)
    rimmed = np.where(rim[..., None] > 0, np.array(SILVER, np.uint8), portrait)
    return rimmed, rim > 0, faces


def _renderer(workspace, model_dir, faces: list, *, thin_rims: bool) -> FrameRenderer:
    from likeness.train import load_swap_model

    class _Found:
        def detect(self, rgb: np.ndarray) -> list:
            return faces

    authz = workspace.policy.authorize("mina", "music_video", "studio")
    return FrameRenderer(
        load_swap_model(workspace, model_dir, authz=authz, threads=1),
        _Found(),
        FaceEmbedder(),
        workspace.registry.reference_embeddings("jun"),
        authz=authz,
        release=workspace.policy.authorize_release("jun", "studio"),
        identity_threshold=IDENTITY_THRESHOLD,
        options=RefineOptions(thin_rims=thin_rims),
    )


def _render(workspace, model_dir, frame: np.ndarray, faces: list, *, thin_rims: bool) -> np.ndarray:
    out, outcomes = _renderer(workspace, model_dir, faces, thin_rims=thin_rims).process(frame, frame_index=0, t_s=0.0)
    assert [o.swapped for o in outcomes] == [True]
    return out


def test_thin_rims_keep_a_one_pixel_metal_rim_the_swap_paints_over_without_it(workspace_with_128_model) -> None:
    workspace, model_dir = workspace_with_128_model
    frame, rim, faces = _rimmed_portrait()
    assert rim.sum() > 300

    def changed(out: np.ndarray) -> np.ndarray:
        return np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 8

    painted = changed(_render(workspace, model_dir, frame, faces, thin_rims=False))
    kept = changed(_render(workspace, model_dir, frame, faces, thin_rims=True))
    assert painted[rim].mean() > 0.6, painted[rim].mean()
    assert kept[rim].mean() < 0.2, kept[rim].mean()
    # Only the rims: the face beside them (outside a few pixels round the rims) is still swapped.
    x0, y0, x1, y1 = (int(v) for v in faces[0].bbox)
    near = cv2.dilate(rim.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    face = np.zeros(rim.shape, bool)
    face[y0:y1, x0:x1] = True
    face &= ~near
    assert kept[face].mean() > 0.5 and abs(kept[face].mean() - painted[face].mean()) < 0.05


def test_thin_rims_need_the_occlusion_mask() -> None:
    with pytest.raises(ConfigError, match="thin_rims .* needs occlusion"):
        RefineOptions(occlusion=False, thin_rims=True)


def test_thin_rims_on_a_64_px_model_are_refused_not_ignored(trained_world) -> None:
    # Trial 7: the add-on runs on crops of 128 px and up, so on a 64 px model the option rendered
    # exactly as without it, and said nothing.
    assert trained_world.load_model().card["resolution"] == 64
    with pytest.raises(
        ConfigError, match="^thin_rims keeps rims only for models of 128 px and more; this model is 64 px"
    ):
        trained_world.frame_renderer(FaceDetector(mode="image"), FaceEmbedder(), options=RefineOptions(thin_rims=True))


def test_the_cli_refusal_on_a_64_px_model_names_the_option_typed(trained_world) -> None:
    # It named the API field ("thin_rims keeps rims only ...") where the user had typed --thin-rims.
    from typer.testing import CliRunner

    from likeness.cli import app
    from likeness.media import write_image

    target = write_image(trained_world.tmp / "jun.png", grace_hopper())
    out = trained_world.tmp / "out.png"
    home = str(trained_world.workspace.home)
    args = ["render", str(trained_world.model_dir), str(target), "--use", "music_video", "--out", str(out)]
    result = CliRunner().invoke(app, ["--home", home, *args, "--thin-rims"], terminal_width=400)
    assert result.exit_code == 1, result.output
    assert "error: --thin-rims keeps rims only for models of 128 px and more; this model is 64 px" in result.output
    assert "thin_rims" not in result.output and not out.exists()


def test_a_face_without_a_spectacle_zone_is_swapped_without_the_add_on_and_counted(workspace_with_128_model) -> None:
    # Both iris centres on one point (a degenerate FaceMesh fit): the crop still aligns on the eye
    # corners, but the spectacle zone, sized by the iris span, cannot be built. That face keeps
    # the mask without the add-on and is counted; it used to stop the whole render.
    from dataclasses import replace

    workspace, model_dir = workspace_with_128_model
    frame, _, faces = _rimmed_portrait()
    points = np.array(faces[0].landmarks, np.float32)
    points[LEFT_IRIS_CENTER] = points[RIGHT_IRIS_CENTER]
    odd = [replace(faces[0], landmarks=points)]
    renderer = _renderer(workspace, model_dir, odd, thin_rims=True)
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert [o.swapped for o in outcomes] == [True]
    assert renderer.thin_rims_skipped == 1
    assert renderer.counts == {"swapped": 1}
    without = _renderer(workspace, model_dir, odd, thin_rims=False).process(frame, frame_index=0, t_s=0.0)[0]
    assert np.array_equal(out, without)  # exactly the mask without the add-on
    assert renderer.state()["thin_rims_skipped"] == 1


def test_the_render_report_counts_the_faces_thin_rims_was_skipped_for(
    workspace_with_128_model, tmp_path, monkeypatch
) -> None:
    import json
    from pathlib import Path

    import likeness.faces.occlusion
    from likeness.errors import FaceError
    from likeness.media import write_image
    from likeness.render import RenderOptions, render_media

    def no_zone(landmarks, size):
        raise FaceError("spectacle_zone: the eyes are 0.0 px apart in this 128 px crop (2..128 expected)")

    monkeypatch.setattr(likeness.faces.occlusion, "spectacle_zone", no_zone)
    workspace, model_dir = workspace_with_128_model
    target = write_image(tmp_path / "jun.png", grace_hopper())
    options = RenderOptions(refine=RefineOptions(thin_rims=True), content_samples=1)
    report = render_media(
        workspace, model_dir, target, tmp_path / "out.png", use="music_video", org="studio", options=options
    )
    assert (tmp_path / "out.png").is_file() and report.faces["swapped"] == 1
    saved = json.loads(Path(str(report.report_json)).read_text(encoding="utf-8"))
    assert saved["thin_rims_skipped_faces"] == 1
    assert "--thin-rims skipped for 1 faces" in saved["mask_options"]
