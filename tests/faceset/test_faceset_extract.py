"""Extraction end to end on generated media: consent gates, identity filter, bad input, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import ConsentError, FacesetError
from likeness.faces import IDENTITY_THRESHOLD, FaceEmbedder, transform_points
from likeness.faceset import ExtractOptions, extract_faceset, load_faceset
from likeness.faceset.extract import PROGRESS_NAME
from likeness.media import synthetic, write_image

# Generated clips are small and near-identical after alignment: keep every frame.
NO_DEDUP = ExtractOptions(dedup_hamming=None, min_face=48)


@pytest.fixture
def group_image(tmp_path: Path, astronaut, grace_hopper) -> Path:
    """Two portraits side by side: grace_hopper (not the subject) left, astronaut (mina) right."""
    return write_image(
        tmp_path / "inputs" / "group.png", synthetic.compose_group([grace_hopper, astronaut], size=(1024, 512))
    )


@pytest.fixture
def clip(tmp_path: Path, astronaut) -> Path:
    """A 1.2 s 25 fps clip of the astronaut portrait with head motion."""
    return synthetic.write_clip(
        tmp_path / "inputs" / "mina_clip.mp4", astronaut, seconds=1.2, fps=25, size=(480, 320), seed=3
    )


def test_group_photo_keeps_only_the_subject(enrolled_world, group_image: Path, tmp_path: Path) -> None:
    report = extract_faceset(enrolled_world.workspace, enrolled_world.authorize(), [group_image], tmp_path / "fs")
    assert report.ok and report.faces_kept == 1
    assert report.faces_seen == 2 and report.rejected["other_identity"] == 1
    faceset = load_faceset(tmp_path / "fs", verify_images=True)
    (record,) = faceset.records
    assert record.identity_distance <= IDENTITY_THRESHOLD
    assert record.grant_id == enrolled_world.grant_id and record.release_id is None
    # The kept face is the right-hand one (the astronaut's cell): the affine maps the crop
    # centre back into the right half of the frame.
    centre_in_frame = transform_points(np.array([[128.0, 128.0]]), _inverse(record.affine))[0]
    assert centre_in_frame[0] > 512
    crop = faceset.image(record)
    assert crop.shape == (256, 256, 3)
    # Landmarks are stored in crop coordinates and sit inside the crop.
    assert record.landmarks.min() >= 0 and record.landmarks.max() <= 256
    mask = faceset.mask(record)
    assert mask.shape == (256, 256) and 0.2 < (mask > 0).mean() < 0.9
    assert -30 < record.yaw < 30 and record.sharpness > 0 and record.face_size > 100


def _inverse(affine: np.ndarray) -> np.ndarray:
    full = np.vstack([affine, [0, 0, 1]])
    return np.linalg.inv(full)[:2]


def test_clip_faces_are_tracked_and_embedded_per_track(enrolled_world, clip: Path, tmp_path: Path, monkeypatch) -> None:
    embedded = []
    original = FaceEmbedder.embed_many

    def counting(self, rgb, landmarks):
        embedded.append(len(landmarks))
        return original(self, rgb, landmarks)

    monkeypatch.setattr(FaceEmbedder, "embed_many", counting)
    options = ExtractOptions(dedup_hamming=None, min_face=48, identity_every=10)
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [clip], tmp_path / "fs", options=options
    )
    assert report.frames_read == 30
    assert report.faces_kept >= 27  # the portrait stays in view throughout
    # One embedding per track every 10 frames, not one per frame.
    assert sum(embedded) <= 4
    faceset = load_faceset(tmp_path / "fs")
    assert {r.track_id for r in faceset} == {faceset[0].track_id}
    frames = [r.frame_index for r in faceset]
    assert frames == sorted(frames)
    assert faceset[1].timestamp_s == pytest.approx(faceset[1].frame_index / 25, abs=0.02)
    # Head motion shows up in the recorded pose (rotation within +-10 degrees on screen).
    rolls = [r.roll for r in faceset]
    assert max(rolls) - min(rolls) > 3


def test_near_duplicates_are_dropped_by_default(enrolled_world, clip: Path, tmp_path: Path) -> None:
    report = extract_faceset(enrolled_world.workspace, enrolled_world.authorize(), [clip], tmp_path / "fs")
    assert report.ok
    assert report.rejected["duplicate"] > 0
    assert report.faces_kept + report.rejected["duplicate"] == report.faces_seen


def test_ledger_event_and_manifest(enrolled_world, group_image: Path, tmp_path: Path) -> None:
    ws = enrolled_world.workspace
    report = extract_faceset(ws, enrolled_world.authorize(), [group_image], tmp_path / "fs")
    manifest = json.loads((tmp_path / "fs" / "manifest.json").read_text())
    assert manifest["faceset_sha256"] == report.faceset_sha256
    assert manifest["subject_slug"] == "mina" and manifest["grant_id"] == enrolled_world.grant_id
    assert manifest["counts"]["faces"] == 1 and manifest["counts"]["rejected"]["other_identity"] == 1
    (event,) = ws.ledger.find("faceset.created", faceset_sha256=report.faceset_sha256)
    assert event.payload["grant_id"] == enrolled_world.grant_id
    assert event.payload["faces"] == 1
    assert not (tmp_path / "fs" / PROGRESS_NAME).exists()


def test_bad_inputs_are_skipped_with_reasons(enrolled_world, tmp_path: Path, astronaut) -> None:
    folder = tmp_path / "inputs"
    variants = synthetic.write_corrupt_variants(folder / "bad")
    rng = np.random.default_rng(0)
    write_image(folder / "noise.png", rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("shot list")
    write_image(folder / "mina.png", astronaut)
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [folder, tmp_path / "missing.mp4"], tmp_path / "fs"
    )
    assert report.ok and report.faces_kept == 1
    reasons = {Path(s.path).name: s.reason for s in report.skipped_inputs}
    for path in variants.values():
        assert path.name in reasons, path.name
    assert reasons["zero_byte.jpg"].startswith("empty file")
    assert reasons["audio_only.m4a"] == "unsupported format '.m4a'"  # verify leaves it out too
    assert "too large" in reasons["bomb.png"]
    assert "truncated" in reasons["truncated.mp4"] or "stopped" in reasons["truncated.mp4"]
    assert reasons["noise.png"] == "no face found"
    assert reasons["notes.txt"].startswith("unsupported format")
    assert reasons["missing.mp4"] == "not found"
    assert "mina.png" not in reasons


def test_nothing_usable_writes_nothing(enrolled_world, tmp_path: Path, grace_hopper) -> None:
    photo = write_image(tmp_path / "someone_else.png", grace_hopper)
    ws = enrolled_world.workspace
    report = extract_faceset(ws, enrolled_world.authorize(), [photo], tmp_path / "fs")
    assert not report.ok and report.faceset_sha256 is None
    assert report.rejected["other_identity"] == 1
    assert not (tmp_path / "fs").exists()
    assert ws.ledger.find("faceset.created") == []


def test_interrupted_extraction_resumes_without_redoing_frames(enrolled_world, clip: Path, tmp_path: Path) -> None:
    ws, out = enrolled_world.workspace, tmp_path / "fs"
    options = ExtractOptions(dedup_hamming=None, min_face=48, recheck_every=8)

    class Interrupted(Exception):
        pass

    def interrupt_after_12(event) -> None:
        if event.frames_read == 12:
            raise Interrupted

    with pytest.raises(Interrupted):
        extract_faceset(ws, enrolled_world.authorize(), [clip], out, options=options, progress=interrupt_after_12)
    checkpoint = json.loads((out / PROGRESS_NAME).read_text())
    assert checkpoint["next_frame"][str(clip)] == 8  # last checkpoint was after frame 7
    assert not (out / "manifest.json").exists()

    frames_seen_again = []
    report = extract_faceset(
        ws,
        enrolled_world.authorize(),
        [clip],
        out,
        options=options,
        progress=lambda event: frames_seen_again.append(event.frame_index),
    )
    assert report.resumed and report.frames_before_resume == 8
    assert frames_seen_again == list(range(8, 30))
    assert report.frames_read == 30
    faceset = load_faceset(out, verify_images=True)
    indices = [r.frame_index for r in faceset]
    assert indices == sorted(set(indices)) and len(indices) == report.faces_kept >= 27
    assert len(list((out / "faces").iterdir())) == len(faceset)
    assert len(ws.ledger.find("faceset.created")) == 1


def test_finished_faceset_is_not_overwritten(enrolled_world, group_image: Path, tmp_path: Path) -> None:
    extract_faceset(enrolled_world.workspace, enrolled_world.authorize(), [group_image], tmp_path / "fs")
    with pytest.raises(FacesetError, match="already there"):
        extract_faceset(enrolled_world.workspace, enrolled_world.authorize(), [group_image], tmp_path / "fs")


def test_refused_without_a_training_authorization(enrolled_world, group_image: Path, tmp_path: Path) -> None:
    ws = enrolled_world.workspace
    with pytest.raises(ConsentError) as refused:
        extract_faceset(ws, enrolled_world.authorize("music_video"), [group_image], tmp_path / "a")
    assert refused.value.reason == "use_not_for_step"
    with pytest.raises(ConsentError):
        extract_faceset(ws, object(), [group_image], tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_refused_after_revocation_before_reading_anything(enrolled_world, group_image: Path, tmp_path: Path) -> None:
    authz = enrolled_world.authorize()
    enrolled_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        extract_faceset(enrolled_world.workspace, authz, [group_image], tmp_path / "fs")
    assert refused.value.reason == "revoked"
    assert not (tmp_path / "fs").exists()
    with pytest.raises(ConsentError):
        enrolled_world.authorize()


def test_revocation_mid_run_stops_and_discards(enrolled_world, clip: Path, tmp_path: Path) -> None:
    options = ExtractOptions(dedup_hamming=None, min_face=48, recheck_every=5)
    frames = []

    def revoke_on_third_frame(event) -> None:
        frames.append(event.frame_index)
        if len(frames) == 3:
            enrolled_world.revoke_grant()

    with pytest.raises(ConsentError):
        extract_faceset(
            enrolled_world.workspace,
            enrolled_world.authorize(),
            [clip],
            tmp_path / "fs",
            options=options,
            progress=revoke_on_third_frame,
        )
    assert len(frames) == 4  # the recheck at the 5th frame refused, before it was reported
    assert not (tmp_path / "fs").exists()
    assert enrolled_world.workspace.ledger.find("faceset.created") == []


def test_performer_faceset_needs_a_release(enrolled_world, tmp_path: Path, grace_hopper) -> None:
    photo = write_image(tmp_path / "jun.png", grace_hopper)
    report = extract_faceset(enrolled_world.workspace, enrolled_world.authorize_release(), [photo], tmp_path / "jun")
    assert report.ok and report.faces_kept == 1
    faceset = load_faceset(tmp_path / "jun")
    assert faceset.release_id == enrolled_world.release_id and faceset.grant_id is None
    assert faceset.subject_slug == "jun" and faceset[0].release_id == enrolled_world.release_id
    (event,) = enrolled_world.workspace.ledger.find("faceset.created", faceset_sha256=faceset.faceset_sha256)
    assert event.payload["release_id"] == enrolled_world.release_id

    release = enrolled_world.authorize_release()
    enrolled_world.revoke_release()
    with pytest.raises(ConsentError):
        extract_faceset(enrolled_world.workspace, release, [photo], tmp_path / "jun2")


def test_subject_without_reference_photos_is_refused(consent_world, group_image: Path, tmp_path: Path) -> None:
    with pytest.raises(FacesetError, match="no reference photos"):
        extract_faceset(consent_world.workspace, consent_world.authorize(), [group_image], tmp_path / "fs")
    assert not (tmp_path / "fs").exists()


def test_options_are_validated() -> None:
    with pytest.raises(FacesetError, match="size"):
        ExtractOptions(size=8)
    with pytest.raises(FacesetError, match="crop_format"):
        ExtractOptions(crop_format="gif")


def test_small_photo_sets_keep_expression_variants_and_name_what_was_dropped(
    enrolled_world, tmp_path: Path, astronaut, monkeypatch
) -> None:
    """Three copies of one photo: the second measured with lips apart is an expression variant and
    kept; the third repeats the first's look and expression and is dropped, by name, with why."""
    import likeness.faces

    photos = [write_image(tmp_path / "inputs" / f"photo_{i}.png", astronaut) for i in (1, 2, 3)]
    mouths = iter([0.02, 0.20, 0.03])
    monkeypatch.setattr(likeness.faces, "mouth_openness", lambda landmarks: next(mouths))
    report = extract_faceset(
        enrolled_world.workspace,
        enrolled_world.authorize(),
        photos,
        tmp_path / "fs",
        options=ExtractOptions(min_face=48),
    )
    assert report.faces_kept == 2 and report.rejected["duplicate"] == 1
    assert [d["face"] for d in report.duplicates_dropped] == [str(photos[2])]
    reason = report.duplicates_dropped[0]["reason"]
    assert reason.startswith(
        f"repeats {photos[0]}: 0 of 64 hash bits differ (limit 3); same expression (mouth 0.03 vs 0.02"
    )
    kept = sorted(record.mouth_openness for record in load_faceset(tmp_path / "fs"))
    assert kept == [0.02, 0.20]


def _animated_gif(path: Path, portrait: np.ndarray, *, frames: int) -> Path:
    """A GIF of the portrait moving like a head, 0.2 s a frame."""
    from PIL import Image

    pictures = [Image.fromarray(rgb) for rgb in synthetic.animate_portrait(portrait, n_frames=frames, size=(360, 270))]
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=200, loop=0)
    return path


def test_an_animated_gif_is_sampled_as_footage_and_a_still_gif_read_as_a_photo(
    enrolled_world, tmp_path: Path, astronaut
) -> None:
    from PIL import Image

    _animated_gif(tmp_path / "inputs" / "reaction.gif", astronaut, frames=6)
    Image.fromarray(astronaut).save(tmp_path / "inputs" / "still.gif")
    options = ExtractOptions(dedup_hamming=None, min_face=48, frame_step=2)
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [tmp_path / "inputs"], tmp_path / "fs", options=options
    )
    assert report.skipped_inputs == [] and report.inputs_used == 2
    assert report.frames_read == 3 + 1  # every 2nd of the 6 frames, and the still
    by_source = {}
    for record in load_faceset(tmp_path / "fs").records:
        by_source.setdefault(Path(record.source).name, []).append(record)
    assert [r.timestamp_s for r in by_source["reaction.gif"]] == [0.0, 0.4, 0.8]
    assert len({r.track_id for r in by_source["reaction.gif"]}) == 1  # one face tracked through the frames
    assert [r.timestamp_s for r in by_source["still.gif"]] == [None]


def test_a_clip_named_as_a_photo_is_read_as_the_clip_it_is(enrolled_world, clip: Path, tmp_path: Path) -> None:
    misnamed = clip.rename(clip.with_name("mina_clip.png"))
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [misnamed], tmp_path / "fs", options=NO_DEDUP
    )
    assert report.skipped_inputs == [] and report.frames_read == 30
    assert report.faces_kept >= 27


def test_a_phone_clip_stored_upside_down_gives_upright_faces(enrolled_world, tmp_path: Path, astronaut) -> None:
    """Pixels stored turned 180 degrees with a display matrix that turns them back (a phone held
    the other way up): faces were looked for upside down, and none was kept."""
    from likeness.media import VideoEncoder

    phone = tmp_path / "mina_phone.mp4"
    with VideoEncoder(phone, width=320, height=240, fps=25, rotation=180) as encoder:
        for upright in synthetic.animate_portrait(astronaut, n_frames=10, size=(320, 240), seed=2):
            encoder.write(np.ascontiguousarray(np.rot90(upright, 2)))
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [phone], tmp_path / "fs", options=NO_DEDUP
    )
    assert report.frames_read == 10 and report.faces_kept >= 8


def test_extract_takes_the_files_verify_takes(tmp_path: Path) -> None:
    """One list of media suffixes for extract and verify (extract took .m4a, audio, which
    verify leaves out)."""
    from likeness.faceset import expand_inputs
    from likeness.verify.scan import iter_media_files

    folder = tmp_path / "footage"
    folder.mkdir()
    for suffix in (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg"):
        (folder / f"take{suffix}").write_bytes(b"")
    for suffix in (".flv", ".3gp", ".png", ".gif", ".avif", ".m4a", ".txt"):
        (folder / f"take{suffix}").write_bytes(b"")
    found, skipped = expand_inputs([folder])
    assert {path.name for path, _ in found} == {path.name for path in iter_media_files([folder])}
    assert {Path(s.path).suffix for s in skipped} == {".m4a", ".txt"}


#: Containers broadcast and phone footage comes in, each with a codec it carries.
FOOTAGE_CONTAINERS = {
    ".ts": ("mpegts", "libx264"),
    ".mpg": ("mpeg", "mpeg1video"),
    ".flv": ("flv", "libx264"),
    ".3gp": ("3gp", "libx264"),
}


def _reencoded(clip: Path, path: Path) -> Path:
    """``clip``'s frames in the container ``path``'s suffix names (``FOOTAGE_CONTAINERS``)."""
    import av

    container, codec = FOOTAGE_CONTAINERS[path.suffix]
    with av.open(str(clip)) as source, av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 480, 320, "yuv420p"
        for frame in source.decode(video=0):
            output.mux(stream.encode(frame.reformat(format="yuv420p")))
        output.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("suffix", sorted(FOOTAGE_CONTAINERS))
def test_footage_in_transport_program_flash_and_3gp_containers_is_extracted_and_verified(
    enrolled_world, clip: Path, tmp_path: Path, suffix: str
) -> None:
    """MPEG-TS (broadcast recordings), MPEG-PS, FLV and 3GP clips: extract read them by suffix
    and verify did not (their bytes matched no signature it knew), so making the lists one had
    left both without them. The sniffer knows them now, and both read them."""
    from likeness.media.file_kind import sniff_file
    from likeness.verify.pipeline import Verifier

    (tmp_path / "broadcast").mkdir()
    footage = _reencoded(clip, tmp_path / "broadcast" / f"mina{suffix}")
    assert sniff_file(footage).media_type == "video"
    report = extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [footage], tmp_path / "fs", options=NO_DEDUP
    )
    assert report.ok and report.faces_kept >= 10, report
    verifier = Verifier(enrolled_world.workspace)
    try:
        result, _ = verifier.verify(footage)
    finally:
        verifier.close()
    assert result.media_type == "video" and result.verdict.code == "enrolled-artist-unlabelled", result.verdict


def test_each_input_is_sniffed_once(enrolled_world, tmp_path: Path, astronaut, monkeypatch) -> None:
    """The kind decided from the first bytes is passed down: an animated GIF was sniffed to
    decide its kind and again to decide it was an animation."""
    import likeness.faceset.extract as extract_module

    sniffed: list[Path] = []
    real = extract_module.sniff_file

    def counted(path: Path):
        sniffed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(extract_module, "sniff_file", counted)
    _animated_gif(tmp_path / "inputs" / "reaction.gif", astronaut, frames=2)
    write_image(tmp_path / "inputs" / "mina.png", astronaut)
    extract_faceset(
        enrolled_world.workspace, enrolled_world.authorize(), [tmp_path / "inputs"], tmp_path / "fs", options=NO_DEDUP
    )
    assert sorted(sniffed) == ["mina.png", "reaction.gif"]
