"""Still-image codec I/O: the only place the product decodes or encodes image files.

Every reader returns ``uint8`` RGB ``(H, W, 3)``; every failure a user can cause (missing, empty,
corrupt, truncated, unsupported, too large) raises :class:`likeness.errors.MediaError` naming the
file and the reason. The pixel count is checked from the header *before* any pixel is decoded, so
a decompression bomb is refused without allocating its pixels.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from likeness.media import read_image, write_image
    >>> from likeness.media.synthetic import grace_hopper_path
    >>> rgb = read_image(grace_hopper_path())
    >>> rgb.dtype, rgb.ndim
    (dtype('uint8'), 3)
    >>> out = Path(tempfile.mkdtemp()) / "portrait.png"
    >>> write_image(out, rgb) == out
    True
    >>> read_image(out).shape == rgb.shape
    True
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from likeness.checks import check_rgb
from likeness.durable import write_atomic
from likeness.errors import MediaError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "READABLE_IMAGE_FORMATS",
    "WRITABLE_IMAGE_SUFFIXES",
    "encode_image",
    "read_image",
    "read_image_bytes",
    "require_rgb",
    "write_image",
]

DEFAULT_MAX_PIXELS = 64_000_000

# Pillow format ids we accept. An allowlist keeps exotic, rarely audited decoders (PSD, EPS via
# Ghostscript, ...) away from untrusted uploads. (Multi-picture phone JPEGs open as JPEG.) AVIF
# is Pillow's own plugin (libavif in its wheels); HEIC would need pillow-heif, which is not shipped.
READABLE_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "AVIF")

WRITABLE_IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

# Background for images with transparency: white is what a browser or a gallery shows behind them.
_ALPHA_BACKGROUND = 255


def require_rgb(rgb: object, *, name: str = "image") -> np.ndarray:
    """Check that ``rgb`` is a ``uint8`` RGB array ``(H, W, 3)`` with ``H, W >= 1``.

    Returns the array unchanged; raises :class:`MediaError` (path ``None``) saying what was
    expected and what came (``likeness.checks.check_rgb``).
    """
    return check_rgb(rgb, name=name)


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB ``uint8 (H, W, 3)``, upright (EXIF orientation applied).

    Grayscale, palette, CMYK, RGBA (composited over white) and 16-bit images are converted to
    8-bit RGB. ``max_pixels`` bounds ``width * height`` and is checked from the header before
    decoding. Raises :class:`MediaError` naming ``path`` on missing, zero-byte, corrupt,
    truncated, unsupported or too large files.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise MediaError(path, "empty file (0 bytes)")
        with open(path, "rb") as stream:
            return _decode(stream, source=path, max_pixels=max_pixels)
    except PermissionError as exc:
        raise MediaError(path, "permission denied") from exc
    except IsADirectoryError as exc:  # pragma: no cover - guarded by is_file above
        raise MediaError(path, "not a regular file") from exc


def read_image_bytes(encoded: bytes, *, source: str = "<upload>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an in-memory image (e.g. an HTTP upload) exactly like :func:`read_image`.

    ``source`` is the name reported in a :class:`MediaError`.
    """
    if not isinstance(encoded, (bytes, bytearray, memoryview)):
        raise MediaError(source, f"expected bytes, got {type(encoded).__name__}")
    if len(encoded) == 0:
        raise MediaError(source, "empty file (0 bytes)")
    return _decode(io.BytesIO(bytes(encoded)), source=source, max_pixels=max_pixels)


def _decode(stream: BinaryIO, *, source: str | Path, max_pixels: int) -> np.ndarray:
    if max_pixels < 1:
        raise MediaError(source, f"max_pixels must be >= 1, got {max_pixels}")
    try:
        # Image.open only parses the header; pixels are decoded by load() below.
        with _opened(stream) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise MediaError(source, f"invalid dimensions {width}x{height} in header")
            if width * height > max_pixels:
                raise MediaError(
                    source,
                    f"image too large: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
                )
            image.load()
            upright = _apply_exif_orientation(image)
            return _to_rgb8(upright, source=source)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires inside Image.open for headers beyond its global limit.
        raise MediaError(source, f"image too large (decompression bomb): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(
            source,
            f"not a readable image (corrupt file or unsupported format; accepted: {', '.join(READABLE_IMAGE_FORMATS)})",
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        # Pillow reports truncation and corrupt chunks as OSError/SyntaxError/ValueError.
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            raise MediaError(source, f"truncated image: {reason}") from exc
        if "decompressed data too large" in reason.lower():
            # PNG text or ICC profile chunks (zTXt, iTXt, iCCP) that inflate past Pillow's
            # MAX_TEXT_CHUNK: a deliberate bomb or a bloated export, not a damaged file.
            raise MediaError(
                source,
                "image metadata too large: a text or colour-profile chunk inflates past "
                f"{PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MiB",
            ) from exc
        raise MediaError(source, f"corrupt image: {reason}") from exc
    except MemoryError as exc:
        raise MediaError(source, "image too large to decode in available memory") from exc
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise assorted types on hostile input
        raise MediaError(source, f"corrupt image: {type(exc).__name__}: {exc}") from exc


def _opened(stream: BinaryIO) -> Image.Image:
    """``Image.open`` (header only) with Pillow's decompression-bomb *warning* raised as an error.

    Pillow warns from 89 M pixels and refuses from 179 M; the warning would reach a user's
    terminal as a raw Python warning before our own limit (``max_pixels``) refuses the file by
    name. As an error it becomes that ``MediaError`` instead, with any ``max_pixels``. An APNG
    whose acTL is invalid (a count of 0) is read as its still image, as browsers show it, without
    Pillow's "Invalid APNG" warning. Only the header parse sits inside the filter, so the global
    filter list is changed for microseconds.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", "Invalid APNG", UserWarning)
        return Image.open(stream, formats=READABLE_IMAGE_FORMATS)


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make a good image unreadable
        return image


def _to_rgb8(image: Image.Image, *, source: str | Path) -> np.ndarray:
    """Convert any Pillow mode to a contiguous ``uint8 (H, W, 3)`` array."""
    mode = image.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float grayscale: Pillow's convert() clips to 0..255, which would turn most
        # 16-bit images white, so scale from the type's full range instead.
        values = np.asarray(image)
        if mode == "F":
            gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        elif values.dtype.itemsize >= 2 and (mode.startswith("I;16") or values.max(initial=0) > 255):
            gray = (np.clip(values, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
        else:
            gray = np.clip(values, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        blended = rgba[:, :, :3] * alpha + _ALPHA_BACKGROUND * (1.0 - alpha)
        return np.ascontiguousarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    try:
        converted = image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise MediaError(source, f"unsupported pixel mode {mode!r}") from exc
    return np.ascontiguousarray(np.asarray(converted, dtype=np.uint8))


def encode_image(rgb: np.ndarray, *, suffix: str = ".png", quality: int = 95) -> bytes:
    """Encode RGB ``uint8 (H, W, 3)`` to PNG, JPEG or WebP bytes chosen by ``suffix``.

    ``quality`` (1..100) applies to JPEG and WebP; PNG is lossless. No metadata is written
    (pixels are already upright, so no EXIF orientation).
    """
    require_rgb(rgb)
    image_format = WRITABLE_IMAGE_SUFFIXES.get(suffix.lower())
    if image_format is None:
        raise MediaError(
            None,
            f"unsupported output format {suffix!r}; expected one of {', '.join(sorted(WRITABLE_IMAGE_SUFFIXES))}",
        )
    if not 1 <= int(quality) <= 100:
        raise MediaError(None, f"quality must be in 1..100, got {quality}")
    image = Image.fromarray(np.ascontiguousarray(rgb))
    buffer = io.BytesIO()
    if image_format == "PNG":
        # Level 3 is ~3x faster than Pillow's default 6 for ~5% larger files; facesets write
        # thousands of crops.
        image.save(buffer, format="PNG", compress_level=3)
    elif image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=int(quality), optimize=False)
    else:
        image.save(buffer, format="WEBP", quality=int(quality), method=4)
    return buffer.getvalue()


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, *, quality: int = 95) -> Path:
    """Write RGB ``uint8 (H, W, 3)`` to ``path`` as PNG/JPEG/WebP by suffix, atomically.

    The bytes go to a temporary file in the same folder which is then renamed over ``path``, so
    a reader never sees a half-written image and a failure leaves no file. Parent folders are
    created. Returns ``path``.
    """
    path = Path(path)
    try:
        encoded = encode_image(rgb, suffix=path.suffix, quality=quality)
    except MediaError as exc:
        raise MediaError(path, exc.reason) from exc
    write_bytes_atomic(path, encoded)
    return path


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` whole or not at all (:func:`likeness.durable.write_atomic`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(path, f"cannot create output: {exc.strerror or exc}") from exc
    write_atomic(path, payload, error=lambda exc: MediaError(path, f"cannot write output: {exc.strerror or exc}"))
