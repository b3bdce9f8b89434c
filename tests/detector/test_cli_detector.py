"""``likeness detector train``: trains from folders of authentic faces, writes the ONNX file and
its card, and maps a too-small folder to a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from likeness.cli import app
from likeness.media.synthetic import astronaut, grace_hopper


def _write_faces(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    portraits = [astronaut(), grace_hopper()]
    for k in range(count):
        rgb = portraits[k % 2]
        if k // 2 % 2:
            rgb = rgb[:, ::-1]
        gain = rng.uniform(0.8, 1.2)
        rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"person{k:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_train_writes_model_and_card(tmp_path: Path) -> None:
    _write_faces(tmp_path / "real", 14)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(out), "--steps", "1"]
    )
    assert result.exit_code == 0, result.output
    card = json.loads((out / "detector.card.json").read_text())
    assert card["model"] == "likeness.detector.sbi" and card["training"]["steps"] == 1
    assert card["validation"]["identities"] == 2  # identities 0 and 7 held out
    assert (out / "detector.onnx").is_file() and "SBI AUC" in result.output


def test_too_few_identities_is_a_clear_error(tmp_path: Path) -> None:
    _write_faces(tmp_path / "real", 3)
    result = CliRunner().invoke(
        app, ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "need at least 14 identities" in result.output
    assert "Traceback" not in result.output
