"""No unlabelled path: swapped pixels need consent in the swap model and the frame renderer
themselves, not only in ``render_media`` (issue 24, attack 5: ``SwapModel`` built with
``ort_session``, ``FrameRenderer`` and ``write_image`` swapped a face onto a performer with no
release and wrote a file with no watermark, no C2PA and no label). ``SwapModel`` is made only by
``load_swap_model`` and ``FrameRenderer`` takes nothing else (review findings 6 and 7)."""

from __future__ import annotations

import copy
import pickle
from datetime import timedelta

import numpy as np
import pytest

from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import FrameRenderer
from likeness.train.swap_model import ONNX_NAME, SwapModel, load_swap_model, ort_session, read_model_card
from tests.conftest import add_subject, issue_grant, issue_release


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def _session_and_card(world):
    return ort_session(world.model_dir / ONNX_NAME, threads=1), read_model_card(world.model_dir)


def test_swap_model_cannot_be_built_around_an_onnx_session(trained_world) -> None:
    # Findings 5 and 6: a public class around any ONNX session, with or without a live authorization.
    session, card = _session_and_card(trained_world)
    with pytest.raises(TypeError, match="load_swap_model"):
        SwapModel(card, session)
    with pytest.raises(TypeError, match="load_swap_model"):
        SwapModel({**card, "subject_id": "someone-else"}, session, authz=trained_world.authorize())
    with pytest.raises(TypeError):

        class Lookalike(SwapModel):
            pass

    # Built without its constructor: nothing was issued for it, so it swaps nothing.
    model = object.__new__(SwapModel)
    model.card, model.resolution = card, 64
    with pytest.raises(ConsentError) as refused:
        model.run(np.full((1, 3, 64, 64), 0.5, np.float32))
    assert refused.value.reason == "not_issued_here"
    genuine = trained_world.load_model()
    for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            duplicate(genuine)


def test_load_swap_model_needs_a_live_render_authorization_for_the_model_s_subject(trained_world) -> None:
    world = trained_world
    with pytest.raises(ConsentError) as refused:
        load_swap_model(world.workspace, world.model_dir, authz=None)
    assert refused.value.reason == "not_issued_here"
    with pytest.raises(ConsentError) as refused:
        load_swap_model(world.workspace, world.model_dir, authz=world.authorize("training"))
    assert refused.value.reason == "use_not_for_step"
    registry = world.workspace.registry
    add_subject(registry, "sora", "Sora", kind="virtual_idol", owner_org="studio")
    issue_grant(registry, "sora", "studio", ["music_video"], valid_until=now_utc() + timedelta(days=3), purpose="x")
    with pytest.raises(ConsentError) as refused:
        load_swap_model(
            world.workspace, world.model_dir, authz=world.workspace.policy.authorize("sora", "music_video", "studio")
        )
    assert refused.value.reason == "no_grant"
    authz = world.authorize()
    world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        load_swap_model(world.workspace, world.model_dir, authz=authz)
    assert refused.value.reason == "revoked"


def test_editing_a_loaded_model_s_attributes_changes_nothing_that_runs(trained_world) -> None:
    model = trained_world.load_model()
    faces = np.full((1, 3, 64, 64), 0.5, np.float32)
    before, _ = model.run(faces)

    class Other:
        def run(self, names, feeds):
            return [np.zeros((1, 3, 64, 64), np.float32), np.zeros((1, 1, 64, 64), np.float32)]

    with pytest.raises(AttributeError):
        object.__setattr__(model, "_session", Other())  # no such slot: the session is not on the object
    after, _ = model.run(faces)
    assert np.array_equal(before, after)


def test_a_held_swap_model_stops_after_revocation(trained_world, monkeypatch) -> None:
    model = trained_world.load_model()
    faces = np.full((1, 3, 64, 64), 0.5, np.float32)
    swapped, _ = model.run(faces)
    assert swapped.shape == (1, 3, 64, 64)
    trained_world.revoke_grant()
    monkeypatch.setattr(SwapModel, "RECHECK_EVERY_S", 0.0)
    with pytest.raises(ConsentError) as refused:
        model.run(faces)
    assert refused.value.reason == "revoked"


def _frame_renderer(world, embedder, **consent) -> FrameRenderer:
    references = world.workspace.registry.reference_embeddings(world.performer)
    return FrameRenderer(
        world.load_model(),
        FaceDetector(mode="image"),
        embedder,
        references,
        identity_threshold=IDENTITY_THRESHOLD,
        **consent,
    )


def test_frame_renderer_needs_the_render_authorization_and_the_performer_s_release(trained_world, embedder) -> None:
    world = trained_world
    authz, release = world.authorize(), world.authorize_release()
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(world, embedder, authz=authz)  # no release: the attack's performer had none
    assert refused.value.reason == "no_release"
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(world, embedder, release=release)
    assert refused.value.reason == "not_issued_here"
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(world, embedder, authz=world.authorize("training"), release=release)
    assert refused.value.reason == "use_not_for_step"
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(world, embedder, authz=authz, release=authz)  # the grant is no release
    assert refused.value.reason == "not_issued_here"


class DuckModel:
    """Finding 7: anything with a ``card`` and a ``run``, here wrapping the genuine model's card."""

    def __init__(self, card: dict) -> None:
        self.card, self.file_sha256 = card, card["onnx_sha256"]
        self.calls = 0

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return faces, np.ones((faces.shape[0], 1, faces.shape[2], faces.shape[3]), np.float32)


def test_frame_renderer_takes_only_a_model_from_load_swap_model(trained_world, embedder) -> None:
    world = trained_world
    duck = DuckModel(read_model_card(world.model_dir))
    with pytest.raises(ConsentError) as refused:
        world.frame_renderer(FaceDetector(mode="image"), embedder, model=duck)
    assert refused.value.reason == "not_issued_here"
    # A genuine renderer whose model is swapped for the stand-in afterwards swaps nothing with it.
    renderer = _frame_renderer(world, embedder, authz=world.authorize(), release=world.authorize_release())
    renderer.model = duck
    with pytest.raises(ConsentError) as refused:
        renderer.process(compose_group([grace_hopper()], size=(256, 256)), frame_index=0, t_s=0.0)
    assert refused.value.reason == "not_issued_here" and duck.calls == 0
    # A genuine model whose card is edited after loading (relabelled in memory) is refused too.
    model = world.load_model()
    model.card["subject_slug"] = "someone-else"
    with pytest.raises(ConsentError) as refused:
        world.frame_renderer(FaceDetector(mode="image"), embedder, model=model)
    assert refused.value.reason == "not_issued_here"


def test_frame_renderer_refuses_another_performer_s_release(trained_world, embedder) -> None:
    registry = trained_world.workspace.registry
    add_subject(registry, "kai", "Kai", kind="performer")
    issue_release(registry, "kai", "studio", valid_until=now_utc() + timedelta(days=3), purpose="other footage")
    other = trained_world.workspace.policy.authorize_release("kai", "studio")
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(trained_world, embedder, authz=trained_world.authorize(), release=other)
    assert refused.value.reason == "no_release" and "kai" in str(refused.value)


def test_frame_renderer_stops_when_the_release_is_revoked(trained_world, embedder) -> None:
    renderer = _frame_renderer(
        trained_world,
        embedder,
        authz=trained_world.authorize(),
        release=trained_world.authorize_release(),
        recheck_every=2,
    )
    frame = compose_group([grace_hopper()], size=(256, 256))
    renderer.process(frame, frame_index=0, t_s=0.0)
    trained_world.revoke_release()
    renderer.process(frame, frame_index=1, t_s=0.04)  # inside the recheck interval
    with pytest.raises(ConsentError) as refused:
        renderer.process(frame, frame_index=2, t_s=0.08)
    assert refused.value.reason == "release_revoked"
