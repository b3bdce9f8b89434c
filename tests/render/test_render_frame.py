"""Frame-level swapping with the trained model: only the released performer's face changes;
everything else is bit-identical."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from likeness.faces.detect import FaceDetector
from likeness.faces.identity import FaceEmbedder
from likeness.media.synthetic import astronaut, compose_group, grace_hopper
from likeness.render.frame import FrameRenderer, RefineOptions
from likeness.train.swap_model import SwapModel


@pytest.fixture(autouse=True)
def swap_calls(monkeypatch) -> Counter:
    """Calls of the real exported model's ``run`` per loaded model, checking what the renderer
    feeds it (the renderer takes only models from load_swap_model, so the class is wrapped)."""
    calls: Counter = Counter()
    original = SwapModel.run

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert faces.dtype == np.float32 and faces.ndim == 4 and faces.shape[1:] == (3, 64, 64)
        assert faces.min() >= 0.0 and faces.max() <= 1.0
        calls[self] += 1
        return original(self, faces)

    monkeypatch.setattr(SwapModel, "run", run)
    return calls


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def _renderer(world, embedder, **kwargs) -> FrameRenderer:
    return world.frame_renderer(FaceDetector(mode="image"), embedder, **kwargs)


@pytest.mark.parametrize("blend", ["alpha", "poisson"])
def test_only_the_performer_is_swapped(trained_world, embedder, blend: str) -> None:
    group = compose_group([astronaut(), grace_hopper()], size=(1024, 512))
    renderer = _renderer(trained_world, embedder, options=RefineOptions(blend=blend))
    out, outcomes = renderer.process(group, frame_index=0, t_s=0.0)
    assert len(outcomes) == 2
    by_side = {("left" if o.bbox[0] < 512 else "right"): o for o in outcomes}
    assert by_side["left"].reason == "not_target" and not by_side["left"].swapped
    assert by_side["right"].swapped
    # The astronaut's half (not the performer) is bit-identical, the performer's face changed.
    assert np.array_equal(out[:, :512], group[:, :512])
    x0, y0, x1, y1 = (int(v) for v in by_side["right"].bbox)
    changed = np.abs(out[y0:y1, x0:x1].astype(int) - group[y0:y1, x0:x1].astype(int)).sum(axis=2) > 0
    assert changed.mean() > 0.3
    assert renderer.counts == {"not_target": 1, "swapped": 1}


def test_in_place_render_pastes_into_the_given_frame_with_the_same_result(trained_world, embedder) -> None:
    group = compose_group([astronaut(), grace_hopper()], size=(1024, 512))
    copied, _ = _renderer(trained_world, embedder).process(group.copy(), frame_index=0, t_s=0.0)
    frame = group.copy()
    out, outcomes = _renderer(trained_world, embedder).process(frame, frame_index=0, t_s=0.0, in_place=True)
    assert out is frame and any(o.swapped for o in outcomes)
    assert np.array_equal(out, copied) and not np.array_equal(out, group)


def test_no_performer_in_frame_leaves_frame_identical(trained_world, embedder, swap_calls) -> None:
    frame = compose_group([astronaut()], size=(512, 512))
    renderer = _renderer(trained_world, embedder)
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert np.array_equal(out, frame)
    assert [o.reason for o in outcomes] == ["not_target"]
    assert swap_calls[renderer.model] == 0


def test_small_faces_are_gated_and_counted(trained_world, embedder) -> None:
    from likeness.render.gating import GateOptions

    frame = compose_group([grace_hopper()], size=(512, 512))
    renderer = _renderer(trained_world, embedder, options=RefineOptions(gate=GateOptions(min_face_px=2000)))
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert np.array_equal(out, frame)
    assert [o.reason for o in outcomes] == ["too_small"]


def test_renderer_state_roundtrip(trained_world, embedder) -> None:
    frame = compose_group([grace_hopper()], size=(512, 512))
    renderer = _renderer(trained_world, embedder)
    renderer.process(frame, frame_index=0, t_s=0.0)
    state = renderer.state()
    clone = _renderer(trained_world, embedder)
    clone.restore(state)
    a, _ = renderer.process(frame, frame_index=1, t_s=0.04)
    b, _ = clone.process(frame, frame_index=1, t_s=0.04)
    assert np.array_equal(a, b)
    assert clone.counts["swapped"] == 2


def test_batched_frames_render_like_one_frame_at_a_time(trained_world, embedder, swap_calls) -> None:
    from likeness.render.frame import FrameInput

    group = compose_group([astronaut(), grace_hopper()], size=(1024, 512))
    # The faces drift a few pixels a frame, so landmark and colour smoothing carry state across frames.
    frames = [np.roll(group, 3 * k, axis=1) for k in range(6)]
    single = _renderer(trained_world, embedder)
    expected = [single.process(f.copy(), frame_index=k, t_s=0.04 * k) for k, f in enumerate(frames)]
    batched = _renderer(trained_world, embedder)
    got = []
    for chunk in (range(0, 4), range(4, 6)):
        got += batched.process_batch([FrameInput(frames[k].copy(), k, 0.04 * k) for k in chunk])
    assert swap_calls[single.model] == 6 and swap_calls[batched.model] == 2
    for (want, want_outcomes), (out, outcomes) in zip(expected, got):
        assert [(o.swapped, o.reason) for o in outcomes] == [(o.swapped, o.reason) for o in want_outcomes]
        # Same pixels up to the model's float rounding on a batch of 4 instead of 1.
        assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
        assert not np.array_equal(out, group)
    assert batched.counts == single.counts == {"not_target": 6, "swapped": 6}


def test_a_batch_longer_than_a_track_can_go_unseen_is_refused(trained_world, embedder, swap_calls) -> None:
    from likeness.render.frame import MAX_BATCH_FRAMES, FrameInput

    frame = compose_group([grace_hopper()], size=(256, 256))
    renderer = _renderer(trained_world, embedder)
    with pytest.raises(ValueError, match="at most"):
        renderer.process_batch([FrameInput(frame, k, 0.04 * k) for k in range(MAX_BATCH_FRAMES + 1)])
    assert swap_calls[renderer.model] == 0


def _shot(portrait: np.ndarray, *, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    """``portrait`` at 220x270 px in the middle of a flat grey frame of ``size = (W, H)``."""
    import cv2

    width, height = size
    frame = np.full((height, width, 3), 96, np.uint8)
    face = cv2.resize(portrait, (220, 270), interpolation=cv2.INTER_AREA)
    x, y = (width - 220) // 2, (height - 270) // 2
    frame[y : y + 270, x : x + 220] = face
    return frame


def _astronaut_face() -> np.ndarray:
    """The astronaut cropped to her head, so her face fills a shot as grace_hopper's does."""
    return np.ascontiguousarray(astronaut()[10:330, 100:370])


@pytest.mark.parametrize("gap", [0, 3], ids=["hard-cut", "after-an-empty-moment"])
def test_a_bystander_who_takes_the_performer_s_place_is_left_alone(trained_world, embedder, gap: int) -> None:
    """A hard cut (or a few empty frames) to another person standing where the performer stood:
    the box tracker hands her the performer's track, and its identity decision (settled, next
    checked 120 frames later) swapped her face for seconds, without any release of hers."""
    performer, bystander = _shot(grace_hopper()), _shot(_astronaut_face())
    empty = np.full_like(performer, 96)
    shown = 20  # two identity samples (frames 0 and 15) agree: the performer's track is settled
    frames = [performer] * shown + [empty] * gap + [bystander] * 12
    renderer = trained_world.frame_renderer(FaceDetector(mode="video"), embedder)
    outcomes = []
    for index, rgb in enumerate(frames):
        out, faces = renderer.process(rgb, frame_index=index, t_s=index / 25)
        outcomes.append(faces)
        if index >= shown + gap:
            assert np.array_equal(out, rgb), f"frame {index}: the bystander's face was changed"
    assert all(o.swapped for faces in outcomes[:shown] for o in faces)
    after = [o for faces in outcomes[shown + gap :] for o in faces]
    assert len(after) == 12 and all(o.reason == "not_target" for o in after)
    # She is her own track, so the report never files her frames under the performer's.
    assert {o.track_id for o in after}.isdisjoint({o.track_id for faces in outcomes[:shown] for o in faces})


def _lookalike_at_16px(performer: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other``'s fine detail on ``performer``'s broad shapes (a hybrid image): at 16x16 px it
    is the performer (look correlation over 0.7), to the face embedder it is not (0.46 from her
    references, over the 0.40 threshold): a lookalike in the same framing and light."""
    import cv2

    def broad(rgb: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 1.5)

    hybrid = broad(performer) + other.astype(np.float32) - broad(other)
    return np.clip(hybrid + 0.5, 0, 255).astype(np.uint8)


def test_a_lookalike_found_by_the_next_identity_sample_is_left_alone_from_then_on(trained_world, embedder) -> None:
    """A hard cut to someone who looks like the performer at 16 px sets off no re-check; the
    track's next sample finds her, but it was folded into the mean of the last eight samples, so
    the performer's decision held for several samples more: 26 frames swapped, 12 of them from
    the sample that said she is not the performer on."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    every, shown = 2, 100  # eight samples of the performer, settled: next one 16 frames on
    renderer = trained_world.frame_renderer(FaceDetector(mode="video"), embedder, identity_every=every)
    outcomes = []
    for index, rgb in enumerate([performer] * shown + [lookalike] * 40):
        outcomes.append(renderer.process(rgb, frame_index=index, t_s=index / 25)[1])
    assert all(o.swapped for faces in outcomes[:shown] for o in faces)
    sampled = shown + 8 * every  # the settled track's next sample falls at or before this frame
    after = [o for faces in outcomes[sampled:] for o in faces]
    assert len(after) == 40 - 8 * every
    assert [o.reason for o in after] == ["not_target"] * len(after)
    assert {o.track_id for o in after}.isdisjoint({o.track_id for faces in outcomes[:shown] for o in faces})


def test_a_lookalike_who_takes_a_settled_performer_s_place_is_sampled_within_four_steps(
    trained_world, embedder
) -> None:
    """A settled performer's track was next sampled eight ``identity_every`` steps on (120 frames
    at the defaults), so a lookalike the look test misses, cut in just after a sample, was
    swapped for all of them; it is now sampled within four (60 frames)."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    every, shown = 2, 19  # samples at 0, 2 (settled), then 10 and 18 (four steps) or 18 (eight)
    renderer = trained_world.frame_renderer(FaceDetector(mode="video"), embedder, identity_every=every)
    outcomes = []
    for index, rgb in enumerate([performer] * shown + [lookalike] * 24):
        outcomes.append(renderer.process(rgb, frame_index=index, t_s=index / 25)[1])
    assert all(o.swapped for faces in outcomes[:shown] for o in faces)
    after = [o for faces in outcomes[shown + 4 * every :] for o in faces]
    assert len(after) == 24 - 4 * every
    assert [o.reason for o in after] == ["not_target"] * len(after)


@pytest.mark.parametrize("key", [b"render one", b"render two"])
def test_a_take_that_shows_the_performer_only_on_the_sampled_frames_is_caught(trained_world, embedder, key) -> None:
    """Identity samples fell on a fixed schedule (the track's first frame, then every
    ``identity_every`` steps, four apart once settled), so a take with the performer on exactly
    those frames and a lookalike the look test misses on every other one had the lookalike
    swapped on all 68 of her frames. The samples are now placed by the render's secret: the first
    that lands on her ends the swap, and she is swapped only while a sample of the performer
    stands (at most one gap of frames after each)."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    every = 2  # the fixed schedule sampled frames 0, 2, then 10, 18, 26, ... (every four steps)
    frames = [performer if i <= 2 or (i - 2) % (4 * every) == 0 else lookalike for i in range(80)]
    renderer = trained_world.frame_renderer(FaceDetector(mode="video"), embedder, identity_every=every, sample_key=key)
    swapped = []
    for index, rgb in enumerate(frames):
        faces = renderer.process(rgb, frame_index=index, t_s=index / 25)[1]
        if rgb is lookalike and any(o.swapped for o in faces):
            swapped.append(index)
    assert len(swapped) <= 8


def test_a_take_that_flips_between_the_performer_and_a_lookalike_swaps_her_on_no_frame_once_found(
    trained_world, embedder
) -> None:
    """The performer and a lookalike the look test misses take turns every 2 frames. A sample that
    found the lookalike ended her track's swap, but the next sample of the box that fell on the
    performer swapped it again until the one after (39 of her 74 frames at the defaults). Once a
    box has shown her, it is embedded at every frame it would be swapped."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    frames = [performer if (i // 2) % 2 == 0 else lookalike for i in range(80)]
    renderer = trained_world.frame_renderer(
        FaceDetector(mode="video"), embedder, identity_every=2, sample_key=b"render two"
    )
    hers = []  # (frame, swapped) of the lookalike's frames
    for index, rgb in enumerate(frames):
        faces = renderer.process(rgb, frame_index=index, t_s=index / 25)[1]
        if rgb is lookalike:
            hers.append((index, any(o.swapped for o in faces)))
    found = next(i for i, (_, swapped) in enumerate(hers) if not swapped)
    assert found < len(hers) // 2  # a sample found her in the first half
    assert [index for index, swapped in hers[found:] if swapped] == []


def _lookalike_frames_swapped_per_cycle(renderer, cycle: list[np.ndarray], lookalike: np.ndarray, cycles: int):
    """Render ``cycle`` ``cycles`` times (each image's faces detected once) and count, per cycle,
    the frames where ``lookalike``'s face was swapped."""
    detector = FaceDetector(mode="image")
    faces = {id(rgb): detector.detect(rgb) for rgb in cycle}
    swapped = [0] * cycles
    for index in range(cycles * len(cycle)):
        rgb = cycle[index % len(cycle)]
        outcomes = renderer.process(rgb, frame_index=index, t_s=index / 25, faces=faces[id(rgb)])[1]
        if rgb is lookalike and any(o.swapped for o in outcomes):
            swapped[index // len(cycle)] += 1
    return swapped


def test_a_lookalike_who_comes_back_after_the_contested_window_is_sampled_within_one_step(
    trained_world, embedder
) -> None:
    """After a sample found the lookalike, the box was contested for 32 ``identity_every`` steps;
    past them its track settled again and was sampled four steps apart, so a take that brought
    her back into the box after each window had her swapped until the next sample, cycle after
    cycle (19 of her 60 frames a cycle at the defaults, up to 49). Once the take has shown her, no track
    is trusted for more than one step: at most ``identity_every - 1`` of her frames a cycle."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    every = 2  # contested for 64 frames, then sampled 4-8 frames apart before, 1-2 now
    renderer = trained_world.frame_renderer(
        FaceDetector(mode="image"), embedder, identity_every=every, sample_key=b"render one"
    )
    cycle = [performer] * 72 + [lookalike] * 8
    swapped = _lookalike_frames_swapped_per_cycle(renderer, cycle, lookalike, cycles=6)
    assert max(swapped[1:]) <= every - 1, swapped


def test_a_lookalike_in_a_fresh_track_after_frames_without_a_face_is_caught_on_her_first_frame(
    trained_world, embedder
) -> None:
    """Frames without a face end a track, and with it its contested box: each fresh track of the
    performer settled after two samples and the lookalike cut in then was swapped until the next
    one. A lookalike found anywhere in the render contests every track for 32 steps, so each
    return of hers is embedded on her first frame."""
    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    empty = np.full_like(performer, 96)
    every = 2
    renderer = trained_world.frame_renderer(
        FaceDetector(mode="image"), embedder, identity_every=every, sample_key=b"render one"
    )
    cycle = [performer] * 12 + [lookalike] * 8 + [empty] * 20  # 20 > TRACK_MAX_MISSED: the track ends
    swapped = _lookalike_frames_swapped_per_cycle(renderer, cycle, lookalike, cycles=5)
    assert swapped[1:] == [0] * 4, swapped


def test_a_resumed_render_remembers_the_lookalike_it_found(trained_world, embedder) -> None:
    """The render's memory of a lookalike travels in the checkpoint, so a resume does not trust
    its tracks for four steps again."""
    import json

    performer = _shot(grace_hopper())
    lookalike = _lookalike_at_16px(performer, _shot(_astronaut_face()))
    renderer = trained_world.frame_renderer(
        FaceDetector(mode="image"), embedder, identity_every=2, sample_key=b"render one"
    )
    _lookalike_frames_swapped_per_cycle(renderer, [performer] * 12 + [lookalike] * 12, lookalike, cycles=1)
    assert renderer.lookalike_found_at is not None
    resumed = _renderer(trained_world, embedder)
    resumed.restore(json.loads(json.dumps(renderer.state())))
    assert resumed.lookalike_found_at == renderer.lookalike_found_at
