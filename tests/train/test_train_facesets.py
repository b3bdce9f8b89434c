"""Training from faceset folders (library workflow and CLI): consent binding, resume, export."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from likeness.cli import app
from likeness.cli.train import held_out_summary
from likeness.errors import ConsentError
from likeness.train import (
    CHECKPOINT_NAME,
    AugmentOptions,
    TrainConfig,
    faceset_samples,
    load_checkpoint,
    train_from_facesets,
)
from likeness.train.recipes import describe_recipe

from .conftest import QUIET_RUN, TINY_32, tiny_config, train_command

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def small_config(**overrides) -> TrainConfig:
    return tiny_config(**({"iterations": 6, "checkpoint_every": 3} | overrides))


def test_faceset_adapter_reads_faces_lazily_with_hash_and_yaw(facesets):
    from likeness.faceset import load_faceset

    faces = faceset_samples(load_faceset(facesets[0]))
    image, landmarks = faces.face(3)
    assert faces.count == 12 and faces.size == 48
    assert image.shape == (48, 48, 3) and landmarks.shape == (478, 2)
    assert faces.content_sha256() == json.loads((facesets[0] / "manifest.json").read_text())["faceset_sha256"]
    low, high = faces.yaw_range()
    assert low < high


def test_swapped_facesets_are_refused(consent_world, facesets, tmp_path):
    source, target = facesets
    with pytest.raises(ConsentError) as refused:
        train_from_facesets(consent_world.workspace, target, source, tmp_path / "m", small_config(), org="studio")
    assert refused.value.reason == "no_release"
    assert not (tmp_path / "m" / CHECKPOINT_NAME).exists()


def test_cli_trains_resumes_and_exports(consent_world, facesets, tmp_path):
    home = str(consent_world.workspace.settings.home)
    out = tmp_path / "cli-model"
    runner = CliRunner()
    common = ["--home", home]
    result = runner.invoke(
        app,
        [
            *train_command(home, *facesets, *TINY_32),
            "--out",
            str(out),
            "--iters",
            "4",
            "--batch",
            "4",
            "--checkpoint-every",
            "2",
            *QUIET_RUN,
            "--lr",
            "1e-3",
            "--ema-decay",
            "0.99",
            "--model-option",
            "ae_dims=24",
            "--flip",
            "--lr-decay-iters",
            "5",
            "--warp-until",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    # trial 11: the reason it stopped, in words ("trained 20 iterations (iterations) on cpu" before)
    assert "trained 4 iterations (its iteration count reached) on cpu" in result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert (
        saved["learning_rate"] == 1e-3
        and saved["ema_decay"] == 0.99
        and saved["augment"] == {"flip": True, "warp_until": 3}
    )
    assert saved["lr_decay_iters"] == 5
    assert load_checkpoint(out / CHECKPOINT_NAME)["model_config"]["ae_dims"] == 24
    result = runner.invoke(app, common + ["train", "--resume", str(out), "--iters", "6"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 6
    result = runner.invoke(app, common + ["model", "export", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model_card.json").read_text())
    assert card["source_faceset_sha256"] == json.loads((facesets[0] / "manifest.json").read_text())["faceset_sha256"]
    assert card["target_faceset_sha256"] == json.loads((facesets[1] / "manifest.json").read_text())["faceset_sha256"]
    assert card["iterations"] == 6 and card["yaw_range"][0] < card["yaw_range"][1]
    assert (out / "model.onnx").is_file()
    # facesets.json led export to the performer's faceset: an int8 copy was calibrated and checked.
    assert card["int8"]["calibration_faces"] == 6 and card["int8"]["check_faces"] == 6
    assert "int8 copy" in result.output

    consent_world.revoke_grant()
    result = runner.invoke(app, common + ["train", "--resume", str(out), "--iters", "8"])
    assert result.exit_code == 1
    assert "refused" in result.output and "Traceback" not in result.output and "it/s" not in result.output


def test_held_out_line_shows_counts_as_well_as_rates():
    metrics = {
        "identity_transfer": 0.75,
        "swap_distance_to_source_max": 0.3649,
        "swap_faces_nearer_performer": 1,
        "expression_faces_measured": 4,
        "validation_faces": {"source": 4, "target": 4},
    }
    assert held_out_summary(metrics) == (
        "identity_transfer=0.750, swap_distance_to_source_max=0.365, "
        "swap_faces_nearer_performer=1, expression_faces_measured=4"
    )


def test_worker_processes_train_the_same_weights_as_worker_threads(consent_world, facesets, tmp_path):
    # Processes are the GPU loader; each gets the faceset by pickling and must read the same
    # faces with the same augmentation as threads, or resume and reproducibility would break.
    weights = {}
    for loader in ("threads", "processes"):
        out = tmp_path / loader
        train_from_facesets(
            consent_world.workspace, *facesets, out, small_config(iterations=4, loader=loader, workers=2), org="studio"
        )
        weights[loader] = load_checkpoint(out / CHECKPOINT_NAME)["model_state"]
    assert weights["threads"].keys() == weights["processes"].keys()
    assert all(torch.equal(weights["threads"][k], weights["processes"][k]) for k in weights["threads"])


@pytest.mark.parametrize(
    "option, message",
    [
        (["--workers", "0"], "--workers"),
        # TrainConfig's refusals name the flag typed, not the API field (was "batch_size must be")
        (["--precision", "int8"], "--precision must be one of auto, float32, bfloat16, float16, got 'int8'"),
        (["--batch", "0"], "--batch must be >= 1, got 0"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--model-option", "ae_dims"], "expected KEY=VALUE"),
        (["--model-option", "ae_dims=wide"], "must be an integer"),
        (["--model-option", "bogus=3"], "unknown option"),
        (["--ema-decay", "1.5"], "--ema-decay must be in [0, 1), got 1.5"),
        (["--lr-decay-iters", "0"], "--lr-decay-iters must be >= 1 or unset, got 0"),
        (["--recipe", "gpu-9000"], "unknown training recipe 'gpu-9000'"),
        (["--warp-until", "soon"], "--warp-until 'soon': expected an iteration number >= 0 or 'never'"),
        (["--warp-until", "-5"], "--warp-until '-5'"),
        # named by the option typed (was "iterations must be >= 1"); an extra digit or two is
        # refused, not a run with an ETA of centuries (the API's bound)
        (["--iters", "0"], "Invalid value for '--iters'"),
        (["--iters", "10000001"], "Invalid value for '--iters'"),
    ],
)
def test_cli_bad_training_options_are_clear_errors(consent_world, facesets, tmp_path, option, message):
    home = consent_world.workspace.settings.home
    result = CliRunner().invoke(
        app,
        train_command(
            home,
            *facesets,
            *TINY_32,
            "--out",
            tmp_path / "m",
            "--iters",
            "2",
            "--org",
            "studio",
            *option,
        ),
    )
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert "it/s" not in result.output  # refused before training: no progress bar line
    assert not (tmp_path / "m").exists()


#: Narrower than df_tiny's own widths: a one-iteration run that is quicker still.
NARROW = ("--model-option", "ae_dims=16", "--model-option", "d_dims=4")


def _train_tiny_with_recipe(consent_world, facesets, out, *options):
    """``likeness train --recipe cpu-64`` on the tiny model at 32 px, batch 2, no metrics."""
    home = consent_world.workspace.settings.home
    return CliRunner().invoke(
        app,
        train_command(
            home,
            *facesets,
            "--recipe",
            "cpu-64",
            *TINY_32,
            "--batch",
            "2",
            "--out",
            out,
            *QUIET_RUN,
            *options,
        ),
    )


def test_cli_recipe_fills_in_what_the_command_line_leaves_out(consent_world, facesets, tmp_path):
    out = tmp_path / "recipe-model"
    result = _train_tiny_with_recipe(
        consent_world, facesets, out, "--iters", "2", "--model-option", "ae_dims=24", "--model-option", "d_dims=8"
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    # From the recipe: learning rate, flip and warp stop, and the widths not given.
    assert saved["learning_rate"] == 5e-4 and saved["augment"] == {"flip": True, "warp_until": 5000}
    assert saved["model_options"] == {"ae_dims": 24, "d_dims": 8, "d_mask_dims": 8}
    assert saved["true_face_power"] == 0.01
    # Given on the command line: they win.
    assert (saved["model"], saved["resolution"], saved["batch_size"]) == ("df_tiny", 32, 2)
    assert load_checkpoint(out / CHECKPOINT_NAME)["model_config"]["d_mask_dims"] == 8

    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(consent_world.workspace.settings.home),
            "train",
            "--resume",
            str(out),
            "--recipe",
            "cpu-64",
            "--iters",
            "4",
        ],
    )
    assert result.exit_code != 0 and "--recipe applies to new runs" in result.output
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 2


def test_cli_warp_until_never_overrides_the_recipes_warp_stop(consent_world, facesets, tmp_path):
    out = tmp_path / "warp-throughout"
    result = _train_tiny_with_recipe(consent_world, facesets, out, "--iters", "1", *NARROW, "--warp-until", "Never")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["augment"] == {"flip": True, "warp_until": None}  # the recipe's flip stays


def test_cli_true_face_power_is_saved_and_refused_for_liae(consent_world, facesets, tmp_path):
    out = tmp_path / "true-face"
    result = _train_tiny_with_recipe(consent_world, facesets, out, "--iters", "1", *NARROW, "--true-face-power", "0.05")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "train_config.json").read_text())["true_face_power"] == 0.05
    assert load_checkpoint(out / CHECKPOINT_NAME)["code_discriminator_state"]

    result = _train_tiny_with_recipe(
        consent_world, facesets, tmp_path / "liae", "--iters", "1", "--model", "liae_tiny", "--true-face-power", "0.05"
    )
    said = " ".join(result.output.split())
    assert result.exit_code != 0 and "error: --true-face-power needs a df model" in said, said
    assert said.endswith("not liae_tiny (liae); set it to 0") and "Traceback" not in said
    assert not (tmp_path / "liae").exists()


def test_cli_train_help_states_the_config_defaults():
    # --model, --res, --lr and --flip default to None so a recipe can tell them apart from
    # given values; their help must still state what applies without one.
    import re

    output = re.sub(r"[\s│]+", " ", CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output)
    defaults = TrainConfig()
    assert f"(default: {defaults.model};" in output
    assert "(default: the recipe's; without --recipe, chosen from the performer's face sizes" in output
    assert f"(default: {defaults.learning_rate})" in output and "(default: off;" in output
    assert AugmentOptions().flip is False
    assert "`likeness model recipes`" in output
    # The recipes' values, intent and time are one command away, not 34 lines of --help.
    listed = CliRunner().invoke(app, ["model", "recipes"], env={"COLUMNS": "300"})
    assert listed.exit_code == 0, listed.output
    # Tables wrap at hyphens too ("2.3-" / "2.8x"), so the recipe texts are compared without spaces.
    compact = re.sub(r"[\s│]+", "", listed.output)
    for name in ("preview", "cpu-overnight-128", "gpu-256"):
        assert re.sub(r"\s+", "", describe_recipe(name)) in compact
    help_lines = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).output.splitlines()
    assert len(help_lines) < 100, len(help_lines)  # 115 with every recipe spelled out in --recipe


def _train_tiny_by_default(consent_world, source, target, out, *options):
    """``likeness train`` with neither --recipe nor --res: the tiny model, narrow, one iteration."""
    home = consent_world.workspace.settings.home
    return CliRunner().invoke(
        app,
        train_command(
            home,
            source,
            target,
            "--model",
            "df_tiny",
            *NARROW,
            "--model-option",
            "d_mask_dims=4",
            "--batch",
            "2",
            "--iters",
            "1",
            "--out",
            out,
            *QUIET_RUN,
            *options,
        ),
        terminal_width=300,
    )


def test_cli_large_performer_faces_get_128_px_by_default_and_explicit_options_win(
    consent_world, faceset_writer, tmp_path, monkeypatch
):
    monkeypatch.setattr("likeness.train.cuda_available", lambda: False)
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1, face_size=210.0)
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2, face_size=200.0)
    out = tmp_path / "by-face-size"
    result = _train_tiny_by_default(consent_world, source, target, out)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "recipe: cpu-overnight-128 (the performer's median face is 200 px (>= 160 px)" in flat
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["resolution"] == 128 and saved["model_options"]["double_res"] is True
    assert saved["recipe"]["name"] == "cpu-overnight-128" and saved["recipe"]["median_face_px"] == 200.0
    result = CliRunner().invoke(app, ["--home", str(workspace.settings.home), "model", "export", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model_card.json").read_text())
    assert card["resolution"] == 128 and card["recipe"]["name"] == "cpu-overnight-128"
    assert "200 px" in card["recipe"]["reason"]

    # A resolution or a recipe given on the command line wins over the face sizes.
    result = _train_tiny_by_default(consent_world, source, target, tmp_path / "res-given", "--res", "32")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "res-given" / "train_config.json").read_text())
    assert (
        saved["resolution"] == 32 and saved["recipe"]["name"] is None and "--res 32 given" in saved["recipe"]["reason"]
    )
    result = _train_tiny_by_default(consent_world, source, target, tmp_path / "preview", "--recipe", "preview")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "preview" / "train_config.json").read_text())
    assert saved["resolution"] == 64 and saved["recipe"]["name"] == "preview"


def test_cli_overnight_recipe_runs_for_a_night_unless_told_otherwise(
    consent_world, faceset_writer, tmp_path, monkeypatch
):
    from likeness.errors import ConfigError

    monkeypatch.setattr("likeness.train.cuda_available", lambda: False)
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1, face_size=220.0)
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2, face_size=240.0)
    configs = []

    def capture(workspace, source, target, out, config, **kwargs):
        configs.append(config)
        raise ConfigError("captured")  # the stopping rule is all this test needs

    monkeypatch.setattr("likeness.train.train_from_facesets", capture)
    command = [
        "--home",
        str(workspace.settings.home),
        "train",
        "--source",
        str(source),
        "--target",
        str(target),
        "--out",
        str(tmp_path / "night"),
        "--org",
        "studio",
    ]
    result = CliRunner().invoke(app, command)
    assert "stops after 480 minutes (the recipe's; --iters or --minutes to change)" in " ".join(result.output.split())
    assert (configs[-1].iterations, configs[-1].minutes, configs[-1].resolution) == (None, 480.0, 128)
    given = CliRunner().invoke(app, [*command, "--iters", "50"])
    assert (configs[-1].iterations, configs[-1].minutes) == (50, None)
    assert "stops after 50 iterations (as given)" in " ".join(given.output.split())


def test_cli_small_performer_faces_get_the_preview_by_default(consent_world, facesets, tmp_path, monkeypatch):
    monkeypatch.setattr("likeness.train.cuda_available", lambda: True)  # a GPU does not lift 48 px faces
    out = tmp_path / "small-faces"
    result = _train_tiny_by_default(consent_world, *facesets, out, "--iters", "1")
    assert result.exit_code == 0, result.output
    assert "recipe: preview (the performer's median face is 48 px" in " ".join(result.output.split())
    assert json.loads((out / "train_config.json").read_text())["resolution"] == 64


def test_cli_refuses_the_gpu_recipe_without_cuda(consent_world, facesets, tmp_path, monkeypatch):
    monkeypatch.setattr("likeness.train.cuda_available", lambda: False)
    out = tmp_path / "gpu"
    result = _train_tiny_by_default(consent_world, *facesets, out, "--recipe", "gpu-256")
    assert result.exit_code != 0
    flat = " ".join(result.output.split())
    assert "recipe 'gpu-256' needs a CUDA GPU and none is available" in flat and "Traceback" not in flat
    assert not out.exists()


def test_cli_every_train_command_has_help():
    runner = CliRunner()
    for command in (["train", "--help"], ["model", "export", "--help"], ["model", "list", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Usage" in result.output
    listed = runner.invoke(app, ["model", "list"])
    assert "liae_tiny" in listed.output


def test_cli_progress_piped_to_a_log_is_whole_lines(consent_world, faceset_writer, tmp_path, monkeypatch):
    """Without a terminal the progress bar's one final line was cut at 80 columns (threads and
    note lost); a log gets whole lines: iteration, losses, speed and the CPU threads."""
    import re

    monkeypatch.setenv("COLUMNS", "80")
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1, face_size=90.0)
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2, face_size=90.0)
    result = _train_tiny_by_default(consent_world, source, target, tmp_path / "piped")
    assert result.exit_code == 0, result.output
    line = next((ln for ln in result.output.splitlines() if ln.startswith("train 1/1 ")), None)
    assert line is not None, result.output
    assert re.fullmatch(r"train 1/1 src \d+\.\d{3} dst \d+\.\d{3} [\d.]+ it/s( eta .+)? cpu 1 thread.*", line), line
