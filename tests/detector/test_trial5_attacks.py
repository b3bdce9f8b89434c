"""Attacker trial 5 on the detector path (issue #31): the shipped general detector's files, the
folder ``export-general`` and ``train`` write into, and malformed figures in a registered card.
Each case wrote over files it must not touch, read a file without end, or stopped with a
traceback before its fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.assets import asset_path
from likeness.cli import app
from likeness.detector.evaluation import evaluate_detector
from likeness.detector.general import GENERAL_CARD_ASSET, GENERAL_WEIGHTS_ASSET, WEIGHTS_FILE, export_general
from likeness.detector.registered import register_detector
from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, initial_network
from likeness.digests import sha256_file
from likeness.errors import ModelError

from .handmade import GateMedia, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def cli(*args: str):
    return CliRunner().invoke(app, list(args), terminal_width=400)


def refused(result) -> None:
    """A one-line error and exit status 1, not an exception escaping the command (a traceback)."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.exception, result.output)


@pytest.fixture
def installed_copy(monkeypatch, tmp_path) -> Path:
    """A copy of the installed general folder, where the asset table looks for the general model
    (so a test that writes into "the package" writes into this copy, never the real install)."""
    folder = tmp_path / "site-packages" / "likeness" / "detector" / "general"
    folder.mkdir(parents=True)
    for name in (GENERAL_WEIGHTS_ASSET, GENERAL_CARD_ASSET):
        shutil.copy(asset_path(name), folder)
    real = asset_path
    files = {GENERAL_WEIGHTS_ASSET: folder / WEIGHTS_FILE, GENERAL_CARD_ASSET: folder / CARD_FILE}
    monkeypatch.setattr("likeness.assets.asset_path", lambda name: files.get(name) or real(name))
    return folder


def fourteen_faces(tmp_path: Path) -> Path:
    """A --real folder train accepts up to alignment (empty files: alignment must never be reached)."""
    real = tmp_path / "real"
    real.mkdir()
    for k in range(14):
        (real / f"person{k:02d}.png").write_bytes(b"")
    return real


@pytest.fixture
def no_alignment(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("aligned faces for a run that cannot start")

    monkeypatch.setattr("likeness.detector.train.align_each", refuse)


# --- export-general and train: where they write ---------------------------------------------------


def test_export_general_into_the_installed_folder_is_refused_and_the_shipped_files_stay(installed_copy) -> None:
    """Before: export wrote detector.onnx into the package and replaced the shipped card with the
    exported one, so every later fine-tune was refused ("reinstall likeness")."""
    before = {p.name: sha256_file(p) for p in installed_copy.iterdir()}
    result = cli("detector", "export-general", "--out", str(installed_copy))
    refused(result)
    assert "installed" in result.output
    assert {p.name: sha256_file(p) for p in installed_copy.iterdir()} == before
    initial_network(DetectorTrainConfig())  # the shipped model still loads


def test_train_into_the_installed_folder_is_refused_before_aligning(installed_copy, no_alignment, tmp_path) -> None:
    before = {p.name: sha256_file(p) for p in installed_copy.iterdir()}
    result = cli("detector", "train", "--real", str(fourteen_faces(tmp_path)), "--out", str(installed_copy))
    refused(result)
    assert "installed" in result.output
    assert {p.name: sha256_file(p) for p in installed_copy.iterdir()} == before


def test_export_general_does_not_overwrite_a_trained_detector(tmp_path) -> None:
    """Before: exporting into an agency's fine-tune folder replaced its detector.onnx and card by
    the general model's, beside the fine-tune's checkpoint, and said nothing."""
    trained = tmp_path / "det"
    trained.mkdir()
    for name in (MODEL_FILE, CARD_FILE, "checkpoint.pt"):
        (trained / name).write_bytes(name.encode())
    result = cli("detector", "export-general", "--out", str(trained))
    refused(result)
    assert "already holds" in result.output
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == {
        name: name.encode() for name in (MODEL_FILE, CARD_FILE, "checkpoint.pt")
    }


def test_export_general_beside_unrelated_files_writes_its_two_files(tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    card = export_general(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD_FILE, MODEL_FILE, "notes.txt"])
    assert (folder / "notes.txt").read_text() == "mine"
    assert card["sha256"] == sha256_file(folder / MODEL_FILE)


def test_export_general_does_not_write_through_a_planted_link(tmp_path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    (folder / CARD_FILE).symlink_to(victim)  # dangling: a plain write would create the victim
    with pytest.raises(ModelError, match="already holds"):
        export_general(folder)
    assert not victim.exists()


@pytest.mark.parametrize("where", ["a-file", "under-a-file", "read-only"])
def test_export_general_into_a_path_it_cannot_make_is_a_typed_error(tmp_path, where) -> None:
    """Before: FileExistsError / NotADirectoryError / FileNotFoundError tracebacks."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = {"a-file": a_file, "under-a-file": a_file / "sub", "read-only": Path("/proc/likeness-trial5")}[where]
    result = cli("detector", "export-general", "--out", str(out))
    refused(result)
    assert str(out) in result.output


def test_train_into_a_file_path_is_refused_before_aligning(tmp_path, no_alignment) -> None:
    """Before: minutes of alignment, then a FileExistsError traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = cli("detector", "train", "--real", str(fourteen_faces(tmp_path)), "--out", str(a_file))
    refused(result)
    assert str(a_file) in result.output and "not a folder" in result.output


# --- the shipped files replaced by something endless ------------------------------------------


@pytest.mark.parametrize("kind", ["sparse-64GiB", "dev-zero", "fifo"])
def test_shipped_weights_swapped_for_an_endless_or_huge_file_are_refused_at_once(
    installed_copy, monkeypatch, kind
) -> None:
    """Before: a 64 GiB sparse file was hashed whole (minutes, no progress) before the refusal;
    /dev/zero or a FIFO was called "missing from likeness"."""
    weights = installed_copy / WEIGHTS_FILE
    weights.unlink()
    if kind == "sparse-64GiB":
        with weights.open("wb") as handle:
            handle.truncate(64 << 30)
    elif kind == "dev-zero":
        weights.symlink_to("/dev/zero")
    else:
        os.mkfifo(weights)

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed a file whose size already differs")

    monkeypatch.setattr("likeness.assets.sha256_file", no_hashing)
    says = "has 68,719,476,736 bytes, not the" if kind == "sparse-64GiB" else "is not a regular file"
    with pytest.raises(ModelError, match=f"{weights}: {GENERAL_WEIGHTS_ASSET} {says}"):
        initial_network(DetectorTrainConfig())


# --- malformed figures in a registered card ----------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        {"units": {"real": "Infinity"}},
        {"units": {"real": -5}},
        {"units": {"real": "five"}},
        {"authentic_false_positive_rate": {"video": -0.4}},
        {"video_auc": 7.0},
    ],
    ids=["units-infinite", "units-negative", "units-string", "fpr-negative", "auc-over-one"],
)
def test_impossible_figures_in_a_card_are_refused_at_register(
    media: GateMedia, tmp_path: Path, workspace, settings, mina, edit
) -> None:
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    card_path = folder / CARD_FILE
    card = json.loads(card_path.read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            card["evaluation"]["figures"][key].update(value)
        else:
            card["evaluation"]["figures"][key] = value
    text = json.dumps(card).replace('"Infinity"', "Infinity")
    card_path.write_text(text)
    with pytest.raises(ModelError):
        register_detector(workspace, folder, "mina")
    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0 and listed.exception is None, listed.output


@pytest.mark.parametrize("units", [float("inf"), float("nan"), -5, "five", True])
def test_the_bound_of_impossible_figures_is_a_model_error(units) -> None:
    """``detector list`` works the bound out of a registered card's figures: an infinite unit
    count raised ``OverflowError`` there (a traceback), a boolean one counted as 1 unit."""
    from likeness.detector.evaluation import false_positive_bound

    evaluation = {
        "figures": {
            "video_auc": 1.0,
            "baselines": {"face_size": {"video_auc": 0.5}, "high_frequency_energy": {"video_auc": 0.5}},
            "authentic_false_positive_rate": {"video": 0.0},
            "fake_recall_at_threshold": {"video": 1.0},
            "units": {"real": units, "fake": 5},
        }
    }
    with pytest.raises(ModelError, match="real units"):
        false_positive_bound(evaluation, target_fpr=0.05)


# --- --init: the card beside the checkpoint ----------------------------------------------------


@pytest.mark.parametrize(
    "card", ["[1, 2]", '{"training": [1]}', '{"training": {"files_sha256": "abc"}}', "fifo"], ids=str
)
def test_a_malformed_card_beside_the_init_checkpoint_is_a_model_error(tmp_path, no_alignment, card) -> None:
    """The fine-tune inherits the training files the card beside ``--init`` lists; a card that
    was a JSON list stopped train with an ``AttributeError`` traceback, and a FIFO there was
    taken as "no card" (so nothing inherited)."""
    start = tmp_path / "start"
    start.mkdir()
    (start / "checkpoint.pt").write_bytes(b"")
    if card == "fifo":
        os.mkfifo(start / CARD_FILE)
    else:
        (start / CARD_FILE).write_text(card)
    result = cli(
        "detector",
        "train",
        "--real",
        str(fourteen_faces(tmp_path)),
        "--out",
        str(tmp_path / "out"),
        "--init",
        str(start / "checkpoint.pt"),
    )
    refused(result)
    assert str(start / CARD_FILE) in result.output


# --- register and unregister at once -------------------------------------------------------------


@pytest.mark.parametrize("first", ["register", "unregister"])
def test_register_and_unregister_at_once_leave_files_that_match_the_ledger(
    media: GateMedia, tmp_path: Path, workspace, settings, mina, monkeypatch, first
) -> None:
    """Each appends its event, then swaps its files in. Interleaved (one between the other's
    append and swap), the folder ended up holding the files of the event that is *not* in force:
    a withdrawn detector's files with no withdrawal note (so deleting the withdrawal row brings
    it back in silence), or a fresh registration's folder holding the note (refused as "the
    ledger no longer holds that withdrawal", a false tampering alarm)."""
    import threading
    import time

    from likeness.detector import registered as module
    from likeness.detector.registered import WITHDRAWN_FILE, current_event, unregister_detector
    from likeness.workspace import Workspace

    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, folder, "mina")

    reached, go = threading.Event(), threading.Event()
    real_swap = module._swap_in
    paused: list[str] = []

    def swap_in(staged: Path, destination: Path) -> None:
        if not paused:  # the first swap waits, between its ledger append and its files
            paused.append(threading.current_thread().name)
            reached.set()
            go.wait(10)
        real_swap(staged, destination)

    monkeypatch.setattr(module, "_swap_in", swap_in)

    def act(which: str) -> None:
        ws = Workspace.open(settings)
        try:
            if which == "register":
                register_detector(ws, folder, "mina")
            else:
                unregister_detector(ws, "mina", "flags stage lighting")
        finally:
            ws.close()

    second = "unregister" if first == "register" else "register"
    one = threading.Thread(target=act, args=(first,), name=first)
    two = threading.Thread(target=act, args=(second,), name=second)
    one.start()
    assert reached.wait(30)
    two.start()
    time.sleep(1.0)  # the second runs to its end now, unless it waits for the first
    go.set()
    one.join(60)
    two.join(60)

    latest = current_event(workspace, mina.subject_id)
    held = sorted(p.name for p in module.detector_folder(workspace.home, mina.subject_id).iterdir())
    if latest.event_type == module.UNREGISTERED_EVENT:
        assert held == [WITHDRAWN_FILE]
    else:
        assert held == [CARD_FILE, MODEL_FILE]
        [now] = module.registered_detectors(workspace)
        assert not isinstance(module.check_registered(workspace, now), str)


def test_an_asset_edited_in_place_with_its_time_set_back_is_hashed_again(installed_copy) -> None:
    """A long-running process hashes each asset once and trusts it while (path, size, mtime)
    stay: an edit of the same size with the modification time put back (``os.utime``) was never
    hashed again, so the edited file was loaded as the shipped one."""
    weights = installed_copy / WEIGHTS_FILE
    initial_network(DetectorTrainConfig())  # hashed and trusted
    before = weights.stat()
    payload = bytearray(weights.read_bytes())
    payload[len(payload) // 2] ^= 1
    weights.write_bytes(payload)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ModelError, match=f"{weights}: {GENERAL_WEIGHTS_ASSET} has SHA-256"):
        initial_network(DetectorTrainConfig())


def test_train_does_not_write_its_card_through_a_link_planted_in_out(tmp_path: Path) -> None:
    """A workspace file editor links ``det/detector.card.json`` to a file the operator may write
    and they may not (the installed package's card, say): train wrote its card through the link."""
    import numpy as np

    from likeness.detector.train import AlignedFaceSample, align_largest, train_detector
    from likeness.faces.detect import FaceDetector
    from likeness.media.synthetic import astronaut, grace_hopper

    with FaceDetector(mode="image") as detector:
        found = [align_largest(detector, rgb, identity=n) for n, rgb in (("a", astronaut()), ("h", grace_hopper()))]
    faces = [s for s in found if s is not None]
    faces += [AlignedFaceSample(s.image[:, ::-1].copy(), np.array(s.landmarks), s.identity + "-m") for s in faces]
    out = tmp_path / "det"
    out.mkdir()
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    (out / CARD_FILE).symlink_to(victim)
    config = DetectorTrainConfig(steps=2, batch=4, checkpoint_every=2, start="scratch", width=0.25)
    train_detector(faces[:2], faces[2:], out, config=config)
    assert victim.read_text() == "{}"
    assert not (out / CARD_FILE).is_symlink() and json.loads((out / CARD_FILE).read_text())["file"] == MODEL_FILE


# --- text from the ledger, cards and paths printed as Rich markup ----------------------------------


def test_a_withdrawal_reason_with_markup_is_printed_as_written(
    media: GateMedia, tmp_path: Path, workspace, settings, mina
) -> None:
    """``detector list`` printed the reason (and model ids, paths) as Rich markup: a reason
    holding "[/x]" stopped it with a ``MarkupError`` traceback, and "[green]..." restyled it."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, folder, "mina")
    home = ["--home", str(settings.home)]
    reason = "flags [/x] stage [bold]light"
    withdrawn = cli(*home, "detector", "unregister", "--subject", "mina", "--reason", reason)
    assert withdrawn.exit_code == 0, withdrawn.output
    listed = cli(*home, "detector", "list")
    assert listed.exit_code == 0 and listed.exception is None, listed.output
    assert reason in listed.output
    logged = cli(*home, "audit", "log", "--limit", "3")  # shows the reason's first 14 characters
    assert logged.exit_code == 0 and logged.exception is None, logged.output
    assert "[/x]" in logged.output

    # a database editor edits the withdrawal row in place: audit verify names it, quoting the reason
    from sqlalchemy import text

    from likeness.detector.registered import UNREGISTERED_EVENT

    [withdrawal] = workspace.ledger.events(UNREGISTERED_EVENT)
    with workspace.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        conn.execute(
            text("UPDATE ledger SET payload = replace(payload, 'stage', 'Stage') WHERE seq = :s"), {"s": withdrawal.seq}
        )
    audited = cli(*home, "audit", "verify")
    assert audited.exit_code == 1 and isinstance(audited.exception, SystemExit | None), audited.exception
    assert "detector_altered" in audited.output, audited.output
    assert "[/x]" in audited.output


def test_verify_prints_a_path_with_markup_as_written(tmp_path: Path, settings, workspace) -> None:
    """A found file under a folder named "clip[" whose name starts "x]": its path holds "[/x]",
    which Rich read as a closing tag and stopped ``likeness verify`` with a traceback."""
    import cv2

    from likeness.media.synthetic import grace_hopper

    odd = tmp_path / "clip[" / "x].png"
    odd.parent.mkdir()
    cv2.imwrite(str(odd), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    result = cli("--home", str(settings.home), "verify", str(odd))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert str(odd) in result.output


def test_a_file_in_place_of_the_detectors_folder_is_a_typed_error(
    media: GateMedia, tmp_path: Path, workspace, settings, mina
) -> None:
    """A workspace file editor puts a file at ``HOME/detectors``: register stopped with a
    ``FileExistsError`` traceback."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    (workspace.home / "detectors").write_text("planted")
    for args in (["register", str(folder)], ["unregister", "--reason", "r"]):
        result = cli("--home", str(settings.home), "detector", *args, "--subject", "mina")
        refused(result)
        assert "detectors" in result.output


def test_who_withdrew_is_the_process_account_not_what_the_environment_says(
    media: GateMedia, tmp_path: Path, workspace, settings, mina, monkeypatch
) -> None:
    """``by`` came from ``getpass.getuser()``, which reads LOGNAME (then USER, ...) before the
    account database: ``LOGNAME=legal-team likeness detector unregister ...`` put another name
    on the ledger as the one who withdrew it."""
    import pwd

    from likeness.detector.registered import UNREGISTERED_EVENT

    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, folder, "mina")
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "legal-team")
    result = cli("--home", str(settings.home), "detector", "unregister", "--subject", "mina", "--reason", "r")
    assert result.exit_code == 0, result.output
    [event] = workspace.ledger.events(UNREGISTERED_EVENT)
    assert event.payload["by"] == pwd.getpwuid(os.getuid()).pw_name != "legal-team"
