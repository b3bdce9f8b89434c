"""Damaged is not tampered: a file that was never signed cannot have been tampered with.

``tampered`` needs positive evidence (a manifest in the file whose binding fails); a broken
file without one is analysed as far as it decodes, or gets ``error`` when nothing decodes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from likeness.media.synthetic import animate_portrait, astronaut, write_clip
from likeness.provenance.writer import LabelledWriter, RenderJob
from likeness.verify.pipeline import holds_manifest_store, verify_path

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture
def clips(consent_world, tmp_path) -> dict[str, bytes]:
    """A labelled render and a plain clip (never signed) of the same moving portrait."""
    labelled = tmp_path / "labelled.mp4"
    authz = consent_world.authorize("music_video")
    with LabelledWriter(consent_world.workspace).open_video(
        authz, RenderJob.new("video"), labelled, width=320, height=240, fps=10
    ) as video:
        for frame in animate_portrait(astronaut(), n_frames=30, size=(320, 240), seed=1):
            video.write(frame)
    plain = write_clip(tmp_path / "plain.mp4", astronaut(), seconds=3, fps=10, size=(320, 240), with_audio=False)
    return {"labelled": labelled.read_bytes(), "plain": plain.read_bytes()}


def _verify(world, folder: Path, name: str, payload: bytes):
    path = folder / name
    path.write_bytes(payload)
    return verify_path(world.workspace, path, record=False)


def _garbage(n: int) -> bytes:
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()


def _box_offset(data: bytes, kind: bytes) -> int:
    offset = 0
    while offset + 8 <= len(data):
        size, found = struct.unpack(">I4s", data[offset : offset + 8])
        if found == kind:
            return offset
        offset += size
    raise AssertionError(f"no {kind!r} box")


def test_only_the_labelled_file_holds_a_manifest_store(clips, tmp_path):
    (tmp_path / "a.mp4").write_bytes(clips["labelled"])
    (tmp_path / "b.mp4").write_bytes(clips["plain"])
    assert holds_manifest_store(tmp_path / "a.mp4")
    assert not holds_manifest_store(tmp_path / "b.mp4")


def test_truncated_labelled_render_is_tampered_and_says_it_is_damaged(consent_world, clips, tmp_path):
    data = clips["labelled"]
    result = _verify(consent_world, tmp_path, "cut.mp4", data[: int(len(data) * 0.7)])
    assert (result.verdict.code, result.verdict.rule) == ("tampered", "R1")
    assert result.c2pa.present and result.c2pa.state == "Invalid"
    assert any("damaged" in s and "after t=" in s for s in result.verdict.evidence), result.verdict
    assert result.watermark.traced  # the pixels that decode still name the render


def test_labelled_render_with_bytes_appended_is_tampered(consent_world, clips, tmp_path):
    result = _verify(consent_world, tmp_path, "appended.mp4", clips["labelled"] + _garbage(3000))
    assert result.verdict.code == "tampered"


def test_truncated_plain_clip_is_analysed_as_far_as_it_decodes(consent_world, clips, tmp_path):
    data = clips["plain"]
    result = _verify(consent_world, tmp_path, "cut.mp4", data[: int(len(data) * 0.7)])
    assert result.verdict.code == "no-enrolled-artist", result.verdict
    assert not result.c2pa.present
    assert any(e.stage == "read" and ("truncated" in e.reason or "stopped" in e.reason) for e in result.errors)


@pytest.mark.parametrize("damage", ["garbage appended", "box size past the end"])
def test_plain_clip_the_c2pa_reader_cannot_parse_is_not_tampered(consent_world, clips, tmp_path, damage):
    data = clips["plain"]
    if damage == "garbage appended":
        broken = data + _garbage(3000)
    else:
        free = _box_offset(data, b"free")
        broken = data[:free] + struct.pack(">I", 0x7FFFFFFF) + data[free + 4 :]
    result = _verify(consent_world, tmp_path, "broken.mp4", broken)
    assert result.verdict.code == "no-enrolled-artist", result.verdict
    assert result.c2pa is not None and not result.c2pa.present
    assert any(e.stage == "c2pa" and "no C2PA manifest" in e.reason for e in result.errors)


def test_mp4_header_then_garbage_is_an_error_with_no_manifest_claimed(consent_world, clips, tmp_path):
    result = _verify(consent_world, tmp_path, "garbage.mp4", clips["plain"][:32] + _garbage(5000))
    assert result.verdict.code == "error"
    assert "not a readable media file" in result.verdict.evidence[0]
    assert not result.c2pa.present


def test_random_bytes_named_mp4_is_an_error(consent_world, tmp_path):
    result = _verify(consent_world, tmp_path, "random.mp4", _garbage(5000))
    assert result.verdict.code == "error"
    assert "unrecognised file signature" in result.verdict.evidence[0]


def test_labelled_render_cut_before_any_frame_is_an_error(consent_world, clips, tmp_path):
    data = clips["labelled"]
    result = _verify(consent_world, tmp_path, "stub.mp4", data[: _box_offset(data, b"mdat") + 200])
    assert result.verdict.code == "error"
    assert result.c2pa.present  # the manifest is kept as evidence; the verdict makes no claim
