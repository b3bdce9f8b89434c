"""Invisible watermark ``likeness.tiled-ss.v2``: a tiled spread-spectrum mark in luma that reads
back from re-uploads (copies kept at another size, letterboxed, cropped, mirrored, re-encoded).

Design (details, measurements and the false-mark derivation in ``docs/watermark.md``):

* A 128x128 tile holds 1024 chips of 4x4. 192 chips carry a fixed pseudo-random **pilot**
  (for finding the tile phase); 832 chips carry the 204 coded bits of the payload
  (:mod:`likeness.provenance.watermark_code`: 64 bits + CRC-32, K=7 rate-1/2 convolutional
  code), each coded bit spread over 4-5 chips at pseudo-random places with pseudo-random signs.
* The tile repeats over the whole frame at :func:`tile_period` px: 128 up to 360 px on the short
  side, ``128 * short / 360`` above, so a copy downscaled to 360 px still has 4 px chips. (v1
  drew 128 px tiles at every size; a v1 mark is a v2 mark of a frame up to 360 px.)
* Embedding adds the same signed luma offset to R, G and B (no chroma change), scaled by a
  cheap texture mask and normalised so the mark's RMS is :data:`MARK_RMS` grey levels; the
  rounded offset is checked against :data:`MAX_MARK_RMS`, so PSNR >= 40.2 dB by construction.
* Reading strips letterbox / pillarbox bars, brings the content to 360 px on the short side,
  measures the tile period (row / column autocorrelation, then a pilot-guided search, both
  scored on a half-resolution screen that refuses most unmarked media outright), folds
  the whitened picture modulo the period, finds the tile phase of the picture and of its mirror
  image by FFT cross-correlation with the pilot, soft-decodes with Viterbi and accepts a payload
  only if the CRC-32 matches (at most :data:`MAX_DECODES` checks per read). Everything else is
  "no mark".

The key (pattern seed) is a product-wide constant: any likeness install decodes any likeness
output; the payload identifies the render job.

Example:
    >>> import numpy as np
    >>> frame = np.full((256, 384, 3), 90, dtype=np.uint8)
    >>> marked = embed_watermark(frame, b"job-0001")
    >>> extract_watermark(marked).payload
    b'job-0001'
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache, reduce
from typing import Any

import cv2
import numpy as np

from likeness.checks import check_rgb
from likeness.errors import ProvenanceError
from likeness.provenance.watermark_code import (
    CODED_BITS,
    PAYLOAD_BYTES,
    check_payload,
    decode_payload,
    encode_payload,
)

WATERMARK_ALGORITHM = "likeness.tiled-ss.v2"
READABLE_ALGORITHMS = ("likeness.tiled-ss.v1", WATERMARK_ALGORITHM)
"""Marks the reader recognises: v2 is v1's tile drawn at a resolution-relative scale, so v1
marks (128 px tiles at every frame size) are v2 marks of frames up to 360 px and read the same."""

TILE_SIZE = 128
"""Tile side in pixels at the reference resolution; a frame must be at least this large in both
sides to be read."""
REFERENCE_SHORT_SIDE = 360
"""Frames up to this short side carry 128 px tiles; larger ones carry the same tile scaled by
``short side / 360`` (a 1080p frame: 384 px tiles of 12 px chips), so any downscaled copy down to
360 px still resolves the 4 px chips the reader is tuned to (:func:`tile_period`)."""
CHIP_SIZE = 4
PILOT_CHIPS = 192
MARK_RMS = 2.3
"""Target RMS of the luma offset in grey levels before rounding (20 log10(255 / 2.3) = 40.9 dB)."""
MAX_MARK_RMS = 2.5
"""Hard limit on the RMS of the applied integer offset: PSNR >= 20 log10(255 / 2.5) = 40.2 dB."""
# Limited-range luma levels per RGB grey level (Y spans 16..235 for RGB 0..255).
_LUMA_PER_RGB_LEVEL = 219.0 / 255.0
SYNC_THRESHOLD = 6.0
"""Minimum pilot correlation peak, in standard deviations of the correlation surface."""
SCREEN_THRESHOLD = 5.0
"""Pilot peak (z) a still's half-resolution screen must show at one of its candidate periods or
on the pilot search's grid before it is folded at full resolution: below it the still is "no
mark" (and the v1 fallback's native fold has a screen of its own with the same threshold). Every marked copy of the stills benchmark showed 7.1 or more on the screen (the
screen's z is about 0.4 below the full fold's, s.d. 0.6); unmarked images rarely pass 5 (7.5 %
of the benchmark's), and those are read in full as before (``benchmarks/watermark_screen.py``)."""
SYNC_CANDIDATES = 3
"""Distinct pilot peaks per fold (period x mirror) tried before answering "no mark"."""
MAX_DECODES = 48
"""Hard cap on CRC-32 trials per image or clip: P(false mark) <= 48 * 2**-32 = 1.1e-8."""
FRAME_SYNC_THRESHOLD = 4.5
"""Pilot peak (z) a single video frame needs to add its own-phase soft bits to the aggregate."""
SMALL_FRAME_TILES = 10.0
"""Video frames holding fewer tiles than this (163 840 px) are encoded by
:func:`video_encoder_options`' small-frame settings."""
SMALL_FRAME_CRF = 18
SMALL_FRAME_DEADZONES = (0, 0)
"""x264 (inter, intra) deadzones for small frames, against x264's (21, 11): P and B frames keep
the mark's low-amplitude residual instead of rounding it away."""
MID_FRAME_SHORT_SIDE = 480
"""Other video frames up to this short side keep CRF 20 with deadzones :data:`MID_FRAME_DEADZONES`."""
MID_FRAME_DEADZONES = (6, 6)

# Product-wide key: changing it makes every earlier mark unreadable (bump the algorithm id).
_PATTERN_SEED = 0x6C696B656E657373
_GRID = TILE_SIZE // CHIP_SIZE
_CHIP_SMOOTHING_SIGMA = 0.55
_MASK_DOWNSCALE = 8
_MASK_FLOOR = 0.6
_MASK_CEILING = 1.4
_BACKGROUND_SIGMA = 1.5
_LOCAL_ENERGY_SIGMA = 2.0
# JPEG (8x8) and H.264 (4..16) block edges fold into a 16-periodic pattern; removing that
# component costs the mark 1/64 of its dimensions and the block artefacts almost all of theirs.
_BLOCK_PERIOD = 16
_STRIP_ROWS = 8 * TILE_SIZE  # a multiple of the tile keeps every strip at tile phase 0
_STRIP_MARGIN = 24  # > reach of the two Gaussians in _whitened_luma (6 + 8 px)
# Reading at an unknown scale: the content (bars stripped) is brought to a short side of at most
# 360 px, where an uncropped copy of any v2 mark has a 128 px period; crops and copies below
# 360 px change it, so the period is measured from the autocorrelation of rows and columns.
_WORK_SHORT_SIDE = REFERENCE_SHORT_SIDE
_MIN_PERIOD = 56  # work px: a 320x180 copy of a 640x360 frame has 64
_MIN_PERIODS_IN_AXIS = 1.6  # an axis counts for lags up to its length / 1.6
_PERIOD_PEAKS = 3
_PERIOD_STEP = 0.002  # relative; a fold over ~5 tiles of 128 px tolerates about this error
_SPECTRUM_SMOOTHING = 31  # bins of the running mean that flattens the spectrum
_SPECTRUM_CLIP = 4.0
_ACF_BASELINE_LAGS = 33  # running-median window subtracted from the autocorrelation
_BAR_PROBE_SIDE = 480  # bars are found on a thumbnail of at most this long side
_BAR_RANGE = 6  # grey levels: a row or column of the thumbnail this uniform is padding
_BAR_EDGE_RANGE = 24  # grey levels: at full resolution, a line busier than this is picture
_BAR_MARGIN = 3  # px stripped beyond a bar edge (codec ringing)
_MIN_CONTENT = 64
_CLIP_PROBE_FRAMES = 8
_CLIP_NATIVE_FRAMES = 25  # v1 marks of large clips: native folds of the first frames
_CLIP_SINGLE_FRAMES = 4  # strongest single frames of a clip decoded on their own
_CLIP_PERIODS = 4  # periods a clip is folded at after the probe frames
_MOTION_SCALE = 0.25  # global motion is estimated on the work luma at this scale
_MOTION_ITERATIONS = 20
_MOTION_EPSILON = 1e-4
_MOTION_MIN_CORRELATION = 0.6  # ECC correlation below this: the anchor's content is gone
_HOST_EARLY_FRAMES = 7  # frames after the first that still carry much of its mark
_ANCHOR_MIN_CONTRAST = 4.0  # luma std (0-255) of the motion luma under which a frame is flat
_HOST_PERIODS = 4  # periods the host-cancelled first frame is folded at (2 trials each)
_SUPPRESS_MEDIAN = 5  # px: the median that predicts the host in _host_suppressed
_SUPPRESS_RESIDUAL_SIGMA = 3.0  # low frequencies the median leaves, removed after it
_OWN_PHASE_FLOOR = 3.5  # pilot z an unmarked fold reaches about as often as not: no weight
_OWN_PHASE_TRIALS = 4  # CRC trials for the host-suppressed own-phase aggregates
_OWN_PHASE_KEPT_BYTES = 32 << 20  # work luma kept for them until the clip is read (145 frames of 640x360)
# The kept frames of a clip of at least _OWN_PHASE_GATE_FRAMES are folded every
# _OWN_PHASE_SAMPLE-th first; the others only where those show a mark: a pilot peak of
# _OWN_PHASE_EVIDENCE_Z or a mean weight of _OWN_PHASE_EVIDENCE_WEIGHT a sampled frame, in any
# aggregate (unmarked 360p-720p clips, 75 frames: at most z 5.3 and 0.67; clips only these
# aggregates read: at least 5.8 and 1.22; and every 10-16 frame sample of them that the
# aggregates read showed it; docs/watermark.md). 16: verify's most sampled frames a clip.
_OWN_PHASE_SAMPLE = 4
_OWN_PHASE_GATE_FRAMES = 16
_OWN_PHASE_EVIDENCE_Z = 5.5
_OWN_PHASE_EVIDENCE_WEIGHT = 1.0
# Candidate periods within this relative scale of 128 fold the once-whitened work image,
# resampled; others whiten their own resampled copy (the filters are tuned to 4 px chips).
_REWHITEN_SCALE = 0.5
_MAX_CROP_SCALE = 0.6  # crops of up to 20 % per side lengthen the period by up to 1 / 0.6
_SEARCH_STEP = 0.01  # relative period step of the pilot search's coarse grid
_SEARCH_KEEP = 2  # coarse maxima refined and tried
# A clip's probe frames suggest many periods (an unmarked clip: 20 or more, each folded on every
# probe frame); they are ranked on half-resolution folds first (64 px tiles of 2 px chips, a
# quarter of the pixels and FFT work) and only the best are folded at full resolution.
_SCREEN_TILE = TILE_SIZE // 2
_SCREEN_KEEP = 6
# Anchored embedding: the frame-to-frame global motion is estimated on a luma thumbnail of about
# this short side (ECC, affine), where it costs about half a millisecond.
_ANCHOR_MOTION_SIDE = 90
_ANCHOR_ITERATIONS = 20
_ANCHOR_EPSILON = 1e-3
_ANCHOR_MIN_CORRELATION = 0.6  # ECC correlation below this: a cut, the anchor restarts at the grid
# The motion must explain the change between frames: the squared residual it leaves at most this
# share of the one without motion, or the picture is taken as still (a static camera with a
# person moving pulls a least-squares motion along with the person).
_ANCHOR_MIN_GAIN = 0.5
# The mark follows only motion a translation describes: how far the affine motion departs, over
# the frame, from its translation at the centre, in chips (a camera pan with a slow zoom and roll:
# about 0.1 chip a frame; animate_portrait's turning head: about 0.8). Each switch between
# following and staying makes the mark jump against what the encoder carries for the rest of the
# group of pictures, so the anchor starts following after _ANCHOR_LOCK_FRAMES frames in a row
# under _ANCHOR_FOLLOW_DEPARTURE and stops (the mark stays where it is, as a fixed grid) only at a
# frame over _ANCHOR_RELEASE_DEPARTURE (docs/watermark.md, "Anchored marks").
_ANCHOR_FOLLOW_DEPARTURE = 0.25
_ANCHOR_RELEASE_DEPARTURE = 0.5
_ANCHOR_LOCK_FRAMES = 2


@dataclass(frozen=True)
class WatermarkReading:
    """Outcome of reading a frame (or frames) for a likeness watermark.

    ``payload`` is the 8-byte payload, or None for "no mark". ``bit_confidence`` is the fraction
    of the 204 raw coded-bit decisions that agree with the accepted codeword (1.0 for a clean
    read, about 0.5 would be chance; 0.0 when no mark). ``sync_score`` is the strongest pilot
    correlation peak in standard deviations of the correlation surface (also reported when no
    mark is found; 6 or more is needed to try decoding; for a still refused on the
    half-resolution screen, the screen's strongest, under :data:`SCREEN_THRESHOLD`).
    ``offset`` is the tile phase ``(dy, dx)`` the payload was read at: a crop that starts at
    (y0, x0) of a marked frame reads at ``(-y0 % P, -x0 % P)`` for a tile period P. ``tiles`` is the area folded, in tiles of the
    work resolution, summed over frames.
    """

    payload: bytes | None
    bit_confidence: float
    sync_score: float
    offset: tuple[int, int] | None
    tiles: float
    algorithm: str = WATERMARK_ALGORITHM
    period: float | None = None
    """Tile period found, in the read frame's pixels (384 for an untouched 1080p mark)."""
    mirrored: bool = False
    """True when the mark was read from the horizontally mirrored picture."""

    @property
    def detected(self) -> bool:
        return self.payload is not None


@dataclass(frozen=True)
class _TileLayout:
    pilot_wave: np.ndarray  # float32 (T, T): the pilot pattern (zeros on payload chips)
    chip_kernel_spectrum: np.ndarray  # complex (T, T//2+1): rfft2 of the chip smoothing kernel
    pilot_spectrum_conj: np.ndarray  # complex (T, T//2+1): conj(rfft2(pilot_wave))
    payload_chip_index: np.ndarray  # int (832,): flat chip index of each payload chip
    payload_chip_bit: np.ndarray  # int (832,): coded bit each payload chip carries
    payload_chip_sign: np.ndarray  # float32 (832,): carrier sign of each payload chip
    pilot_chip_index: np.ndarray  # int (192,)
    pilot_chip_sign: np.ndarray  # float32 (192,)


def _periodic_gaussian_spectrum(size: int, sigma: float) -> np.ndarray:
    freq = np.fft.fftfreq(size)
    rfreq = np.fft.rfftfreq(size)
    gain_y = np.exp(-2.0 * (np.pi * sigma * freq) ** 2)
    gain_x = np.exp(-2.0 * (np.pi * sigma * rfreq) ** 2)
    return gain_y[:, None] * gain_x[None, :]


def _chips_to_wave(chip_values: np.ndarray, kernel_spectrum: np.ndarray) -> np.ndarray:
    """(G, G) chip amplitudes -> float64 (T, T) smoothed periodic waveform."""
    blocks = np.kron(chip_values, np.ones((CHIP_SIZE, CHIP_SIZE)))
    return np.fft.irfft2(np.fft.rfft2(blocks) * kernel_spectrum, s=blocks.shape)


@lru_cache(maxsize=1)
def _layout() -> _TileLayout:
    rng = np.random.default_rng(_PATTERN_SEED)
    n_chips = _GRID * _GRID
    order = rng.permutation(n_chips)
    pilot_index = np.sort(order[:PILOT_CHIPS])
    payload_index = order[PILOT_CHIPS:]
    # Interleave: consecutive coded bits land far apart, so a damaged region hurts many bits a
    # little rather than a burst of bits a lot (the Viterbi decoder copes with the former).
    payload_bit = np.arange(payload_index.size) % CODED_BITS
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n_chips)
    kernel = _periodic_gaussian_spectrum(TILE_SIZE, _CHIP_SMOOTHING_SIGMA)
    pilot_chips = np.zeros(n_chips)
    pilot_chips[pilot_index] = signs[pilot_index]
    pilot_wave = _chips_to_wave(pilot_chips.reshape(_GRID, _GRID), kernel)
    return _TileLayout(
        pilot_wave=pilot_wave.astype(np.float32),
        chip_kernel_spectrum=kernel,
        pilot_spectrum_conj=np.conj(np.fft.rfft2(pilot_wave)),
        payload_chip_index=payload_index,
        payload_chip_bit=payload_bit,
        payload_chip_sign=signs[payload_index],
        pilot_chip_index=pilot_index,
        pilot_chip_sign=signs[pilot_index],
    )


def watermark_tile(payload: bytes) -> np.ndarray:
    """The mark's tile for ``payload``: read-only float32 (128, 128), zero mean, unit RMS.

    Cached: a render job reuses it for every frame.
    """
    return _cached_tile(check_payload(payload))


@lru_cache(maxsize=8)
def _cached_tile(payload: bytes) -> np.ndarray:
    layout = _layout()
    coded = encode_payload(payload)
    chips = np.zeros(_GRID * _GRID)
    chips[layout.pilot_chip_index] = layout.pilot_chip_sign
    symbols = 2.0 * coded[layout.payload_chip_bit].astype(np.float64) - 1.0
    chips[layout.payload_chip_index] = layout.payload_chip_sign * symbols
    wave = _chips_to_wave(chips.reshape(_GRID, _GRID), layout.chip_kernel_spectrum)
    wave -= wave.mean()
    wave /= np.sqrt(np.mean(wave**2))
    tile = wave.astype(np.float32)
    tile.setflags(write=False)
    return tile


def tile_period(width: int, height: int) -> float:
    """Tile period in pixels of the mark of a ``width`` x ``height`` frame: 128 up to 360 px on
    the short side, ``128 * short / 360`` above (a copy downscaled to 360 px has 128 again)."""
    return TILE_SIZE * max(1.0, min(width, height) / REFERENCE_SHORT_SIDE)


def _frame_pattern(tile: np.ndarray, width: int, height: int, period: float) -> np.ndarray:
    """The tile repeated from the top-left corner at ``period`` px: float32 (height, width)."""
    if period == TILE_SIZE:
        reps = (-(-height // TILE_SIZE), -(-width // TILE_SIZE))
        return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])
    scale = TILE_SIZE / period
    # Pixel-centre convention, as cv2.resize and the reader's resampling use.
    xs = (((np.arange(width) + 0.5) * scale - 0.5) % TILE_SIZE).astype(np.float32)
    ys = (((np.arange(height) + 0.5) * scale - 0.5) % TILE_SIZE).astype(np.float32)
    map_x = np.ascontiguousarray(np.broadcast_to(xs[None, :], (height, width)))
    map_y = np.ascontiguousarray(np.broadcast_to(ys[:, None], (height, width)))
    pattern = cv2.remap(np.ascontiguousarray(tile), map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
    return np.ascontiguousarray(pattern)


def _check_rgb(rgb: object, *, name: str = "rgb") -> np.ndarray:
    """``rgb`` checked (``ProvenanceError``) and C-contiguous."""
    rgb = check_rgb(rgb, name=name, error=ProvenanceError)
    return rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)


def _mask_size(width: int, height: int, downscale: int = _MASK_DOWNSCALE) -> tuple[int, int]:
    return max(1, -(-width // downscale)), max(1, -(-height // downscale))


def texture_mask(rgb: np.ndarray, *, downscale: int = _MASK_DOWNSCALE) -> np.ndarray:
    """Perceptual gain of the mark at low resolution: float32 (ceil(H/d), ceil(W/d)).

    Local luma texture (box-filtered absolute Laplacian of a 1/``downscale`` thumbnail) relative
    to its median over the frame, clipped to [0.6, 1.4]: flat sky and skin take less than half
    the mark that hair and fabric take. Units: relative gain (dimensionless).
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    # INTER_LINEAR at 1/8 averages a 2x2 sample per cell: an aliased but 20x cheaper thumbnail
    # than INTER_AREA, and aliasing only adds texture where there is texture to alias.
    thumb = cv2.resize(rgb, _mask_size(width, height, downscale), interpolation=cv2.INTER_LINEAR)
    gray = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    activity = np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=1))
    activity = cv2.blur(activity, (3, 3), borderType=cv2.BORDER_REFLECT)
    reference = float(np.median(activity))
    if reference <= 1e-3:
        return np.ones_like(activity)
    return np.clip(activity / reference, _MASK_FLOOR, _MASK_CEILING)


class WatermarkEmbedder:
    """Embeds one payload into frames of one size, reusing the tiled pattern across frames.

    ``WatermarkEmbedder(payload, width, height).embed(rgb)`` costs a few milliseconds per 720p
    frame: the pattern and the work buffers are built once in the constructor, so one embedder
    must not be shared between threads (make one per thread; they are cheap).

    ``anchored=True`` (video: frames given in order): each frame's mark is drawn moved by the
    picture's global translation since the last cut, so a platform encoder's motion
    compensation carries it whole into P and B frames (:class:`_ContentAnchor`; measured in
    ``docs/watermark.md``, "Anchored marks"). A still, and the first frame, are marked exactly
    as without it.

    Example:
        >>> import numpy as np
        >>> embedder = WatermarkEmbedder(b"job-0001", width=320, height=240)
        >>> embedder.embed(np.full((240, 320, 3), 128, np.uint8)).shape
        (240, 320, 3)
    """

    def __init__(
        self, payload: bytes, width: int, height: int, *, period: float | None = None, anchored: bool = False
    ) -> None:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in (width, height)):
            raise ProvenanceError(f"frame size must be positive integers, got {width!r}x{height!r}")
        width, height = int(width), int(height)
        payload = check_payload(payload)
        self.payload = payload
        self.width = width
        self.height = height
        # ``period`` (px) overrides the resolution-relative tile period; 128 gives a v1 mark.
        self.period = tile_period(width, height) if period is None else float(period)
        if not TILE_SIZE / 4 <= self.period <= 16 * TILE_SIZE:
            raise ProvenanceError(f"tile period must be 32..2048 px, got {period!r}")
        tile = watermark_tile(payload)
        # Anchored: the pattern is drawn one period larger each way, and each frame takes the
        # window shifted by the content's motion (see :class:`_ContentAnchor`).
        self._anchor = _ContentAnchor(width, height, self.period) if anchored else None
        margin = 0 if self._anchor is None else self._anchor.margin
        self._wide_pattern = _frame_pattern(tile, width + margin, height + margin, self.period)
        self._wide_energy = self._wide_pattern * self._wide_pattern
        self._pattern_offset = (0, 0)
        self._pattern = self._wide_pattern[:height, :width]
        self._pattern_cell_energy = _cell_energy(self._wide_energy[:height, :width])
        # Full-frame work buffers, reused frame after frame: fresh multi-megabyte arrays cost
        # more in page faults than the arithmetic does. (So one embedder serves one thread.)
        self._full_gain = np.empty((height, width), np.float32)
        self._offset_buffer = np.empty((height, width), np.int16)
        self._offset_rgb = np.empty((height, width, 3), np.int16)

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """Marked copy of ``rgb`` (uint8 (height, width, 3)), PSNR >= 40 dB."""
        offset = self._offset(rgb, scale=1.0)
        # int16 offsets are a third of the memory traffic of float32 ones (this is the hot path).
        offset_rgb = cv2.merge([offset, offset, offset], dst=self._offset_rgb)
        return cv2.add(rgb, offset_rgb, dtype=cv2.CV_8U)

    def luma_offset(self, rgb: np.ndarray) -> np.ndarray:
        """The mark of ``rgb`` as an offset to the limited-range Y plane of its YUV encoding:
        int16 (height, width), to add with saturation (``VideoEncoder.write(luma_offset=)``).

        The mark is the same grey-level offset on R, G and B, which any RGB->YUV matrix turns
        into a pure luma change of 219/255 of it, so adding this to Y after the conversion marks
        the frame as :meth:`embed` does (up to rounding) at a third of the memory traffic. The
        RMS check applies to the offset scaled back to RGB levels. The returned array is a
        buffer reused by the next call.
        """
        return self._offset(rgb, scale=_LUMA_PER_RGB_LEVEL)

    def _offset(self, rgb: np.ndarray, *, scale: float) -> np.ndarray:
        """The integer mark for ``rgb`` in units of ``1 / scale`` RGB grey levels."""
        rgb = _check_rgb(rgb)
        if rgb.shape[:2] != (self.height, self.width):
            raise ProvenanceError(
                f"frame is {rgb.shape[1]}x{rgb.shape[0]}, embedder was built for {self.width}x{self.height}"
            )
        if self._anchor is not None:
            self._shift_pattern(self._anchor.offset(rgb))
        mask = texture_mask(rgb)
        # Normalising by the mask's energy (weighted by the pattern's local energy) sets the
        # mark's RMS to MARK_RMS for every frame, whatever its content.
        mark_energy = float(np.mean(mask.astype(np.float64) ** 2 * self._pattern_cell_energy))
        gain = mask * np.float32(scale * MARK_RMS / np.sqrt(max(mark_energy, 1e-12)))
        full_gain: np.ndarray = cv2.resize(
            gain, (self.width, self.height), dst=self._full_gain, interpolation=cv2.INTER_LINEAR
        )
        # Rounding to whole levels (done by the int16 multiply) adds up to 0.5 per pixel and, on
        # plateau-like patterns, more than the textbook 1/12 variance: check the integer
        # offset's RMS and shrink it if needed, so PSNR >= 40.2 dB holds exactly for the RGB
        # embedding (0..255 clipping can only lower the error).
        limit = (scale * MAX_MARK_RMS) ** 2 * full_gain.size
        offset = cv2.multiply(self._pattern, full_gain, dst=self._offset_buffer, dtype=cv2.CV_16S)
        energy = cv2.norm(offset, cv2.NORM_L2SQR)
        while energy > limit:
            full_gain *= np.float32(0.97 * np.sqrt(limit / energy))
            offset = cv2.multiply(self._pattern, full_gain, dst=self._offset_buffer, dtype=cv2.CV_16S)
            energy = cv2.norm(offset, cv2.NORM_L2SQR)
        return offset

    def _shift_pattern(self, offset: tuple[int, int]) -> None:
        """Take the pattern window at ``offset`` (x, y) of the wide pattern."""
        if offset == self._pattern_offset:
            return
        x, y = offset
        self._pattern_offset = offset
        self._pattern = self._wide_pattern[y : y + self.height, x : x + self.width]
        self._pattern_cell_energy = _cell_energy(self._wide_energy[y : y + self.height, x : x + self.width])


def _cell_energy(energy: np.ndarray) -> np.ndarray:
    """Mean pattern energy (``energy``: the squared pattern) per mask cell: with it the mark's RMS
    is set exactly per frame even where a small frame's pattern is locally stronger than its
    tile average."""
    height, width = energy.shape
    return cv2.resize(energy, _mask_size(width, height), interpolation=cv2.INTER_AREA).astype(np.float64)


class _ContentAnchor:
    """Where a frame's mark is drawn so that it moves with the picture (anchored embedding).

    In a P or B frame an encoder predicts each block from an earlier frame moved with the
    content, so a mark fixed to the frame's grid comes back moved, and the small residual that
    would restore the grid is rounded away (x264 / x265 deadzones): single frames of a pan hold
    a mixture of phases that reads as nothing. Drawn moved by the content's global translation
    since the last cut, the mark is what motion compensation predicts, the residual is about
    zero and each frame holds one whole mark at its own phase, which a still reader finds (the
    sync is circular). Only translation is followed, so the mark stays on the frame's axes and
    scale (the reader searches neither rotation nor a scale drifting from frame to frame): where
    the global motion is not close to a translation (rotation, zoom), the mark stays put, and
    following starts only after a few translating frames in a row (see
    :data:`_ANCHOR_FOLLOW_DEPARTURE`)."""

    def __init__(self, width: int, height: int, period: float) -> None:
        self.period = period
        self.margin = int(np.ceil(period)) + 1
        self.downscale = max(1, round(min(width, height) / _ANCHOR_MOTION_SIDE))
        self.size = (max(8, width // self.downscale), max(8, height // self.downscale))
        self.previous: np.ndarray | None = None
        self.velocity = np.zeros(2)  # last frame's shift (thumbnail px), the next search's start
        self.chip = period / _GRID / self.downscale  # a chip in thumbnail px
        self.translations = 0  # frames in a row whose motion was a translation
        self.pending = np.zeros(2)  # their motion (frame px), followed once they are enough
        self.following = False
        self.shift = np.zeros(2)  # content displacement (x, y) in frame px followed since the last cut

    def offset(self, rgb: np.ndarray) -> tuple[int, int]:
        """The wide pattern's window (x, y) for ``rgb``, the next frame of the sequence."""
        current = _anchor_luma(rgb, self.size)
        previous, self.previous = self.previous, current
        if previous is not None:
            motion = _global_motion(previous, current, self.velocity)
            if motion is None:  # a cut: the next intra frame starts a new anchor at the grid
                self.shift[:] = 0.0
                self.velocity[:] = 0.0
                self.translations, self.following = 0, False
                self.pending[:] = 0.0
            else:
                translation, departure = motion
                self.velocity = translation
                self._follow(translation * self.downscale, departure / self.chip)
        # The mark at x is the pattern at x - shift: the window starts at -shift, modulo the period.
        x, y = (int(round(float(-v) % self.period)) for v in self.shift)
        return min(x, self.margin - 1), min(y, self.margin - 1)

    def _follow(self, translation: np.ndarray, departure: float) -> None:
        """Add one frame's motion (``translation`` in frame px, ``departure`` in chips)."""
        if departure > _ANCHOR_FOLLOW_DEPARTURE:
            self.translations = 0
            self.pending[:] = 0.0
            if departure > _ANCHOR_RELEASE_DEPARTURE:
                self.following = False
        else:
            self.translations += 1
            self.pending += translation
        if not self.following and self.translations >= _ANCHOR_LOCK_FRAMES:
            # The frames before the lock kept the grid, but what the encoder carried through them
            # moved with the picture: the mark catches up with it.
            self.following = True
            self.shift += self.pending - translation
        if self.following:
            self.shift += translation


def _anchor_luma(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _global_motion(previous: np.ndarray, current: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The content's motion from ``previous`` to ``current`` (thumbnail px), from an affine fit:
    its translation at the centre (zeros where it explains little of the change: a still
    picture with local motion) and how far the fit departs from that translation over the frame
    (rotation, zoom); None at a cut (the pictures no longer correlate)."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _ANCHOR_ITERATIONS, _ANCHOR_EPSILON)
    start = np.eye(2, 3, dtype=np.float32)
    start[:, 2] = guess
    try:
        correlation, found = cv2.findTransformECC(previous, current, start, cv2.MOTION_AFFINE, criteria)
        warp = np.asarray(found, dtype=np.float64)
    except cv2.error:  # no convergence, or a flat picture
        correlation, warp = np.nan, start.astype(np.float64)
    if not np.isfinite(correlation) or correlation < _ANCHOR_MIN_CORRELATION or not np.all(np.isfinite(warp)):
        flat = min(float(previous.std()), float(current.std())) < 1.0
        return (np.zeros(2), 0.0) if flat else None
    height, width = previous.shape
    # current(W x) ~ previous(x): content at x moves to W x. Its move at the centre, and how far
    # the corners' moves depart from it.
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    linear = warp[:, :2] - np.eye(2)
    shift = linear @ centre + warp[:, 2]
    corners = centre[None, :] * np.array([[1.0, 1.0], [1.0, -1.0]])
    departure = float(np.abs(corners @ linear.T).max())
    # Compare the change the shift leaves with the change without it, inside a border the
    # shift moves out of the picture.
    margin = 1 + int(np.ceil(np.abs(shift).max()))
    if 2 * margin >= min(height, width):
        return None
    inner = (slice(margin, height - margin), slice(margin, width - margin))
    translation = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], np.float32)
    moved = cv2.warpAffine(current, translation, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    left = float(np.mean((moved[inner] - previous[inner]) ** 2))
    still = float(np.mean((current[inner] - previous[inner]) ** 2))
    return (shift if left <= _ANCHOR_MIN_GAIN * still else np.zeros(2)), departure


def video_encoder_options(width: int, height: int) -> dict[str, Any]:
    """``VideoEncoder`` options for a marked video of ``width`` x ``height`` stored pixels.

    Few tiles per frame leave the reader little picture to average away, and at CRF 20 x264's
    default deadzones drop most of the mark from P and B frames: a 1 s 320x240 clip at 25 fps
    read back 85 % of the time. Small frames therefore get CRF 18 and no deadzones (every read
    succeeded in the benchmark, for 1.9-2.6x the bytes: 100-180 kB per second at these sizes).
    Frames up to 480 px on the short side keep CRF 20 with deadzones (6, 6): with x264's, a
    moving 640x360 clip kept the mark in only 7 of 25 single frames (all with (6, 6), for about
    1.5x the bytes). Larger frames carry larger chips and keep the encoder's defaults ({})
    (``docs/watermark.md``, ``benchmarks/watermark_video.py``).
    """
    if width * height < SMALL_FRAME_TILES * TILE_SIZE**2:
        return {"crf": SMALL_FRAME_CRF, "deadzones": SMALL_FRAME_DEADZONES}
    if min(width, height) <= MID_FRAME_SHORT_SIDE:
        return {"deadzones": MID_FRAME_DEADZONES}
    return {}


def embed_watermark(rgb: np.ndarray, payload: bytes) -> np.ndarray:
    """Mark ``rgb`` (uint8 (H, W, 3)) with the 8-byte ``payload``; returns a new uint8 array.

    Frames smaller than one tile (128 px) are marked too but cannot be read back.
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    return WatermarkEmbedder(check_payload(payload), width, height).embed(rgb)


def _whiten(luma: np.ndarray) -> np.ndarray:
    """Band-passed, locally normalised luma: float32 (H, W) -> float32 (H, W), about unit
    local RMS, tuned to 4 px chips."""
    residual = luma - cv2.GaussianBlur(luma, (0, 0), _BACKGROUND_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy = cv2.GaussianBlur(residual * residual, (0, 0), _LOCAL_ENERGY_SIGMA, borderType=cv2.BORDER_REFLECT)
    # Weighting by 1/local RMS: texture both carries more mark and more host noise, and the
    # floor keeps near-flat areas (pure quantisation noise) from being amplified.
    return residual / np.sqrt(energy + 1.0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _whitened_luma(rgb: np.ndarray) -> np.ndarray:
    """Band-passed, locally normalised luma of ``rgb``: float32 (H, W), about unit local RMS."""
    return _whiten(_luma(rgb))


def _host_suppressed(luma: np.ndarray) -> np.ndarray:
    """Luma (float32, or uint8 grey levels) less an edge-keeping prediction of the picture (its
    5x5 median) and the low frequencies the median leaves, locally normalised: float32 (H, W),
    about unit local RMS.

    A median keeps a picture's edges where :func:`_whiten`'s Gaussian smears them into ridges
    that the chip filter picks up, so less of the picture stays beside the mark. That matters
    where the mark moves with the picture (anchored video): every frame then shows it under the
    same picture, and summing frames cannot average the picture away.
    """
    residual: np.ndarray
    if luma.dtype == np.uint8:
        # Whole grey levels: their median is the same in uint8, at half the cost.
        residual = luma.astype(np.float32)
        residual -= cv2.medianBlur(luma, _SUPPRESS_MEDIAN)
    else:
        luma = np.ascontiguousarray(luma, np.float32)
        residual = luma - cv2.medianBlur(luma, _SUPPRESS_MEDIAN)
    residual -= cv2.GaussianBlur(residual, (0, 0), _SUPPRESS_RESIDUAL_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy: np.ndarray = cv2.GaussianBlur(
        residual * residual, (0, 0), _LOCAL_ENERGY_SIGMA, borderType=cv2.BORDER_REFLECT
    )
    energy += 1.0
    residual /= np.sqrt(energy, out=energy)
    return residual


def _fold_whitened(whitened: np.ndarray, tile: int = TILE_SIZE) -> np.ndarray:
    """Sum of a whitened image over all its ``tile`` px tiles (phase 0 at its top-left):
    float64 (tile, tile)."""
    height, width = whitened.shape
    full_h, full_w = height - height % tile, width - width % tile
    folded = np.zeros((tile, tile))
    if full_h and full_w:
        folded += (
            whitened[:full_h, :full_w]
            .reshape(full_h // tile, tile, full_w // tile, tile)
            .sum(axis=(0, 2), dtype=np.float64)
        )
    # Partial tiles along the bottom and right edges (no padded copy of the whole image).
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            if y0 + tile <= full_h and x0 + tile <= full_w:
                continue
            block = whitened[y0 : y0 + tile, x0 : x0 + tile]
            folded[: block.shape[0], : block.shape[1]] += block
    return folded


def _fold(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Native-scale fold (tile period 128 px, as ``v1`` marks and ``v2`` marks of frames up to
    360 px on the short side are embedded): (float64 (T, T), number of tiles covered).

    Works in horizontal strips of :data:`_STRIP_ROWS` rows (plus a margin covering the filters'
    reach, so the result equals a whole-frame pass): memory stays a few float32 copies of one
    strip however tall the image is.
    """
    height, width = rgb.shape[:2]
    folded = np.zeros((TILE_SIZE, TILE_SIZE))
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        above = min(top, _STRIP_MARGIN)
        below = min(height - bottom, _STRIP_MARGIN)
        whitened = _whitened_luma(rgb[top - above : bottom + below])[above : above + bottom - top]
        folded += _fold_whitened(whitened)
    return folded, height * width / TILE_SIZE**2


def _native_screen(rgb: np.ndarray) -> float:
    """Pilot strength (z, either way round) of a v1 mark, 128 px tiles at the frame's own
    resolution, on a half-resolution copy folded into a 64 px tile: the screen of :func:`_fold`
    for a still. The copy is whitened after halving (2 px chips), not before as a work image's
    screen is: whitening the full-resolution frame is most of what the native fold costs (at
    1080p about 5 ms against 15)."""
    height, width = rgb.shape[:2]
    half = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return _pilot_strengths([_fold_whitened(_whitened_luma(half), _SCREEN_TILE)])[0]


def _remove_block_component(folded: np.ndarray) -> np.ndarray:
    """``folded`` (a 128 px tile, or a screen's 64 px one) less its block-grid component."""
    block = _BLOCK_PERIOD * folded.shape[0] // TILE_SIZE
    reps = folded.shape[0] // block
    periodic = folded.reshape(reps, block, reps, block).mean(axis=(0, 2))
    return folded - np.tile(periodic, (reps, reps))


def _sync_candidates(
    folded: np.ndarray, *, threshold: float = SYNC_THRESHOLD, count: int = SYNC_CANDIDATES
) -> tuple[float, list[tuple[float, tuple[int, int]]]]:
    """Pilot search on a folded tile.

    Returns the highest peak (z score, whether or not it passes) and up to ``count`` distinct
    peaks at or above ``threshold`` as [(z, (dy, dx))], strongest first. ``(dy, dx)`` is the
    tile phase: the frame's pixel (y, x) holds tile pixel ((y - dy) % T, (x - dx) % T).
    """
    layout = _layout()
    surface = np.fft.irfft2(np.fft.rfft2(folded) * layout.pilot_spectrum_conj, s=folded.shape)
    spread = float(surface.std())
    if not np.isfinite(spread) or spread <= 1e-12:
        return 0.0, []
    work = surface / spread
    best = float(work.max())
    candidates: list[tuple[float, tuple[int, int]]] = []
    for _ in range(count):
        dy, dx = divmod(int(np.argmax(work)), TILE_SIZE)
        peak = float(work[dy, dx])
        if peak < threshold:
            break
        candidates.append((peak, (dy, dx)))
        # Neighbours of a peak are the same alignment seen through the chip smoothing.
        ys = np.arange(dy - CHIP_SIZE, dy + CHIP_SIZE + 1) % TILE_SIZE
        xs = np.arange(dx - CHIP_SIZE, dx + CHIP_SIZE + 1) % TILE_SIZE
        work[np.ix_(ys, xs)] = -np.inf
    return best, candidates


def _soft_coded_bits(folded: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """Matched-filter soft values of the 204 coded bits for a tile phase: float64 (204,)."""
    layout = _layout()
    aligned = np.roll(folded, (-offset[0], -offset[1]), axis=(0, 1))
    filtered = np.fft.irfft2(np.fft.rfft2(aligned) * layout.chip_kernel_spectrum, s=aligned.shape)
    chip_values = filtered.reshape(_GRID, CHIP_SIZE, _GRID, CHIP_SIZE).sum(axis=(1, 3)).reshape(-1)
    contributions = chip_values[layout.payload_chip_index] * layout.payload_chip_sign
    return np.bincount(layout.payload_chip_bit, weights=contributions, minlength=CODED_BITS)


# ---------------------------------------------------------------- geometry: bars, scale, mirror


@dataclass(frozen=True)
class _Geometry:
    """Where the marked picture sits in a frame: content box (top, left, height, width) after
    stripping letterbox / pillarbox bars, and ``work_scale`` (<= 1) taking the box to the work
    resolution (short side at most :data:`_WORK_SHORT_SIDE`)."""

    top: int
    left: int
    height: int
    width: int
    work_scale: float
    short_extent: float = _WORK_SHORT_SIDE
    """Short side of the content's full extent (bars excluded), in work pixels."""

    @property
    def uncropped_period(self) -> float:
        """Work-resolution tile period of an uncropped copy of a v2 mark: 128, or less for a
        copy smaller than 360 px. Crops can only make it longer (up to 1 / 0.6 of it for 20 %
        off each side of the short dimension)."""
        return TILE_SIZE * min(1.0, self.short_extent / _WORK_SHORT_SIDE)

    @property
    def work_size(self) -> tuple[int, int]:
        """(width, height) of the content at work resolution."""
        return (max(1, round(self.width * self.work_scale)), max(1, round(self.height * self.work_scale)))


def _flat_border(profile_range: np.ndarray) -> int:
    """Number of leading entries of a per-row (per-column) luma range profile that are padding."""
    flat = profile_range <= _BAR_RANGE
    return int(np.argmin(flat)) if not flat.all() else flat.size


def _bar_sizes(luma_small: np.ndarray) -> tuple[int, int, int, int]:
    """Letterbox / pillarbox bars of a thumbnail: uniform (top, bottom, left, right) rows and
    columns at its edges, (0, 0, 0, 0) for a uniform or nearly all-bar thumbnail."""
    rows = luma_small.max(axis=1) - luma_small.min(axis=1)
    cols = luma_small.max(axis=0) - luma_small.min(axis=0)
    top, bottom = _flat_border(rows), _flat_border(rows[::-1])
    left, right = _flat_border(cols), _flat_border(cols[::-1])
    if top + bottom >= rows.size:
        top = bottom = 0
    if left + right >= cols.size:
        left = right = 0
    return top, bottom, left, right


def _refined_edge(rgb: np.ndarray, estimate: float, reach: int, *, axis: int, from_end: bool) -> int:
    """Full-resolution position of a bar edge near ``estimate`` (frame px along ``axis``, 0 =
    rows): the first line past the bar, counted from the frame's start (or from its end with
    ``from_end``), whose luma range exceeds :data:`_BAR_EDGE_RANGE` (above codec ringing)."""
    size = rgb.shape[axis]
    lo = int(max(0, np.floor(estimate) - reach))
    hi = int(min(size, np.ceil(estimate) + reach + 1))
    if from_end:
        lo, hi = size - hi, size - lo
    strip = rgb[lo:hi] if axis == 0 else rgb[:, lo:hi]
    luma = cv2.cvtColor(np.ascontiguousarray(strip), cv2.COLOR_RGB2GRAY)
    spread = luma.max(axis=1 - axis).astype(np.int16) - luma.min(axis=1 - axis)
    busy = np.flatnonzero(spread > _BAR_EDGE_RANGE)
    if busy.size == 0:
        return int(round(estimate))
    return int(size - (lo + busy[-1]) - 1) if from_end else int(lo + busy[0])


def _geometry(rgb: np.ndarray) -> _Geometry:
    """Bars found on a thumbnail, their edges refined at full resolution. The work scale comes
    from the content's full extent (so an uncropped copy of any v2 mark has a period of exactly
    128 work px); the box read is that extent less :data:`_BAR_MARGIN` px of ringing per bar."""
    height, width = rgb.shape[:2]
    factor = min(1.0, _BAR_PROBE_SIDE / max(height, width))
    probe = (
        cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
        if factor < 1.0
        else rgb
    )
    top, bottom, left, right = _bar_sizes(cv2.cvtColor(probe, cv2.COLOR_RGB2GRAY).astype(np.int16))
    reach = int(np.ceil(2.0 / factor)) + 2
    edges = [0, 0, 0, 0]  # bar thickness in frame px: top, bottom, left, right
    for index, (bar, axis, from_end) in enumerate(
        ((top, 0, False), (bottom, 0, True), (left, 1, False), (right, 1, True))
    ):
        if bar:
            edges[index] = _refined_edge(rgb, bar / factor, reach, axis=axis, from_end=from_end)
    extent_h, extent_w = height - edges[0] - edges[1], width - edges[2] - edges[3]
    if extent_h < _MIN_CONTENT or extent_w < _MIN_CONTENT:
        edges, extent_h, extent_w = [0, 0, 0, 0], height, width
    margins = [_BAR_MARGIN if edge else 0 for edge in edges]
    work_scale = min(1.0, _WORK_SHORT_SIDE / min(extent_h, extent_w))
    return _Geometry(
        edges[0] + margins[0],
        edges[2] + margins[2],
        extent_h - margins[0] - margins[1],
        extent_w - margins[2] - margins[3],
        work_scale,
        min(extent_h, extent_w) * work_scale,
    )


def _work_luma(rgb: np.ndarray, geometry: _Geometry) -> np.ndarray:
    """Luma of the content box at work resolution: float32 (h, w)."""
    box = rgb[geometry.top : geometry.top + geometry.height, geometry.left : geometry.left + geometry.width]
    if geometry.work_scale < 1.0:
        box = cv2.resize(box, geometry.work_size, interpolation=cv2.INTER_AREA)
    return _luma(np.ascontiguousarray(box))


def _axis_power(whitened: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra of the rows (summed over rows) and of the columns (summed over columns),
    zero-padded to twice the length so their inverse is the linear autocorrelation."""
    height, width = whitened.shape
    rows = np.fft.rfft(whitened, n=2 * width, axis=1)
    cols = np.fft.rfft(whitened, n=2 * height, axis=0)
    return ((rows.real**2 + rows.imag**2).sum(axis=0), (cols.real**2 + cols.imag**2).sum(axis=1))


def _flattened(power: np.ndarray) -> np.ndarray:
    """A power spectrum divided by its envelope (5-bin median, then a 31-bin mean), clipped
    at 4: the mark's comb of lines at multiples of 1/P keeps its shape, while a picture's few strong lines
    (stripes, fences, a codec's block grid) cannot outweigh it in the autocorrelation."""
    envelope = cv2.medianBlur(np.ascontiguousarray(power, np.float32)[None, :], 5)
    envelope = np.convolve(
        envelope[0].astype(np.float64), np.ones(_SPECTRUM_SMOOTHING) / _SPECTRUM_SMOOTHING, mode="same"
    )
    return np.minimum(power / (envelope + 1e-12 * (float(envelope.max()) + 1e-30)), _SPECTRUM_CLIP)


def _period_candidates(
    power_x: np.ndarray, power_y: np.ndarray, size: tuple[int, int], count: int = _PERIOD_PEAKS
) -> list[float]:
    """Tile periods (work pixels, sub-pixel) suggested by the autocorrelation of whitened rows
    and columns: the tiled mark repeats every P pixels in both axes, the picture does not.

    ``size`` is the (width, height) the spectra came from. Lags are scored in robust z units per
    axis (only where the axis holds at least :data:`_MIN_PERIODS_IN_AXIS` periods), averaged over
    the axes that count, with the second harmonic added (a tiled mark also repeats at 2P).
    Returns up to ``count`` peaks, strongest first.
    """
    max_lag = int(max(size) / _MIN_PERIODS_IN_AXIS)
    lags = np.arange(max_lag + 1)
    total = np.zeros(lags.size)
    weight = np.zeros(lags.size)
    for power, length in ((power_x, size[0]), (power_y, size[1])):
        acf = np.fft.irfft(_flattened(power))[:length]
        usable = int(length / _MIN_PERIODS_IN_AXIS)
        if usable < _MIN_PERIOD:
            continue
        acf = acf[: usable + 1] / (length - np.arange(usable + 1))  # mean product per lag
        # The picture's autocorrelation falls slowly with the lag; the mark's is a narrow peak
        # (a chip wide). Subtracting a running median keeps the peak and drops the slope that
        # would otherwise favour the shortest lags.
        half = _ACF_BASELINE_LAGS // 2
        padded = np.pad(acf, half, mode="edge")
        baseline = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
        detrended = acf - baseline
        window = detrended[_MIN_PERIOD // 2 :]
        centre = float(np.median(window))
        spread = 1.4826 * float(np.median(np.abs(window - centre))) + 1e-12
        z = (detrended - centre) / spread
        z[: _MIN_PERIOD // 2] = 0.0
        total[: usable + 1] += z
        weight[: usable + 1] += 1.0
        doubled = lags[: usable // 2 + 1]
        total[doubled] += 0.5 * z[2 * doubled]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(weight > 0, total / np.sqrt(np.maximum(weight, 1.0)), -np.inf)
    score[:_MIN_PERIOD] = -np.inf
    peaks: list[float] = []
    # Only interior maxima count: a maximum at the end of the range is a slope, not a period.
    interior = np.zeros(score.size, dtype=bool)
    interior[1:-1] = np.isfinite(score[:-2]) & np.isfinite(score[2:]) & np.isfinite(score[1:-1])
    score = np.where(interior, score, -np.inf)
    while len(peaks) < count:
        lag = int(np.argmax(score))
        if not np.isfinite(score[lag]):
            break
        left, centre, right = score[lag - 1], score[lag], score[lag + 1]
        shift = 0.0
        if np.isfinite(left) and np.isfinite(right) and left - 2 * centre + right < 0:
            shift = float(np.clip(0.5 * (left - right) / (left - 2 * centre + right), -0.5, 0.5))
        peaks.append(lag + shift)
        score[max(0, lag - CHIP_SIZE) : lag + CHIP_SIZE + 1] = -np.inf
    return peaks


def _resampled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` (float32 (h, w)) scaled by exactly ``scale`` (pixel-centre convention; a resize
    to a rounded size would change the scale by up to half a pixel over the width)."""
    if abs(scale - 1.0) <= 1e-4:
        return image
    height, width = image.shape
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    affine = np.array([[scale, 0.0, 0.5 * (scale - 1.0)], [0.0, scale, 0.5 * (scale - 1.0)]])
    return cv2.warpAffine(image, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _fold_at_period(
    work_luma: np.ndarray,
    period: float,
    whitened: np.ndarray | None = None,
    whiten: Callable[[np.ndarray], np.ndarray] = _whiten,
) -> tuple[np.ndarray, float]:
    """Resample work luma so the tile period ``period`` becomes 128 px, whiten and fold.

    ``whitened``: the work luma already whitened (by ``whiten``); within :data:`_REWHITEN_SCALE`
    of the work scale resampling it is as good as whitening the resampled luma (the filters are
    broad) and saves most of the cost, which matters for unmarked media, where every candidate
    period is tried.
    """
    scale = TILE_SIZE / period
    if whitened is not None and abs(scale - 1.0) <= _REWHITEN_SCALE:
        resampled = _resampled(whitened, scale)
    else:
        resampled = whiten(_resampled(work_luma, scale))
    return _fold_whitened(resampled), resampled.size / TILE_SIZE**2


@dataclass
class _Candidate:
    """One way of reading a folded tile: its pilot peaks, the period it was folded at (work
    pixels; None for the native v1 fold), whether the tile was mirrored."""

    folded: np.ndarray
    peaks: list[tuple[float, tuple[int, int]]]
    best: float
    period: float | None
    mirrored: bool


def _sync_both_ways(
    folded: np.ndarray, period: float | None, *, threshold: float = SYNC_THRESHOLD, count: int = SYNC_CANDIDATES
) -> list[_Candidate]:
    """Pilot search on a folded tile and on its mirror image (a horizontally flipped frame folds
    into the flipped tile, up to a circular shift the pilot search finds)."""
    cleaned = _remove_block_component(folded)
    found = []
    for mirrored, tile in ((False, cleaned), (True, np.ascontiguousarray(cleaned[:, ::-1]))):
        best, peaks = _sync_candidates(tile, threshold=threshold, count=count)
        found.append(_Candidate(tile, peaks, best, period, mirrored))
    return found


@lru_cache(maxsize=2)
def _strength_filters(tile: int) -> tuple[np.ndarray, np.ndarray]:
    """For folds of ``tile`` px (128, or a screen's 64): the pilot's conjugate spectrum at that
    scale, and per rfft column the phase that turns a tile's spectrum at (-ky, kx), conjugated,
    into its horizontal mirror image's at (ky, kx) (x -> tile - 1 - x)."""
    layout = _layout()
    phase = np.exp(2j * np.pi * np.arange(tile // 2 + 1) / tile)
    if tile == TILE_SIZE:
        return layout.pilot_spectrum_conj, phase
    pilot = cv2.resize(layout.pilot_wave, (tile, tile), interpolation=cv2.INTER_AREA)
    return np.conj(np.fft.rfft2(pilot.astype(np.float64))), phase


def _pilot_strengths(folds: list[np.ndarray]) -> list[float]:
    """The strongest pilot peak (z) of each folded tile, either way round: for 128 px tiles the
    ``_best_score(_sync_both_ways(fold, period))`` of each. The mirror's spectrum is derived from
    the tile's (one forward FFT per tile, not two): the period and pilot searches score hundreds
    of folds per clip and only their strength matters there."""
    strengths = []
    for folded in folds:
        tile = folded.shape[0]
        pilot, phase = _strength_filters(tile)
        spectrum = np.fft.rfft2(_remove_block_component(folded))
        best = 0.0
        for half in (spectrum, phase * np.conj(spectrum[(-np.arange(tile)) % tile])):
            surface = np.fft.irfft2(half * pilot, s=(tile, tile))
            spread = float(surface.std())
            if np.isfinite(spread) and spread > 1e-12:
                best = max(best, float(surface.max()) / spread)
        strengths.append(best)
    return strengths


def _frame_offset(offset: tuple[int, int], candidate: _Candidate, geometry: _Geometry | None) -> tuple[int, int]:
    """Tile phase in the read frame's pixels (mod the tile period there) from a phase in the
    folded tile."""
    dy, dx = offset
    if candidate.mirrored:
        dx = (-dx - 1) % TILE_SIZE
    if geometry is None or candidate.period is None:
        return dy, dx
    to_frame = candidate.period / TILE_SIZE / geometry.work_scale
    period = TILE_SIZE * to_frame
    return (
        round((geometry.top + dy * to_frame) % period) % max(1, round(period)),
        round((geometry.left + dx * to_frame) % period) % max(1, round(period)),
    )


def _decode_candidates(
    candidates: list[_Candidate], tiles: float, geometry: _Geometry | None, budget: list[int]
) -> WatermarkReading | None:
    """Decode pilot peaks of all candidates, strongest first, while ``budget[0]`` (CRC-32
    trials left) lasts. The first payload whose check matches wins."""
    trials = sorted(((score, offset, c) for c in candidates for score, offset in c.peaks), key=lambda item: -item[0])
    for score, offset, candidate in trials:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        reading = _reading_from_soft(
            _soft_coded_bits(candidate.folded, offset), score, _frame_offset(offset, candidate, geometry), tiles
        )
        if reading is not None:
            period = None if candidate.period is None or geometry is None else (candidate.period / geometry.work_scale)
            return replace(reading, period=TILE_SIZE if period is None else period, mirrored=candidate.mirrored)
    return None


def _reading_from_soft(
    soft: np.ndarray, score: float, offset: tuple[int, int] | None, tiles: float
) -> WatermarkReading | None:
    payload = decode_payload(soft)
    if payload is None:
        return None
    agreement = float(np.mean((soft > 0) == encode_payload(payload).astype(bool)))
    return WatermarkReading(payload, agreement, score, offset, tiles)


def _read_scaled(
    work_luma: np.ndarray, geometry: _Geometry, budget: list[int]
) -> tuple[WatermarkReading | None, float, float]:
    """Read a still at work resolution, screened first.

    The candidate periods and the pilot search's grid are scored on the half-resolution screen
    (:func:`_screen_strength`, as a clip's are); an image none of whose periods reaches
    :data:`SCREEN_THRESHOLD` there is "no mark" without a single full-resolution fold. Otherwise
    each candidate period is folded in turn and its pilot peaks (both mirrors) decoded before
    the next is folded (a marked frame usually reads at the first), then the pilot search's
    best periods. Returns (reading or None, best pilot z, tiles); the best z is the screen's
    where no full-resolution fold was made.
    """
    whitened = _whiten(work_luma)
    strength = _screen_strength([_screen_image(whitened)])
    screened: dict[float, float] = {}  # period -> screen strength, each scored once

    def screen(period: float) -> float:
        if period not in screened:
            screened[period] = strength(period)
        return screened[period]

    uncropped = geometry.uncropped_period
    periods = _candidate_periods(work_luma, whitened, uncropped)
    if all(screen(period) < SCREEN_THRESHOLD for period in periods):  # stops at the first that passes
        _pilot_search(screen, uncropped, periods)  # scores the grid (kept for the search below)
        if max(screened.values()) < SCREEN_THRESHOLD:
            return None, max(screened.values()), work_luma.size / TILE_SIZE**2
    best = tiles = 0.0
    for period in periods:
        folded, tiles = _fold_at_period(work_luma, period, whitened)
        candidates = _sync_both_ways(folded, period)
        best = max(best, _best_score(candidates))
        reading = _decode_candidates(candidates, tiles, geometry, budget)
        if reading is not None:
            return reading, best, tiles
    # A weak mark may not show in the autocorrelation (a second-order statistic) while its
    # pilot still does: search the periods a crop of this copy can have by pilot strength.
    for period in _pilot_search(screen, uncropped, periods):
        folded, tiles = _fold_at_period(work_luma, period, whitened)
        candidates = _sync_both_ways(folded, period, count=1)  # 4 trials at most in all
        best = max(best, _best_score(candidates))
        reading = _decode_candidates(candidates, tiles, geometry, budget)
        if reading is not None:
            return reading, best, tiles
    return None, best, tiles


def _search_grid(uncropped: float) -> list[float]:
    """The pilot search's coarse grid: 1 % steps from just below ``uncropped`` to past
    ``uncropped / 0.6``."""
    steps = int(np.ceil(np.log(1.0 / _MAX_CROP_SCALE) / np.log1p(_SEARCH_STEP))) + 2
    return [float(p) for p in uncropped * (1.0 + _SEARCH_STEP) ** np.arange(-1, steps)]


def _screen_image(whitened: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The whitened work image and the same at half resolution (means of 2x2 pixels), for
    :func:`_screen_fold`."""
    return whitened, _resampled(whitened, 0.5)


def _screen_fold(screen: tuple[np.ndarray, np.ndarray], period: float) -> np.ndarray:
    """Fold of a :func:`_screen_image` at ``period`` (work px) into a 64 px tile (2 px chips).
    Periods of 128 px and more are folded from the half-resolution image (the 2x2 means are the
    anti-aliasing of the downscale); shorter ones (copies smaller than 360 px: their chips are
    under 4 px already, and halving would average them away) from the whitened image itself."""
    whitened, half = screen
    if period >= TILE_SIZE:
        return _fold_whitened(_resampled(half, TILE_SIZE / period), _SCREEN_TILE)
    return _fold_whitened(_resampled(whitened, _SCREEN_TILE / period), _SCREEN_TILE)


def _screen_strength(screens: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[float], float]:
    """Pilot strength of a period on screened frames (:func:`_screen_fold` folds): the best of
    each frame's fold and of their sum (a re-encoded moving clip may show the mark in its intra
    frame only). A clip ranks its many candidate periods this way, then folds only the best at
    full resolution; a still is refused here when no period reaches :data:`SCREEN_THRESHOLD`."""

    def strength(period: float) -> float:
        folds = [_screen_fold(screen, period) for screen in screens]
        if len(folds) > 1:
            folds.append(_summed(folds))
        return max(_pilot_strengths(folds))

    return strength


class _GridStrength:
    """The coarse grid's screen strengths over frames given one at a time: per period the
    running sum of the frames' half-resolution folds and the best single frame's score, so a
    clip's probe frames can be scored as they arrive (while the next ones decode) with the
    same result as :func:`_pilot_search` with :func:`_screen_strength` scoring them all at once."""

    def __init__(self, uncropped: float) -> None:
        self.grid = _search_grid(uncropped)
        self.sums: list[np.ndarray | None] = [None] * len(self.grid)
        self.single = [-np.inf] * len(self.grid)
        self.frames = 0

    def add(self, screen: tuple[np.ndarray, np.ndarray]) -> None:
        folds = [_screen_fold(screen, period) for period in self.grid]
        for index, (folded, score) in enumerate(zip(folds, _pilot_strengths(folds))):
            self.single[index] = max(self.single[index], score)
            total = self.sums[index]
            self.sums[index] = folded if total is None else total + folded
        self.frames += 1

    def strengths(self) -> list[tuple[float, float]]:
        """(strength, period) per grid period, as ``strength`` in :func:`_pilot_search`."""
        singles = list(self.single)
        if self.frames > 1:
            summed = [(i, total) for i, total in enumerate(self.sums) if total is not None]
            for (index, _), score in zip(summed, _pilot_strengths([total for _, total in summed])):
                singles[index] = max(singles[index], score)
        return list(zip(singles, self.grid))


def _pilot_search(
    strength: Callable[[float], float],
    uncropped: float,
    tried: list[float],
    coarse_scores: list[tuple[float, float]] | None = None,
) -> list[float]:
    """Periods from ``uncropped`` to ``uncropped / 0.6`` (crops of up to 20 % per side) ranked
    by pilot ``strength`` (:func:`_screen_strength`): a 1 % grid, then the best
    :data:`_SEARCH_KEEP` refined to 0.25 %. Periods within 0.1 % of ``tried`` ones are
    left out. ``coarse_scores``: the grid already scored with ``strength`` (:class:`_GridStrength`)."""
    if coarse_scores is None:
        coarse_scores = [(strength(p), p) for p in _search_grid(uncropped)]
    coarse = sorted(coarse_scores, reverse=True)[:_SEARCH_KEEP]
    found = []
    for score, period in coarse:
        refined = max(
            ((strength(period * f), period * f) for f in (0.995, 0.9975, 1.0025, 1.005)), default=(score, period)
        )
        found.append(refined[1] if refined[0] > score else period)
    return [p for p in found if all(abs(p - t) > 0.001 * t for t in tried)]


def _with_neighbours(peaks: list[float]) -> list[float]:
    """The strongest peak +-0.2 % (a fold over ~5 tiles tolerates about that much error), then
    the others."""
    if not peaks:
        return []
    return [peaks[0] * (1 - _PERIOD_STEP), peaks[0], peaks[0] * (1 + _PERIOD_STEP)] + peaks[1:]


def _candidate_periods(work_luma: np.ndarray, whitened: np.ndarray, uncropped: float) -> list[float]:
    """Periods to fold at, most likely first: the autocorrelation's strongest peak, the period
    of an uncropped copy (128 at work resolution whatever size the copy was brought to; less
    below 360 px), the strongest peak +-0.2 %, the other peaks."""
    power_x, power_y = _axis_power(whitened)
    peaks = _period_candidates(power_x, power_y, (work_luma.shape[1], work_luma.shape[0]))
    ordered = [uncropped]
    if peaks:
        ordered = [peaks[0], uncropped, peaks[0] * (1 - _PERIOD_STEP), peaks[0] * (1 + _PERIOD_STEP)] + peaks[1:]
    periods: list[float] = []
    for period in ordered:
        if all(abs(period - p) > 0.5 * _PERIOD_STEP * p for p in periods):
            periods.append(period)
    return periods


def _summed(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Element-wise sum of one or more arrays (``sum()`` without its leading ``0``)."""
    total: np.ndarray = reduce(operator.add, arrays)
    return total


def _best_score(candidates: list[_Candidate]) -> float:
    return max((c.best for c in candidates), default=0.0)


def extract_watermark(rgb: np.ndarray) -> WatermarkReading:
    """Read the likeness watermark from ``rgb`` (uint8 (H, W, 3)), at whatever scale, crop,
    padding or mirroring it was re-published with.

    Returns a reading whose ``payload`` is None ("no mark") unless a pilot is found and the
    CRC-32 check of the decoded payload matches (at most :data:`MAX_DECODES` checks per image).
    Most unmarked images stop at the half-resolution screens (:data:`SCREEN_THRESHOLD`; the v1
    fallback of frames above 360 px has its own), before any full-resolution fold. Frames
    smaller than one tile (128 px) in either side read as no mark.
    """
    rgb = _check_rgb(rgb)
    if rgb.shape[0] < TILE_SIZE or rgb.shape[1] < TILE_SIZE:
        return WatermarkReading(None, 0.0, 0.0, None, 0.0)
    geometry = _geometry(rgb)
    work = _work_luma(rgb, geometry)
    budget = [MAX_DECODES]
    reading, best, tiles = _read_scaled(work, geometry, budget)
    if reading is None and geometry.work_scale < 1.0 and _native_screen(rgb) >= SCREEN_THRESHOLD:
        # v1 marks (128 px tiles at every frame size) on a frame larger than the work size.
        folded, native_tiles = _fold(rgb)
        native = _sync_both_ways(folded, None)
        reading = _decode_candidates(native, native_tiles, None, budget)
        best = max(best, _best_score(native))
    return reading or WatermarkReading(None, 0.0, best, None, tiles)


def extract_watermark_frames(frames: Iterable[np.ndarray]) -> WatermarkReading:
    """Read one watermark from many frames of one video (uint8 (H, W, 3) each).

    One pass, bounded memory. The first :data:`_CLIP_PROBE_FRAMES` frames are kept at work
    resolution (at most 640x360 luma each) to find the bars and the tile period of the clip
    from their summed autocorrelation; then every frame is folded at the candidate periods and
    the folds are summed (every frame is marked at the same phase, codec noise averages out),
    and each frame's own strongest pilot peak (z >= 4.5) adds its soft bits, weighted by the
    peak's strength, to a second aggregate, tried if the first finds nothing: H.264 motion
    compensation drags an intra frame's mark along with moving content for the rest of the
    group of pictures, so in a panning shot each frame still holds the payload at another
    phase. Where the whole picture moves, the first frame less the later frames warped back
    onto it by their global motion is read too (:class:`_HostCancelledAnchor`), and last, for
    marks that move with the picture (anchored video), each frame's soft bits at its own pilot
    peak in a host-suppressed fold, summed (:class:`_OwnPhaseAggregate`; those folds wait
    for the end, each frame's work luma kept as uint8 up to :data:`_OWN_PHASE_KEPT_BYTES`, and
    are made only if every earlier path finds nothing; in a clip of 16 frames or more, every 4th
    frame's first, the others only where those show a mark). Frames of another size than the
    first, or smaller than one tile, are skipped.
    """
    clip = ClipWatermarkReader()
    for rgb in frames:
        clip.add(rgb)
    return clip.read()


# ---------------------------------------------------------------- clips: host-cancelled first frame


def _motion_luma(work_luma: np.ndarray) -> np.ndarray:
    """The work luma at :data:`_MOTION_SCALE`, for motion estimation: float32 (h, w)."""
    height, width = work_luma.shape
    size = (max(8, round(width * _MOTION_SCALE)), max(8, round(height * _MOTION_SCALE)))
    return cv2.resize(work_luma, size, interpolation=cv2.INTER_AREA)


def _estimate_motion(anchor: np.ndarray, current: np.ndarray, guess: np.ndarray) -> np.ndarray | None:
    """Affine warp W (2x3, motion-luma px) with ``current(W x) ~ anchor(x)``, refined from
    ``guess`` by ECC; None where ECC fails or the pictures no longer correlate."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _MOTION_ITERATIONS, _MOTION_EPSILON)
    try:
        correlation, found = cv2.findTransformECC(
            anchor, current, guess.astype(np.float32), cv2.MOTION_AFFINE, criteria
        )
    except cv2.error:
        return None
    warp = np.asarray(found, dtype=np.float64)
    if not np.isfinite(correlation) or correlation < _MOTION_MIN_CORRELATION or not np.all(np.isfinite(warp)):
        return None
    return warp


def _to_work_scale(warp: np.ndarray) -> np.ndarray:
    """A motion-luma warp as the same warp on work pixels (pixel centres: x_work = x / s + c)."""
    factor = 1.0 / _MOTION_SCALE
    centre = 0.5 * (factor - 1.0)
    linear = warp[:, :2]
    shift = factor * warp[:, 2] + centre * (1.0 - linear.sum(axis=1))
    return np.hstack([linear, shift[:, None]])


class _HostCancelledAnchor:
    """The clip's first frame less the picture around its mark, the picture estimated from
    later frames warped back onto it.

    A platform's re-encode of moving content keeps the mark in its intra frame (the first
    frame of a file is one) but lets P and B frames carry it along with the picture (motion
    compensation copies it; the residual restoring the fixed tiling falls in the deadzones)
    and fade, so folding them at the fixed grid adds nothing, and the intra frame alone may
    fall under the sync gate because its own picture interferes with the mark. Warped back
    onto the first frame by their global motion, later frames show the same picture with
    little of the mark; their mean, subtracted, removes most of the interference. The frames
    just after the first still carry much of its mark: they are left out of the mean when at
    least :data:`_HOST_EARLY_FRAMES` frames come after them, kept where a clip is short or
    sampled sparsely (verify: a frame a second), where fewer frames would be worse.
    In a still shot the later frames hold the same fixed mark and the difference cancels it:
    harmless, as the summed folds read those clips."""

    def __init__(self) -> None:
        self.anchor: np.ndarray | None = None  # whitened work image of the first frame
        self.anchor_motion: np.ndarray | None = None  # its motion luma
        self.anchor_flat = False  # the anchor has no picture (black): the next frame replaces it
        self.warp = np.eye(2, 3)  # latest frame's warp onto the anchor (motion-luma px)
        # Warped-back sums and coverage (frames per pixel, at motion scale): [early, late].
        self.host: list[np.ndarray] = []
        self.coverage: list[np.ndarray] = []
        self.counts = [0, 0]
        self.frames = 0

    def add(self, work_luma: np.ndarray, whitened: np.ndarray) -> None:
        self.frames += 1
        small = _motion_luma(work_luma)
        if self.anchor_motion is None or self.anchor_flat:
            # A flat first frame (black, a fade's start) carries no mark and no motion to follow:
            # the first frame with a picture is the anchor, as if the clip started there.
            self.frames = 1
            self.anchor, self.anchor_motion = whitened, small
            self.anchor_flat = float(small.std()) < _ANCHOR_MIN_CONTRAST
            self.host = [np.zeros_like(whitened, dtype=np.float32) for _ in range(2)]
            self.coverage = [np.zeros_like(small, dtype=np.float32) for _ in range(2)]
            return
        warp = _estimate_motion(self.anchor_motion, small, self.warp)
        if warp is None:  # the anchor's picture is gone (a cut) or the motion is not global
            return
        self.warp = warp
        part = int(self.frames > 1 + _HOST_EARLY_FRAMES)  # frame 1 + n is the nth after the first
        height, width = whitened.shape
        self.host[part] += _warped_back(whitened, _to_work_scale(warp), (width, height))
        self.coverage[part] += _warped_back(np.ones_like(small), warp, (small.shape[1], small.shape[0]))
        self.counts[part] += 1

    def residual(self) -> np.ndarray | None:
        """The anchor less the mean warped-back picture where later frames cover it."""
        if self.anchor is None or not any(self.counts):
            return None
        late_only = self.counts[1] >= _HOST_EARLY_FRAMES
        host = self.host[1] if late_only else self.host[0] + self.host[1]
        coverage = self.coverage[1] if late_only else self.coverage[0] + self.coverage[1]
        height, width = self.anchor.shape
        coverage = cv2.resize(coverage, (width, height), interpolation=cv2.INTER_LINEAR)
        mean = np.where(coverage >= 0.5, host / np.maximum(coverage, 1e-6), 0.0)
        return (self.anchor - mean).astype(np.float32)

    def candidates(self, uncropped: float) -> list[_Candidate]:
        """The residual read as a still is (its own candidate periods and the pilot search's,
        ranked on the half-resolution screen): the strongest pilot peak either way round at
        each of the best :data:`_HOST_PERIODS` periods. The probe frames' periods do not serve:
        in the clips this reads, the mark shows in none of them but the first, under its picture."""
        residual = self.residual()
        if residual is None:
            return []
        strength = _screen_strength([_screen_image(residual)])
        periods = _candidate_periods(residual, residual, uncropped)
        periods += _pilot_search(strength, uncropped, periods)
        ranked = sorted(periods, key=strength, reverse=True)[:_HOST_PERIODS]
        return [
            candidate
            for period in ranked
            for candidate in _sync_both_ways(_fold_whitened(_resampled(residual, TILE_SIZE / period)), period, count=1)
        ]


def _warped_back(image: np.ndarray, warp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` sampled at ``warp`` of each output pixel (zero outside): the frame in the
    anchor's coordinates."""
    return cv2.warpAffine(
        image,
        warp,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


class _OwnPhaseAggregate:
    """Soft coded bits of every frame at its own pilot peak, summed, for one period and one
    way round (direct or mirrored), from host-suppressed folds (:func:`_host_suppressed`).

    An anchored mark moves with the picture, so each frame holds it at its own phase and the
    summed folds at one phase miss it; the host-cancelled first frame cancels it with the
    picture. Aligned at each frame's own peak, the frames' soft values add up, and what they
    do not share (codec noise, the picture entering and leaving) averages out. A frame's
    weight is (z - :data:`_OWN_PHASE_FLOOR`)^2 of its peak: frames whose peak is no stronger
    than an unmarked fold's add nothing, where their phase would be a guess."""

    def __init__(self, period: float, mirrored: bool) -> None:
        self.period = period
        self.mirrored = mirrored
        self.soft = np.zeros(CODED_BITS)
        self.weight = 0.0
        self.best: tuple[float, tuple[int, int]] = (0.0, (0, 0))

    def add(self, share: _OwnPhaseShare | None) -> None:
        if share is None:
            return
        self.soft += share.soft
        self.weight += share.weight
        self.best = max(self.best, share.peak)


@dataclass(frozen=True)
class _OwnPhaseShare:
    """One frame's addition to an :class:`_OwnPhaseAggregate`: its soft bits at its own pilot
    peak, weighted, the weight, and the peak (z, phase)."""

    soft: np.ndarray
    weight: float
    peak: tuple[float, tuple[int, int]]


def _own_phase_share(candidate: _Candidate) -> _OwnPhaseShare | None:
    """A frame's share of an own-phase aggregate (None: no peak at or above the floor, or soft
    bits all alike, which carry no sign)."""
    if not candidate.peaks:
        return None
    score, offset = candidate.peaks[0]
    soft = _soft_coded_bits(candidate.folded, offset)
    spread = float(soft.std())
    if spread <= 0.0:
        return None
    weight = (score - _OWN_PHASE_FLOOR) ** 2
    return _OwnPhaseShare(soft * (weight / spread), weight, (score, offset))


@dataclass
class _ProbeFrame:
    """A probe frame prepared as it arrives, under the geometry of the clip's first frame (the
    clip's own geometry, unless bars differ between probe frames): work luma, whitened, axis
    power spectra."""

    rgb: np.ndarray
    box: _Geometry
    work: np.ndarray
    whitened: np.ndarray
    screen: tuple[np.ndarray, np.ndarray]
    power: tuple[np.ndarray, np.ndarray]
    native: np.ndarray | None
    """The native (128 px) fold, where the work scale is below 1 (see ``_ClipReader._add_folds``)."""


class ClipWatermarkReader:
    """:func:`extract_watermark_frames` one frame at a time: :meth:`add` each frame in order
    (on any one thread, e.g. beside the decoder), then :meth:`read`. The reading is the same as
    the function's on the same frames: the probe frames are prepared and scored on the pilot
    search's grid as they arrive, which is the work the function would do after the last probe
    frame, under the first frame's geometry; when the probe frames' bars turn out to differ it
    is all redone under the clip's geometry."""

    def __init__(self) -> None:
        self._clip = _ClipReader()
        self._probe: list[_ProbeFrame] = []
        self._grid: _GridStrength | None = None
        self._frames = 0

    def add(self, rgb: np.ndarray) -> None:
        """Fold one frame (uint8 (H, W, 3)); frames of another size than the first, or smaller
        than one tile, are skipped. Raises ProvenanceError for an array that is not RGB."""
        clip = self._clip
        rgb = _check_rgb(rgb, name=f"frame {self._frames}")
        self._frames += 1
        if rgb.shape[0] < TILE_SIZE or rgb.shape[1] < TILE_SIZE:
            return
        if clip.shape is None:
            clip.shape = rgb.shape
        if rgb.shape != clip.shape:
            return
        if clip.periods is not None:
            clip.add(rgb)
            return
        box = _geometry(rgb)
        assumed = self._probe[0].box if self._probe else box
        work = _work_luma(rgb, assumed)
        whitened = _whiten(work)
        screen = _screen_image(whitened)
        if self._grid is None:
            self._grid = _GridStrength(assumed.uncropped_period)
        self._grid.add(screen)
        native = _fold(rgb)[0] if assumed.work_scale < 1.0 else None
        self._probe.append(_ProbeFrame(rgb, box, work, whitened, screen, _axis_power(whitened), native))
        if len(self._probe) >= _CLIP_PROBE_FRAMES:
            self._start()

    def _start(self) -> None:
        probe, self._probe = self._probe, []
        self._clip.start([p.rgb for p in probe], prepared=probe, grid=self._grid)
        self._grid = None

    def read(self) -> WatermarkReading:
        """The clip's reading (the payload, or no mark)."""
        if self._clip.periods is None and self._probe:
            self._start()
        return self._clip.read()


class _ClipReader:
    """Aggregates of one clip (see :func:`extract_watermark_frames`)."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.periods: list[float] | None = None
        self.geometry: _Geometry | None = None
        self.folds: list[np.ndarray] = []
        self.native: np.ndarray | None = None
        self.native_frames = 0
        self.tiles = 0.0
        self.aligned_soft = np.zeros(CODED_BITS)
        self.best_frame: tuple[float, tuple[int, int] | None, _Candidate | None] = (0.0, None, None)
        # The strongest single frames (an intra frame often holds the mark that re-encoded
        # P and B frames of moving content lost): (z, soft bits, offset, candidate).
        self.best_frames: list[tuple[float, np.ndarray, tuple[int, int], _Candidate]] = []
        self.host_cancelled = _HostCancelledAnchor()
        self.own_phase: list[_OwnPhaseAggregate] = []
        # Work luma (uint8) of the frames not yet added to ``own_phase`` (see ``_keep_own_phase``).
        self.own_phase_kept: list[np.ndarray] = []
        self.own_phase_kept_bytes = 0
        self.own_phase_frames = 0  # frames kept so far, folded or not (the index of the next)
        self.own_phase_skip = 0  # kept frames to pass over before the next sampled one
        # The sampled frames' evidence (see ``_add_own_phase``), per aggregate: weights, best z.
        self.own_phase_sampled = 0
        self.own_phase_sampled_weight = np.zeros(2 * _CLIP_PERIODS)
        self.own_phase_sampled_peak = np.zeros(2 * _CLIP_PERIODS)
        self.own_phase_open = False

    def start(
        self,
        probe: list[np.ndarray],
        *,
        prepared: list[_ProbeFrame] | None = None,
        grid: _GridStrength | None = None,
    ) -> None:
        # Bars: the widest content box over the probe frames (a dark frame alone looks all bar).
        boxes = [p.box for p in prepared] if prepared else [_geometry(rgb) for rgb in probe]
        top = min(b.top for b in boxes)
        left = min(b.left for b in boxes)
        bottom = max(b.top + b.height for b in boxes)
        right = max(b.left + b.width for b in boxes)
        widest = min(boxes, key=lambda b: b.work_scale)
        self.geometry = _Geometry(top, left, bottom - top, right - left, widest.work_scale, widest.short_extent)
        # Frames prepared on arrival under the first frame's geometry count if it is the clip's.
        reuse = prepared is not None and self.geometry == boxes[0]
        if prepared is not None and reuse:
            works = [p.work for p in prepared]
            whitened = [p.whitened for p in prepared]
            screens = [p.screen for p in prepared]
            powers = [p.power for p in prepared]
        else:
            grid = None
            works = [_work_luma(rgb, self.geometry) for rgb in probe]
            whitened = [_whiten(work) for work in works]
            screens = [_screen_image(white) for white in whitened]
            powers = [_axis_power(white) for white in whitened]
        # Periods: what the summed autocorrelation and each probe frame's own suggest (in a
        # re-encoded moving clip the intra frame may be the only one that still shows the
        # mark), kept by the pilot peak they give on the probe frames, alone or summed.
        size = (works[0].shape[1], works[0].shape[0])
        summed = _period_candidates(_summed(p[0] for p in powers), _summed(p[1] for p in powers), size)
        suggested = _with_neighbours(summed)
        for power_x, power_y in powers:
            suggested += _with_neighbours(_period_candidates(power_x, power_y, size, count=1))
        uncropped = self.geometry.uncropped_period
        periods: list[float] = []
        for period in suggested + [uncropped]:
            if all(abs(period - p) > 0.5 * _PERIOD_STEP * p for p in periods):
                periods.append(period)
        screen = _screen_strength(screens)
        coarse = grid.strengths() if grid is not None else None
        periods += _pilot_search(screen, uncropped, periods, coarse)
        if len(periods) > _SCREEN_KEEP:
            ranked = np.argsort([screen(period) for period in periods], kind="stable")[::-1][:_SCREEN_KEEP]
            periods = [periods[i] for i in sorted(ranked.tolist())]
        folds = [[_fold_at_period(work, period, white) for period in periods] for work, white in zip(works, whitened)]
        scores = []
        for index in range(len(periods)):
            alone = [frame[index][0] for frame in folds]
            scores.append(max(_pilot_strengths([*alone, _summed(alone)])))
        keep = sorted(np.argsort(scores)[::-1][:_CLIP_PERIODS].tolist())
        self.periods = [periods[i] for i in keep]
        self.folds = [np.zeros((TILE_SIZE, TILE_SIZE)) for _ in self.periods]
        self.own_phase = [_OwnPhaseAggregate(period, mirrored) for period in self.periods for mirrored in (False, True)]
        natives = [p.native for p in prepared] if prepared is not None and reuse else [None] * len(probe)
        for rgb, frame, native, work, white in zip(probe, folds, natives, works, whitened):
            self._add_folds(rgb, [frame[i] for i in keep], work, white, native)

    def add(self, rgb: np.ndarray) -> None:
        assert self.geometry is not None and self.periods is not None
        work = _work_luma(rgb, self.geometry)
        whitened = _whiten(work)
        self._add_folds(rgb, [_fold_at_period(work, period, whitened) for period in self.periods], work, whitened)

    def _add_folds(
        self,
        rgb: np.ndarray,
        folds: list[tuple[np.ndarray, float]],
        work: np.ndarray,
        whitened: np.ndarray,
        native: np.ndarray | None = None,
    ) -> None:
        """``native``: this frame's native fold when already computed (a prepared probe frame)."""
        assert self.periods is not None and self.geometry is not None
        frame_candidates: list[_Candidate] = []
        for index, (period, (folded, tiles)) in enumerate(zip(self.periods, folds)):
            self.folds[index] += folded
            if index == 0:
                self.tiles += tiles
            frame_candidates.extend(_sync_both_ways(folded, period, threshold=FRAME_SYNC_THRESHOLD, count=1))
        if self.geometry.work_scale < 1.0 and self.native_frames < _CLIP_NATIVE_FRAMES:
            folded = _fold(rgb)[0] if native is None else native
            self.native = folded if self.native is None else self.native + folded
            self.native_frames += 1
        self.host_cancelled.add(work, whitened)
        self._keep_own_phase(work)
        peaks = [(score, offset, c) for c in frame_candidates for score, offset in c.peaks]
        if peaks:
            score, offset, candidate = max(peaks, key=lambda item: item[0])
            soft = _soft_coded_bits(candidate.folded, offset)
            if score >= SYNC_THRESHOLD:
                self.best_frames.append((score, soft, offset, replace(candidate, folded=np.empty(0), peaks=[])))
                self.best_frames.sort(key=lambda item: -item[0])
                del self.best_frames[_CLIP_SINGLE_FRAMES:]
            spread = float(soft.std())
            if spread > 0.0:
                self.aligned_soft += soft * ((score - FRAME_SYNC_THRESHOLD + 0.5) / spread)
            if score > self.best_frame[0]:
                self.best_frame = (score, offset, candidate)

    def read(self) -> WatermarkReading:
        if self.periods is None or self.geometry is None:
            return WatermarkReading(None, 0.0, 0.0, None, 0.0)
        # Trials kept back for the host-cancelled first frame, the single frames, the v1
        # own-phase aggregate and the host-suppressed ones below: MAX_DECODES bounds them all
        # together. The rest serves the summed folds and the native fold (4 periods and the native
        # fold, both ways round, 3 peaks each: 30 at most); trials a path leaves pass to the next.
        host_trials = 2 * _HOST_PERIODS
        reserve = host_trials + _CLIP_SINGLE_FRAMES + 1 + _OWN_PHASE_TRIALS
        budget = [MAX_DECODES - reserve]
        candidates = [c for period, folded in zip(self.periods, self.folds) for c in _sync_both_ways(folded, period)]
        reading = _decode_candidates(candidates, self.tiles, self.geometry, budget)
        best = _best_score(candidates)
        if reading is None and self.native is not None:
            native = _sync_both_ways(self.native, None)
            reading = _decode_candidates(native, self.tiles, None, budget)
            best = max(best, _best_score(native))
        budget[0] += host_trials
        if reading is None:
            host_cancelled = self.host_cancelled.candidates(self.geometry.uncropped_period)
            reading = _decode_candidates(host_cancelled, self.tiles, self.geometry, budget)
            best = max(best, _best_score(host_cancelled))
        budget[0] += reserve - host_trials - _OWN_PHASE_TRIALS
        for score, soft, offset, candidate in self.best_frames:
            if reading is not None or budget[0] <= 0:
                break
            budget[0] -= 1
            single = _reading_from_soft(soft, score, _frame_offset(offset, candidate, self.geometry), self.tiles)
            if single is not None:
                period = TILE_SIZE if candidate.period is None else candidate.period / self.geometry.work_scale
                reading = replace(single, period=period, mirrored=candidate.mirrored)
        best_score, best_offset, best_candidate = self.best_frame
        if reading is None and best_candidate is not None and best_offset is not None and budget[0] > 0:
            budget[0] -= 1
            aligned = _reading_from_soft(
                self.aligned_soft, best_score, _frame_offset(best_offset, best_candidate, self.geometry), self.tiles
            )
            if aligned is not None:
                period = (
                    TILE_SIZE if best_candidate.period is None else best_candidate.period / self.geometry.work_scale
                )
                reading = replace(aligned, period=period, mirrored=best_candidate.mirrored)
        budget[0] += _OWN_PHASE_TRIALS
        if reading is None:
            self._add_own_phase()
            reading = self._read_own_phase(budget)
        return reading or WatermarkReading(None, 0.0, best, None, self.tiles)

    def _keep_own_phase(self, work: np.ndarray) -> None:
        """Keep a frame's work luma for the own-phase aggregates, which are read only where every
        earlier path found nothing: most marked clips never need them, and folding each frame
        for them costs more than the earlier paths' folds. The work luma is whole grey levels
        (the grey of a uint8 resize), so uint8 keeps it exactly and the aggregates come out the
        same as when folded on arrival; past :data:`_OWN_PHASE_KEPT_BYTES` the kept frames are
        added to them, in order, which bounds the memory."""
        self.own_phase_kept.append(work.astype(np.uint8))
        self.own_phase_kept_bytes += work.size
        if self.own_phase_kept_bytes > _OWN_PHASE_KEPT_BYTES:
            self._add_own_phase()

    def _add_own_phase(self) -> None:
        """Fold the kept frames from their host-suppressed images at the clip's periods and add
        each one's soft bits at its own pilot peak to the aggregates, in frame order.

        Most clips that get here carry no mark, and folding all their frames is most of what
        they cost. So in a clip of at least :data:`_OWN_PHASE_GATE_FRAMES` frames every
        :data:`_OWN_PHASE_SAMPLE`-th frame is folded first, and the others only once the sampled
        frames so far show a mark (:meth:`_own_phase_evidence`); from then on every frame is.
        A sampled frame that cannot show a mark (no pilot peak in any aggregate: black, flat)
        hands the sample on to the next frame, so a clip blacked out where the sample falls
        does not hide the mark its other frames carry. Where the sampled frames show a mark
        before any frame is passed over (kept frames are decided a batch at a time: the whole
        clip, unless it passes :data:`_OWN_PHASE_KEPT_BYTES`), the aggregates are the same, bit for bit, as with every
        frame folded; frames passed over before the mark shows are not folded later (their luma
        is dropped to bound the memory). Where the mark never shows, the aggregates hold the
        sampled frames and are decoded as usual."""
        assert self.periods is not None
        kept = self.own_phase_kept
        self.own_phase_frames += len(kept)
        sampled: dict[int, list[_OwnPhaseShare | None]] = {}
        for index, luma in enumerate(kept):
            if self.own_phase_skip:
                self.own_phase_skip -= 1
                continue
            sampled[index] = self._own_phase_shares(luma)
            if any(share is not None for share in sampled[index]):
                self.own_phase_skip = _OWN_PHASE_SAMPLE - 1
        for shares in sampled.values():
            if all(share is None for share in shares):
                continue  # (no evidence either way: not counted in the mean weight)
            self.own_phase_sampled += 1
            for index, share in enumerate(shares):
                if share is not None:
                    self.own_phase_sampled_weight[index] += share.weight
                    self.own_phase_sampled_peak[index] = max(self.own_phase_sampled_peak[index], share.peak[0])
        self.own_phase_open = self.own_phase_open or self._own_phase_evidence()
        every = self.own_phase_open or self.own_phase_frames < _OWN_PHASE_GATE_FRAMES
        for index, luma in enumerate(kept):
            if index in sampled or every:
                shares = sampled[index] if index in sampled else self._own_phase_shares(luma)
                for aggregate, share in zip(self.own_phase, shares):
                    aggregate.add(share)
        self.own_phase_kept.clear()
        self.own_phase_kept_bytes = 0

    def _own_phase_shares(self, kept: np.ndarray) -> list[_OwnPhaseShare | None]:
        """One kept frame's shares of the own-phase aggregates, in their order."""
        assert self.periods is not None
        near = any(abs(TILE_SIZE / period - 1.0) <= _REWHITEN_SCALE for period in self.periods)
        work = kept.astype(np.float32)
        suppressed = _host_suppressed(kept) if near else None
        shares = []
        for period in self.periods:
            folded = _fold_at_period(work, period, suppressed, whiten=_host_suppressed)[0]
            for candidate in _sync_both_ways(folded, period, threshold=_OWN_PHASE_FLOOR, count=1):
                shares.append(_own_phase_share(candidate))
        return shares

    def _own_phase_evidence(self) -> bool:
        """Whether the sampled frames show a mark in some aggregate: a pilot peak of at least
        :data:`_OWN_PHASE_EVIDENCE_Z`, or a mean weight of at least
        :data:`_OWN_PHASE_EVIDENCE_WEIGHT` a sampled frame. Neither decides a reading (the CRC
        does); they only decide what is worth folding."""
        if self.own_phase_sampled == 0:
            return False
        mean_weight = self.own_phase_sampled_weight / self.own_phase_sampled
        peaks = self.own_phase_sampled_peak
        return bool(np.any((peaks >= _OWN_PHASE_EVIDENCE_Z) | (mean_weight >= _OWN_PHASE_EVIDENCE_WEIGHT)))

    def _read_own_phase(self, budget: list[int]) -> WatermarkReading | None:
        """The host-suppressed own-phase aggregates, the most weighted first, while the budget
        lasts (:class:`_OwnPhaseAggregate`)."""
        assert self.geometry is not None
        for aggregate in sorted(self.own_phase, key=lambda a: -a.weight):
            if aggregate.weight <= 0.0 or budget[0] <= 0:
                break
            budget[0] -= 1
            score, offset = aggregate.best
            stub = _Candidate(np.empty(0), [], score, aggregate.period, aggregate.mirrored)
            found = _reading_from_soft(aggregate.soft, score, _frame_offset(offset, stub, self.geometry), self.tiles)
            if found is not None:
                period = aggregate.period / self.geometry.work_scale
                return replace(found, period=period, mirrored=aggregate.mirrored)
        return None


__all__ = [
    "PAYLOAD_BYTES",
    "ClipWatermarkReader",
    "READABLE_ALGORITHMS",
    "REFERENCE_SHORT_SIDE",
    "TILE_SIZE",
    "WATERMARK_ALGORITHM",
    "WatermarkEmbedder",
    "WatermarkReading",
    "embed_watermark",
    "extract_watermark",
    "extract_watermark_frames",
    "texture_mask",
    "tile_period",
    "video_encoder_options",
    "watermark_tile",
]
