"""A 128 px model end to end: trained a few iterations, exported, loaded and rendered onto a frame.

The render fixtures train at 64 px; this module trains ``df_tiny`` at 128 px with the
``cpu-overnight-128`` recipe's ``-d`` decoder, so the renderer's crop size follows the card's
``resolution`` rather than assuming 64.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest

from likeness.config import Settings
from likeness.consent import USES
from likeness.consent.canonical import now_utc
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.media.synthetic import grace_hopper
from likeness.render.frame import FrameRenderer
from likeness.train.recipes import RECIPES
from likeness.train.swap_model import SwapModel
from likeness.workspace import Workspace
from tests.conftest import add_subject, issue_grant, issue_release

RESOLUTION = 128


@pytest.fixture(scope="module")
def workspace_with_128_model(tmp_path_factory):
    from likeness.faceset import enroll_reference_photos
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut
    from likeness.train import (
        TrainConfig,
        export_model,
        generated_face_samples,
        train_swap_model,
    )

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
    source = generated_face_samples(8, identity=1, size=RESOLUTION, seed=0)
    target = generated_face_samples(8, identity=2, size=RESOLUTION, seed=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        train_swap_model(training, release, source, target, root / "model", config, workspace=workspace)
        export_model(workspace, training, release, root / "model")
    try:
        yield workspace, root / "model"
    finally:
        workspace.close()


def test_a_128_px_model_renders_a_frame_at_its_own_resolution(workspace_with_128_model, monkeypatch):
    from likeness.train import load_swap_model

    workspace, model_dir = workspace_with_128_model
    fed: list[tuple[int, ...]] = []
    original = SwapModel.run

    def run(self, faces: np.ndarray):
        fed.append(faces.shape)
        rgb, mask = original(self, faces)
        assert rgb.shape[-2:] == (RESOLUTION, RESOLUTION) and mask.shape[-2:] == (RESOLUTION, RESOLUTION)
        return rgb, mask

    monkeypatch.setattr(SwapModel, "run", run)
    authz = workspace.policy.authorize("mina", "music_video", "studio")
    model = load_swap_model(workspace, model_dir, authz=authz, threads=1)
    renderer = FrameRenderer(
        model,
        FaceDetector(mode="image"),
        FaceEmbedder(),
        workspace.registry.reference_embeddings("jun"),
        authz=authz,
        release=workspace.policy.authorize_release("jun", "studio"),
        identity_threshold=IDENTITY_THRESHOLD,
    )
    frame = grace_hopper()
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert [o.swapped for o in outcomes] == [True]
    assert fed and all(shape[1:] == (3, RESOLUTION, RESOLUTION) for shape in fed)
    assert out.shape == frame.shape and not np.array_equal(out, frame)
