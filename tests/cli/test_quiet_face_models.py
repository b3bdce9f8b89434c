"""End to end: ``likeness verify`` and ``likeness detector evaluate`` run MediaPipe's face models
(which log TFLite/absl lines straight to file descriptor 2) and their stderr carries none of
those lines, while the run itself did find faces. ``test_native_logs`` tests the filter on a
probe; this runs the real commands in a fresh process, where the lines actually appear."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from likeness.cli.native_logs import is_native_noise
from likeness.media import write_image
from likeness.media.synthetic import astronaut
from tests.detector.handmade import GateMedia, gate_media, write_detector

#: The lines seen on a terminal before the filter (checked as text too, whatever their prefix).
NOISE_MARKERS = ("XNNPACK delegate", "inference_feedback_manager", "absl::InitializeLog")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "likeness.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def assert_quiet(stderr: str) -> None:
    noisy = [line for line in stderr.splitlines() if is_native_noise(line.encode())]
    assert not noisy, noisy
    for marker in NOISE_MARKERS:
        assert marker not in stderr, stderr


def test_verify_prints_no_face_model_logs(workspace, settings, tmp_path: Path) -> None:
    photo = write_image(tmp_path / "portrait.png", astronaut())
    done = run_cli("--home", str(settings.home), "verify", str(photo))
    assert done.returncode == 0, done.stderr
    assert "1 face(s)" in done.stdout, done.stdout  # the face models did run
    assert_quiet(done.stderr)


@pytest.fixture(scope="module")
def small_media(tmp_path_factory) -> GateMedia:
    return gate_media(tmp_path_factory.mktemp("quiet-media"), units=2, frames=1)


def test_detector_evaluate_prints_no_face_model_logs(small_media: GateMedia, tmp_path: Path) -> None:
    folder = write_detector(tmp_path / "chroma", "chroma", small_media.calibration)
    units = [a for p in small_media.real for a in ("--real", str(p))]
    units += [a for p in small_media.fake for a in ("--fake", str(p))]
    done = run_cli("detector", "evaluate", str(folder), *units)
    assert "2 real and 2 fake units" in done.stdout, (done.stdout, done.stderr)
    assert_quiet(done.stderr)
    assert "units" in done.stderr  # the progress bar still reaches stderr
