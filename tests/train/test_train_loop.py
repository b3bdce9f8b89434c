"""The consent-bound training loop: learning, resume equivalence, refusals, revocation, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from likeness.errors import ConfigError, ConsentError, ModelError
from likeness.train import (
    CARD_NAME,
    CHECKPOINT_NAME,
    ONNX_NAME,
    TrainConfig,
    export_model,
    generated_face_samples,
    load_checkpoint,
    load_swap_model,
    train_swap_model,
)
from likeness.train.loop import autocast_dtype, cpu_supports_bfloat16, data_loading
from likeness.train.swap_model import CARD_KEYS

from . import conftest
from .conftest import train_consented

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def tiny_config(**overrides) -> TrainConfig:
    """The folder's tiny run made long enough to learn: 20 iterations at a higher rate, each one
    logged, a tenth held out (TrainConfig's default)."""
    learning = dict(
        iterations=20, checkpoint_every=10, log_every=1, seed=11, learning_rate=1e-3, validation_fraction=0.1
    )
    return conftest.tiny_config(**(learning | overrides))


def weights(model_dir: Path, which: str = "model_state") -> dict[str, torch.Tensor]:
    return load_checkpoint(model_dir / CHECKPOINT_NAME)[which]


def test_tiny_model_loss_falls_and_artefacts_are_written(consent_world, faces, tmp_path):
    out = tmp_path / "model"
    config = tiny_config(iterations=40, batch_size=8, checkpoint_every=20, preview_every=20, model="liae_tiny")
    result = train_consented(consent_world, faces, out, config)
    assert result.iterations == 40 and result.stop_reason == "iterations"
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["loss_source"]) + float(r["loss_target"]) for r in rows]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.85 * np.mean(losses[:8])
    assert rows[-1]["val_dssim_source"] and rows[-1]["val_dssim_target"]
    assert (out / "metrics.png").stat().st_size > 1000 and (out / "preview_latest.png").is_file()
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["preview_0000020.png", "preview_0000040.png"]
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["batch_size"] == 8 and saved["model"] == "liae_tiny"
    events = consent_world.workspace.ledger.find("model.trained")
    assert len(events) == 1 and events[0].payload["iterations"] == 40
    assert events[0].payload["grant_id"] == consent_world.grant_id
    assert events[0].payload["release_id"] == consent_world.release_id


@pytest.mark.parametrize("lr_decay_iters", [None, 15])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(consent_world, faces, tmp_path, lr_decay_iters):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_swap_model(
        authz,
        release,
        *faces,
        straight,
        tiny_config(iterations=20, lr_decay_iters=lr_decay_iters),
        workspace=consent_world.workspace,
    )
    first = train_swap_model(
        authz,
        release,
        *faces,
        split,
        tiny_config(iterations=10, lr_decay_iters=lr_decay_iters),
        workspace=consent_world.workspace,
    )
    assert first.iterations == 10
    resumed = train_swap_model(
        authz, release, *faces, split, TrainConfig(iterations=20), resume=True, workspace=consent_world.workspace
    )
    assert resumed.iterations == 20
    for which in ("model_state", "ema_state"):
        a, b = weights(straight, which), weights(split, which)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    optimizer_a = load_checkpoint(straight / CHECKPOINT_NAME)["optimizer_state"]["state"]
    optimizer_b = load_checkpoint(split / CHECKPOINT_NAME)["optimizer_state"]["state"]
    assert all(torch.equal(optimizer_a[k]["exp_avg"], optimizer_b[k]["exp_avg"]) for k in optimizer_a)
    # The last step (iteration 19) ran at the scheduled rate: the floor once the decay is over.
    rate = load_checkpoint(split / CHECKPOINT_NAME)["optimizer_state"]["param_groups"][0]["lr"]
    assert rate == pytest.approx(1e-3 if lr_decay_iters is None else 1e-4)


def test_true_face_training_resumes_exactly_and_saves_its_discriminator(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    straight, split, plain = tmp_path / "straight", tmp_path / "split", tmp_path / "plain"
    train_swap_model(
        authz,
        release,
        *faces,
        straight,
        tiny_config(iterations=20, true_face_power=0.1),
        workspace=consent_world.workspace,
    )
    train_swap_model(
        authz,
        release,
        *faces,
        split,
        tiny_config(iterations=10, true_face_power=0.1),
        workspace=consent_world.workspace,
    )
    train_swap_model(
        authz, release, *faces, split, TrainConfig(iterations=20), resume=True, workspace=consent_world.workspace
    )
    train_swap_model(authz, release, *faces, plain, tiny_config(iterations=20), workspace=consent_world.workspace)
    for which in ("model_state", "ema_state", "code_discriminator_state"):
        a, b = weights(straight, which), weights(split, which)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = load_checkpoint(split / CHECKPOINT_NAME)
    assert saved["train_config"]["true_face_power"] == 0.1
    assert len(saved["code_optimizer_state"]["state"]) == len(saved["code_discriminator_state"])
    # The discriminator's loss reaches the model: the same seed without it ends elsewhere.
    assert not torch.equal(
        weights(plain)["encoder.body.0.conv.weight"], weights(straight)["encoder.body.0.conv.weight"]
    )
    assert weights(plain, "code_discriminator_state") is None


def test_true_face_losses_point_the_right_way_and_the_option_is_checked():
    from likeness.train.losses import code_discriminator_loss, true_face_loss

    sure_target, sure_source = torch.full((4, 1), 6.0), torch.full((4, 1), -6.0)
    # The discriminator is right when it calls target codes 1 and source codes 0 ...
    assert float(code_discriminator_loss(sure_target, sure_source)) < 0.01
    assert float(code_discriminator_loss(sure_source, sure_target)) > 5.0
    # ... and the model does well when its source codes pass for target codes.
    assert float(true_face_loss(sure_target)) < 0.01 < 5.0 < float(true_face_loss(sure_source))
    with pytest.raises(ConfigError, match="true_face_power must be in"):
        tiny_config(true_face_power=-0.1).validate()
    with pytest.raises(ConfigError, match="needs a df model"):
        tiny_config(model="liae_tiny", true_face_power=0.01).validate()


def test_learning_rate_follows_a_half_cosine_to_its_floor_then_holds():
    from likeness.train.loop import learning_rate_at

    assert learning_rate_at(1e-3, 500, None, 0.1) == 1e-3
    assert learning_rate_at(1e-3, 0, 100, 0.1) == pytest.approx(1e-3)
    assert learning_rate_at(1e-3, 50, 100, 0.1) == pytest.approx(5.5e-4)
    assert learning_rate_at(1e-3, 100, 100, 0.1) == pytest.approx(1e-4)
    assert learning_rate_at(1e-3, 10_000, 100, 0.1) == pytest.approx(1e-4)
    rates = [learning_rate_at(1e-3, i, 100, 0.1) for i in range(101)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ConfigError, match="lr_decay_iters"):
        tiny_config(lr_decay_iters=0).validate()
    with pytest.raises(ConfigError, match="lr_floor"):
        tiny_config(lr_floor=1.5).validate()


def test_training_arithmetic_by_device_and_request():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("auto", cpu, cpu_bfloat16=True) == torch.bfloat16
    assert autocast_dtype("auto", cpu, cpu_bfloat16=False) is None
    assert autocast_dtype("auto", cuda, cpu_bfloat16=False) == torch.float16
    assert autocast_dtype("float32", cuda, cpu_bfloat16=True) is None
    assert autocast_dtype("bfloat16", cuda, cpu_bfloat16=False) == torch.bfloat16
    with pytest.raises(ConfigError, match="float16 needs CUDA"):
        autocast_dtype("float16", cpu, cpu_bfloat16=True)
    with pytest.raises(ConfigError, match="no native bfloat16"):
        autocast_dtype("bfloat16", cpu, cpu_bfloat16=False)
    with pytest.raises(ConfigError, match="precision"):
        tiny_config(precision="int8").validate()


def test_the_checkpoint_records_the_arithmetic_used(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    train_swap_model(
        authz,
        release,
        *faces,
        tmp_path / "f32",
        tiny_config(iterations=2, precision="float32"),
        workspace=consent_world.workspace,
    )
    train_swap_model(
        authz, release, *faces, tmp_path / "auto", tiny_config(iterations=2), workspace=consent_world.workspace
    )
    assert load_checkpoint(tmp_path / "f32" / CHECKPOINT_NAME)["hardware"].endswith("float32")
    expected = "bfloat16 autocast" if cpu_supports_bfloat16() else "float32"
    assert load_checkpoint(tmp_path / "auto" / CHECKPOINT_NAME)["hardware"].endswith(expected)


def test_batches_come_from_threads_on_cpu_and_processes_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert data_loading("auto", None, device=cpu, cores=2) == (False, 2)
    assert data_loading("auto", None, device=cuda, cores=16) == (True, 8)
    assert data_loading("auto", None, device=cuda, cores=4) == (True, 2)
    assert data_loading("threads", 6, device=cuda, cores=16) == (False, 6)
    assert data_loading("processes", None, device=cpu, cores=2) == (True, 2)
    with pytest.raises(ConfigError, match="loader"):
        tiny_config(loader="gpu").validate()
    with pytest.raises(ConfigError, match="workers"):
        tiny_config(workers=0).validate()


def test_resume_takes_a_new_thread_count_but_keeps_the_saved_recipe(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    train_swap_model(
        authz,
        release,
        *faces,
        tmp_path,
        tiny_config(iterations=4, checkpoint_every=4, threads=1),
        workspace=consent_world.workspace,
    )
    resumed = train_swap_model(
        authz,
        release,
        *faces,
        tmp_path,
        TrainConfig(iterations=6, threads=2, learning_rate=0.5, model="liae"),
        resume=True,
        workspace=consent_world.workspace,
    )
    assert resumed.iterations == 6
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["threads"] == 2
    assert saved["learning_rate"] == 1e-3 and saved["model"] == "df_tiny"
    assert torch.get_num_threads() <= 2


def test_resume_rebuilds_the_saved_architecture_even_if_the_recipe_no_longer_names_it(consent_world, faces, tmp_path):
    from likeness.train import save_checkpoint

    authz, release = consent_world.authorize(), consent_world.authorize_release()
    config = tiny_config(iterations=4, checkpoint_every=4, model_options={"double_res": True})
    train_swap_model(authz, release, *faces, tmp_path, config, workspace=consent_world.workspace)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    # As if the run had been made when double_res was a default rather than an explicit option.
    state["train_config"]["model_options"] = {}
    save_checkpoint(tmp_path / CHECKPOINT_NAME, state)
    # A checkpoint is resumed only as its sealed ledger event records it: seal and record the rewritten one.
    from likeness.digests import sha256_file
    from likeness.train.checkpoint import record_checkpoint

    record_checkpoint(consent_world.workspace, authz, tmp_path, state, sha256_file(tmp_path / CHECKPOINT_NAME))
    resumed = train_swap_model(
        authz, release, *faces, tmp_path, TrainConfig(iterations=6), resume=True, workspace=consent_world.workspace
    )
    assert resumed.iterations == 6
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["model_config"]["double_res"] is True


def test_new_run_refuses_a_folder_with_a_checkpoint_and_resume_checks_the_faces(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    train_swap_model(
        authz,
        release,
        *faces,
        tmp_path,
        tiny_config(iterations=4, checkpoint_every=4),
        workspace=consent_world.workspace,
    )
    with pytest.raises(ModelError, match="already holds a checkpoint"):
        train_swap_model(authz, release, *faces, tmp_path, tiny_config(iterations=4), workspace=consent_world.workspace)
    other = generated_face_samples(20, identity=3, size=48, seed=0)
    with pytest.raises(ModelError, match="differ"):
        train_swap_model(
            authz,
            release,
            other,
            faces[1],
            tmp_path,
            TrainConfig(iterations=8),
            resume=True,
            workspace=consent_world.workspace,
        )


def test_training_refused_for_another_use_or_an_unissued_authorization(consent_world, faces, tmp_path):
    release = consent_world.authorize_release()
    with pytest.raises(ConsentError) as refused:
        train_swap_model(
            consent_world.authorize("music_video"),
            release,
            *faces,
            tmp_path / "a",
            tiny_config(),
            workspace=consent_world.workspace,
        )
    assert refused.value.reason == "use_not_for_step"

    class LookalikeAuthorization:
        use, subject_id, subject_slug = "training", "x", "mina"

        def recheck(self, *, at=None):
            return None

    with pytest.raises(ConsentError) as forged:
        train_swap_model(
            LookalikeAuthorization(), release, *faces, tmp_path / "b", tiny_config(), workspace=consent_world.workspace
        )
    assert forged.value.reason == "not_issued_here"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_training_refused_without_a_grant(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    consent_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        train_swap_model(authz, release, *faces, tmp_path / "m", tiny_config(), workspace=consent_world.workspace)
    assert refused.value.reason == "revoked"
    with pytest.raises(ConsentError):
        consent_world.authorize()
    assert not (tmp_path / "m").exists()


def test_training_refused_without_a_release(consent_world, faces, tmp_path):
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    consent_world.revoke_release()
    with pytest.raises(ConsentError) as refused:
        train_swap_model(authz, release, *faces, tmp_path / "m", tiny_config(), workspace=consent_world.workspace)
    assert refused.value.reason == "release_revoked"
    with pytest.raises(ConsentError) as refused_without_release:
        train_swap_model(authz, None, *faces, tmp_path / "m", tiny_config(), workspace=consent_world.workspace)
    assert refused_without_release.value.reason == "no_release"


@pytest.mark.parametrize("revoke", ["revoke_grant", "revoke_release"])
def test_revocation_stops_training_at_the_next_checkpoint(consent_world, faces, tmp_path, revoke):
    out = tmp_path / "m"
    seen = []

    def revoke_after_first_checkpoint(progress):
        seen.append(progress.iteration)
        if progress.event == "checkpoint" and progress.iteration == 10:
            getattr(consent_world, revoke)()

    with pytest.raises(ConsentError):
        train_swap_model(
            consent_world.authorize(),
            consent_world.authorize_release(),
            *faces,
            out,
            tiny_config(iterations=40),
            progress=revoke_after_first_checkpoint,
            workspace=consent_world.workspace,
        )
    assert max(seen) == 20  # stopped at the next checkpoint, not at the end
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 10
    assert not consent_world.workspace.ledger.find("model.trained")


def test_export_round_trip_card_ledger_loading_and_refusals(consent_world, faces, tmp_path):
    out = tmp_path / "m"
    authz = consent_world.authorize()
    train_swap_model(
        authz,
        consent_world.authorize_release(),
        *faces,
        out,
        tiny_config(iterations=10),
        workspace=consent_world.workspace,
    )
    exported = export_model(consent_world.workspace, authz, consent_world.authorize_release(), out)
    assert exported.onnx_path == out / ONNX_NAME and exported.card_path == out / CARD_NAME
    card = json.loads(exported.card_path.read_text())
    assert set(CARD_KEYS) <= set(card)
    assert card["grant_id"] == consent_world.grant_id and card["release_id"] == consent_world.release_id
    assert card["subject_slug"] == "mina" and card["performer_slug"] == "jun"
    assert card["resolution"] == 32 and card["iterations"] == 10 and card["licence"]
    assert consent_world.workspace.ledger.find("model.exported", onnx_sha256=card["onnx_sha256"])

    swap = load_swap_model(consent_world.workspace, out, authz=consent_world.authorize("music_video"))
    rng = np.random.default_rng(0)
    probe = rng.random((5, 3, 32, 32), dtype=np.float32)
    swapped, mask = swap.run(probe)
    assert swapped.shape == (5, 3, 32, 32) and mask.shape == (5, 1, 32, 32)
    from likeness.models import create_model

    state = load_checkpoint(out / CHECKPOINT_NAME)
    model = create_model("df_tiny", resolution=32)
    # Export writes the weight average, not the last step's weights.
    assert any(not torch.equal(state["ema_state"][k], state["model_state"][k]) for k in state["model_state"])
    model.load_state_dict(state["ema_state"])
    with torch.no_grad():
        want_rgb, want_mask = model.eval()(torch.from_numpy(probe))
    assert np.abs(swapped - want_rgb.numpy()).max() <= 1e-4
    assert np.abs(mask - want_mask.numpy()).max() <= 1e-4
    with pytest.raises(ModelError, match="float32"):
        swap.run(probe.astype(np.float64))

    # Loading for rendering refuses a tampered file and a revoked training grant.
    render_authz = consent_world.authorize("music_video")
    original = (out / ONNX_NAME).read_bytes()
    (out / ONNX_NAME).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ConsentError, match="does not match the signed model card") as altered:
        load_swap_model(consent_world.workspace, out, authz=render_authz)
    assert altered.value.reason == "artefact_altered"
    (out / ONNX_NAME).write_bytes(original)
    consent_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        load_swap_model(consent_world.workspace, out, authz=render_authz)
    assert refused.value.reason == "revoked"


def test_double_res_decoder_exports_to_onnx_with_the_same_outputs():
    from likeness.models import create_model
    from likeness.train.export import _onnx_bytes
    from likeness.train.swap_model import ONNX_INPUT, ONNX_OUTPUTS, ort_session

    torch.manual_seed(0)
    model = create_model("df_tiny", resolution=32, double_res=True).eval()
    session = ort_session(_onnx_bytes(model, 32), threads=1)
    probe = np.random.default_rng(2).random((3, 3, 32, 32), dtype=np.float32)
    got = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: probe})
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(probe))]
    assert [g.shape for g in got] == [(3, 3, 32, 32), (3, 1, 32, 32)]
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) < 1e-4


def test_weight_average_ramps_up_then_follows_the_weights_slowly():
    from likeness.train.loop import ema_decay_at, update_ema

    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 100_000) == 0.999
    live, average = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        for p in live.parameters():
            p.fill_(1.0)
        for p in average.parameters():
            p.zero_()
    update_ema(average, live, 0.75)
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in average.parameters())
    assert all(torch.equal(p, torch.ones_like(p)) for p in live.parameters())


def test_weight_average_can_be_turned_off_and_is_validated(consent_world, faces, tmp_path):
    with pytest.raises(ConfigError, match="ema_decay"):
        tiny_config(ema_decay=1.0).validate()
    train_swap_model(
        consent_world.authorize(),
        consent_world.authorize_release(),
        *faces,
        tmp_path,
        tiny_config(iterations=4, checkpoint_every=4, ema_decay=0.0),
        workspace=consent_world.workspace,
    )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["ema_state"] is None


def test_rendering_side_loads_models_without_importing_torch():
    # likeness render pays for every import; PyTorch alone costs about a second.
    import subprocess
    import sys

    probe = (
        "import sys; from likeness.train import load_swap_model, SwapModel, read_model_card; "
        "import likeness.render.pipeline; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_every_public_training_name_resolves():
    import likeness.train as train

    assert train.__all__ and all(getattr(train, name) is not None for name in train.__all__)
    with pytest.raises(AttributeError):
        train.no_such_name  # noqa: B018


class _RecordingDetector:
    """Stands in for FaceDetector: finds no face, records whether it was closed."""

    made: list[_RecordingDetector] = []

    def __init__(self, *args, **kwargs) -> None:
        self.closed = False
        _RecordingDetector.made.append(self)

    def detect(self, rgb):
        return []

    def close(self) -> None:
        self.closed = True


def test_the_landmark_detector_made_for_metrics_is_closed_on_success_and_on_error(
    consent_world, faces, tmp_path, monkeypatch
):
    # Its MediaPipe graphs keep native threads (and their log lines) alive until closed.
    import likeness.faces
    from likeness.errors import FacesetError
    from likeness.train import FaceSamples

    monkeypatch.setattr(likeness.faces, "FaceDetector", _RecordingDetector)
    _RecordingDetector.made = []
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    train_swap_model(
        authz,
        release,
        *faces,
        tmp_path / "ok",
        tiny_config(iterations=2, expression_metrics=True),
        workspace=consent_world.workspace,
    )
    source, target = faces
    lone = FaceSamples(source.images[:1], source.landmarks[:1])
    # named, with a way on (it said "need at least 2 faces per identity ..., got 1": a new user's
    # first train on a steady clip could not tell which faceset, or what to do)
    with pytest.raises(
        FacesetError, match=r"the source faceset \(the subject's, --source\) holds 1 face: .*--dedup -1"
    ):
        train_swap_model(
            authz,
            release,
            lone,
            target,
            tmp_path / "bad",
            tiny_config(expression_metrics=True),
            workspace=consent_world.workspace,
        )
    assert not (tmp_path / "bad").exists()  # refused before writing anything: no empty model folder
    assert len(_RecordingDetector.made) == 2
    assert all(detector.closed for detector in _RecordingDetector.made)


class _SameForEveryFace:
    """An embedder that cannot tell anyone apart: every swap ties with both identities' references."""

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return np.ones(128, np.float32)


def test_identity_metrics_record_why_held_out_swaps_fail(consent_world, faces, tmp_path):
    out = tmp_path / "model"
    config = tiny_config(iterations=10, checkpoint_every=10, identity_metrics=True)
    result = train_swap_model(
        consent_world.authorize(),
        consent_world.authorize_release(),
        *faces,
        out,
        config,
        embedder=_SameForEveryFace(),
        identity_threshold=0.4,
        workspace=consent_world.workspace,
    )
    held_out = result.metrics["validation_faces"]["target"]
    assert held_out > 0
    # A tie is not a transfer: every swap counts as still nearer the performer.
    assert result.metrics["identity_transfer"] == 0.0
    assert result.metrics["swap_faces_nearer_performer"] == held_out
    with open(out / "metrics.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert last["iteration"] == "10" and float(last["identity_transfer"]) == 0.0
    assert int(last["swap_faces_nearer_performer"]) == held_out
    assert float(last["swap_distance_to_source_max"]) == 0.0


def test_training_puts_the_callers_thread_settings_back(consent_world, faces, tmp_path):
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(3)
    try:
        train_swap_model(
            consent_world.authorize(),
            consent_world.authorize_release(),
            *faces,
            tmp_path / "model",
            tiny_config(iterations=2, checkpoint_every=2, threads=1),
            workspace=consent_world.workspace,
        )
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 3)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
