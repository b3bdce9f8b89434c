"""Attacker trial 4 on the detector path (issue #31): a database editor's hand-made
``detector.registered`` row, and a subject's references changed after its detector was evaluated.
Each case crashed ``detector list`` / ``audit verify`` or kept the detector in use before its fix."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector.evaluation import evaluate_detector, evaluation_subject
from likeness.detector.registered import (
    REGISTERED_EVENT,
    WorkspaceDetectors,
    check_registered,
    detectors_fingerprint,
    register_detector,
    registered_detectors,
)
from likeness.faceset import enroll_reference_photos
from likeness.media.synthetic import astronaut

from .handmade import REFERENCE_SEED, GateMedia, varied, write_detector, write_frames

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.mark.parametrize(
    "payload",
    [
        {"note": "no sha256s"},
        {"onnx_sha256": 5, "card_sha256": None},
        {"onnx_sha256": "a" * 64, "card_sha256": "b" * 64, "gates": 7},
    ],
    ids=["missing-fields", "wrong-types", "gates-not-a-list"],
)
def test_a_malformed_registration_row_is_named_not_a_traceback(workspace, settings, mina, payload) -> None:
    """A database editor appends a ``detector.registered`` row (a valid hash chain is easy to
    compute) that names the subject and nothing else: ``detector list``, ``audit verify`` and a
    scan's fingerprint raised ``KeyError`` on it, so the one command that should name it could not run."""
    from likeness.consent.audit import audit_workspace

    workspace.ledger.append(REGISTERED_EVENT, {"subject_id": mina.subject_id, **payload})
    [registered] = registered_detectors(workspace)
    why = check_registered(workspace, registered)
    assert isinstance(why, str) and "is malformed" in why, why
    problems = [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    assert len(problems) == 1 and "is malformed" in problems[0].message
    assert isinstance(detectors_fingerprint(workspace), str)
    found = WorkspaceDetectors(workspace).for_subject(mina.subject_id)
    assert isinstance(found, str) and "is malformed" in found

    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    assert "NOT used by verify" in listed.output and "is malformed" in listed.output
    audited = CliRunner().invoke(app, ["--home", str(settings.home), "audit", "verify"])
    assert audited.exit_code == 1 and "Traceback" not in audited.output
    assert "detector_altered" in audited.output


@pytest.fixture
def registered_for_mina(media: GateMedia, tmp_path: Path, workspace, mina) -> Path:
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, folder, "mina")
    [registered] = registered_detectors(workspace)
    assert not isinstance(check_registered(workspace, registered), str)
    return folder


def more_references(workspace, folder: Path, seed: int) -> int:
    """Enrol two more pictures of mina (astronaut, another look): what an agency does when it
    adds photos, and what changes which tracks verify recognises as her and her threshold."""
    base = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    look = np.random.default_rng(REFERENCE_SEED + seed)
    frames = write_frames(folder, [varied(base, look) for _ in range(2)])
    return enroll_reference_photos(workspace, "mina", sorted(frames.iterdir())).added


def test_references_changed_after_the_evaluation_stop_the_detector(
    registered_for_mina: Path, media: GateMedia, workspace, settings, tmp_path
) -> None:
    """The gates were measured on the units verify recognised as mina *with the references she had
    then*; references added since (or removed from the database) change which tracks verify
    recognises as mina and her threshold, and verify went on scoring them with a detector whose
    gates no one measured on them. Evaluated again for the new references, it is used again."""
    from likeness.consent.audit import audit_workspace

    mina_id = str(workspace.registry.get_subject("mina").id)
    assert not isinstance(WorkspaceDetectors(workspace).for_subject(mina_id), str)
    added = more_references(workspace, tmp_path / "more", seed=1)
    assert added >= 1

    [registered] = registered_detectors(workspace)
    why = check_registered(workspace, registered)
    assert isinstance(why, str), "still used after mina's references changed"
    assert "mina's references are not the ones its evaluation recognised them with" in why
    assert re.search(r"\((\d+) then, (\d+) now; threshold 0\.\d{3} then, 0\.\d{3} now\)", why), why
    assert "evaluate it again with --subject mina" in why
    found = WorkspaceDetectors(workspace).for_subject(mina_id)
    assert isinstance(found, str) and "references are not the ones" in found
    problems = [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    assert len(problems) == 1 and "references are not the ones" in problems[0].message
    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0, listed.output
    assert (
        f"NOT used by verify: its registered detector (ledger #{registered.ledger_seq}): mina's references"
        in " ".join(listed.output.split())
    )

    mina = evaluation_subject(workspace, "mina")
    assert evaluate_detector(registered_for_mina, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, registered_for_mina, "mina")
    [registered] = registered_detectors(workspace)
    assert not isinstance(check_registered(workspace, registered), str)
    assert not isinstance(WorkspaceDetectors(workspace).for_subject(mina_id), str)


class _RunsCode:
    """What a crafted pickle carries: a call made while it is unpickled."""

    def __reduce__(self):
        return (Path.touch, (Path(_RunsCode.marker),))

    marker = ""


@pytest.mark.parametrize("seed", [17, 62, 54, 0], ids=["IndexError", "KeyError", "UnicodeDecodeError", "Unpickling"])
def test_init_from_garbage_bytes_is_a_model_error_naming_the_file(tmp_path: Path, seed: int) -> None:
    """``detector train --init FILE`` with bytes that are not a checkpoint: torch's weights-only
    unpickler raises IndexError or KeyError on some of them, which escaped as a traceback."""
    from likeness.detector.train import DetectorTrainConfig, initial_network
    from likeness.errors import ModelError

    crafted = tmp_path / "checkpoint.pt"
    crafted.write_bytes(np.random.default_rng(seed).bytes(2000))
    with pytest.raises(ModelError, match="checkpoint unreadable") as refused:
        initial_network(DetectorTrainConfig(init_checkpoint=str(crafted)))
    assert str(crafted) in str(refused.value)


def test_init_from_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    """The checkpoint is loaded weights-only, and the refusal does not advise turning that off
    (torch's own message says to re-run with ``weights_only=False``)."""
    import torch

    from likeness.detector.train import DetectorTrainConfig, initial_network
    from likeness.errors import ModelError

    _RunsCode.marker = str(tmp_path / "ran")
    crafted = tmp_path / "checkpoint.pt"
    torch.save({"format": "likeness.checkpoint/1", "net": _RunsCode()}, crafted)
    with pytest.raises(ModelError) as refused:
        initial_network(DetectorTrainConfig(init_checkpoint=str(crafted)))
    assert not (tmp_path / "ran").exists()
    assert "weights_only" not in str(refused.value) and "holds objects other than tensors" in str(refused.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["unit", "frame-in-folder"])
def test_a_unit_that_is_an_endless_stream_is_refused_not_hashed_forever(
    media: GateMedia, tmp_path: Path, where: str
) -> None:
    """``--real clip.mp4`` where clip.mp4 links to ``/dev/zero``: evaluate hashed every file
    before reading any, and the hash never ended (verify itself says "not a regular file")."""
    from likeness.errors import MediaError

    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    if where == "unit":
        endless = tmp_path / "clip.mp4"
        endless.symlink_to("/dev/zero")
        real = [*media.real[:2], endless]
    else:
        frames = tmp_path / "frames"
        frames.mkdir()
        endless = frames / "frame9.png"
        endless.symlink_to("/dev/zero")
        real = [*media.real[:2], frames]
    with pytest.raises(MediaError, match="not a regular file") as refused:
        evaluate_detector(folder, real, media.fake)
    assert str(endless) in str(refused.value)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("swap", ["link-to-dev-zero", "sparse-file", "fifo"])
def test_a_registered_file_swapped_for_an_endless_or_huge_one_is_named_not_read(
    registered_for_mina: Path, workspace, settings, swap: str
) -> None:
    """A workspace file editor replaces the registered ONNX file with a link to ``/dev/zero``, a
    FIFO or a 64 GiB sparse file: ``detector list``, ``audit verify`` and verify read it whole,
    and were killed for memory (the link, by hand: 20 s and gone), so nothing named the detector."""
    import os

    from likeness.consent.audit import audit_workspace
    from likeness.detector.registered import detector_folder
    from likeness.detector.train import MODEL_FILE

    mina_id = str(workspace.registry.get_subject("mina").id)
    onnx = detector_folder(workspace.home, mina_id) / MODEL_FILE
    onnx.unlink()
    if swap == "link-to-dev-zero":
        onnx.symlink_to("/dev/zero")
    elif swap == "fifo":
        os.mkfifo(onnx)
    else:
        with open(onnx, "wb") as handle:
            handle.truncate(64 << 30)
    [registered] = registered_detectors(workspace)
    why = check_registered(workspace, registered)
    expected = "over the" if swap == "sparse-file" else "not a regular file"
    assert isinstance(why, str) and "cannot be read" in why and expected in why, why
    found = WorkspaceDetectors(workspace).for_subject(mina_id)
    assert isinstance(found, str) and expected in found
    problems = [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    assert len(problems) == 1 and expected in problems[0].message
    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0 and "NOT used by verify" in listed.output


def test_register_refuses_a_detector_folder_whose_onnx_is_a_sparse_giant(
    media: GateMedia, workspace, mina, tmp_path: Path
) -> None:
    from likeness.detector.train import MODEL_FILE
    from likeness.errors import ModelError

    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    with open(folder / MODEL_FILE, "wb") as handle:
        handle.truncate(64 << 30)
    with pytest.raises(ModelError, match="over the"):
        register_detector(workspace, folder, "mina")
    assert registered_detectors(workspace) == []


def test_gallery_vectors_moved_under_their_row_keys_are_rebuilt_from_the_registry(
    registered_for_mina: Path, media: GateMedia, workspace
) -> None:
    """A workspace file editor shifts every one of mina's vectors in ``HOME/gallery/index.faiss``
    by the same offset, keeping ``ids.json``: the row keys (and so the references' sha256 the
    evaluation records) and her threshold (pairwise distances) stay the same, but verify
    recognised her in nothing, so her detector never ran, and ``detector list`` / ``audit
    verify`` said it was in use. The index is a cache: vectors that do not hash to their row
    keys make it rebuild from the registry."""
    import faiss

    from likeness.verify.gallery import INDEX_FILE, gallery_folder, open_gallery

    mina_id = str(workspace.registry.get_subject("mina").id)
    before = open_gallery(workspace)
    threshold = before.subject_thresholds[mina_id]
    index_path = gallery_folder(workspace.home) / INDEX_FILE
    index = faiss.read_index(str(index_path))
    vectors = index.reconstruct_n(0, index.ntotal)
    moved = faiss.IndexFlatL2(vectors.shape[1])
    moved.add((vectors + 0.5).astype(np.float32))
    faiss.write_index(moved, str(index_path))

    after = open_gallery(workspace)
    assert after.last_sync_rebuilt, "a tampered index was trusted"
    assert after.subject_thresholds[mina_id] == pytest.approx(threshold)
    own = workspace.registry.reference_embeddings("mina")
    [query] = after.query_many(own[:1].astype(np.float32))
    assert query.candidates[0].subject_id == mina_id and query.candidates[0].distance < 1e-3
    [registered] = registered_detectors(workspace)
    assert not isinstance(check_registered(workspace, registered), str)


def test_cli_evaluate_names_a_unit_with_no_face(media: GateMedia, settings, workspace, mina, tmp_path: Path) -> None:
    """New-user trial: a unit without a face vanished from the output ("5 real and ... units"
    after six were given), with no line saying why; and nothing showed progress meanwhile."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    blank = write_frames(tmp_path / "blank", [np.full((256, 256, 3), 128, np.uint8)])
    units = [a for p in media.real for a in ("--real", str(p))] + [a for p in media.fake for a in ("--fake", str(p))]
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(settings.home),
            "detector",
            "evaluate",
            str(folder),
            *units,
            "--real",
            str(blank),
            "--subject",
            "mina",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"not measured: {blank}: no face found" in " ".join(result.output.split())
    # and a progress bar over the units (decoding a few clips takes minutes; nothing was shown)
    assert "units" in result.output and "11/11" in result.output


def test_train_says_when_its_threshold_was_set_on_too_few_faces() -> None:
    """New-user trial: 16 portraits hold out 3 faces, and train printed "threshold 0.071 at 5%
    false positives" for a threshold that is just above the highest of 3 scores."""
    from likeness.cli.detector import threshold_note

    few = {"validation": {"faces": 3}, "calibration": {"target_false_positive_rate": 0.05}}
    note = threshold_note(few)
    assert note is not None and "set on 3 held-out faces, too few to resolve a 5% false-positive rate" in note
    assert "20 or more are needed" in note
    enough = {"validation": {"faces": 42}, "calibration": {"target_false_positive_rate": 0.05}}
    assert threshold_note(enough) is None
