"""No unlabelled path: swapped pixels need consent in the swap model and the frame renderer
themselves, not only in ``render_media`` (issue 24, attack 5: ``SwapModel`` built with
``ort_session``, ``FrameRenderer`` and ``write_image`` swapped a face onto a performer with no
release and wrote a file with no watermark, no C2PA and no label)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import FrameRenderer
from likeness.train.swap_model import ONNX_NAME, SwapModel, ort_session, read_model_card


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def _session_and_card(world):
    return ort_session(world.model_dir / ONNX_NAME, threads=1), read_model_card(world.model_dir)


def test_swap_model_cannot_be_built_without_a_render_authorization(trained_world) -> None:
    session, card = _session_and_card(trained_world)
    with pytest.raises(ConsentError) as refused:
        SwapModel(card, session)  # the attack: a public class around the ONNX session
    assert refused.value.reason == "not_issued_here"
    with pytest.raises(ConsentError) as refused:
        SwapModel(card, session, authz=trained_world.authorize("training"))
    assert refused.value.reason == "use_not_for_step"
    authz = trained_world.authorize()
    trained_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        SwapModel(card, session, authz=authz)
    assert refused.value.reason == "revoked"


def test_swap_model_is_only_for_the_card_s_subject(trained_world) -> None:
    session, card = _session_and_card(trained_world)
    with pytest.raises(ConsentError) as refused:
        SwapModel({**card, "subject_id": "someone-else"}, session, authz=trained_world.authorize())
    assert refused.value.reason == "no_grant"


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
    return FrameRenderer(world.load_model(), FaceDetector(mode="image"), embedder, references,
                         identity_threshold=IDENTITY_THRESHOLD, **consent)


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


def test_frame_renderer_refuses_another_performer_s_release(trained_world, embedder) -> None:
    registry = trained_world.workspace.registry
    registry.add_subject("kai", "Kai", kind="performer")
    registry.issue_release("kai", "studio", valid_until=now_utc() + timedelta(days=3), purpose="other footage")
    other = trained_world.workspace.policy.authorize_release("kai", "studio")
    with pytest.raises(ConsentError) as refused:
        _frame_renderer(trained_world, embedder, authz=trained_world.authorize(), release=other)
    assert refused.value.reason == "no_release" and "kai" in str(refused.value)


def test_frame_renderer_stops_when_the_release_is_revoked(trained_world, embedder) -> None:
    renderer = _frame_renderer(trained_world, embedder, authz=trained_world.authorize(),
                               release=trained_world.authorize_release(), recheck_every=2)
    frame = compose_group([grace_hopper()], size=(256, 256))
    renderer.process(frame, frame_index=0, t_s=0.0)
    trained_world.revoke_release()
    renderer.process(frame, frame_index=1, t_s=0.04)  # inside the recheck interval
    with pytest.raises(ConsentError) as refused:
        renderer.process(frame, frame_index=2, t_s=0.08)
    assert refused.value.reason == "release_revoked"
