"""The fast paths of verification: sparse video sampling still traces the watermark, each face
track is embedded on at most its best few views, an empty gallery skips the embedder, face views
keep the descriptor, and decoding ahead in a thread keeps errors and order."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.media import write_image
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.provenance.writer import LabelledWriter, RenderJob
from likeness.verify.pipeline import EMBEDDINGS_PER_TRACK, Verifier, face_view, verify_path

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

SIZE = (480, 360)
FPS = 10


@pytest.fixture
def mina_world(consent_world):
    from likeness.faceset import enroll_reference_photos

    report = enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    assert report.added == 1
    return consent_world


def reencode_with_keyframes(src: Path, dst: Path, *, gop: int) -> Path:
    """Re-encode ``src`` as a platform would: H.264 with a keyframe every ``gop`` frames and
    B-frames; the C2PA manifest does not survive, only the pixels (and our watermark)."""
    with av.open(str(src)) as source, av.open(str(dst), mode="w") as target:
        in_stream = source.streams.video[0]
        out = target.add_stream(
            "libx264",
            rate=in_stream.average_rate,
            options={
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=2",
                "crf": "20",
                "preset": "veryfast",
            },
        )
        out.width, out.height = in_stream.codec_context.width, in_stream.codec_context.height
        out.pix_fmt = "yuv420p"
        for frame in source.decode(in_stream):
            rgb = frame.to_ndarray(format="rgb24")
            target.mux(out.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        target.mux(out.encode(None))
    return dst


def test_sparsely_sampled_reencoded_render_is_traced_by_the_watermark(mina_world, tmp_path):
    authz = mina_world.authorize("music_video")
    job = RenderJob.new("video")
    render = tmp_path / "render.mp4"
    with LabelledWriter(mina_world.workspace).open_video(
        authz, job, render, width=SIZE[0], height=SIZE[1], fps=FPS
    ) as video:
        for frame in animate_portrait(astronaut(), n_frames=6 * FPS, size=SIZE, seed=2):
            video.write(frame)
    reposted = reencode_with_keyframes(render, tmp_path / "reposted.mp4", gop=FPS)
    result = verify_path(mina_world.workspace, reposted)
    assert result.c2pa is not None and not result.c2pa.present
    # About one frame per second, spread over the clip (seeking from keyframe to keyframe).
    times = result.watermark.frame_timestamps_s
    assert len(times) == 6
    np.testing.assert_allclose(times, np.arange(6), atol=3.0 / FPS)
    assert result.watermark.found and result.watermark.render.job_id == job.job_id
    assert result.verdict.code == "authorized-synthetic", result.verdict
    face = result.faces.faces[0]
    assert face.frames == 6 and face.match is not None and face.match.slug == "mina"


class CountingEmbedder:
    """Wraps the real embedder and counts descriptors computed."""

    def __init__(self, inner):
        self.inner = inner
        self.faces = 0

    def embed(self, rgb, landmarks):
        self.faces += 1
        return self.inner.embed(rgb, landmarks)

    def embed_many(self, rgb, landmarks):
        self.faces += len(landmarks)
        return self.inner.embed_many(rgb, landmarks)

    def close(self):
        self.inner.close()


class RefusingEmbedder:
    def embed(self, rgb, landmarks):
        raise AssertionError("the embedder must not run when the gallery is empty")

    embed_many = embed

    def close(self):
        pass


def portrait_clip(path: Path, *, seconds: int, rgb: np.ndarray) -> Path:
    from likeness.media import VideoEncoder

    with VideoEncoder(path, width=SIZE[0], height=SIZE[1], fps=FPS) as encoder:
        for frame in animate_portrait(rgb, n_frames=seconds * FPS, size=SIZE, seed=5):
            encoder.write(frame)
    return path


def test_a_face_track_is_embedded_on_at_most_its_best_views(mina_world, tmp_path):
    clip = portrait_clip(tmp_path / "mina.mp4", seconds=7, rgb=astronaut())
    verifier = Verifier(mina_world.workspace)
    counting = CountingEmbedder(verifier._embedder_model())
    verifier._embedder = counting
    try:
        result, _ = verifier.verify(clip)
    finally:
        verifier.close()
    faces = result.faces
    assert faces.frames_analysed == 7 and len(faces.faces) == 1
    assert faces.faces[0].frames == 7
    assert counting.faces == EMBEDDINGS_PER_TRACK
    assert faces.faces[0].match is not None and faces.faces[0].match.slug == "mina"
    assert result.verdict.code == "enrolled-artist-unlabelled"


def test_a_stranger_track_stays_unmatched_with_few_views(mina_world, tmp_path):
    clip = portrait_clip(tmp_path / "stranger.mp4", seconds=5, rgb=grace_hopper())
    result = verify_path(mina_world.workspace, clip)
    assert result.verdict.code == "no-enrolled-artist"
    face = result.faces.faces[0]
    assert face.match is None and face.nearest.slug == "mina" and face.nearest.similarity < 0.5


@pytest.mark.parametrize("kind", ["image", "video"])
def test_empty_gallery_skips_the_embedder(consent_world, tmp_path, kind):
    if kind == "image":
        path = tmp_path / "photo.jpg"
        write_image(path, astronaut(), quality=90)
    else:
        path = portrait_clip(tmp_path / "clip.mp4", seconds=3, rgb=astronaut())
    verifier = Verifier(consent_world.workspace)
    assert verifier.gallery.size == 0
    verifier._embedder = RefusingEmbedder()
    try:
        result, _ = verifier.verify(path)
    finally:
        verifier.close()
    assert not [e for e in result.errors if e.stage == "faces"], result.errors
    assert result.faces.detected == 1 and result.faces.gallery_references == 0
    assert result.faces.faces[0].match is None and result.faces.faces[0].nearest is None
    assert result.verdict.code == "no-enrolled-artist"


def test_face_view_keeps_the_descriptor():
    from likeness.faces import FaceDetector, FaceEmbedder, identity_distance

    big = np.ascontiguousarray(np.kron(astronaut(), np.ones((2, 2, 1), np.uint8)))  # 1024 px, face ~210 px
    with FaceDetector(max_faces=1) as detector:
        face = detector.detect(big)[0]
    view = face_view(big, face.landmarks, max_face_side=160)
    side = float(np.ptp(face.landmarks, axis=0).max())
    assert side > 160 and float(np.ptp(view.landmarks, axis=0).max()) == pytest.approx(160, abs=1.0)
    assert view.rgb.shape[0] < big.shape[0] and view.rgb.dtype == np.uint8
    embedder = FaceEmbedder()
    distance = identity_distance(embedder.embed(big, face.landmarks), embedder.embed(view.rgb, view.landmarks))
    assert distance < 0.08  # the calibrated threshold is 0.40


def test_face_view_rejects_bad_input():
    with pytest.raises(MediaError):
        face_view(np.zeros((10, 10), np.uint8), np.zeros((478, 2), np.float32))
    with pytest.raises(MediaError):
        face_view(np.zeros((10, 10, 3), np.uint8), np.full((478, 2), np.nan, np.float32))


def test_small_gallery_searches_leave_faiss_threads_as_they_were(tmp_path):
    import faiss

    from likeness.verify.gallery import ArtistGallery, SubjectReferences

    rng = np.random.default_rng(5)
    refs = rng.normal(size=(4, 128)).astype(np.float32)
    gallery = ArtistGallery.sync(tmp_path, [SubjectReferences("s1", "mina", "Mina", refs)], threshold=0.4)
    before = faiss.omp_get_max_threads()
    query = gallery.query_many(refs[:2])
    assert [q.match.slug for q in query] == ["mina", "mina"]
    assert faiss.omp_get_max_threads() == before
