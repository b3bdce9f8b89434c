"""The labelled writer: the only way synthetic media leaves the product."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError, MediaError, ProvenanceError
from likeness.media import iter_video_frames, probe_video, read_image
from likeness.provenance import writer as writer_module
from likeness.provenance.c2pa_manifest import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    read_manifest,
)
from likeness.provenance.certificates import workspace_trust_anchors
from likeness.provenance.visible_label import label_geometry
from likeness.provenance.watermark import extract_watermark, extract_watermark_frames
from likeness.provenance.writer import LabelledWriter, RenderJob, watermark_payload_for
from tests.conftest import add_subject, issue_grant


def _anchors(workspace) -> list[str]:
    return workspace_trust_anchors(workspace)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _only_file(folder: Path) -> list[str]:
    """Names in ``folder`` (hidden temporaries included); [] when it was never created."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def renders(tmp_path: Path) -> Path:
    """Output folder of the test (the workspace lives beside it in tmp_path/home)."""
    return tmp_path / "renders"


def _small_video(writer: LabelledWriter, authz, out: Path, job: RenderJob | None = None):
    """A 160x128 video at 8 fps: the size the tests of failures and clean-ups write."""
    return writer.open_video(authz, job or RenderJob.new("video"), out, width=160, height=128, fps=8)


def _grant_yuna(consent_world, uses: list[str], **terms) -> None:
    """A second subject, studio's virtual idol yuna, with a grant for ``uses`` that runs three days."""
    registry = consent_world.workspace.registry
    add_subject(registry, "yuna", "Yuna", kind="virtual_idol", owner_org="studio")
    issue_grant(registry, "yuna", "studio", uses, valid_until=now_utc() + timedelta(days=3), **terms)


def test_render_job_payload_is_derived_from_the_job_id() -> None:
    job = RenderJob.new("image")
    assert len(job.job_id) == 32 and len(job.watermark_payload) == 8
    assert job.watermark_payload == watermark_payload_for(job.job_id)
    assert RenderJob.new("image").watermark_payload != job.watermark_payload
    with pytest.raises(ProvenanceError, match="job_id"):
        RenderJob("not-a-uuid", "image")
    with pytest.raises(ProvenanceError, match="kind"):
        RenderJob("a" * 32, "audio")  # type: ignore[arg-type]


def test_image_is_labelled_watermarked_signed_and_recorded(consent_world, astronaut, tmp_path: Path) -> None:
    workspace = consent_world.workspace
    authz = consent_world.authorize("music_video")
    job = RenderJob.new("image")
    out = tmp_path / "out" / "shot.png"
    result = LabelledWriter(workspace).write_image(authz, job, astronaut, out)

    assert result.path == out and out.is_file() and result.labelled
    assert _only_file(out.parent) == ["shot.png"]  # no temporaries left
    assert result.sha256 == _sha256(out)

    reading = read_manifest(out, trust_anchors_pem=_anchors(workspace))
    assert reading.state == "Trusted", reading.reasons
    assert reading.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert reading.consent_assertion["grant_id"] == consent_world.grant_id
    assert reading.consent_assertion["use"] == "music_video"
    assert reading.consent_assertion["holder_fingerprint"] == authz.holder_fingerprint
    assert reading.soft_binding_payload == job.watermark_payload

    pixels = read_image(out)
    assert extract_watermark(pixels).payload == job.watermark_payload
    # The visible label sits in the safe area (centred, lower band) and nowhere else changes much.
    diff = np.abs(pixels.astype(int) - astronaut.astype(int)).max(axis=-1)
    x0, y0, x1, y1 = label_geometry(512, 512).box
    assert diff[y0:y1, x0:x1].mean() > 20 and x0 >= 0.2 * 512 and y1 <= 0.8 * 512
    assert diff[:256, :256].max() < 20  # only the faint watermark elsewhere
    assert diff[y1 + 2 :].max() < 20 and diff[:, x1 + 2 :].max() < 20

    events = workspace.ledger.find("render.completed", job_id=job.job_id)
    assert len(events) == 1
    payload = events[0].payload
    assert payload["output_sha256"] == result.sha256 and payload["output_name"] == "shot.png"
    assert payload["watermark_payload"] == job.watermark_payload.hex()
    assert payload["grant_id"] == consent_world.grant_id and payload["c2pa"] is True


def test_resaved_image_loses_the_manifest_but_keeps_the_watermark(consent_world, astronaut, tmp_path: Path) -> None:
    workspace = consent_world.workspace
    job = RenderJob.new("image")
    out = tmp_path / "shot.jpg"
    LabelledWriter(workspace).write_image(consent_world.authorize("fan_message"), job, astronaut, out)
    resaved = tmp_path / "resaved.jpg"
    Image.open(out).convert("RGB").save(resaved, quality=85)
    reading = read_manifest(resaved, trust_anchors_pem=_anchors(workspace))
    assert reading.present is False
    assert extract_watermark(read_image(resaved)).payload == job.watermark_payload


def test_swap_with_a_source_is_an_edit_with_a_parent_ingredient(consent_world, astronaut, tmp_path: Path) -> None:
    source = tmp_path / "target.png"
    Image.fromarray(np.ascontiguousarray(astronaut[::-1])).save(source)
    out = tmp_path / "swap.webp"
    LabelledWriter(consent_world.workspace).write_image(
        consent_world.authorize("music_video"), RenderJob.new("image"), astronaut, out, source_path=source
    )
    reading = read_manifest(out, trust_anchors_pem=_anchors(consent_world.workspace))
    assert reading.state == "Trusted"
    assert reading.digital_source_type == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert [i["title"] for i in reading.ingredients] == ["target.png"]


def test_refuses_without_an_authorization(consent_world, astronaut, renders: Path) -> None:
    writer = LabelledWriter(consent_world.workspace)
    real = consent_world.authorize("music_video")

    class LooksLikeOne:  # same attributes, not issued by the engine
        def __getattr__(self, name: str):
            return getattr(real, name)

    for fake in (None, {"grant_id": consent_world.grant_id}, LooksLikeOne()):
        with pytest.raises(ConsentError):
            writer.write_image(fake, RenderJob.new("image"), astronaut, renders / "x.png")  # type: ignore[arg-type]
        with pytest.raises(ConsentError):
            writer.open_video(fake, RenderJob.new("video"), renders / "x.mp4", width=64, height=64, fps=8)  # type: ignore[arg-type]
    assert _only_file(renders) == []
    assert consent_world.workspace.ledger.find("render.completed") == []


def test_revoked_grant_writes_nothing(consent_world, astronaut, renders: Path) -> None:
    authz = consent_world.authorize("music_video")
    consent_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        LabelledWriter(consent_world.workspace).write_image(authz, RenderJob.new("image"), astronaut, renders / "x.png")
    assert refused.value.reason == "revoked"
    assert _only_file(renders) == []


def test_signing_failure_leaves_nothing_behind(consent_world, astronaut, tmp_path: Path, monkeypatch) -> None:
    def broken_sign(*args, **kwargs):
        raise ProvenanceError("simulated signing failure")

    monkeypatch.setattr(writer_module, "sign_file", broken_sign)
    out_dir = tmp_path / "out"
    writer = LabelledWriter(consent_world.workspace)
    with pytest.raises(ProvenanceError, match="simulated"):
        writer.write_image(consent_world.authorize("music_video"), RenderJob.new("image"), astronaut, out_dir / "x.png")
    assert _only_file(out_dir) == []
    with pytest.raises(ProvenanceError, match="simulated"):
        with _small_video(writer, consent_world.authorize("music_video"), out_dir / "v.mp4") as video:
            for _ in range(3):
                video.write(astronaut[:128, :160].copy())
    assert _only_file(out_dir) == []
    assert consent_world.workspace.ledger.find("render.completed") == []


def test_ledger_failure_leaves_nothing_behind(consent_world, astronaut, renders: Path, monkeypatch) -> None:
    authz = consent_world.authorize("music_video")
    ledger = consent_world.workspace.ledger

    def broken_append(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ledger, "append", broken_append)
    with pytest.raises(OSError):
        LabelledWriter(consent_world.workspace).write_image(authz, RenderJob.new("image"), astronaut, renders / "x.png")
    assert _only_file(renders) == []


def test_unlabelled_only_when_requested_and_granted(consent_world, astronaut, renders: Path) -> None:
    workspace = consent_world.workspace
    writer = LabelledWriter(workspace)
    job = RenderJob.new("image", unlabelled_requested=True)
    with pytest.raises(ConsentError):
        writer.write_image(consent_world.authorize("music_video"), job, astronaut, renders / "x.png")
    assert _only_file(renders) == []

    _grant_yuna(consent_world, ["tribute"], allow_unlabelled=True, purpose="unlabelled look allowed")
    authz = workspace.policy.authorize("yuna", "tribute", "studio")
    assert authz.allow_unlabelled
    # Allowed by the grant but not requested: still labelled.
    labelled = writer.write_image(authz, RenderJob.new("image"), astronaut, renders / "labelled.png")
    unlabelled = writer.write_image(authz, job, astronaut, renders / "unlabelled.png")
    assert labelled.labelled and not unlabelled.labelled
    diff = np.abs(read_image(renders / "unlabelled.png").astype(int) - astronaut.astype(int))
    assert diff[-60:, -300:].max() < 20  # watermark only, no label box
    assert read_manifest(renders / "unlabelled.png", trust_anchors_pem=_anchors(workspace)).state == "Trusted"


def test_existing_output_is_never_overwritten(consent_world, astronaut, renders: Path) -> None:
    out = renders / "x.png"
    renders.mkdir()
    out.write_bytes(b"earlier")
    with pytest.raises(MediaError, match="already exists"):
        LabelledWriter(consent_world.workspace).write_image(
            consent_world.authorize("music_video"), RenderJob.new("image"), astronaut, out
        )
    assert out.read_bytes() == b"earlier"


def test_a_name_taken_during_the_render_is_kept_and_the_output_job_named(consent_world, renders: Path) -> None:
    """Two renders to one path: the later never replaces the earlier (it is placed job-named)."""
    out = renders / "clip.mp4"
    job = RenderJob.new("video")
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"),
        job,
        out,
        width=64,
        height=64,
        fps=8,
    ) as video:
        for frame in _moving_frames(64, 64, 4, seed=1):
            video.write(frame)
        out.write_bytes(b"another render's output")  # the name is taken while this one encodes
    result = video.result
    assert out.read_bytes() == b"another render's output"
    assert result is not None and result.path == renders / f"clip.{job.job_id}.mp4" and result.path.is_file()
    event = consent_world.workspace.ledger.find("render.completed", job_id=job.job_id)[0]
    assert event.payload["output_name"] == result.path.name
    assert event.payload["output_sha256"] == _sha256(result.path)
    assert sorted(_only_file(renders)) == sorted(["clip.mp4", result.path.name])


def test_video_round_trip(consent_world, tmp_path: Path) -> None:
    from likeness.media.synthetic import write_clip

    workspace = consent_world.workspace
    source = tmp_path / "target.mp4"
    # 12 small frames (4.7 tiles each) are the hard case for the mark: with the writer's small-frame
    # encoding a random payload read back in 1000 of 1000 trials (x264 defaults: 172 of 200).
    write_clip(source, consent_world_face(), seconds=1.0, fps=12, size=(320, 240), with_audio=True, seed=0)
    frames = [f.rgb for f in iter_video_frames(source)]
    job = RenderJob.new("video")
    out = tmp_path / "out" / "clip.mp4"
    with LabelledWriter(workspace).open_video(
        consent_world.authorize("virtual_stage"),
        job,
        out,
        width=320,
        height=240,
        fps=12,
        audio_source=source,
        source_path=source,
    ) as video:
        for frame in frames:
            video.write(frame)
    result = video.result
    assert result is not None and result.frames == len(frames) and out.is_file()
    assert _only_file(out.parent) == ["clip.mp4"]
    info = probe_video(out)
    assert (info.width, info.height) == (320, 240) and info.has_audio
    reading = read_manifest(out, trust_anchors_pem=_anchors(workspace))
    assert reading.state == "Trusted", reading.reasons
    assert reading.digital_source_type == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert reading.soft_binding_payload == job.watermark_payload
    decoded = [f.rgb for f in iter_video_frames(out)]
    assert len(decoded) == len(frames)
    assert extract_watermark_frames(decoded).payload == job.watermark_payload
    # x264 records its settings in the stream: small frames get the mark-keeping encoding.
    settings = re.search(rb"options: [^\x00]*", out.read_bytes()).group(0)
    assert b" deadzone=0,0 " in settings and b" crf=18.0 " in settings
    event = workspace.ledger.find("render.completed", job_id=job.job_id)[0]
    assert event.payload["output_sha256"] == _sha256(out) and event.payload["frames"] == len(frames)


def test_video_exception_leaves_nothing(consent_world, renders: Path) -> None:
    writer = LabelledWriter(consent_world.workspace)
    with pytest.raises(RuntimeError, match="render crashed"):
        with _small_video(writer, consent_world.authorize("music_video"), renders / "v.mp4") as video:
            video.write(np.zeros((128, 160, 3), np.uint8))
            raise RuntimeError("render crashed")
    with pytest.raises(MediaError, match="frame must be"):
        with _small_video(writer, consent_world.authorize("music_video"), renders / "w.mp4") as video:
            video.write(np.zeros((100, 160, 3), np.uint8))
    with pytest.raises(MediaError, match="no frames"):
        with _small_video(writer, consent_world.authorize("music_video"), renders / "e.mp4"):
            pass
    assert _only_file(renders) == []
    assert consent_world.workspace.ledger.find("render.completed") == []


def consent_world_face() -> np.ndarray:
    from likeness.media.synthetic import astronaut

    return astronaut()


def _moving_frames(width: int, height: int, n: int, seed: int) -> list[np.ndarray]:
    """Textured frames (so the watermark has something to hide in) with an upright marker."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    import cv2

    texture = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    frames = []
    for i in range(n):
        frame = np.roll(texture, i, axis=1).copy()
        frame[: height // 4, : width // 4] = (250, 20, 20)  # red block top-left when upright
        frames.append(frame)
    return frames


def test_video_odd_size_is_padded_and_recorded(consent_world, tmp_path: Path) -> None:
    frames = _moving_frames(321, 241, 6, seed=1)
    job = RenderJob.new("video")
    out = tmp_path / "odd.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"), job, out, width=321, height=241, fps=25
    ) as video:
        for frame in frames:
            video.write(frame)
        assert video.padded and video.encoded_size == (322, 242)
    info = probe_video(out)
    assert (info.width, info.height) == (322, 242)
    decoded = [f.rgb for f in iter_video_frames(out)]
    # Content keeps its coordinates (compared away from the label); the extra column repeats the last.
    assert np.abs(decoded[0][:120, :200].astype(int) - frames[0][:120, :200].astype(int)).mean() < 6
    assert np.abs(decoded[0][:, 321].astype(int) - decoded[0][:, 320].astype(int)).mean() < 4
    event = consent_world.workspace.ledger.find("render.completed", job_id=job.job_id)[0]
    assert event.payload["padded_to_even"] is True and (event.payload["width"], event.payload["height"]) == (321, 241)


def test_video_keeps_variable_timestamps(consent_world, tmp_path: Path) -> None:
    frames = _moving_frames(192, 160, 6, seed=2)
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5]  # a stall and a jump, as phones record
    out = tmp_path / "vfr.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"), RenderJob.new("video"), out, width=192, height=160, fps=25
    ) as video:
        for frame, t in zip(frames, times):
            video.write(frame, pts_s=t)
    got = [round(f.pts_s, 3) for f in iter_video_frames(out)]
    assert got == times
    with pytest.raises(MediaError, match="increase"):
        with LabelledWriter(consent_world.workspace).open_video(
            consent_world.authorize("music_video"),
            RenderJob.new("video"),
            tmp_path / "back.mp4",
            width=192,
            height=160,
            fps=25,
        ) as video:
            video.write(frames[0], pts_s=0.1)
            video.write(frames[1], pts_s=0.1)
    assert not (tmp_path / "back.mp4").exists()


@pytest.mark.parametrize("rotation", [90, 270])
def test_video_rotation_is_kept_as_metadata(consent_world, tmp_path: Path, rotation: int) -> None:
    # Upright (display) frames are 288 wide and 512 high, like portrait phone footage.
    frames = _moving_frames(288, 512, 8, seed=3)
    job = RenderJob.new("video")
    out = tmp_path / f"rot{rotation}.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"), job, out, width=288, height=512, fps=25, rotation=rotation
    ) as video:
        for frame in frames:
            video.write(frame)
    info = probe_video(out)
    assert info.rotation == rotation
    assert (info.width, info.height) == (512, 288) and info.display_size == (288, 512)
    upright = [f.rgb for f in iter_video_frames(out, autorotate=True)]
    assert upright[0].shape == (512, 288, 3)
    # The marker is top-left of the picture as shown, and the label in the safe area of the
    # upright picture (centred, lower band), readable upright.
    assert upright[0][:100, :50, 0].mean() > 200 and upright[0][:100, :50, 1].mean() < 80
    x0, y0, x1, y1 = label_geometry(288, 512).box
    assert y0 > 256 and abs((x0 + x1) / 2 - 144) <= 1
    assert np.abs(upright[0][y0:y1, x0:x1].astype(int) - frames[0][y0:y1, x0:x1].astype(int)).mean() > 15
    # Verification reads stored frames: the watermark is found there.
    stored = [f.rgb for f in iter_video_frames(out)]
    assert extract_watermark_frames(stored).payload == job.watermark_payload
    with pytest.raises(MediaError, match="rotation"):
        LabelledWriter(consent_world.workspace).open_video(
            consent_world.authorize("music_video"),
            RenderJob.new("video"),
            tmp_path / "bad.mp4",
            width=288,
            height=512,
            fps=25,
            rotation=45,
        )


def _limited_grant(consent_world) -> None:
    """A second subject whose music-video grant allows exactly one render."""
    _grant_yuna(consent_world, ["music_video"], max_renders=1, purpose="one music video")


def test_a_render_that_fails_at_signing_gives_its_render_slot_back(
    consent_world, astronaut, tmp_path: Path, monkeypatch
) -> None:
    _limited_grant(consent_world)
    policy = consent_world.workspace.policy
    writer = LabelledWriter(consent_world.workspace)
    real_sign = writer_module.sign_file

    def broken_sign(*args, **kwargs):
        raise ProvenanceError("simulated signing failure")

    monkeypatch.setattr(writer_module, "sign_file", broken_sign)
    failed = RenderJob.new("image")
    with pytest.raises(ProvenanceError):
        writer.write_image(policy.authorize("yuna", "music_video", "studio"), failed, astronaut, tmp_path / "a.png")
    with pytest.raises(ProvenanceError):
        with _small_video(writer, policy.authorize("yuna", "music_video", "studio"), tmp_path / "v.mp4") as video:
            video.write(astronaut[:128, :160].copy())
    refunds = consent_world.workspace.ledger.find("render.refunded")
    assert [e.payload["reason"] for e in refunds] == ["signing_failed", "signing_failed"]
    assert refunds[0].payload["job_id"] == failed.job_id
    monkeypatch.setattr(writer_module, "sign_file", real_sign)
    # The one render the grant allows is still there, and only one.
    writer.write_image(
        policy.authorize("yuna", "music_video", "studio"), RenderJob.new("image"), astronaut, tmp_path / "b.png"
    )
    with pytest.raises(ConsentError) as refused:
        policy.authorize("yuna", "music_video", "studio")
    assert refused.value.reason == "render_limit_reached"


def test_an_aborted_video_gives_its_render_slot_back(consent_world, astronaut, tmp_path: Path) -> None:
    _limited_grant(consent_world)
    policy = consent_world.workspace.policy
    writer = LabelledWriter(consent_world.workspace)
    video = _small_video(writer, policy.authorize("yuna", "music_video", "studio"), tmp_path / "v.mp4")
    video.write(astronaut[:128, :160].copy())
    video.abort(reason="no_face_swapped")
    assert [e.payload["reason"] for e in consent_world.workspace.ledger.find("render.refunded")] == ["no_face_swapped"]
    assert not [name for name in _only_file(tmp_path) if "v." in name]
    assert policy.authorize("yuna", "music_video", "studio")  # the slot is free again


def test_a_rerun_of_a_job_removes_what_a_killed_writer_left(consent_world, astronaut, renders: Path) -> None:
    job = RenderJob.new("video")
    renders.mkdir()
    # What a writer killed mid-encode (SIGKILL: no cleanup ran) leaves beside the output.
    stale = [renders / f"..v.{job.job_id}.unsigned.mp4.k1ll3d.part", renders / f".v.{job.job_id}.unsigned.mp4"]
    for path in stale:
        path.write_bytes(b"partial synthetic frames")
    writer = LabelledWriter(consent_world.workspace)
    with _small_video(writer, consent_world.authorize("music_video"), renders / "v.mp4", job) as video:
        for _ in range(2):
            video.write(astronaut[:128, :160].copy())
    assert _only_file(renders) == ["v.mp4"]


def test_a_labelled_output_is_written_whole(consent_world, astronaut, renders: Path, monkeypatch) -> None:
    """The signed file was linked into place without its bytes or the folder being fsynced: a
    power loss could leave an empty or torn output recorded on the ledger with its hash."""
    from tests.durability import assert_written_whole, watch_disk

    log = watch_disk(monkeypatch)
    result = LabelledWriter(consent_world.workspace).write_image(
        consent_world.authorize("music_video"), RenderJob.new("image"), astronaut, renders / "x.png"
    )
    assert_written_whole(log, result.path)
    assert _only_file(renders) == ["x.png"]
