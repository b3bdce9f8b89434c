"""``likeness detector train``: trains from folders of authentic faces, writes the ONNX file and
its card, and maps a too-small folder to a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from likeness.assets import asset
from likeness.cli import app
from likeness.detector.general import GENERAL_BASE_NAME, GENERAL_WEIGHTS_ASSET, general_card
from likeness.digests import sha256_file
from tests.detector.handmade import write_portraits


def test_train_fine_tunes_the_shipped_general_model_and_inherits_its_files(tmp_path: Path) -> None:
    write_portraits(tmp_path / "real", 14)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(out), "--steps", "2"]
    )
    assert result.exit_code == 0, result.output
    card = json.loads((out / "detector.card.json").read_text())
    assert card["model"] == "likeness.detector.sbi-finetune" and card["training"]["steps"] == 2
    assert card["validation"]["identities"] == 2  # identities 0 and 7 held out
    assert (out / "detector.onnx").is_file() and "SBI AUC" in result.output
    # The card names its start, and lists what the start saw beside its own files: evaluate
    # refuses the general model's training portraits as held-out media of this fine-tune.
    assert card["training"]["base"] == {"name": GENERAL_BASE_NAME, "sha256": asset(GENERAL_WEIGHTS_ASSET).sha256}
    own = {sha256_file(p) for p in (tmp_path / "real").iterdir()}
    general = set(general_card()["training"]["files_sha256"])
    assert set(card["training"]["files_sha256"]) - own == general


def test_train_from_imagenet_is_the_general_recipe(tmp_path: Path) -> None:
    write_portraits(tmp_path / "real", 14)
    out = tmp_path / "out"
    args = ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(out), "--steps", "1"]
    result = CliRunner().invoke(app, [*args, "--from-imagenet"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "detector.card.json").read_text())
    assert card["model"] == "likeness.detector.sbi" and card["training"]["start"] == "imagenet"
    assert card["training"]["base"]["name"] == "mobilenet-v2-imagenet"
    assert set(card["training"]["files_sha256"]) == {sha256_file(p) for p in (tmp_path / "real").iterdir()}


def test_too_few_identities_is_a_clear_error(tmp_path: Path) -> None:
    write_portraits(tmp_path / "real", 3)
    result = CliRunner().invoke(
        app, ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "need at least 14 identities" in result.output
    assert "Traceback" not in result.output


def test_a_mistyped_real_folder_is_named_not_counted_as_no_identities(tmp_path: Path) -> None:
    # It used to say "need at least 14 identities under real-faces ..., found 0".
    write_portraits(tmp_path / "real", 3)
    missing, a_file = (
        tmp_path / "real-faces",
        tmp_path / "real" / sorted(p.name for p in (tmp_path / "real").iterdir())[0],
    )
    for given, reason in ((missing, "not found"), (a_file, "is not a folder")):
        result = CliRunner().invoke(app, ["detector", "train", "--real", str(given), "--out", str(tmp_path / "out")])
        assert result.exit_code == 1, result.output
        assert f"{given}: {reason}" in result.output and "Traceback" not in result.output


def test_ctrl_c_keeps_a_checkpoint_and_names_the_command_that_resumes_it(tmp_path: Path, monkeypatch) -> None:
    """A Ctrl-C in ``detector train`` ended with the line every command without its own gets
    ("run the same command again to finish it"), naming no checkpoint, and lost the steps since
    the last one (every 50). As in ``likeness train``, the first Ctrl-C now stops after the step
    in flight, saves a checkpoint of it, and names it and the command that continues from it."""
    import os
    import shlex
    import signal

    from likeness.detector import train as detector_train
    from likeness.train.checkpoint import load_checkpoint

    write_portraits(tmp_path / "real", 14)
    out = tmp_path / "out"
    pairs: list[int] = []
    original = detector_train.training_pair

    def pair_then_ctrl_c(*args, **kwargs):
        pairs.append(1)
        if len(pairs) == 1:  # inside the first step
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(detector_train, "training_pair", pair_then_ctrl_c)
    args = ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(out), "--steps", "3"]
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    checkpoint = out / "checkpoint.pt"
    resume = shlex.join(["likeness", *args, "--threads", "1", "--target-fpr", "0.05"])
    assert stopped.output.strip().splitlines()[-2:] == [
        f"interrupted at iteration 1: checkpoint saved to {checkpoint}",
        f"  continue with: {resume}",
    ]
    assert load_checkpoint(checkpoint)["step"] == 1
    per_step, later, realigned = len(pairs), [], []
    monkeypatch.setattr(detector_train, "training_pair", lambda *a, **k: later.append(1) or original(*a, **k))
    align_largest = detector_train.align_largest
    monkeypatch.setattr(detector_train, "align_largest", lambda *a, **k: realigned.append(1) or align_largest(*a, **k))
    resumed = CliRunner().invoke(app, shlex.split(resume)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert len(later) == 2 * per_step  # steps 2 and 3: resumed, not started again
    assert realigned == []  # the faces were kept too (out/aligned-faces), until the card was written
    assert not (out / "aligned-faces").exists()
    assert load_checkpoint(checkpoint)["step"] == 3 and (out / "detector.onnx").is_file()
