"""Render fixtures: a really trained and exported swap model, shared by the render tests.

Training once per session keeps the folder fast: ``df_tiny`` at 64 px is trained for a few
iterations on generated faces (``likeness.train.generated_face_samples``) under the same
consented world as ``tests/conftest.py`` (org ``studio``, subject ``mina`` with a grant for all
uses, performer ``jun`` with a release; reference photos: astronaut and grace_hopper), then
exported to ONNX. Each test gets its own copy of that workspace (database, ledger and keys), so
revocations and ledger rows never leak between tests, and renders load the model through the
real ``likeness.train.load_swap_model`` path (hash, subject and grant checks).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from likeness.config import Settings
from likeness.consent import Authorization
from likeness.consent.holder import HolderMachine
from likeness.workspace import Workspace
from tests.conftest import ConsentWorld, build_consent_world

MODEL_RESOLUTION = 64
TRAIN_ITERATIONS = 12


@dataclass(frozen=True)
class TrainedTemplate:
    home: Path
    model_dir: Path
    grant_id: str
    release_id: str


@dataclass
class TrainedWorld(ConsentWorld):
    """The consent world of tests/conftest.py (a private copy) holding an exported model of mina
    for jun."""

    model_dir: Path | None = None

    def authorize(self, use: str = "music_video") -> Authorization:
        return super().authorize(use)

    def performer_faces(self):
        """The target faces the model was trained on (regenerated: they are deterministic)."""
        return _performer_faces()

    def load_model(self):
        from likeness.train import load_swap_model

        return load_swap_model(self.workspace, self.model_dir, authz=self.authorize(), threads=1)

    def render(self, model_dir: Path, media: Path, out: Path, **kwargs):
        """``render_media`` of ``media`` to ``out`` for the studio's music video."""
        from likeness.render import render_media

        return render_media(self.workspace, model_dir, media, out, use="music_video", org="studio", **kwargs)

    def frame_renderer(self, detector, embedder, *, model=None, **options):
        """A FrameRenderer of the model (or ``model``) for the performer's faces, under the
        world's grant and release, at the product's identity threshold."""
        from likeness.faces.identity import IDENTITY_THRESHOLD
        from likeness.render.frame import FrameRenderer

        return FrameRenderer(
            self.load_model() if model is None else model,
            detector,
            embedder,
            self.workspace.registry.reference_embeddings(self.performer),
            authz=self.authorize(),
            release=self.authorize_release(),
            identity_threshold=IDENTITY_THRESHOLD,
            **options,
        )


def video_report(output: Path, job_id: str, target: str = "t.mp4", options: dict | None = None):
    """The report of a video render of mina for jun (music video, studio), before any shot."""
    from likeness.render.report import RenderReport

    return RenderReport(
        job_id=job_id,
        target=target,
        output=str(output),
        kind="video",
        model_dir="m",
        subject_slug="mina",
        performer_slug="jun",
        use="music_video",
        org="studio",
        options=options or {},
    )


def _performer_faces(count: int = 24, size: int = MODEL_RESOLUTION):
    from likeness.train import generated_face_samples

    return generated_face_samples(count, identity=2, size=size, seed=1)


def swap_config(iterations: int):
    """``df_tiny`` at 64 px on two threads for ``iterations``, checkpointed and logged once at the
    end, without previews or metrics: a model that renders, quickly."""
    from likeness.train import TrainConfig

    return TrainConfig(
        model="df_tiny",
        resolution=MODEL_RESOLUTION,
        iterations=iterations,
        batch_size=4,
        checkpoint_every=iterations,
        preview_every=0,
        log_every=iterations,
        identity_metrics=False,
        expression_metrics=False,
        threads=2,
        workers=1,
        seed=5,
        learning_rate=1e-3,
    )


def train_and_export(workspace, training, release, model_dir: Path, config, *, faces: int = 24) -> None:
    """Train ``config`` under ``training`` and ``release`` on generated faces (``faces`` of each
    identity at the config's resolution) into ``model_dir``, and export it to ONNX."""
    from likeness.train import export_model, generated_face_samples, train_swap_model

    source = generated_face_samples(faces, identity=1, size=config.resolution, seed=0)
    target = _performer_faces(faces, config.resolution)
    with warnings.catch_warnings():
        # torch.export's own pytree deprecation notice during ONNX export; not actionable here.
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        train_swap_model(training, release, source, target, model_dir, config, workspace=workspace)
        export_model(workspace, training, release, model_dir)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> TrainedTemplate:
    root = tmp_path_factory.mktemp("render-trained")
    workspace = Workspace.init(Settings(home=root / "home"))
    try:
        world = build_consent_world(workspace, root)
        world.enroll_faces()
        model_dir = root / "model"
        training = workspace.policy.authorize("mina", "training", "studio")
        release = workspace.policy.authorize_release("jun", "studio")
        train_and_export(workspace, training, release, model_dir, swap_config(TRAIN_ITERATIONS))
    finally:
        workspace.close()
    return TrainedTemplate(root / "home", model_dir, world.grant_id, world.release_id)


@pytest.fixture
def trained_world(trained_template: TrainedTemplate, tmp_path: Path) -> Iterator[TrainedWorld]:
    home = tmp_path / "home"
    shutil.copytree(trained_template.home, home)
    # the rights holders' machine goes with the copied world (their keys and receipts)
    shutil.copytree(HolderMachine.beside(trained_template.home).folder, HolderMachine.beside(home).folder)
    workspace = Workspace.open(Settings(home=home))
    try:
        yield TrainedWorld(
            workspace,
            tmp_path,
            grant_id=trained_template.grant_id,
            release_id=trained_template.release_id,
            model_dir=trained_template.model_dir,
        )
    finally:
        workspace.close()


@pytest.fixture(scope="session")
def performer_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.2 s, 25 fps, 320x240 clip of the performer (grace_hopper) with head motion and audio."""
    from likeness.media.synthetic import grace_hopper, write_clip

    path = tmp_path_factory.mktemp("clips") / "jun.mp4"
    return write_clip(path, grace_hopper(), seconds=1.2, fps=25, size=(320, 240), with_audio=True, seed=3)


@pytest.fixture(scope="session")
def workspace_with_128_model(tmp_path_factory: pytest.TempPathFactory):
    """(workspace, model folder): ``df_tiny`` at 128 px with the ``cpu-overnight-128`` recipe's
    ``-d`` decoder, trained two iterations (mina from the astronaut; jun, the performer, is
    grace_hopper, enrolled from her portrait), so the renderer's crops are 128 px."""
    from datetime import timedelta

    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.faceset import enroll_reference_photos
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut, grace_hopper
    from likeness.train import TrainConfig
    from likeness.train.recipes import RECIPES
    from tests.conftest import add_subject, issue_grant, issue_release

    root = tmp_path_factory.mktemp("render-128")
    workspace = Workspace.init(Settings(home=root / "home"))
    registry = workspace.registry
    registry.add_org("studio", "Studio Haneul")
    add_subject(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
    add_subject(registry, "jun", "Jun", kind="performer")
    until = now_utc() + timedelta(days=30)
    issue_grant(registry, "mina", "studio", USES, valid_until=until, purpose="render tests")
    issue_release(registry, "jun", "studio", valid_until=until, purpose="render tests")
    for who, rgb in (("mina", astronaut()), ("jun", grace_hopper())):
        write_image(root / f"{who}.png", rgb)
        assert enroll_reference_photos(workspace, who, [root / f"{who}.png"]).added == 1
    recipe = RECIPES["cpu-overnight-128"]
    config = TrainConfig(
        model="df_tiny",
        resolution=recipe["resolution"],
        iterations=2,
        batch_size=2,
        checkpoint_every=2,
        preview_every=0,
        identity_metrics=False,
        expression_metrics=False,
        threads=1,
        workers=1,
        model_options={
            "ae_dims": 16,
            "d_dims": 4,
            "d_mask_dims": 4,
            "double_res": recipe["model_options"]["double_res"],
        },
    )
    training = workspace.policy.authorize("mina", "training", "studio")
    release = workspace.policy.authorize_release("jun", "studio")
    train_and_export(workspace, training, release, root / "model", config, faces=8)
    try:
        yield workspace, root / "model"
    finally:
        workspace.close()
