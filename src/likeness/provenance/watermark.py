"""Invisible watermark ``likeness.tiled-ss.v1``: a tiled spread-spectrum mark in luma.

Design (details and the false-mark derivation in ``docs/watermark.md``):

* A 128x128 px tile holds 1024 chips of 4x4 px. 192 chips carry a fixed pseudo-random
  **pilot** (for finding the crop offset); 832 chips carry the 204 coded bits of the payload
  (:mod:`likeness.provenance.watermark_code`: 64 bits + CRC-32, K=7 rate-1/2 convolutional
  code), each coded bit spread over 4-5 chips at pseudo-random places with pseudo-random signs.
  The chip grid is smoothed with a periodic Gaussian so the mark lives in the low/mid
  frequencies that JPEG, downscaling and H.264 keep.
* The tile repeats over the whole frame, so any crop of at least one tile holds every chip.
* Embedding adds the same signed luma offset to R, G and B (no chroma change), scaled by a
  cheap texture mask (busy areas take more, flat areas less) and normalised so the mark's RMS
  is :data:`MARK_RMS` grey levels; the rounded offset is checked against :data:`MAX_MARK_RMS`,
  so PSNR >= 40.2 dB by construction (0..255 clipping only lowers the error).
* Extraction band-passes and locally normalises luma, folds it modulo the tile (summing every
  tile), finds the crop offset by FFT circular cross-correlation with the pilot, correlates each
  chip, soft-decodes with Viterbi and accepts the payload only if the pilot peak is significant
  and the CRC-32 matches. Everything else is "no mark".

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

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from likeness.errors import ProvenanceError
from likeness.provenance.watermark_code import (
    CODED_BITS,
    PAYLOAD_BYTES,
    check_payload,
    decode_payload,
    encode_payload,
)

WATERMARK_ALGORITHM = "likeness.tiled-ss.v1"

TILE_SIZE = 128
"""Tile side in pixels; a frame must be at least this large in both sides to be read."""
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
SYNC_CANDIDATES = 3
"""Distinct pilot peaks tried before answering "no mark" (each is one CRC-32 trial)."""
FRAME_SYNC_THRESHOLD = 4.5
"""Pilot peak (z) a single video frame needs to add its own-phase soft bits to the aggregate."""
SMALL_FRAME_TILES = 10.0
"""Video frames holding fewer tiles than this (163 840 px) are encoded by
:func:`video_encoder_options`' small-frame settings."""
SMALL_FRAME_CRF = 18
SMALL_FRAME_DEADZONES = (0, 0)
"""x264 (inter, intra) deadzones for small frames, against x264's (21, 11): P and B frames keep
the mark's low-amplitude residual instead of rounding it away."""

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


@dataclass(frozen=True)
class WatermarkReading:
    """Outcome of reading a frame (or frames) for a likeness watermark.

    ``payload`` is the 8-byte payload, or None for "no mark". ``bit_confidence`` is the fraction
    of the 204 raw coded-bit decisions that agree with the accepted codeword (1.0 for a clean
    read, about 0.5 would be chance; 0.0 when no mark). ``sync_score`` is the strongest pilot
    correlation peak in standard deviations of the correlation surface (also reported when no
    mark is found; 6 or more is needed to try decoding). ``offset`` is the tile phase ``(dy,
    dx)`` the payload was read at: a crop that starts at (y0, x0) of a marked frame reads at
    ``(-y0 % 128, -x0 % 128)``. ``tiles`` is the frame area folded, in tiles, summed over frames.
    """

    payload: bytes | None
    bit_confidence: float
    sync_score: float
    offset: tuple[int, int] | None
    tiles: float
    algorithm: str = WATERMARK_ALGORITHM

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


def _check_rgb(rgb: object, *, name: str = "rgb") -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ProvenanceError(f"{name} must be a numpy uint8 (H, W, 3) array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ProvenanceError(
            f"{name} must be uint8 (H, W, 3) RGB, got {rgb.dtype} {tuple(rgb.shape)}"
        )
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ProvenanceError(f"{name} is empty: shape {tuple(rgb.shape)}")
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

    Example:
        >>> import numpy as np
        >>> embedder = WatermarkEmbedder(b"job-0001", width=320, height=240)
        >>> embedder.embed(np.full((240, 320, 3), 128, np.uint8)).shape
        (240, 320, 3)
    """

    def __init__(self, payload: bytes, width: int, height: int) -> None:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                   for v in (width, height)):
            raise ProvenanceError(f"frame size must be positive integers, got {width!r}x{height!r}")
        width, height = int(width), int(height)
        payload = check_payload(payload)
        tile = watermark_tile(payload)
        reps = (-(-height // TILE_SIZE), -(-width // TILE_SIZE))
        self.payload = payload
        self.width = width
        self.height = height
        self._pattern = np.ascontiguousarray(np.tile(tile, reps)[:height, :width])
        # Mean pattern energy per mask cell: with it the mark's RMS is set exactly per frame even
        # where a small frame's pattern is locally stronger than its tile average.
        self._pattern_cell_energy = cv2.resize(
            self._pattern * self._pattern, _mask_size(width, height), interpolation=cv2.INTER_AREA
        ).astype(np.float64)
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
                f"frame is {rgb.shape[1]}x{rgb.shape[0]}, embedder was built for "
                f"{self.width}x{self.height}"
            )
        mask = texture_mask(rgb)
        # Normalising by the mask's energy (weighted by the pattern's local energy) sets the
        # mark's RMS to MARK_RMS for every frame, whatever its content.
        mark_energy = float(np.mean(mask.astype(np.float64) ** 2 * self._pattern_cell_energy))
        gain = mask * np.float32(scale * MARK_RMS / np.sqrt(max(mark_energy, 1e-12)))
        full_gain = cv2.resize(gain, (self.width, self.height), dst=self._full_gain,
                               interpolation=cv2.INTER_LINEAR)
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


def video_encoder_options(width: int, height: int) -> dict[str, object]:
    """``VideoEncoder`` options for a marked video of ``width`` x ``height`` stored pixels.

    Few tiles per frame leave the reader little picture to average away, and at CRF 20 x264's
    default deadzones drop most of the mark from P and B frames: a 1 s 320x240 clip at 25 fps
    read back 85 % of the time. Small frames therefore get CRF 18 and no deadzones (every read
    succeeded in the benchmark, for 1.9-2.6x the bytes: 100-180 kB per second at these sizes);
    larger frames keep the encoder's defaults ({}), which read every time and keep files smaller
    (``docs/watermark.md``, ``benchmarks/watermark_video.py``).
    """
    if width * height < SMALL_FRAME_TILES * TILE_SIZE**2:
        return {"crf": SMALL_FRAME_CRF, "deadzones": SMALL_FRAME_DEADZONES}
    return {}


def embed_watermark(rgb: np.ndarray, payload: bytes) -> np.ndarray:
    """Mark ``rgb`` (uint8 (H, W, 3)) with the 8-byte ``payload``; returns a new uint8 array.

    Frames smaller than one tile (128 px) are marked too but cannot be read back.
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    return WatermarkEmbedder(check_payload(payload), width, height).embed(rgb)


def _whitened_luma(rgb: np.ndarray) -> np.ndarray:
    """Band-passed, locally normalised luma: float32 (H, W), about unit local RMS."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    residual = luma - cv2.GaussianBlur(luma, (0, 0), _BACKGROUND_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy = cv2.GaussianBlur(residual * residual, (0, 0), _LOCAL_ENERGY_SIGMA,
                              borderType=cv2.BORDER_REFLECT)
    # Weighting by 1/local RMS: texture both carries more mark and more host noise, and the
    # floor keeps near-flat areas (pure quantisation noise) from being amplified.
    return residual / np.sqrt(energy + 1.0)


def _fold(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum of whitened luma over all tiles: (float64 (T, T), number of tiles covered).

    Works in horizontal strips of :data:`_STRIP_ROWS` rows (plus a margin covering the filters'
    reach, so the result equals a whole-frame pass): memory stays a few float32 copies of one
    strip however tall the image is.
    """
    height, width = rgb.shape[:2]
    folded = np.zeros((TILE_SIZE, TILE_SIZE))
    pad_x = -width % TILE_SIZE
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        above = min(top, _STRIP_MARGIN)
        below = min(height - bottom, _STRIP_MARGIN)
        whitened = _whitened_luma(rgb[top - above:bottom + below])[above:above + bottom - top]
        pad_y = -whitened.shape[0] % TILE_SIZE
        if pad_y or pad_x:
            whitened = np.pad(whitened, ((0, pad_y), (0, pad_x)))
        tiles_y = whitened.shape[0] // TILE_SIZE
        tiles_x = whitened.shape[1] // TILE_SIZE
        folded += whitened.reshape(tiles_y, TILE_SIZE, tiles_x, TILE_SIZE).sum(axis=(0, 2), dtype=np.float64)
    return folded, height * width / TILE_SIZE**2


def _remove_block_component(folded: np.ndarray) -> np.ndarray:
    reps = TILE_SIZE // _BLOCK_PERIOD
    periodic = folded.reshape(reps, _BLOCK_PERIOD, reps, _BLOCK_PERIOD).mean(axis=(0, 2))
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


def _reading_from_soft(
    soft: np.ndarray, score: float, offset: tuple[int, int] | None, tiles: float
) -> WatermarkReading | None:
    payload = decode_payload(soft)
    if payload is None:
        return None
    agreement = float(np.mean((soft > 0) == encode_payload(payload).astype(bool)))
    return WatermarkReading(payload, agreement, score, offset, tiles)


def _read_folded(folded: np.ndarray, tiles: float) -> WatermarkReading:
    folded = _remove_block_component(folded)
    best, candidates = _sync_candidates(folded)
    for score, offset in candidates:
        reading = _reading_from_soft(_soft_coded_bits(folded, offset), score, offset, tiles)
        if reading is not None:
            return reading
    return WatermarkReading(None, 0.0, best, None, tiles)


def extract_watermark(rgb: np.ndarray) -> WatermarkReading:
    """Read the likeness watermark from ``rgb`` (uint8 (H, W, 3)).

    Returns a reading whose ``payload`` is None ("no mark") unless the pilot is found and the
    CRC-32 check of the decoded payload matches. Frames smaller than one tile read as no mark.
    """
    rgb = _check_rgb(rgb)
    if rgb.shape[0] < TILE_SIZE or rgb.shape[1] < TILE_SIZE:
        return WatermarkReading(None, 0.0, 0.0, None, 0.0)
    folded, tiles = _fold(rgb)
    return _read_folded(folded, tiles)


def extract_watermark_frames(frames: Iterable[np.ndarray]) -> WatermarkReading:
    """Read one watermark from many frames of one video (uint8 (H, W, 3) each).

    Two aggregates are built in one pass, in bounded memory:

    * the folded tiles of all frames summed (every frame is marked at the same tile phase, so
      the mark adds up while codec noise does not), decoded like a still;
    * per-frame soft bits, each read at that frame's own pilot peak (z >= 4.5) and weighted by
      the peak's strength. H.264 motion compensation drags an intra frame's mark along with
      moving content for the rest of its group of pictures; each frame still holds the
      payload, just at another phase.

    The second is tried only if the first finds no mark (one more CRC-32 trial). Frames smaller
    than one tile are skipped.
    """
    total: np.ndarray | None = None
    tiles = 0.0
    aligned_soft = np.zeros(CODED_BITS)
    best_frame: tuple[float, tuple[int, int] | None] = (0.0, None)
    for index, rgb in enumerate(frames):
        rgb = _check_rgb(rgb, name=f"frame {index}")
        if rgb.shape[0] < TILE_SIZE or rgb.shape[1] < TILE_SIZE:
            continue
        folded, frame_tiles = _fold(rgb)
        total = folded if total is None else total + folded
        tiles += frame_tiles
        cleaned = _remove_block_component(folded)
        _, peaks = _sync_candidates(cleaned, threshold=FRAME_SYNC_THRESHOLD, count=1)
        if peaks:
            score, offset = peaks[0]
            soft = _soft_coded_bits(cleaned, offset)
            spread = float(soft.std())
            if spread > 0.0:
                aligned_soft += soft * ((score - FRAME_SYNC_THRESHOLD + 0.5) / spread)
            if score > best_frame[0]:
                best_frame = (score, offset)
    if total is None:
        return WatermarkReading(None, 0.0, 0.0, None, 0.0)
    reading = _read_folded(total, tiles)
    if reading.payload is None and best_frame[1] is not None:
        aligned = _reading_from_soft(aligned_soft, best_frame[0], best_frame[1], tiles)
        if aligned is not None:
            return aligned
    return reading


__all__ = [
    "PAYLOAD_BYTES",
    "TILE_SIZE",
    "WATERMARK_ALGORITHM",
    "WatermarkEmbedder",
    "WatermarkReading",
    "embed_watermark",
    "extract_watermark",
    "extract_watermark_frames",
    "texture_mask",
    "video_encoder_options",
    "watermark_tile",
]
