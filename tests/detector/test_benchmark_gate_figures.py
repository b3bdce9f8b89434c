"""The card's gate figures from a ``benchmarks/detector.py`` run: every footage and every authentic
group count, so a gate holds only where it holds in the worst case; and the benchmark's crop
condition keeps the middle of the frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = {"target_false_positive_rate": 0.05, "threshold_logit": 0.5}
MODEL = "SBI, ImageNet MobileNetV2"


def load(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def swaps(video_auc: float) -> dict[str, Any]:
    return {
        MODEL: {"frame_auc": video_auc, "video_auc": video_auc},
        "face size": {"frame_auc": 0.6, "video_auc": 0.6},
        "high-frequency energy": {"frame_auc": 0.6, "video_auc": 0.6},
    }


def flagged(**rates: float) -> dict[str, Any]:
    return {group: {MODEL: {"video_fpr": rate}} for group, rate in rates.items()}


def benchmark(per_footage: dict[str, Any], authentic: dict[str, Any]) -> dict[str, Any]:
    return {
        "models": {MODEL: {"calibration": CALIBRATION, "sha256": "ab" * 32}},
        "swaps": {"crf23": per_footage},
        "authentic_fpr": {"crf23": authentic},
    }


def test_a_gate_that_holds_on_the_actor_but_not_on_generated_footage_does_not_hold() -> None:
    gate_figures = load("scripts/ship_general_detector.py").gate_figures
    run = benchmark({"actor": swaps(0.95), "generated": swaps(0.55)}, flagged(actor=0.0, generated=0.0, portrait=0.0))
    figures = gate_figures(run, CALIBRATION, "gates.json")
    assert [(c["footage"], c["video_auc"]) for c in figures["conditions"]] == [("actor", 0.95), ("generated", 0.55)]
    assert figures["holds"]["video_auc"] is False and figures["holds"]["beats_face_size"] is False
    assert figures["holds"]["authentic_false_positive_rate"] is True

    both = gate_figures(
        benchmark({"actor": swaps(0.95), "generated": swaps(0.92)}, flagged(actor=0.0)), CALIBRATION, "g"
    )
    assert both["holds"]["video_auc"] is True  # the same code passes when every footage passes


def test_authentic_false_positives_of_the_generated_clips_fail_the_gate() -> None:
    gate_figures = load("scripts/ship_general_detector.py").gate_figures
    run = benchmark({"actor": swaps(0.95)}, flagged(actor=0.0, generated=0.25, portrait=0.0))
    figures = gate_figures(run, CALIBRATION, "gates.json")
    assert figures["conditions"][0]["authentic_clips_flagged"] == {"actor": 0.0, "generated": 0.25, "portrait": 0.0}
    assert figures["holds"]["authentic_false_positive_rate"] is False


def test_a_run_from_before_the_generated_footage_reads_as_the_actors() -> None:
    gate_figures = load("scripts/ship_general_detector.py").gate_figures
    run = benchmark(swaps(0.3), flagged(actor=1.0, portrait=0.333))
    figures = gate_figures(run, CALIBRATION, "bench.json")
    assert [(c["footage"], c["video_auc"]) for c in figures["conditions"]] == [("actor", 0.3)]
    assert not any(figures["holds"].values())


def test_the_crop_condition_cuts_each_side_and_keeps_even_sizes(tmp_path: Path) -> None:
    from likeness.media.video import VideoEncoder, probe_video

    bench = load("benchmarks/detector.py")
    assert bench.crop_box(1280, 720, 0.1) == (128, 72, 1152, 648)
    assert bench.crop_box(645, 361, 0.1) == (64, 36, 580, 324)  # 516x288: odd sizes rounded down to even
    assert bench.CONDITIONS["crop10-crf23"] == (23, 1.0, 0.1)
    clip = tmp_path / "clip.mp4"
    with VideoEncoder(clip, width=160, height=96, fps=25, crf=12) as enc:
        for k in range(3):
            enc.write(np.full((96, 160, 3), 40 * k, np.uint8), pts_s=k / 25)
    out = bench.condition_copy(clip, "crop10-crf23", tmp_path)
    info = probe_video(out)
    assert (info.width, info.height) == (128, 76)
