"""Ctrl-C during training keeps a resumable checkpoint; the thread count follows the machine's load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.train import CHECKPOINT_NAME, TrainingInterrupted, load_checkpoint
from likeness.train.cpu_threads import (
    busy_cores,
    choose_cpu_threads,
    prefer_passive_openmp_wait,
)
from likeness.train.workflow import resume_training

from .conftest import tiny_config, train_command

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

# The child trains with the library, printing each iteration, until it is interrupted.
_CHILD = textwrap.dedent("""
    import sys
    from likeness.config import Settings
    from likeness.train import TrainConfig, TrainingInterrupted, train_from_facesets
    from likeness.workspace import Workspace

    home, source, target, out = sys.argv[1:5]
    workspace = Workspace.open(Settings(home=home))
    config = TrainConfig(model="df_tiny", resolution=32, iterations=100000, batch_size=4, checkpoint_every=100000,
                         preview_every=0, identity_metrics=False, expression_metrics=False, threads=1, workers=1,
                         validation_fraction=0.2)

    def show(event):
        if event.event == "step":
            print(f"iteration {event.iteration}", flush=True)

    try:
        train_from_facesets(workspace, source, target, out, config, org="studio", progress=show)
    except TrainingInterrupted as stopped:
        print(f"saved {stopped.iteration} {stopped.checkpoint_path}", flush=True)
        sys.exit(130)
""")


def test_sigint_saves_a_checkpoint_that_resumes(consent_world, facesets, tmp_path):
    home = str(consent_world.workspace.settings.home)
    out = tmp_path / "model"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, home, str(facesets[0]), str(facesets[1]), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        for line in child.stdout:  # type: ignore[union-attr]
            if line.startswith("iteration ") and int(line.split()[1]) >= 3:
                break
        else:
            pytest.fail(f"training never reached iteration 3: {child.stderr.read()}")  # type: ignore[union-attr]
        child.send_signal(signal.SIGINT)
        rest, errors = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, errors
    saved = [line for line in rest.splitlines() if line.startswith("saved ")]
    assert saved, rest + errors
    iteration = int(saved[0].split()[1])
    assert iteration >= 3 and saved[0].split()[2] == str(out / CHECKPOINT_NAME)
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == iteration
    result = resume_training(consent_world.workspace, out, iterations=iteration + 2, org="studio")
    assert result.iterations == iteration + 2 and result.stop_reason == "iterations"


def test_cli_says_where_the_interrupted_run_was_saved(consent_world, facesets, tmp_path, monkeypatch):
    out = tmp_path / "model"

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(out / CHECKPOINT_NAME, 7)

    monkeypatch.setattr("likeness.train.train_from_facesets", interrupted)
    home = consent_world.workspace.settings.home
    result = CliRunner().invoke(app, train_command(home, *facesets, "--out", out, "--org", "studio"))
    assert result.exit_code == 130
    assert "interrupted at iteration 7" in result.output
    assert str(out / CHECKPOINT_NAME) in result.output.replace("\n", "")
    assert f"likeness train --resume {out}" in result.output.replace("\n", "")


def test_threads_follow_the_load_average():
    assert [busy_cores(load) for load in (0.0, 0.5, 0.6, 1.4, 2.3)] == [0, 0, 1, 1, 2]
    assert choose_cpu_threads(None, cores=2, load=2.3).threads == 1  # busy 2-core machine: 1 thread
    assert choose_cpu_threads(None, cores=2, load=1.0).threads == 1
    assert choose_cpu_threads(None, cores=2, load=0.2).threads == 2
    assert choose_cpu_threads(None, cores=16, load=3.2).threads == 13
    assert choose_cpu_threads(None, cores=4, load=None).threads == 4
    assert choose_cpu_threads(4, cores=2, load=0.0).threads == 2  # never more threads than cores
    picked = choose_cpu_threads(None, cores=2, load=2.3)
    assert picked.describe("PASSIVE") == "1 thread (load 2.3 on 2 cores; OpenMP wait passive)"


def test_passive_wait_is_asked_for_only_before_torch_loads(monkeypatch):
    import torch  # noqa: F401  (loaded: too late to change the policy)

    environ: dict[str, str] = {}
    assert prefer_passive_openmp_wait(environ) is None and environ == {}
    monkeypatch.delitem(sys.modules, "torch")
    assert prefer_passive_openmp_wait(environ) == "PASSIVE" and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert prefer_passive_openmp_wait({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"  # the user's choice stays


def test_progress_events_say_how_many_threads_and_why(consent_world, facesets, tmp_path):
    from likeness.train import train_from_facesets

    events = []
    config = tiny_config(threads=None)  # the machine's load chooses
    train_from_facesets(
        consent_world.workspace, facesets[0], facesets[1], tmp_path / "m", config, org="studio", progress=events.append
    )
    described = {event.cpu_threads for event in events}
    assert len(described) == 1
    assert described.pop().startswith(("1 thread (load", "2 threads (load"))


def test_a_stop_asked_by_the_progress_callback_keeps_a_checkpoint_that_resumes(consent_world, facesets, tmp_path):
    # A service worker shutting down stops its training job from the job's progress report. The
    # stop went up from the report with nothing saved since the last planned checkpoint (none, in
    # a run's first minutes), so the requeued job started over. Now the step is saved first.
    from likeness.errors import StopRequested
    from likeness.train import train_from_facesets

    out = tmp_path / "model"

    def stop_at_third_step(event) -> None:
        if event.iteration == 3:
            raise StopRequested("the worker is shutting down")

    config = tiny_config(iterations=6, checkpoint_every=100)
    with pytest.raises(StopRequested):
        train_from_facesets(
            consent_world.workspace, facesets[0], facesets[1], out, config, org="studio", progress=stop_at_third_step
        )
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 3
    resumed = resume_training(consent_world.workspace, out, org="studio")
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 6, resumed


def test_a_stop_asked_at_a_preview_report_keeps_a_checkpoint_too(consent_world, facesets, tmp_path):
    # The preview's report (after the step's own) is the one a shutdown lands on while the preview
    # is being drawn; the stop went up from there with nothing saved, so the requeued job lost
    # every step since the last planned checkpoint (all of them, in a run's first minutes).
    from likeness.errors import StopRequested
    from likeness.train import train_from_facesets

    out = tmp_path / "model"

    def stop_at_second_preview(event) -> None:
        if event.event == "preview" and event.iteration == 4:
            raise StopRequested("the worker is shutting down")

    config = tiny_config(iterations=6, checkpoint_every=100, preview_every=2)
    with pytest.raises(StopRequested):
        train_from_facesets(
            consent_world.workspace,
            facesets[0],
            facesets[1],
            out,
            config,
            org="studio",
            progress=stop_at_second_preview,
        )
    assert load_checkpoint(out / CHECKPOINT_NAME)["iteration"] == 4
