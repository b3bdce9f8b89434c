"""The ``video_*`` limits a workspace's settings name bound every read of a video, not only
verification's: enrolment, faceset extraction, rendering and a scan's perceptual hashes refuse
a clip over the configured limit (the defaults would let this 30-frame clip through). The
render's own case is in tests/render/test_render_decode_limits.py."""

from __future__ import annotations

import pytest

from likeness.media.synthetic import grace_hopper, write_clip

LIMIT = "video_max_frames"


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "jun.mp4", grace_hopper(), seconds=1.2, fps=25, size=(320, 240), seed=3)


def limit_frames(workspace, frames: int = 10) -> None:
    """The workspace's settings as an operator's configuration would set them."""
    workspace.settings = workspace.settings.model_copy(update={LIMIT: frames})


def test_enrolment_honours_the_configured_frame_limit(workspace, clip, tmp_path):
    from likeness.faceset import enroll_reference_photos
    from tests.conftest import build_consent_world

    build_consent_world(workspace, tmp_path)
    limit_frames(workspace)
    report = enroll_reference_photos(workspace, "jun", [clip])
    assert report.added == 0
    assert [(path, reason) for path, reason in report.skipped if LIMIT in reason], report.skipped


def test_extraction_honours_the_configured_frame_limit(workspace, clip, tmp_path):
    from likeness.faceset import extract_faceset
    from tests.conftest import build_consent_world

    world = build_consent_world(workspace, tmp_path)
    world.enroll_faces()
    limit_frames(workspace)
    report = extract_faceset(workspace, world.authorize_release(), [clip], tmp_path / "faceset")
    assert report.frames_read == 0 and not report.ok
    assert [skipped for skipped in report.skipped_inputs if LIMIT in skipped.reason], report.skipped_inputs


def test_scan_hashes_honour_the_verifiers_limits(clip):
    from likeness.media import DecodeLimits
    from likeness.scan.perceptual import file_hashes

    assert len(file_hashes(clip, "video")) > 0
    assert file_hashes(clip, "video", DecodeLimits(max_frames=10)) == []
