"""Invisible watermark: channel code, embedding quality, robustness subset, no-mark, video."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
from skimage import data as skdata

from likeness.errors import ProvenanceError
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.provenance import watermark as wm
from likeness.provenance.watermark import (
    MAX_MARK_RMS,
    TILE_SIZE,
    WATERMARK_ALGORITHM,
    ClipWatermarkReader,
    WatermarkEmbedder,
    WatermarkReading,
    embed_watermark,
    extract_watermark,
    extract_watermark_frames,
    texture_mask,
    tile_period,
    video_encoder_options,
    watermark_tile,
)
from likeness.provenance.watermark_code import (
    CODED_BITS,
    convolutional_encode,
    decode_payload,
    encode_payload,
    viterbi_decode,
)

PAYLOAD = bytes.fromhex("5a17c0ffee42b00b")


# ---------------------------------------------------------------- media made here, seeded


def generated_image(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Seeded synthetic RGB uint8 (H, W, 3): smooth colour fields, textures, stripes, noise."""
    height, width = size
    if kind == "smooth":
        coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.float32)
        field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        return np.clip(field + rng.normal(0, 2, field.shape), 0, 255).astype(np.uint8)
    if kind == "texture":
        sigma = rng.uniform(1.0, 3.0)
        noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), sigma)
        return np.clip(128 + noise * rng.uniform(60, 160), 0, 255).astype(np.uint8)
    if kind == "stripes":
        yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
        wave = 127 + 100 * np.sin(2 * np.pi * (xx * rng.uniform(3, 20) + yy * rng.uniform(3, 20)))
        rgb = np.stack([wave, wave * 0.8 + 20, 255 - wave], axis=-1)
        return np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    if kind == "gradient":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        rgb = np.stack([xx / width * 255, yy / height * 255, np.full_like(xx, rng.uniform(0, 255))], -1)
        return rgb.astype(np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    raise ValueError(kind)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def half_and_back(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def crop_10_percent(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    height, width = rgb.shape[:2]
    keep_h, keep_w = int(height * 0.9), int(width * 0.9)
    y0 = int(rng.integers(0, height - keep_h + 1))
    x0 = int(rng.integers(0, width - keep_w + 1))
    return rgb[y0 : y0 + keep_h, x0 : x0 + keep_w], y0, x0


def phase_matches(offset: tuple[int, int] | None, y0: int, x0: int, period: float) -> bool:
    """A crop starting at (y0, x0) reads at tile phase (-y0, -x0) mod the period (+-2 px: the
    reader resamples larger marks to the 128 px grid and back, a 4 px chip is 5-12 px there)."""
    if offset is None:
        return False
    errors = [(got - (-start) % period) % period for got, start in zip(offset, (y0, x0))]
    return all(min(error, period - error) <= 2.0 for error in errors)


def assert_phase(offset: tuple[int, int] | None, y0: int, x0: int, period: float) -> None:
    assert phase_matches(offset, y0, x0, period), (offset, y0, x0, period)


def brightness(rgb: np.ndarray, delta: int) -> np.ndarray:
    return np.clip(rgb.astype(np.int16) + delta, 0, 255).astype(np.uint8)


def h264_with_types(frames: list[np.ndarray], *, crf: int) -> list[tuple[np.ndarray, str]]:
    """x264 (its defaults: preset medium, deadzones, B frames) as a platform re-encodes; each
    decoded frame with its picture type."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        # An enum member in some PyAV versions, FFmpeg's AVPictureType number in others.
        return [
            (
                frame.to_ndarray(format="rgb24"),
                getattr(frame.pict_type, "name", None) or {1: "I", 2: "P", 3: "B"}.get(int(frame.pict_type), "?"),
            )
            for frame in container.decode(video=0)
        ]


def h264_roundtrip(frames: list[np.ndarray], *, crf: int) -> list[np.ndarray]:
    return [rgb for rgb, _ in h264_with_types(frames, crf=crf)]


def moving_clip(rgb: np.ndarray, *, n_frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """A camera pan with slight zoom over ``rgb``: frames (H, W, 3) of ``size = (H, W)``."""
    height, width = size
    frames = []
    for t in range(n_frames):
        scale = 1.25 + 0.01 * t
        affine = np.array([[scale, 0, -1.5 * t - 20], [0, scale, -0.8 * t - 10]], dtype=np.float64)
        base = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(cv2.warpAffine(base, affine, (width, height), borderMode=cv2.BORDER_REFLECT))
    return frames


# ---------------------------------------------------------------- channel code


def test_code_roundtrip_and_size() -> None:
    coded = encode_payload(PAYLOAD)
    assert coded.shape == (CODED_BITS,) and set(np.unique(coded)) <= {0, 1}
    assert decode_payload(2.0 * coded - 1.0) == PAYLOAD


def test_viterbi_corrects_scattered_errors() -> None:
    rng = np.random.default_rng(1)
    info = rng.integers(0, 2, 40).astype(np.uint8)
    soft = 2.0 * convolutional_encode(info) - 1.0
    flipped = np.arange(0, soft.size, soft.size // 6)[:6]
    soft[flipped] *= -0.8  # six confidently wrong coded bits, spread out
    assert np.array_equal(viterbi_decode(soft), info)


def test_decode_corrects_noise_and_rejects_a_broken_check() -> None:
    rng = np.random.default_rng(2)
    coded = encode_payload(PAYLOAD)
    noisy = (2.0 * coded - 1.0) * 1.5 + rng.normal(0, 1, coded.size)
    assert np.mean((noisy > 0) != coded) > 0.03  # the raw bits really are wrong somewhere
    assert decode_payload(noisy) == PAYLOAD
    # Soft bits of another payload with its last check byte altered: decodes, but fails the check.
    other = bytearray(np.packbits(viterbi_decode(2.0 * encode_payload(b"\x01" * 8) - 1.0)).tobytes())
    other[-1] ^= 0x01
    forged = convolutional_encode(np.unpackbits(np.frombuffer(bytes(other), np.uint8)))
    assert decode_payload(2.0 * forged - 1.0) is None


def test_random_soft_bits_are_no_mark() -> None:
    rng = np.random.default_rng(3)
    assert all(decode_payload(rng.normal(0, 1, CODED_BITS)) is None for _ in range(500))
    assert decode_payload(np.zeros(CODED_BITS)) is None  # flat input is not the all-zero payload


@pytest.mark.parametrize("payload", [b"short", b"123456789", "8 chars!", None, [1] * 8])
def test_payload_must_be_eight_bytes(payload: object) -> None:
    with pytest.raises(ProvenanceError, match="8 bytes"):
        encode_payload(payload)  # type: ignore[arg-type]
    with pytest.raises(ProvenanceError, match="8 bytes"):
        embed_watermark(np.zeros((200, 200, 3), np.uint8), payload)  # type: ignore[arg-type]


# ---------------------------------------------------------------- embedding


def test_algorithm_id_and_tile() -> None:
    assert WATERMARK_ALGORITHM == "likeness.tiled-ss.v2"
    tile = watermark_tile(PAYLOAD)
    assert tile.shape == (TILE_SIZE, TILE_SIZE) and tile.dtype == np.float32
    assert abs(float(tile.mean())) < 1e-4 and abs(float(np.sqrt(np.mean(tile**2))) - 1.0) < 1e-3
    assert not tile.flags.writeable
    assert not np.array_equal(tile, watermark_tile(b"\x00" * 8))


@pytest.mark.parametrize("kind", ["smooth", "texture", "stripes", "gradient", "noise", "flat", "portrait"])
def test_psnr_at_least_40_db_and_shape_kept(kind: str) -> None:
    rng = np.random.default_rng(10)
    rgb = grace_hopper() if kind == "portrait" else generated_image(kind, rng, (301, 457))
    marked = embed_watermark(rgb, PAYLOAD)
    assert marked.shape == rgb.shape and marked.dtype == np.uint8
    assert psnr(rgb, marked) >= 40.0
    offset = marked.astype(np.int16) - rgb
    # Luma only: the same offset on R, G and B, except where 0..255 clipping bit.
    unclipped = np.all((rgb > 8) & (rgb < 247), axis=-1)
    assert np.array_equal(offset[..., 0][unclipped], offset[..., 1][unclipped])
    assert np.array_equal(offset[..., 0][unclipped], offset[..., 2][unclipped])
    assert np.sqrt(np.mean(offset.astype(np.float64) ** 2)) <= MAX_MARK_RMS


def test_mark_follows_texture() -> None:
    rng = np.random.default_rng(11)
    rgb = np.full((256, 512, 3), 120, np.uint8)
    rgb[:, 256:] = generated_image("texture", rng, (256, 256))
    mask = texture_mask(rgb)
    assert mask.shape == (32, 64) and mask.dtype == np.float32
    offset = embed_watermark(rgb, PAYLOAD).astype(np.float64) - rgb
    flat_rms = np.sqrt(np.mean(offset[:, 16:240] ** 2))
    busy_rms = np.sqrt(np.mean(offset[:, 272:496] ** 2))
    assert busy_rms > 1.8 * flat_rms > 0


def test_embedder_reuses_pattern_and_checks_frame_size() -> None:
    rng = np.random.default_rng(12)
    frames = [generated_image("texture", rng, (240, 320)) for _ in range(3)]
    embedder = WatermarkEmbedder(PAYLOAD, 320, 240)
    for rgb in frames:
        assert np.array_equal(embedder.embed(rgb), embed_watermark(rgb, PAYLOAD))
    with pytest.raises(ProvenanceError, match="320x240"):
        embedder.embed(np.zeros((241, 320, 3), np.uint8))
    with pytest.raises(ProvenanceError, match="positive"):
        WatermarkEmbedder(PAYLOAD, 0, 240)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64, 3), np.float32),
        np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((0, 64, 3), np.uint8),
        "not an image",
    ],
    ids=["float", "gray2d", "rgba", "empty", "str"],
)
def test_bad_input_is_a_typed_error(bad: object) -> None:
    with pytest.raises(ProvenanceError, match="uint8|empty|numpy"):
        embed_watermark(bad, PAYLOAD)  # type: ignore[arg-type]
    with pytest.raises(ProvenanceError, match="uint8|empty|numpy"):
        extract_watermark(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- reading


def test_clean_read_reports_payload_and_confidence() -> None:
    rng = np.random.default_rng(20)
    rgb = generated_image("smooth", rng, (384, 512))
    reading = extract_watermark(embed_watermark(rgb, PAYLOAD))
    assert isinstance(reading, WatermarkReading)
    assert reading.payload == PAYLOAD and reading.detected
    assert reading.algorithm == WATERMARK_ALGORITHM
    assert reading.bit_confidence > 0.95
    assert reading.offset == (0, 0)
    assert reading.sync_score >= 6.0


ROBUSTNESS_IMAGES = [("smooth", 0), ("texture", 1), ("stripes", 2), ("gradient", 3), ("astronaut", 4), ("grace", 5)]


def robustness_image(kind: str, seed: int) -> np.ndarray:
    if kind == "astronaut":
        return skdata.astronaut()
    if kind == "grace":
        return grace_hopper()
    return generated_image(kind, np.random.default_rng(seed), (512, 512))


@pytest.mark.parametrize("kind,seed", ROBUSTNESS_IMAGES)
def test_robustness_subset(kind: str, seed: int) -> None:
    """JPEG 50, resize to 50 % and back, 10 % crops at random positions, brightness +-20."""
    rng = np.random.default_rng(100 + seed)
    payload = rng.bytes(8)
    marked = embed_watermark(robustness_image(kind, seed), payload)
    attacked = {
        "jpeg50": jpeg(marked, 50),
        "resize50": half_and_back(marked),
        "brightness+20": brightness(marked, 20),
        "brightness-20": brightness(marked, -20),
    }
    for name, rgb in attacked.items():
        assert extract_watermark(rgb).payload == payload, name
    for _ in range(3):
        cropped, y0, x0 = crop_10_percent(marked, rng)
        reading = extract_watermark(cropped)
        assert reading.payload == payload, (y0, x0)
        assert_phase(reading.offset, y0, x0, tile_period(*marked.shape[1::-1]))


def test_combined_attack_jpeg_after_crop_and_brightness() -> None:
    rng = np.random.default_rng(30)
    marked = embed_watermark(skdata.astronaut(), PAYLOAD)
    cropped, _, _ = crop_10_percent(marked, rng)
    assert extract_watermark(jpeg(brightness(cropped, 15), 60)).payload == PAYLOAD


def test_resaved_files_still_yield_the_payload(tmp_path) -> None:
    marked = embed_watermark(grace_hopper(), PAYLOAD)
    for name, params in [
        ("out.png", []),
        ("out.jpg", [cv2.IMWRITE_JPEG_QUALITY, 85]),
        ("out.webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
    ]:
        path = tmp_path / name
        assert cv2.imwrite(str(path), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR), params)
        reread = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert extract_watermark(reread).payload == PAYLOAD, name
    # ...and a second save of the JPEG (re-compression of a re-compressed file).
    twice = jpeg(jpeg(marked, 85), 70)
    assert extract_watermark(twice).payload == PAYLOAD


def test_odd_sizes_and_grey_images() -> None:
    rng = np.random.default_rng(40)
    grey = generated_image("texture", rng, (333, 517))[..., :1].repeat(3, axis=2)
    marked = embed_watermark(grey, PAYLOAD)
    assert extract_watermark(marked).payload == PAYLOAD
    odd = generated_image("stripes", rng, (257, 389))
    assert extract_watermark(embed_watermark(odd, PAYLOAD)).payload == PAYLOAD


def test_tall_image_read_in_strips() -> None:
    """Reading works in strips of rows; a mark across strip boundaries reads whole."""
    rng = np.random.default_rng(42)
    tall = generated_image("texture", rng, (2300, 260))
    marked = embed_watermark(tall, PAYLOAD)
    cropped = marked[37:2237, 11:251]
    reading = extract_watermark(jpeg(cropped, 60))
    assert reading.payload == PAYLOAD
    assert reading.offset == ((-37) % TILE_SIZE, (-11) % TILE_SIZE)


@pytest.mark.parametrize("size", [(1, 1), (50, 90), (127, 400), (400, 127)])
def test_below_one_tile_is_no_mark_without_error(size: tuple[int, int]) -> None:
    rgb = np.random.default_rng(41).integers(0, 256, (*size, 3), dtype=np.uint8)
    marked = embed_watermark(rgb, PAYLOAD)
    assert marked.shape == rgb.shape
    reading = extract_watermark(marked)
    assert reading.payload is None and not reading.detected and reading.bit_confidence == 0.0


def test_wrong_payload_is_never_reported() -> None:
    """Destroying the mark step by step gives the payload, then "no mark"; never another id."""
    rng = np.random.default_rng(50)
    marked = embed_watermark(generated_image("texture", rng, (256, 256)), PAYLOAD).astype(np.float32)
    outcomes = []
    for sigma in np.linspace(0, 60, 13):
        noisy = np.clip(marked + rng.normal(0, sigma, marked.shape), 0, 255).astype(np.uint8)
        payload = extract_watermark(noisy).payload
        assert payload in (PAYLOAD, None)
        outcomes.append(payload)
    assert outcomes[0] == PAYLOAD and outcomes[-1] is None


def unmarked_images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(60)
    kinds = ["smooth", "texture", "stripes", "gradient", "noise", "flat"]
    portraits = [skdata.astronaut(), grace_hopper(), skdata.coffee(), skdata.chelsea()]
    images = []
    for index in range(count):
        if index % 3 == 2:
            source = portraits[index % len(portraits)]
            height = int(rng.integers(128, min(320, source.shape[0]) + 1))
            width = int(rng.integers(128, min(320, source.shape[1]) + 1))
            y0 = int(rng.integers(0, source.shape[0] - height + 1))
            x0 = int(rng.integers(0, source.shape[1] - width + 1))
            images.append(source[y0 : y0 + height, x0 : x0 + width])
        else:
            size = (int(rng.integers(128, 300)), int(rng.integers(128, 300)))
            images.append(generated_image(kinds[index % len(kinds)], rng, size))
    return images


def test_unmarked_images_read_as_no_mark() -> None:
    images = unmarked_images(300)
    readings = [extract_watermark(rgb) for rgb in images]
    assert [r.payload for r in readings] == [None] * len(images)
    # And JPEG re-saves of unmarked portraits (block artefacts fold into each tile) stay clean.
    for rgb in (skdata.astronaut(), grace_hopper()):
        assert extract_watermark(jpeg(rgb, 50)).payload is None


# ---------------------------------------------------------------- video


def test_video_h264_crf28_aggregates_over_frames() -> None:
    frames = moving_clip(skdata.astronaut(), n_frames=24, size=(360, 640))
    embedder = WatermarkEmbedder(PAYLOAD, 640, 360)
    decoded = h264_roundtrip([embedder.embed(rgb) for rgb in frames], crf=28)
    assert len(decoded) == len(frames)
    reading = extract_watermark_frames(iter(decoded))
    assert reading.payload == PAYLOAD
    assert reading.tiles > len(frames) * 10
    unmarked = h264_roundtrip(frames, crf=28)
    assert extract_watermark_frames(unmarked).payload is None


@pytest.mark.parametrize("portrait", ["astronaut", "grace_hopper"])
def test_moving_clip_after_crf35_reads_from_its_first_frame_less_the_picture(portrait: str) -> None:
    """The whole picture moves (rotation, zoom, shift) and a re-encode at CRF 35 keeps the mark
    in the intra frame only, under its picture: P and B frames carry it along with the content
    and let it fade, so no fold at the fixed grid, summed or per frame, reaches the sync gate
    (the reader before issue #25 read neither clip). The later frames warped back onto the
    first by their global motion estimate its picture; the first frame less that reads."""
    picture = astronaut() if portrait == "astronaut" else grace_hopper()
    frames = list(animate_portrait(picture, n_frames=40, size=(640, 360), seed=1))
    embedder = WatermarkEmbedder(PAYLOAD, 640, 360)
    marked = h264_roundtrip([embedder.embed(rgb) for rgb in frames], crf=35)
    reader = ClipWatermarkReader()
    for rgb in marked:
        reader.add(rgb)
    assert reader.read().payload == PAYLOAD
    # Not the summed folds: only the host-cancelled first frame shows the mark.
    clip = reader._clip
    summed = [c for period, folded in zip(clip.periods, clip.folds) for c in wm._sync_both_ways(folded, period)]
    assert not any(c.peaks for c in summed)
    assert extract_watermark_frames(h264_roundtrip(frames, crf=35)).payload is None


def _read_all_at_once(frames: list[np.ndarray]) -> WatermarkReading:
    """The reference: every probe frame prepared and scored only once the probe is complete."""
    clip = wm._ClipReader()
    probe: list[np.ndarray] = []
    for rgb in frames:
        if clip.shape is None:
            clip.shape = rgb.shape
        if clip.periods is None:
            probe.append(rgb)
            if len(probe) >= wm._CLIP_PROBE_FRAMES:
                clip.start(probe)
                probe = []
        else:
            clip.add(rgb)
    if clip.periods is None and probe:
        clip.start(probe)
    return clip.read()


@pytest.mark.parametrize(
    "case", ["marked", "unmarked", "bars-differ", "short", "above-work-size", "unmarked-above-work-size"]
)
def test_clip_reader_scores_probe_frames_on_arrival_with_the_same_reading(case: str) -> None:
    """ClipWatermarkReader prepares each probe frame as it arrives (verify folds beside the
    decoder); its reading equals scoring the whole probe at once, bit for bit, also when a dark
    first frame makes the clip's bars differ from the first frame's (all redone)."""
    # Above 360 px (the work size) the native fold of each probe frame is kept too.
    height, width = (540, 960) if case.endswith("above-work-size") else (360, 640)
    frames = moving_clip(skdata.astronaut(), n_frames=10, size=(height, width))
    if not case.startswith("unmarked"):
        embedder = WatermarkEmbedder(PAYLOAD, width, height)
        frames = [embedder.embed(rgb) for rgb in frames]
    frames = h264_roundtrip(frames, crf=28)
    if case == "bars-differ":
        frames[0] = np.ascontiguousarray(np.pad(frames[0][60:-60], ((60, 60), (0, 0), (0, 0))))
    if case == "short":
        frames = frames[:3]
    reader = ClipWatermarkReader()
    for rgb in frames:
        reader.add(rgb)
    incremental = reader.read()
    reference = _read_all_at_once(frames)
    assert incremental == reference
    assert (incremental.payload == PAYLOAD) == (not case.startswith("unmarked"))


def test_clip_folds_only_the_screens_best_periods_at_full_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip's candidate periods (20 or more for an unmarked one) and the pilot search's grid
    are ranked on half-resolution folds: at full resolution each probe frame is folded at no more
    than _SCREEN_KEEP periods and each later frame at the clip's 4 (the unmarked clip's read
    was about 700 full folds). A mark whose period only the screen can rank (a 15 % crop per
    side of a re-encoded 540p clip: 183 work px) still reads, at its period. Every frame is
    also folded host-suppressed (the own-phase aggregates), at the clip's 4 periods only."""
    calls: list[bool] = []  # per full fold: host-suppressed or not
    original = wm._fold_at_period
    monkeypatch.setattr(
        wm, "_fold_at_period", lambda *args, **kw: calls.append("whiten" in kw) or original(*args, **kw)
    )
    frames = moving_clip(skdata.astronaut(), n_frames=10, size=(540, 960))
    assert extract_watermark_frames(h264_roundtrip(frames, crf=28)).payload is None
    assert 0 < calls.count(False) <= wm._CLIP_PROBE_FRAMES * wm._SCREEN_KEEP + 2 * wm._CLIP_PERIODS
    assert calls.count(True) == len(frames) * wm._CLIP_PERIODS
    embedder = WatermarkEmbedder(PAYLOAD, 960, 540)
    cropped = [np.ascontiguousarray(embedder.embed(rgb)[81:-81, 144:-144]) for rgb in frames]
    reading = extract_watermark_frames(h264_roundtrip(cropped, crf=28))
    assert reading.payload == PAYLOAD
    assert reading.period is not None and abs(reading.period - tile_period(960, 540)) < 0.01 * 192


def test_a_small_copys_period_survives_the_screen() -> None:
    """A clip kept at 50 % of 640x360 (period 64 work px, 2 px chips) and re-encoded at CRF 28:
    its period is among the 4 the clip is folded at. The screen folds periods under 128 px
    without halving the picture first; halving averaged such chips away and kept only
    spurious periods (about 90 px) for this clip."""
    frames = moving_clip(skdata.astronaut(), n_frames=10, size=(360, 640))
    embedder = WatermarkEmbedder(PAYLOAD, 640, 360)
    small = [cv2.resize(embedder.embed(rgb), (320, 180), interpolation=cv2.INTER_AREA) for rgb in frames]
    reader = ClipWatermarkReader()
    for rgb in h264_roundtrip(small, crf=28):
        reader.add(rgb)
    assert reader.read().payload in (None, PAYLOAD)
    periods = reader._clip.periods
    assert periods is not None and any(abs(period - 64) < 0.01 * 64 for period in periods), periods


def test_frames_at_different_phases_are_each_read_at_their_own() -> None:
    """Frames whose mark sits at different tile phases (as when H.264 drags an intra frame's
    mark along with a pan) still aggregate: each frame is read at its own pilot peak."""
    rng = np.random.default_rng(71)
    marked = embed_watermark(generated_image("texture", rng, (420, 560)), PAYLOAD)
    phases = []
    frames = []
    for step in range(10):
        y0, x0 = 3 * step, 7 * step
        frames.append(jpeg(marked[y0 : y0 + 384, x0 : x0 + 512], 50))
        phases.append((y0, x0))
    reading = extract_watermark_frames(frames)
    assert reading.payload == PAYLOAD
    period = tile_period(560, 420)
    assert any(phase_matches(reading.offset, y0, x0, period) for y0, x0 in phases), (reading.offset, phases)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((320, 240), "small"),
        ((240, 320), "small"),
        ((404, 405), "small"),
        ((405, 405), "mid"),
        ((640, 360), "mid"),
        ((854, 480), "mid"),
        ((480, 854), "mid"),
        ((1280, 720), "large"),
        ((1920, 1080), "large"),
    ],
)
def test_video_of_small_frames_is_encoded_to_keep_the_mark(size: tuple[int, int], expected: str) -> None:
    # Below 10 tiles per frame (163 840 px) x264's CRF 20 defaults lose too much of the mark; up to
    # 480 px on the short side its default deadzones drop it from most P and B frames.
    options = video_encoder_options(*size)
    assert options == {"small": {"crf": 18, "deadzones": (0, 0)}, "mid": {"deadzones": (6, 6)}, "large": {}}[expected]


def test_frames_edge_cases() -> None:
    assert extract_watermark_frames([]).payload is None
    tiny = [np.zeros((64, 64, 3), np.uint8)] * 3
    assert extract_watermark_frames(tiny).payload is None
    with pytest.raises(ProvenanceError, match="frame 1"):
        extract_watermark_frames([np.zeros((200, 200, 3), np.uint8), np.zeros((200, 200), np.uint8)])


# ---------------------------------------------------------------- stills through the screen


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls to the watermark module's function ``name`` (the reader looks it up there)."""
    calls: list[int] = []
    original = getattr(wm, name)
    monkeypatch.setattr(wm, name, lambda *args, **kw: calls.append(1) or original(*args, **kw))
    return calls


def test_a_still_is_screened_and_reads_after_a_re_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 720p still kept at 75 % and re-saved as JPEG 70 (period 192 px, 5 work px chips) is
    scored on the half-resolution screen first, passes it and reads at full resolution."""
    screen_folds = _counting(monkeypatch, "_screen_fold")
    full_folds = _counting(monkeypatch, "_fold_at_period")
    still = cv2.resize(skdata.astronaut(), (1280, 720), interpolation=cv2.INTER_CUBIC)
    copy = jpeg(cv2.resize(embed_watermark(still, PAYLOAD), (960, 540), interpolation=cv2.INTER_AREA), 70)
    reading = extract_watermark(copy)
    assert reading.payload == PAYLOAD
    assert len(screen_folds) >= 1 and len(full_folds) >= 1


@pytest.mark.parametrize("size", [(640, 360), (1280, 720)])
def test_an_unmarked_still_is_refused_by_the_screen_without_a_full_read(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    """Unmarked stills (a portrait, a JPEG re-save, a texture) stop at the screen: no period is
    folded at full resolution and nothing is decoded. (Before the screen each was folded at every
    candidate period and on the pilot search's whole grid, about 60 full folds.) With the
    screen's threshold out of the way the same stills are folded in full, so it is the screen
    that refuses them."""
    rng = np.random.default_rng(90)
    stills = [
        cv2.resize(skdata.astronaut(), size, interpolation=cv2.INTER_CUBIC),
        jpeg(cv2.resize(grace_hopper(), size, interpolation=cv2.INTER_CUBIC), 60),
        generated_image("texture", rng, (size[1], size[0])),
    ]
    full_folds = _counting(monkeypatch, "_fold_at_period")
    native_folds = _counting(monkeypatch, "_fold")
    decodes = _counting(monkeypatch, "decode_payload")
    screen_folds = _counting(monkeypatch, "_screen_fold")
    readings = [extract_watermark(still) for still in stills]
    assert full_folds == [] and native_folds == [] and decodes == []
    assert all(r.payload is None and 0.0 < r.sync_score < wm.SCREEN_THRESHOLD for r in readings)
    assert len(screen_folds) >= len(stills) * len(wm._search_grid(128.0))
    monkeypatch.setattr(wm, "SCREEN_THRESHOLD", 0.0)
    assert all(extract_watermark(still).payload is None for still in stills)
    assert len(full_folds) >= len(stills)
    assert len(native_folds) == (len(stills) if min(size) > wm.REFERENCE_SHORT_SIDE else 0)


def test_a_v1_mark_on_a_large_still_passes_its_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 mark (128 px tiles at 1920x1080) mirrored and re-saved as JPEG 70: the work image's
    screen cannot see its 4 px chips (1.3 px there; a 42.7 px period), the native fold's own
    half-resolution screen does, and the native fold reads it."""
    native_folds = _counting(monkeypatch, "_fold")
    still = cv2.resize(grace_hopper(), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    v1 = WatermarkEmbedder(PAYLOAD, 1920, 1080, period=TILE_SIZE).embed(still)
    assert extract_watermark(jpeg(np.ascontiguousarray(v1[:, ::-1]), 70)).payload == PAYLOAD
    assert len(native_folds) == 1
