"""CLI: extract, faceset show/report, subject photos add; in-process on a temporary workspace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.media import synthetic, write_image
from tests.consent.test_cli_consent import enrol, signed_by_holder

runner = CliRunner()


def run(home: Path, *args: str, code: int = 0) -> str:
    """Run a command; returns its output with Rich's line wrapping undone."""
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


@pytest.fixture
def studio(tmp_path: Path, astronaut, grace_hopper) -> dict[str, Path]:
    return _studio(tmp_path, astronaut, grace_hopper)


@pytest.fixture
def studio_before_the_marker(monkeypatch, tmp_path: Path, astronaut, grace_hopper) -> dict[str, Path]:
    """``studio`` as versions before the sealing marker made it (nothing marks where sealing
    began); ``monkeypatch.undo()`` is the upgrade."""
    from likeness.consent.registry import Registry

    monkeypatch.setattr(Registry, "mark_reference_sealing", lambda self: False, raising=False)
    return _studio(tmp_path, astronaut, grace_hopper)


def _studio(tmp_path: Path, astronaut: np.ndarray, grace_hopper: np.ndarray) -> dict[str, Path]:
    home = tmp_path / "home"
    run(home, "init", "--org", "studio")
    paths = {
        "home": home,
        "mina": write_image(tmp_path / "mina.png", astronaut),
        "hopper": write_image(tmp_path / "hopper.png", grace_hopper),
        "group": write_image(
            tmp_path / "group.png", synthetic.compose_group([grace_hopper, astronaut], size=(1024, 512))
        ),
    }
    mina = enrol(home, "mina", "--virtual", "--owner-org", "studio")
    signed_by_holder(
        home, mina, "consent", "request", "mina", "--use", "training", "--until", "+30d", "--purpose", "debut"
    )
    return paths


def test_photos_add_then_extract_show_and_report(studio: dict[str, Path], tmp_path: Path) -> None:
    home = studio["home"]
    added = run(home, "subject", "photos", "add", "mina", str(studio["mina"]), str(studio["group"]))
    assert "1 enrolled" in added
    assert "2 faces found" in added  # the group photo is not a usable reference

    out = tmp_path / "fs"
    extracted = run(
        home, "extract", "mina", str(studio["group"]), str(tmp_path / "nope.jpg"), "--out", str(out), "--size", "128"
    )
    assert "1 face " in extracted and "other identity" in extracted
    assert "nope.jpg: not found" in extracted

    shown = run(home, "faceset", "show", str(out), "--verify")
    assert "mina" in shown and "verified" in shown

    reported = run(home, "faceset", "report", str(out), "--out", str(tmp_path / "report"))
    assert "report.html" in reported and "gap" in reported
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["coverage"]["faces"] == 1


def test_extract_exits_nonzero_when_nothing_usable(studio: dict[str, Path], tmp_path: Path) -> None:
    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    result = run(home, "extract", "mina", str(studio["hopper"]), "--out", str(tmp_path / "fs"), code=1)
    assert "no usable face" in result
    assert not (tmp_path / "fs").exists()


def test_extract_of_inputs_none_of_which_could_be_read_says_so_not_that_no_face_was_found(
    studio: dict[str, Path], tmp_path: Path
) -> None:
    # A mistyped path (or a text file named .mp4) ended on "no usable face of mina found".
    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    (tmp_path / "notes.mp4").write_text("not a video")
    inputs = [str(tmp_path / "footage" / "mina.mp4"), str(tmp_path / "notes.mp4")]
    result = run(home, "extract", "mina", *inputs, "--out", str(tmp_path / "fs"), code=1)
    assert "mina.mp4: not found" in result and "notes.mp4: not a readable media file" in result
    assert result.endswith(
        "error: no input could be read (each is named above with why); give image files, folders or videos; "
        "nothing written"
    )
    assert not (tmp_path / "fs").exists()
    (tmp_path / "empty").mkdir()
    result = run(home, "extract", "mina", str(tmp_path / "empty"), "--out", str(tmp_path / "fs"), code=1)
    assert result.endswith(
        "error: no image or video file in the inputs; give image files, folders or videos; nothing written"
    )


def test_extract_refused_without_training_grant(studio: dict[str, Path], tmp_path: Path) -> None:
    home = studio["home"]
    enrol(home, "ari")
    result = run(home, "extract", "ari", str(studio["hopper"]), "--out", str(tmp_path / "fs"), code=1)
    assert "refused" in result
    assert not (tmp_path / "fs").exists()


def test_altered_faceset_is_reported_not_shown(studio: dict[str, Path], tmp_path: Path) -> None:
    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    out = tmp_path / "fs"
    run(home, "extract", "mina", str(studio["mina"]), "--out", str(out))
    index = out / "index.jsonl"
    index.write_text(index.read_text().replace('"track_id":0', '"track_id":7'))
    result = run(home, "faceset", "show", str(out), code=1)
    assert "altered" in result


def test_photos_add_with_no_usable_photo_fails(studio: dict[str, Path], tmp_path: Path) -> None:
    noise = write_image(
        tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    )
    result = run(studio["home"], "subject", "photos", "add", "mina", str(noise), code=1)
    assert "no face found" in result


def test_extract_names_each_near_duplicate_it_drops(studio: dict[str, Path], tmp_path: Path) -> None:
    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    copy = tmp_path / "again" / "mina_copy.png"
    copy.parent.mkdir()
    copy.write_bytes(studio["mina"].read_bytes())
    result = " ".join(
        run(home, "extract", "mina", str(studio["mina"]), str(copy), "--out", str(tmp_path / "fs")).split()
    )
    assert f"near-duplicate dropped {copy}: repeats {studio['mina']}: 0 of 64 hash bits differ (limit 3)" in result
    assert "same expression" in result


@pytest.mark.parametrize("name", ["still.mp4", "still_clip.png"])
def test_a_video_s_near_duplicates_are_one_line_and_a_photo_that_only_repeats_says_so(
    studio: dict[str, Path], tmp_path: Path, astronaut, name: str
) -> None:
    """The README tour's case: a clip whose frames barely change printed ~20 'near-duplicate
    dropped' lines, and a photo that repeated a kept frame was 'skipped: no usable face'. A clip
    named ``.png`` is extracted as the clip it is, and printed as one (the printout decided by
    suffix and named its frames one by one)."""
    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    made = synthetic.write_clip(
        tmp_path / "still.mp4", astronaut, seconds=1.0, fps=10, size=(640, 360), with_audio=False, seed=2
    )
    clip = made.rename(tmp_path / name)
    result = run(home, "extract", "mina", str(clip), str(studio["mina"]), "--out", str(tmp_path / "fs"))
    assert result.count("near-duplicate dropped") == 1, result  # the photo, by name; no frame lines
    assert re.search(
        rf"near-duplicates dropped {re.escape(name)}: \d+ frame\(s\) repeat a kept face in pose and expression",
        result,
    )
    assert f"skipped {studio['mina']}: its face repeats a face already kept (near-duplicates" in result
    assert "no usable face" not in result
    assert re.search(r"fs: \d+ faces? from 1 input\(s\)", result)


def test_a_new_user_s_slips_with_extract_and_faceset_are_named(studio: dict[str, Path], tmp_path: Path) -> None:
    home, notes = studio["home"], tmp_path / "notes.txt"
    notes.write_text("not a faceset", encoding="utf-8")
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    # --out naming a file: was a NotADirectoryError traceback.
    out = run(home, "extract", "mina", str(studio["mina"]), "--out", str(notes), code=1)
    assert f"{notes}: not a folder" in out
    # --every 0 named the library's field (frame_step), not the option the user typed.
    result = runner.invoke(
        app, ["--home", str(home), "extract", "mina", str(studio["mina"]), "--out", "x", "--every", "0"]
    )
    assert result.exit_code == 2 and "--every" in result.output, result.output
    # A file given where a faceset folder goes: said so, not "folder not found".
    assert f"{notes}: is a file, not a faceset folder" in run(home, "faceset", "show", str(notes), code=1)


def _enrol_as_before_seals(home: Path, rgb: np.ndarray) -> None:
    """A reference stored as the product did before reference events were sealed: the row,
    and a ``subject.reference_added`` event with no organisation seal."""
    import hashlib

    from likeness import faces
    from likeness.config import Settings
    from likeness.workspace import Workspace

    (face,) = faces.FaceDetector(max_faces=4, min_confidence=0.5).detect(rgb)
    vector = np.asarray(faces.FaceEmbedder().embed(rgb, np.asarray(face.landmarks, np.float32)), "<f4")
    workspace = Workspace.open(Settings(home=home))
    try:
        subject = workspace.registry.get_subject("mina")
        photo = hashlib.sha256(b"old photo").hexdigest()
        with workspace.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(
                text(
                    "INSERT INTO reference_embeddings (subject_id, source_name, source_sha256, vector, created_at) "
                    "VALUES (:s, 'old.jpg', :h, :v, '2026-01-01T00:00:00Z')"
                ),
                {"s": subject.id, "h": photo, "v": vector.tobytes()},
            )
        workspace.ledger.append(
            "subject.reference_added",
            {
                "subject_id": subject.id,
                "source_name": "old.jpg",
                "source_sha256": photo,
                "vector_sha256": hashlib.sha256(vector.tobytes()).hexdigest(),
            },
        )
    finally:
        workspace.close()


def test_a_reference_from_before_seals_is_attested_by_an_operator_then_anchors(
    studio_before_the_marker: dict[str, Path], astronaut, monkeypatch
) -> None:
    """A workspace enrolled before reference events were sealed: its references are not used
    and enrolment is refused until an operator, shown each one, attests them with the
    organisation's key (``subject photos attest``); a photo of the same face then enrols."""
    studio = studio_before_the_marker
    home = studio["home"]
    _enrol_as_before_seals(home, astronaut)
    monkeypatch.undo()  # the upgrade

    refused = run(home, "subject", "photos", "add", "mina", str(studio["mina"]), code=1)
    assert "error: subject 'mina': its first reference (photo 'old.jpg', ledger row" in refused
    assert "it carries no organisation seal (written before reference events were sealed)" in refused
    assert "until an operator who recognises the face attests it (likeness subject photos attest mina)" in refused
    audit = run(home, "audit", "verify", code=1)
    assert "of subject 'mina' (photo 'old.jpg'" in audit and "is unsigned" in audit

    listed = runner.invoke(app, ["--home", str(home), "subject", "photos", "attest", "mina"], input="n\n")
    assert listed.exit_code == 1 and "Traceback" not in listed.output
    shown = " ".join(listed.output.split())
    assert "1 reference(s) enrolled before reference events were sealed" in shown
    assert "photo old.jpg" in shown and "error: nothing attested" in shown
    unanswered = runner.invoke(app, ["--home", str(home), "subject", "photos", "attest", "mina"], input="")
    assert unanswered.exit_code == 1 and "attest with --yes" in " ".join(unanswered.output.split())

    assert "reference photos for mina: 1 attested" in run(home, "subject", "photos", "attest", "mina", "--yes")
    assert "no unsigned reference to attest" in run(home, "subject", "photos", "attest", "mina", "--yes")
    assert "1 enrolled" in run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    assert "reference" not in run(home, "audit", "verify")


def test_photos_add_seals_each_reference_with_the_organisation_that_enrolled_the_subject(
    studio: dict[str, Path],
) -> None:
    """With two organisations, a subject's references are sealed by the one that enrolled it
    (``subject add --org``), named or not; naming another is refused in one line before any
    photo is read."""
    from likeness.config import Settings
    from likeness.workspace import Workspace

    home = studio["home"]
    run(home, "org", "add", "rival")
    enrol(home, "jun", "--performer", "--org", "rival")
    refused = run(home, "subject", "photos", "add", "jun", str(studio["hopper"]), "--org", "studio", code=1)
    assert "error: subject 'jun': organisation 'studio' did not enrol the subject; only 'rival', which did" in refused
    assert "1 enrolled" in run(home, "subject", "photos", "add", "jun", str(studio["hopper"]))
    workspace = Workspace.open(Settings(home=home), read_only=True)
    try:
        (event,) = workspace.ledger.find("subject.reference_added")
        assert event.payload["org_id"] == workspace.registry.get_org("rival").id and event.payload["signature"]
        assert len(workspace.registry.reference_embeddings("jun")) == 1
    finally:
        workspace.close()


def test_photos_add_refuses_a_subject_made_again_under_its_slug(studio: dict[str, Path]) -> None:
    """A database editor renames mina's row and inserts another under 'mina': the command says
    so in one line, exit 1, and enrols no face (trial 26; the registry's own test shows why)."""
    import sqlite3

    home = studio["home"]
    run(home, "subject", "photos", "add", "mina", str(studio["mina"]))
    with sqlite3.connect(home / "likeness.db") as db:
        db.execute("UPDATE subjects SET slug = 'mina-old' WHERE slug = 'mina'")
        db.execute(
            "INSERT INTO subjects (id, slug, name, kind, holder_id, owner_org_id, created_at, public_name) "
            "SELECT :new, 'mina', name, kind, holder_id, owner_org_id, created_at, public_name FROM subjects "
            "WHERE slug = 'mina-old'",
            {"new": "e" * 32},
        )
    said = run(home, "subject", "photos", "add", "mina", str(studio["hopper"]), code=1)
    assert said.startswith("refused (subject_altered): subject 'mina': subject row eeee"), said
    assert "has no subject.created event on the ledger; no reference is enrolled for it" in said
