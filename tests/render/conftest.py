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
from datetime import timedelta
from pathlib import Path

import cv2
import pytest

from likeness.config import Settings
from likeness.consent import USES, Authorization, ReleaseAuthorization
from likeness.consent.canonical import now_utc
from likeness.workspace import Workspace

MODEL_RESOLUTION = 64
TRAIN_ITERATIONS = 12


@dataclass(frozen=True)
class TrainedTemplate:
    home: Path
    model_dir: Path
    grant_id: str
    release_id: str


@dataclass
class TrainedWorld:
    """A consented workspace (a private copy) holding an exported model of mina for jun."""

    workspace: Workspace
    model_dir: Path
    grant_id: str
    release_id: str
    org: str = "studio"
    artist: str = "mina"
    performer: str = "jun"

    def authorize(self, use: str = "music_video") -> Authorization:
        return self.workspace.policy.authorize(self.artist, use, self.org)

    def performer_faces(self):
        """The target faces the model was trained on (regenerated: they are deterministic)."""
        return _performer_faces()

    def authorize_release(self) -> ReleaseAuthorization:
        return self.workspace.policy.authorize_release(self.performer, self.org)

    def revoke_grant(self) -> None:
        self.workspace.registry.revoke_grant(self.grant_id, reason="test revocation")

    def revoke_release(self) -> None:
        self.workspace.registry.revoke_release(self.release_id, reason="test revocation")

    def load_model(self):
        from likeness.train import load_swap_model

        return load_swap_model(self.workspace, self.model_dir, authz=self.authorize(), threads=1)


def _performer_faces():
    from likeness.train import generated_face_samples

    return generated_face_samples(24, identity=2, size=MODEL_RESOLUTION, seed=1)


def _portrait(tmp: Path, name: str) -> Path:
    from likeness.media.synthetic import astronaut, grace_hopper

    rgb = astronaut() if name == "mina" else grace_hopper()
    out = tmp / f"{name}.png"
    cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> TrainedTemplate:
    from likeness.faceset import enroll_reference_photos
    from likeness.train import TrainConfig, export_model, generated_face_samples, train_swap_model

    root = tmp_path_factory.mktemp("render-trained")
    workspace = Workspace.init(Settings(home=root / "home"))
    try:
        registry = workspace.registry
        registry.add_org("studio", "Studio Haneul")
        registry.add_subject("mina", "Mina", kind="virtual_idol", owner_org="studio")
        registry.add_subject("jun", "Jun", kind="performer")
        until = now_utc() + timedelta(days=30)
        grant_id = registry.issue_grant("mina", "studio", USES, valid_until=until, purpose="render tests")
        release_id = registry.issue_release("jun", "studio", valid_until=until, purpose="render tests")
        for who in ("mina", "jun"):
            report = enroll_reference_photos(workspace, who, [_portrait(root, who)])
            assert report.added == 1, report
        source = generated_face_samples(24, identity=1, size=MODEL_RESOLUTION, seed=0)
        target = _performer_faces()
        config = TrainConfig(
            model="df_tiny",
            resolution=MODEL_RESOLUTION,
            iterations=TRAIN_ITERATIONS,
            batch_size=4,
            checkpoint_every=TRAIN_ITERATIONS,
            preview_every=0,
            log_every=TRAIN_ITERATIONS,
            identity_metrics=False,
            expression_metrics=False,
            threads=2,
            workers=1,
            seed=5,
            learning_rate=1e-3,
        )
        model_dir = root / "model"
        training = workspace.policy.authorize("mina", "training", "studio")
        release = workspace.policy.authorize_release("jun", "studio")
        with warnings.catch_warnings():
            # torch.export's own pytree deprecation notice during ONNX export; not actionable here.
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            train_swap_model(training, release, source, target, model_dir, config, workspace=workspace)
            export_model(workspace, training, release, model_dir)
    finally:
        workspace.close()
    return TrainedTemplate(root / "home", model_dir, grant_id, release_id)


@pytest.fixture
def trained_world(trained_template: TrainedTemplate, tmp_path: Path) -> Iterator[TrainedWorld]:
    home = tmp_path / "home"
    shutil.copytree(trained_template.home, home)
    workspace = Workspace.open(Settings(home=home))
    try:
        yield TrainedWorld(
            workspace, trained_template.model_dir, trained_template.grant_id, trained_template.release_id
        )
    finally:
        workspace.close()


@pytest.fixture(scope="session")
def performer_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.2 s, 25 fps, 320x240 clip of the performer (grace_hopper) with head motion and audio."""
    from likeness.media.synthetic import grace_hopper, write_clip

    path = tmp_path_factory.mktemp("clips") / "jun.mp4"
    return write_clip(path, grace_hopper(), seconds=1.2, fps=25, size=(320, 240), with_audio=True, seed=3)
