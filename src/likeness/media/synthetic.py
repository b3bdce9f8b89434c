"""Seeded generated media for tests and the demo: package portraits, animated clips, bad files.

Only portraits shipped inside installed packages are used (scikit-image's ``astronaut`` and
matplotlib's ``grace_hopper.jpg``, both public domain); nothing is downloaded. The same seed
gives the same pixels and samples.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from likeness.media import synthetic
    >>> face = synthetic.astronaut()
    >>> face.shape, face.dtype
    ((512, 512, 3), dtype('uint8'))
    >>> clip = synthetic.write_clip(Path(tempfile.mkdtemp()) / "mina.mp4", face, seconds=1.0, size=(320, 180))
    >>> clip.name, clip.stat().st_size > 0
    ('mina.mp4', True)
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.errors import MediaError
from likeness.media.images import read_image, require_rgb
from likeness.media.video import VideoEncoder

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "DEFAULT_FOCUS",
    "animate_portrait",
    "astronaut",
    "compose_group",
    "grace_hopper",
    "grace_hopper_path",
    "open_mouth",
    "speech_openings",
    "talking_portrait",
    "tone",
    "write_audio_only",
    "write_clip",
    "write_corrupt_variants",
]

AUDIO_SAMPLE_RATE = 48_000

# Where the face sits in a head-and-shoulders portrait, relative to (width, height).
DEFAULT_FOCUS = (0.5, 0.35)


def astronaut() -> np.ndarray:
    """Eileen Collins (NASA, public domain) from scikit-image: RGB ``uint8 (512, 512, 3)``."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper_path() -> Path:
    """Path of matplotlib's bundled ``grace_hopper.jpg`` (public domain)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def grace_hopper() -> np.ndarray:
    """Grace Hopper (US Navy, public domain) from matplotlib: RGB ``uint8 (600, 512, 3)``."""
    return read_image(grace_hopper_path())


def _fit_into(
    rgb: np.ndarray, size: tuple[int, int], *, cover: bool, focus: tuple[float, float] = (0.5, 0.5)
) -> tuple[float, float, float]:
    """Scale and offset placing ``rgb`` in a ``size = (W, H)`` canvas.

    ``cover=False`` fits the whole image (letterboxed, centred); ``cover=True`` fills the canvas
    and puts the relative point ``focus = (fx, fy)`` of the image as near the centre as the
    image edges allow (the crop never shows background).
    """
    width, height = size
    image_h, image_w = rgb.shape[:2]
    if not cover:
        scale = min(width / image_w, height / image_h)
        return scale, (width - image_w * scale) / 2.0, (height - image_h * scale) / 2.0
    scale = max(width / image_w, height / image_h)
    offset_x = width / 2.0 - focus[0] * image_w * scale
    offset_y = height / 2.0 - focus[1] * image_h * scale
    offset_x = min(0.0, max(width - image_w * scale, offset_x))
    offset_y = min(0.0, max(height - image_h * scale, offset_y))
    return scale, offset_x, offset_y


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and 8 <= int(v) <= 8192 for v in size)
    ):
        raise MediaError(None, f"size must be (width, height) with each in 8..8192, got {size!r}")
    return int(size[0]), int(size[1])


def animate_portrait(
    rgb: np.ndarray,
    *,
    n_frames: int,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    focus: tuple[float, float] = DEFAULT_FOCUS,
) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` RGB ``uint8 (H, W, 3)`` frames (``size = (W, H)``) of ``rgb`` moving
    like a head in front of a camera.

    The portrait fills the frame with its relative point ``focus = (fx, fy)`` (where the face
    is; the default suits head-and-shoulders portraits such as :func:`astronaut` and
    :func:`grace_hopper`) near the centre, then follows a smooth seeded path around that point:
    rotation within +-10 degrees, translation within 6 % of the frame, scale 0.95..1.08 and a
    brightness drift within +-8 %. Motion is slow (a few degrees per second at 25 fps) so the
    face stays whole and detectable in every frame; uncovered edges show a flat background.
    """
    require_rgb(rgb, name="portrait")
    return _animate(lambda t: rgb, rgb.shape, n_frames=n_frames, size=size, seed=seed, focus=focus)


def _animate(
    portrait_at: Callable[[int], np.ndarray],
    shape: tuple[int, ...],
    *,
    n_frames: int,
    size: tuple[int, int],
    seed: int,
    focus: tuple[float, float],
) -> Iterator[np.ndarray]:
    """:func:`animate_portrait`'s head motion over ``portrait_at(t)``, a portrait of ``shape`` per frame."""
    width, height = _check_size(size)
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise MediaError(None, f"n_frames must be an integer >= 1, got {n_frames!r}")
    rgb = np.empty(shape, np.uint8)  # only its shape is used below
    rng = np.random.default_rng(seed)
    # Two incommensurate sinusoids per parameter give smooth, non-repeating motion.
    frequencies = rng.uniform(0.15, 0.45, size=(5, 2)) * 2.0 * math.pi / 25.0
    phases = rng.uniform(0.0, 2.0 * math.pi, size=(5, 2))
    weights = rng.uniform(0.35, 0.65, size=(5, 1))
    weights = np.hstack([weights, 1.0 - weights])
    background = tuple(int(v) for v in rng.integers(40, 90, size=3))
    base_scale, offset_x, offset_y = _fit_into(rgb, (width, height), cover=True, focus=focus)
    portrait_centre = np.array([focus[0] * rgb.shape[1], focus[1] * rgb.shape[0]])
    frame_centre = np.array([offset_x, offset_y]) + portrait_centre * base_scale

    for t in range(int(n_frames)):
        wave = np.sum(weights * np.sin(frequencies * t + phases), axis=1)  # each in [-1, 1]
        angle = 10.0 * wave[0]
        scale = base_scale * (1.015 + 0.065 * wave[1])
        shift = np.array([0.06 * width * wave[2], 0.06 * height * wave[3]])
        gain = 1.0 + 0.08 * wave[4]
        affine = cv2.getRotationMatrix2D(tuple(portrait_centre), angle, scale)
        affine[:, 2] += frame_centre + shift - portrait_centre
        frame = cv2.warpAffine(
            portrait_at(t),
            affine,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=background,
        )
        yield cv2.convertScaleAbs(frame, alpha=gain)


def speech_openings(n_frames: int, *, fps: float = 25, seed: int = 0, widest: float = 0.45) -> np.ndarray:
    """float ``(n_frames,)`` mouth openings of seeded speech, in [0, ``widest``] (lip gap over
    mouth width): about 4 syllables a second in phrases of 1-2 s with short closed pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(n_frames)) / float(fps)
    syllable = np.clip(np.sin(2 * math.pi * rng.uniform(3.5, 4.5) * t + rng.uniform(0, 2 * math.pi)), 0, None)
    loudness = rng.uniform(0.55, 1.0, size=len(t) // 6 + 2)[(np.arange(len(t)) // 6)]
    phrase = np.sin(2 * math.pi * t / rng.uniform(1.6, 2.4) + rng.uniform(0, 2 * math.pi)) > -0.6
    return (widest * syllable**0.8 * loudness * phrase).astype(np.float32)


def open_mouth(rgb: np.ndarray, landmarks: np.ndarray, opening: float) -> np.ndarray:
    """``rgb`` with the mouth opened by ``opening`` (inner-lip gap over the mouth's width): the
    lower lip and jaw move down, and the gap shows a dark mouth with a row of upper teeth.

    ``landmarks``: FaceMesh ``(478, 2)`` of ``rgb`` with the mouth closed. A drawing, not a
    face model: enough for FaceMesh to see an open mouth and for a swap to be asked to draw one.
    """
    from likeness.faces.canonical import INNER_LIP_LEFT, INNER_LIP_LOWER, INNER_LIP_RIGHT, INNER_LIP_UPPER

    image = require_rgb(rgb, name="portrait")
    points = np.asarray(landmarks, np.float64)
    if opening <= 0:
        return image.copy()
    left, right = points[INNER_LIP_LEFT], points[INNER_LIP_RIGHT]
    width = float(np.linalg.norm(left - right))
    centre = (points[INNER_LIP_UPPER] + points[INNER_LIP_LOWER]) / 2
    drop = opening * width
    height, wide = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:wide].astype(np.float32)
    across = (xs - centre[0]) / (0.5 * width)
    # 1 between the mouth corners, fading to 0 a mouth width beyond them (the cheeks stretch).
    sideways = np.exp(-(np.clip(np.abs(across) - 0.8, 0, None) ** 2) / 0.8)
    below = ys - centre[1]
    # The lower lip and the jaw move down as one; the neck under the chin stays. Beyond the
    # corners the skin stretches over a longer ramp instead of tearing along the lip line.
    ramp = 2.0 + 0.6 * width * np.clip(np.abs(across) - 0.9, 0, None)
    downward = np.clip(below / ramp, 0, 1) * np.exp(-(np.clip(below - 1.6 * width, 0, None) ** 2) / (0.5 * width) ** 2)
    shift = (drop * sideways * downward).astype(np.float32)
    moved = cv2.remap(image, xs, ys - shift, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # The gap: pixels whose content would come from above the lip line, between the corners.
    gap_depth = drop * np.clip(1 - across**2, 0, None) ** 0.6
    inside = (below >= 0) & (below < gap_depth)
    mouth = np.zeros(image.shape, np.float32)
    mouth[:] = (70, 25, 30)
    teeth = inside & (below < np.minimum(0.3 * gap_depth, 0.12 * width)) & (np.abs(across) < 0.75)
    mouth[teeth] = (228, 222, 210)
    alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(0.8, 0.02 * width))[..., None]
    return np.clip(moved * (1 - alpha) + mouth * alpha + 0.5, 0, 255).astype(np.uint8)


def talking_portrait(
    rgb: np.ndarray,
    *,
    n_frames: int,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    fps: float = 25,
    focus: tuple[float, float] = DEFAULT_FOCUS,
) -> Iterator[np.ndarray]:
    """:func:`animate_portrait` of a face that talks: the mouth opens and closes as
    :func:`speech_openings` says (teeth and a dark mouth showing), for open-mouth speech tests
    and benchmarks. Finds the portrait's face once with FaceMesh (``MediaError`` if none)."""
    from likeness.faces.detect import FaceDetector

    image = require_rgb(rgb, name="portrait")
    with FaceDetector(mode="image", max_faces=1) as detector:
        faces = detector.detect(image)
    if not faces:
        raise MediaError(None, "talking_portrait: no face found in the portrait")
    landmarks = np.asarray(faces[0].landmarks, np.float64)
    openings = speech_openings(int(n_frames), fps=fps, seed=seed)
    return _animate(
        lambda t: open_mouth(image, landmarks, float(openings[t])),
        image.shape,
        n_frames=n_frames,
        size=size,
        seed=seed,
        focus=focus,
    )


def compose_group(
    images: Sequence[np.ndarray],
    *,
    size: tuple[int, int] = (960, 540),
    focus: tuple[float, float] = DEFAULT_FOCUS,
) -> np.ndarray:
    """Place ``images`` side by side in equal-width cells of a ``size = (W, H)`` RGB canvas,
    each filling its cell around its relative point ``focus`` (as in
    :func:`animate_portrait`), for multi-face tests.

    Measured with mediapipe 0.10.14: two portraits at the default 960x540 are both found by
    FaceMesh (short-range detector); three or more are only all found by the full-range
    ``FaceDetection(model_selection=1)``, since each face gets smaller.
    """
    width, height = _check_size(size)
    if len(images) < 1:
        raise MediaError(None, "compose_group needs at least one image")
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    cell_width = width // len(images)
    if cell_width < 8:
        raise MediaError(None, f"{len(images)} images do not fit in width {width}")
    for position, image in enumerate(images):
        require_rgb(image, name=f"images[{position}]")
        scale, offset_x, offset_y = _fit_into(image, (cell_width, height), cover=True, focus=focus)
        affine = np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]])
        cell = cv2.warpAffine(
            image, affine, (cell_width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        canvas[:, position * cell_width : (position + 1) * cell_width] = cell
    return canvas


def tone(seconds: float, *, sample_rate: int = AUDIO_SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A seeded rising chirp (start 220..440 Hz, one octave up over the clip), amplitude 0.3,
    as float32 ``(1, round(seconds * sample_rate))`` mono samples in [-1, 1]."""
    if not seconds > 0:
        raise MediaError(None, f"seconds must be > 0, got {seconds!r}")
    rng = np.random.default_rng(seed)
    start_hz = float(rng.uniform(220.0, 440.0))
    count = int(round(seconds * sample_rate))
    t = np.arange(count, dtype=np.float64) / sample_rate
    # Frequency rises linearly from start_hz to 2*start_hz; phase is its integral.
    phase = 2.0 * math.pi * (start_hz * t + start_hz * t * t / (2.0 * seconds))
    return (0.3 * np.sin(phase)).astype(np.float32)[None, :]


def write_audio_only(
    path: str | os.PathLike[str],
    seconds: float,
    *,
    seed: int = 0,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> Path:
    """Write an AAC ``.m4a`` holding only :func:`tone` audio (no video), e.g. for the
    "no video stream" error. Returns ``path``."""
    path = Path(path)
    samples = tone(seconds, sample_rate=sample_rate, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="ipod") as output:
        stream = output.add_stream("aac", rate=sample_rate, layout="mono")
        chunk = 1024
        for first in range(0, samples.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, first : first + chunk]), format="fltp", layout="mono"
            )
            frame.sample_rate = sample_rate
            frame.pts = first
            frame.time_base = Fraction(1, sample_rate)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def write_clip(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    seconds: float = 2.0,
    fps: float = 25,
    size: tuple[int, int] = (640, 360),
    with_audio: bool = True,
    seed: int = 0,
    crf: int = 20,
    talking: bool = False,
) -> Path:
    """Write an H.264 MP4 of :func:`animate_portrait` (:func:`talking_portrait` when
    ``talking``) lasting ``seconds`` (``round(seconds * fps)`` frames at ``size = (W, H)``),
    with an AAC :func:`tone` track of the same length when ``with_audio``. Returns ``path``."""
    path = Path(path)
    width, height = _check_size(size)
    n_frames = max(1, int(round(seconds * fps)))
    audio_path = None
    if with_audio:
        audio_path = path.with_name(f".{path.stem}.tone.m4a")
        write_audio_only(audio_path, n_frames / fps, seed=seed)
    try:
        with VideoEncoder(path, width=width, height=height, fps=fps, audio_source=audio_path, crf=crf) as encoder:
            animate = talking_portrait if talking else animate_portrait
            for frame in animate(rgb, n_frames=n_frames, size=(width, height), seed=seed):
                encoder.write(frame)
    finally:
        if audio_path is not None:
            audio_path.unlink(missing_ok=True)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_corrupt_variants(folder: str | os.PathLike[str], *, seed: int = 0) -> dict[str, Path]:
    """Write one file per kind of bad input into ``folder`` and return ``{name: path}``:

    ``zero_byte_jpg``, ``zero_byte_mp4`` (empty files), ``truncated_jpg`` (a JPEG cut at 40 %),
    ``random_bytes_jpg`` (seeded noise named .jpg), ``text_png`` (text named .png),
    ``bomb_png`` (a valid PNG header claiming 20000x20000 with almost no pixel data),
    ``truncated_mp4`` (a 2 s clip, index at the front, cut at 55 %: opens, decodes some frames,
    then breaks), ``malformed_mp4`` (a clip whose ``moov`` box claims an impossible size),
    ``audio_only_m4a`` (valid audio, no video stream).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    variants: dict[str, Path] = {}

    def put(name: str, filename: str, payload: bytes) -> None:
        target = folder / filename
        target.write_bytes(payload)
        variants[name] = target

    put("zero_byte_jpg", "zero_byte.jpg", b"")
    put("zero_byte_mp4", "zero_byte.mp4", b"")
    jpeg_ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    if not jpeg_ok:  # pragma: no cover - OpenCV always encodes a valid array
        raise MediaError(folder, "could not encode the JPEG used for the truncated variant")
    jpeg_bytes = jpeg.tobytes()
    put("truncated_jpg", "truncated.jpg", jpeg_bytes[: int(len(jpeg_bytes) * 0.4)])
    put("random_bytes_jpg", "random_bytes.jpg", rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    put("text_png", "text.png", b"This is a text file, not a PNG image.\n" * 8)
    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    put("bomb_png", "bomb.png", bomb)

    source = folder / ".source_clip.mp4"
    write_clip(source, astronaut(), seconds=2.0, fps=25, size=(160, 96), seed=seed)
    clip = source.read_bytes()
    source.unlink()
    put("truncated_mp4", "truncated.mp4", clip[: int(len(clip) * 0.55)])
    put("malformed_mp4", "malformed.mp4", _break_moov(clip))
    variants["audio_only_m4a"] = write_audio_only(folder / "audio_only.m4a", 1.0, seed=seed)
    return variants


def _break_moov(clip: bytes) -> bytes:
    """Return ``clip`` with its top-level ``moov`` box size set beyond the end of the file."""
    offset = 0
    broken = bytearray(clip)
    while offset + 8 <= len(clip):
        box_size, box_type = struct.unpack(">I4s", clip[offset : offset + 8])
        if box_type == b"moov":
            struct.pack_into(">I", broken, offset, 0x7FFFFFF0)
            # Also garble the first child header so the demuxer cannot resync inside it.
            broken[offset + 8 : offset + 16] = b"\xff" * 8
            return bytes(broken)
        if box_size < 8:
            break
        offset += box_size
    raise MediaError(None, "no moov box found in the generated clip")
