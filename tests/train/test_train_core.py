"""Pure parts of training: samples, augmentation, losses, splits, checkpoints, metrics."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from likeness.errors import ConfigError, FacesetError, ModelError, OptionError
from likeness.train import checkpoint as ckpt
from likeness.train.augment import (
    AugmentOptions,
    feature_priority_map,
    landmark_hull_mask,
    prepare_training_pair,
    random_warp_maps,
)
from likeness.train.data import PairLoader, plan_batch, split_indices
from likeness.train.generated import generated_face_samples
from likeness.train.loop import TrainConfig
from likeness.train.losses import dssim, reconstruction_loss
from likeness.train.metrics import expression_fidelity, identity_transfer
from likeness.train.recipes import (
    CLEARED,
    RECIPES,
    RecipeUnavailable,
    check_recipe_device,
    choose_recipe,
    describe_recipe,
    recipe_names,
    recipe_options,
    recipe_stop,
)
from likeness.train.samples import FaceSamples


@pytest.fixture(scope="module")
def faces() -> FaceSamples:
    return generated_face_samples(6, identity=1, size=64, seed=0)


def test_generated_faces_are_deterministic_and_identities_differ():
    a = generated_face_samples(3, identity=1, size=32, seed=4)
    b = generated_face_samples(3, identity=1, size=32, seed=4)
    c = generated_face_samples(3, identity=2, size=32, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.landmarks, b.landmarks)
    assert np.abs(a.images.astype(int) - c.images.astype(int)).mean() > 10


def test_face_samples_reject_wrong_types_and_shapes():
    rng = np.random.default_rng(0)
    good = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(FacesetError, match="uint8"):
        FaceSamples(good.astype(np.float32), np.zeros((2, 478, 2), np.float32))
    with pytest.raises(FacesetError, match=r"\(2, 478, 2\)"):
        FaceSamples(good, np.zeros((2, 68, 2), np.float32))
    with pytest.raises(FacesetError, match="NaN"):
        FaceSamples(good, np.full((2, 478, 2), np.nan, np.float32))


def test_training_pair_shapes_ranges_and_determinism(faces):
    face, landmarks = faces.face(0)
    a = prepare_training_pair(face, landmarks, resolution=32, rng=np.random.default_rng(7), priority_weight=2.0)
    b = prepare_training_pair(face, landmarks, resolution=32, rng=np.random.default_rng(7), priority_weight=2.0)
    c = prepare_training_pair(face, landmarks, resolution=32, rng=np.random.default_rng(8), priority_weight=2.0)
    assert a.warped.shape == a.target.shape == (3, 32, 32) and a.mask.shape == a.priority.shape == (1, 32, 32)
    for array in (a.warped, a.target, a.mask):
        assert array.dtype == np.float32 and array.min() >= 0 and array.max() <= 1
    assert np.array_equal(a.warped, b.warped) and np.array_equal(a.target, b.target)
    assert not np.array_equal(a.target, c.target)
    # The random warp moves pixels of the input only.
    assert np.abs(a.warped - a.target).mean() > 0.005
    assert a.priority.max() == pytest.approx(3.0) and a.priority.min() == pytest.approx(1.0)


def test_clean_pair_is_the_resized_crop_without_warp(faces):
    face, landmarks = faces.face(1)
    pair = prepare_training_pair(face, landmarks, resolution=64, rng=np.random.default_rng(0), augment=False)
    assert np.array_equal(pair.warped, pair.target)
    assert np.allclose(pair.target.transpose(1, 2, 0) * 255, face, atol=0.5)


def test_warp_can_be_switched_off(faces):
    face, landmarks = faces.face(2)
    options = AugmentOptions(warp=False)
    pair = prepare_training_pair(face, landmarks, resolution=32, rng=np.random.default_rng(1), options=options)
    assert np.array_equal(pair.warped, pair.target)


def test_random_warp_moves_pixels_locally_without_rescaling_the_face(faces):
    face, landmarks = faces.face(2)
    still = prepare_training_pair(
        face,
        landmarks,
        resolution=32,
        rng=np.random.default_rng(3),
        options=AugmentOptions(warp_strength=0.0),
        priority_weight=0.0,
    )
    assert np.array_equal(still.warped, still.target)
    # The input must stay the target's size: a systematic zoom teaches the network a mapping
    # that validation and rendering (unwarped crops) never ask for.
    grid = np.arange(64, dtype=np.float32)
    scales, offsets = [], []
    for seed in range(40):
        map_x, map_y = random_warp_maps(size=64, rng=np.random.default_rng(seed), strength=0.24)
        scales += [np.polyfit(grid, map_x[32], 1)[0], np.polyfit(grid, map_y[:, 32], 1)[0]]
        offsets.append(np.abs(map_x - grid[None, :]).mean())
        assert np.abs(map_x[:, 0]).max() < 2.0 and np.abs(map_x[:, -1] - 63).max() < 2.0  # edges stay put
    assert abs(np.median(scales) - 1.0) < 0.02
    assert 0.5 < np.median(offsets) < 3.0  # pixels do move, by a pixel or two of 64


def test_warp_schedule_stops_the_warp_from_its_iteration_on(faces):
    split = split_indices(faces.count, seed=0, stream=0, fraction=0.2, max_validation=1)
    loader = PairLoader(
        faces,
        faces,
        source_split=split,
        target_split=split,
        seed=5,
        batch_size=3,
        resolution=32,
        options=AugmentOptions(warp_until=4),
        priority_weight=0.0,
    )
    for iteration in (0, 3):
        source, target = loader._make(iteration)
        assert np.abs(source.warped - source.target).mean() > 0.005
        assert np.abs(target.warped - target.target).mean() > 0.005
    for iteration in (4, 9):
        source, target = loader._make(iteration)
        assert np.array_equal(source.warped, source.target) and np.array_equal(target.warped, target.target)
    # The schedule depends on the iteration alone: a resumed run gets the same batch.
    again = PairLoader(
        faces,
        faces,
        source_split=split,
        target_split=split,
        seed=5,
        batch_size=3,
        resolution=32,
        options=AugmentOptions(warp_until=4),
        priority_weight=0.0,
    )._make(3)[0]
    assert np.array_equal(again.warped, loader._make(3)[0].warped)


@pytest.mark.parametrize("bad", [-1, "9000", 2.5, True])
def test_bad_warp_schedule_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="warp_until"):
        TrainConfig(augment={"warp_until": bad}).validate()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"precision": "{half}"}, "precision must be one of auto, float32, bfloat16, float16, got '{half}'"),
        ({"model": "liae_tiny", "true_face_power": 0.01}, "true_face_power needs a df model"),
    ],
)
def test_option_refusals_name_the_api_field(options, message):
    # What the service's job error says (str of the error); the CLI names its flags (--batch),
    # tests/train/test_train_facesets.py.
    with pytest.raises(OptionError) as refused:
        TrainConfig(**options).validate()
    assert str(refused.value).startswith(message), refused.value


def test_masks_follow_the_landmarks(faces):
    _, landmarks = faces.face(0)
    hull = landmark_hull_mask(landmarks, size=64)
    x, y = landmarks.mean(axis=0).astype(int)
    assert hull[y, x] == 1 and hull[0, 0] == 0
    priority = feature_priority_map(landmarks, size=64, weight=1.5)
    eye = landmarks[468].astype(int)
    assert priority[eye[1], eye[0]] == pytest.approx(2.5)
    assert priority[int(landmarks[10][1]) + 1, int(landmarks[10][0])] == pytest.approx(1.0)


def test_bad_crop_is_a_typed_error(faces):
    _, landmarks = faces.face(0)
    with pytest.raises(FacesetError, match="square"):
        prepare_training_pair(np.zeros((32, 40, 3), np.uint8), landmarks, resolution=32, rng=np.random.default_rng(0))
    with pytest.raises(FacesetError, match="uint8"):
        prepare_training_pair(np.zeros((32, 32, 3), np.float32), landmarks, resolution=32, rng=np.random.default_rng(0))


def test_dssim_is_zero_for_identical_and_grows_with_noise():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    noisy = (image + 0.2 * torch.from_numpy(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))).clamp(0, 1)
    assert float(dssim(image, image)) == pytest.approx(0.0, abs=1e-6)
    assert float(dssim(image, noisy)) > 0.05
    with pytest.raises(ModelError):
        dssim(image, image[:, :1])


def test_separable_dssim_matches_the_two_dimensional_gaussian_window():
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    b = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    k = 5
    coords = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = ((g / g.sum())[:, None] * (g / g.sum())[None, :]).expand(3, 1, k, k)
    blur = lambda x: F.conv2d(x, window, groups=3)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + 1e-4) * (2 * cov + 9e-4)) / ((mu_a**2 + mu_b**2 + 1e-4) * (var_a + var_b + 9e-4))
    assert float(dssim(a, b, kernel_size=k)) == pytest.approx(float(((1 - ssim) / 2).mean()), abs=1e-6)


def test_loss_ignores_background_and_weights_priority():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    ones = torch.ones(1, 1, 32, 32)
    background_changed = target.clone()
    background_changed[..., :4, :] = 1 - background_changed[..., :4, :]
    same, _ = reconstruction_loss(target, mask, target, mask, ones)
    bg, _ = reconstruction_loss(background_changed, mask, target, mask, ones)
    assert float(same) == pytest.approx(0.0, abs=1e-5) and float(bg) == pytest.approx(0.0, abs=1e-5)
    face_changed = target.clone()
    face_changed[..., 12:16, 12:16] = 1 - face_changed[..., 12:16, 12:16]
    plain, _ = reconstruction_loss(face_changed, mask, target, mask, ones)
    weighted, _ = reconstruction_loss(face_changed, mask, target, mask, ones * 3)
    assert float(weighted) > float(plain) > 0


def test_split_is_deterministic_disjoint_and_bounded():
    a = split_indices(100, seed=3, stream=0, fraction=0.1, max_validation=5)
    b = split_indices(100, seed=3, stream=0, fraction=0.1, max_validation=5)
    assert np.array_equal(a.validation, b.validation) and len(a.validation) == 5
    assert not set(a.train) & set(a.validation) and len(a.train) + len(a.validation) == 100
    with pytest.raises(FacesetError, match="at least 2"):
        split_indices(1, seed=0, stream=0, fraction=0.1, max_validation=5)


def test_batch_plan_depends_only_on_seed_and_iteration():
    train = np.arange(10, 50)
    first = plan_batch(17, seed=2, train_indices=train, batch_size=8, stream=0)
    again = plan_batch(17, seed=2, train_indices=train, batch_size=8, stream=0)
    other = plan_batch(18, seed=2, train_indices=train, batch_size=8, stream=0)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[1], other[1])
    assert set(first[0]) <= set(train)


def test_checkpoint_round_trip(tmp_path: Path):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"iteration": 3, "weights": torch.arange(5.0)})
    state = ckpt.load_checkpoint(path)
    assert state["iteration"] == 3 and torch.equal(state["weights"], torch.arange(5.0))


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"iteration": 1, "weights": torch.zeros(4)})
    before = path.read_bytes()
    written = []

    def interrupted_fsync(fd: int) -> None:  # the new file is written but not yet durable
        written.append(os.fstat(fd).st_size)
        raise KeyboardInterrupt("simulated kill mid-save")

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, {"iteration": 2, "weights": torch.ones(4096)})
    monkeypatch.undo()
    assert written and written[0] > len(before), "the new checkpoint was never written"
    assert path.read_bytes() == before
    assert ckpt.load_checkpoint(path)["iteration"] == 1
    assert not list(tmp_path.glob(".*"))  # no temporary of any name


def test_leftover_temp_file_from_a_kill_is_cleaned_and_ignored(tmp_path: Path):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"iteration": 5})
    torn = tmp_path / f".{ckpt.CHECKPOINT_NAME}.999.tmp"
    torn.write_bytes(path.read_bytes()[:100])  # what a kill -9 mid-write leaves behind
    assert ckpt.load_checkpoint(path)["iteration"] == 5
    assert ckpt.remove_stale_temp_files(tmp_path) == [torn] and not torn.exists()


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 truncated"])
def test_corrupt_checkpoint_is_a_model_error(tmp_path: Path, content: bytes):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="checkpoint"):
        ckpt.load_checkpoint(path)


def test_identity_transfer_counts_only_closer_and_within_threshold():
    source_refs = np.zeros((2, 4), np.float32)
    target_refs = np.full((1, 4), 1.0, np.float32)
    swapped = np.array(
        [[0.1, 0, 0, 0], [0.9, 0.9, 0.9, 0.9], [0.45, 0.45, 0.45, 0.45], [0.3, 0.3, 0.3, 0.3]], np.float32
    )
    result = identity_transfer(swapped, source_refs, target_refs, threshold=0.7)
    # 0: close to source; 1: closer to target; 2: closer to source (0.9 vs 1.1) but beyond 0.7; 3: 0.6 ok.
    assert result.share == pytest.approx(0.5)
    # The failures' reasons: face 1 is still nearer the target, and the farthest from the source (1.8).
    assert result.nearer_target == 1
    assert result.worst_distance_to_source == pytest.approx(1.8)
    assert result.median_distance_to_source == pytest.approx(0.75)  # of 0.1, 0.6, 0.9, 1.8
    with pytest.raises(ModelError):
        identity_transfer(swapped, source_refs[:0], target_refs, threshold=0.7)


def test_expression_fidelity_correlates_openness_of_outputs_and_inputs():
    rng = np.random.default_rng(0)
    inputs = rng.random((6, 478, 2)).astype(np.float32)
    openness = np.linspace(0.1, 0.6, 6)
    inputs[:, 0, 0] = openness
    swapped = np.zeros((6, 16, 16, 3), np.uint8)
    swapped[:, 0, 0, 0] = np.arange(6)
    found = {k: inputs[k].copy() for k in range(5)}  # face 5 "not detected"
    perfect = expression_fidelity(
        swapped,
        inputs,
        landmarker=lambda rgb: found.get(int(rgb[0, 0, 0])),
        eye_openness=lambda p: float(p[0, 0]),
        mouth_openness=lambda p: float(-p[0, 0]),
        detect_size=16,
    )
    assert perfect.faces_measured == 5
    assert perfect.eye_correlation == pytest.approx(1.0) and perfect.mouth_correlation == pytest.approx(1.0)
    shuffled = {k: inputs[(k + 2) % 5].copy() for k in range(5)}
    poor = expression_fidelity(
        swapped,
        inputs,
        landmarker=lambda rgb: shuffled.get(int(rgb[0, 0, 0])),
        eye_openness=lambda p: float(p[0, 0]),
        mouth_openness=lambda p: float(p[0, 0]),
        detect_size=16,
    )
    assert poor.eye_correlation is not None and poor.eye_correlation < 0.5


def test_kill_9_during_checkpoint_writes_never_corrupts_the_checkpoint(tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    writer = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from likeness.train.checkpoint import save_checkpoint\n"
        "path = Path(sys.argv[1])\n"
        "for i in range(1, 10_000):\n"
        "    save_checkpoint(path, {'iteration': i, 'weights': torch.full((2_000_000,), float(i))})\n"
    )
    path = tmp_path / ckpt.CHECKPOINT_NAME
    process = subprocess.Popen([sys.executable, "-c", writer, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), "the writer never produced a checkpoint"
        time.sleep(0.3)  # let it get into later writes, then kill it without warning
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    state = ckpt.load_checkpoint(path)
    assert state["iteration"] >= 1
    assert torch.equal(state["weights"], torch.full((2_000_000,), float(state["iteration"])))


def test_recipe_fills_only_what_was_not_given_and_merges_options():
    chosen = recipe_options(
        "cpu-64",
        model=None,
        resolution=None,
        batch_size=16,
        learning_rate=None,
        augment={"flip": None, "warp_until": 4500},
        model_options={"d_dims": 16},
    )
    assert chosen["model"] == "df" and chosen["resolution"] == 64 and chosen["learning_rate"] == 5e-4
    assert chosen["batch_size"] == 16  # given explicitly
    assert chosen["augment"] == {"flip": True, "warp_until": 4500}
    assert chosen["model_options"] == {"ae_dims": 128, "d_dims": 16, "d_mask_dims": 8}
    assert RECIPES["cpu-64"]["model_options"]["d_dims"] == 32  # the table itself is not changed
    assert chosen["true_face_power"] == 0.01
    assert recipe_options("cpu-64", true_face_power=0.0)["true_face_power"] == 0.0  # 0 turns it off
    TrainConfig(**chosen).validate()


def test_a_cleared_merged_key_overrides_the_recipe_with_none():
    chosen = recipe_options("cpu-64", augment={"flip": None, "warp_until": CLEARED}, model_options={})
    assert chosen["augment"] == {"flip": True, "warp_until": None}
    assert recipe_options(None, augment={"warp_until": CLEARED}) == {"augment": {"warp_until": None}}


def test_no_recipe_leaves_the_config_defaults():
    chosen = recipe_options(
        None,
        model=None,
        resolution=None,
        batch_size=None,
        learning_rate=None,
        augment={"flip": None, "warp_until": None},
        model_options={},
    )
    assert chosen == {}
    assert recipe_options(None, learning_rate=1e-3, augment={"flip": False}) == {
        "learning_rate": 1e-3,
        "augment": {"flip": False},
    }


def test_every_recipe_is_a_valid_config_and_unknown_names_are_refused():
    for name in RECIPES:
        TrainConfig(**recipe_options(name)).validate()
    with pytest.raises(ConfigError, match="unknown training recipe 'gpu-9000'.*cpu-64"):
        recipe_options("gpu-9000")


def test_recipes_are_named_by_intent_and_cpu_64_is_the_preview():
    assert {"preview", "cpu-overnight-128", "gpu-256"} <= set(RECIPES)
    assert recipe_options("cpu-64") == recipe_options("preview")
    assert [RECIPES[name]["resolution"] for name in recipe_names()] == [64, 128, 256]
    for name in recipe_names():
        text = describe_recipe(name)
        assert f"{RECIPES[name]['resolution']} px" in text
        assert "measured" in text or "extrapolated" in text  # every recipe states its time and how it was got
    assert "extrapolated" in describe_recipe("gpu-256") and "needs a CUDA GPU" in describe_recipe("gpu-256")
    assert "(also cpu-64)" in describe_recipe("preview")


@pytest.mark.parametrize(
    "sizes, cuda, expected",
    [
        ([200.0] * 5, False, "cpu-overnight-128"),
        ([200.0] * 5, True, "gpu-256"),
        ([160.0, 160.0, 20.0], False, "cpu-overnight-128"),  # the median decides, 160 px included
        ([159.0] * 4, True, "preview"),
        ([300.0, 300.0, 90.0, 90.0, 90.0], False, "preview"),  # most faces small: 64 px is enough
        ([], False, "preview"),  # nothing measured
        ([float("nan"), 0.0], True, "preview"),
    ],
)
def test_the_default_recipe_follows_the_performers_median_face_size(sizes, cuda, expected):
    choice = choose_recipe(sizes, cuda=cuda)
    assert choice.name == expected
    assert expected in choice.reason
    if sizes and expected != "preview":
        assert f"{statistics.median(sizes):.0f} px" in choice.reason


def test_gpu_recipe_is_refused_without_cuda_with_the_recipe_and_reason():
    check_recipe_device("gpu-256", cuda=True)
    check_recipe_device("cpu-overnight-128", cuda=False)
    with pytest.raises(RecipeUnavailable, match="'gpu-256' needs a CUDA GPU") as refused:
        check_recipe_device("gpu-256", cuda=False)
    assert refused.value.recipe == "gpu-256" and isinstance(refused.value, ConfigError)


def test_recipes_for_long_runs_carry_their_stop_and_others_keep_1000_iterations():
    assert recipe_stop("cpu-overnight-128") == {"iterations": None, "minutes": 480.0}
    assert recipe_stop("gpu-256") == {"iterations": 100_000, "minutes": None}
    assert recipe_stop("preview") == recipe_stop("cpu-64") == recipe_stop(None) == {"iterations": 1000, "minutes": None}


def test_a_checkpoint_larger_than_any_written_is_refused_unread_naming_its_size(tmp_path: Path):
    """``checkpoint.pt`` was read whole, whatever its size: a checkpoint grown to a sparse 10 GB
    (``truncate -s``) was read into memory by ``--resume`` and ``model export``."""
    import tracemalloc

    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"iteration": 1})
    os.truncate(path, 10 * 1000**3)
    tracemalloc.start()
    try:
        with pytest.raises(
            ModelError, match=r"checkpoint.pt: checkpoint of 10,000,000,000 bytes, more than the 8,589,934,592 "
        ):
            ckpt.load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024**2


def test_a_killed_save_s_temporary_is_cleaned(tmp_path: Path):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"iteration": 5})
    torn = tmp_path / f".{ckpt.CHECKPOINT_NAME}.0badc0de.part"
    torn.write_bytes(path.read_bytes()[:100])  # what a kill -9 mid-write leaves behind
    kept = tmp_path / ".metrics.csv.0badc0de.part"  # another file's: not this run's checkpoint
    kept.write_bytes(b"")
    assert ckpt.remove_stale_temp_files(tmp_path) == [torn] and not torn.exists() and kept.exists()
    assert ckpt.load_checkpoint(path)["iteration"] == 5
