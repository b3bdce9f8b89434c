"""Still images: round trips, orientation, pixel-mode conversion, and every kind of bad file."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from likeness.errors import MediaError
from likeness.media import encode_image, read_image, read_image_bytes, require_rgb, synthetic, write_image


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return synthetic.astronaut()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_corrupt_variants(tmp_path_factory.mktemp("bad"))


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_png_round_trip_is_exact(tmp_path: Path, portrait: np.ndarray) -> None:
    out = write_image(tmp_path / "face.png", portrait)
    back = read_image(out)
    assert back.dtype == np.uint8 and back.shape == portrait.shape
    np.testing.assert_array_equal(back, portrait)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_round_trip_stays_close(tmp_path: Path, portrait: np.ndarray, suffix: str) -> None:
    back = read_image(write_image(tmp_path / f"face{suffix}", portrait, quality=95))
    assert back.shape == portrait.shape
    assert np.abs(back.astype(np.int16) - portrait).mean() < 3.0


def test_quality_trades_size(portrait: np.ndarray) -> None:
    assert len(encode_image(portrait, suffix=".jpg", quality=30)) < 0.6 * len(
        encode_image(portrait, suffix=".jpg", quality=95)
    )


def test_write_is_atomic_and_overwrites(tmp_path: Path, portrait: np.ndarray) -> None:
    target = tmp_path / "nested" / "face.png"
    write_image(target, portrait)
    write_image(target, portrait[::2, ::2].copy())
    assert read_image(target).shape == (256, 256, 3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["face.png"]


def test_written_files_get_the_umask_permissions_not_a_temporary_files_0600(
    tmp_path: Path, portrait: np.ndarray
) -> None:
    import os

    previous = os.umask(0o022)
    try:
        target = write_image(tmp_path / "face.png", portrait)
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o644


def test_unsupported_output_suffix_writes_nothing(tmp_path: Path, portrait: np.ndarray) -> None:
    with pytest.raises(MediaError, match=r"face\.gif.*unsupported output format"):
        write_image(tmp_path / "face.gif", portrait)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (np.zeros((4, 4, 3), np.float32), "dtype uint8"),
        (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(H, W, 3\)"),
        ([[1, 2, 3]], "numpy uint8 array"),
    ],
)
def test_write_rejects_non_rgb(tmp_path: Path, bad: object, expected: str) -> None:
    with pytest.raises(MediaError, match=expected) as caught:
        write_image(tmp_path / "x.png", bad)  # type: ignore[arg-type]
    assert "x.png" in str(caught.value)
    with pytest.raises(MediaError, match=expected):
        require_rgb(bad)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[:20, :30] = (255, 0, 0)  # red block in the stored top-left corner
    image = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    image.save(path, format="JPEG", quality=98, exif=exif.tobytes())

    upright = read_image(path)
    assert upright.shape == (100, 60, 3)
    expected = np.rot90(stored, k=-1)
    assert np.abs(upright.astype(np.int16) - expected).mean() < 4.0
    assert upright[5, -5, 0] > 200  # the red block moved to the top-right


def test_grayscale_palette_and_cmyk_become_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(32, 48), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    back = read_image(tmp_path / "gray.png")
    assert back.shape == (32, 48, 3)
    for channel in range(3):
        np.testing.assert_array_equal(back[:, :, channel], gray)

    Image.fromarray(gray, mode="L").convert("P").save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").shape == (32, 48, 3)
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    red = read_image(tmp_path / "cmyk.jpg")
    assert red.shape == (10, 20, 3) and red[5, 10, 0] > 200 and red[5, 10, 1] < 60


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 16).astype(np.uint16).reshape(16, 64)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    back = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(back[:, :, 0], (ramp >> 8).astype(np.uint8))
    assert back[:, :, 0].min() == 0 and back[:, :, 0].max() == 255


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (10, 20, 30, 255)  # opaque left half
    rgba[:, 4:] = (10, 20, 30, 0)  # transparent right half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    back = read_image(tmp_path / "alpha.png")
    assert back.shape == (8, 8, 3)
    np.testing.assert_array_equal(back[:, :4], np.broadcast_to([10, 20, 30], (8, 4, 3)))
    np.testing.assert_array_equal(back[:, 4:], np.full((8, 4, 3), 255))


def test_read_image_bytes_matches_file_and_names_source(portrait: np.ndarray) -> None:
    blob = encode_image(portrait, suffix=".png")
    np.testing.assert_array_equal(read_image_bytes(blob), portrait)
    with pytest.raises(MediaError, match="upload-7.*not a readable image"):
        read_image_bytes(b"GIF89a but not really", source="upload-7")
    with pytest.raises(MediaError, match="empty"):
        read_image_bytes(b"", source="upload-8")


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("zero_byte_jpg", "empty file"),
        ("truncated_jpg", "truncated"),
        ("random_bytes_jpg", "not a readable image"),
        ("text_png", "not a readable image"),
        ("bomb_png", "too large"),
        ("truncated_mp4", "not a readable image"),
        ("audio_only_m4a", "not a readable image"),
    ],
)
def test_bad_files_raise_media_error_naming_the_file(bad_files: dict[str, Path], variant: str, reason: str) -> None:
    path = bad_files[variant]
    with pytest.raises(MediaError, match=reason) as caught:
        read_image(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="not a regular file"):
        read_image(tmp_path)


@pytest.mark.parametrize("side", [20_000, 9_000])
def test_decompression_bomb_refused_fast_without_allocating(tmp_path: Path, side: int) -> None:
    # 20000^2 trips Pillow's own guard; 9000^2 = 81 MP is under Pillow's but over ours (64 MP).
    path = tmp_path / f"bomb{side}.png"
    path.write_bytes(_png_header_only(side, side))
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(MediaError, match="too large"):
            read_image(path)
        elapsed = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 8 * 1024 * 1024  # the pixels would need side*side*3 bytes (>= 243 MB)


def test_max_pixels_is_honoured(tmp_path: Path, portrait: np.ndarray) -> None:
    path = write_image(tmp_path / "face.png", portrait)
    with pytest.raises(MediaError, match="512x512"):
        read_image(path, max_pixels=512 * 511)
    assert read_image(path, max_pixels=512 * 512).shape == (512, 512, 3)


def test_truncated_png_is_refused(tmp_path: Path, portrait: np.ndarray) -> None:
    blob = encode_image(portrait, suffix=".png")
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MediaError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_corrupt_exif_does_not_hide_the_pixels(tmp_path: Path, portrait: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(portrait).save(buffer, format="JPEG", quality=95, exif=b"Exif\x00\x00garbage-block")
    (tmp_path / "odd_exif.jpg").write_bytes(buffer.getvalue())
    assert read_image(tmp_path / "odd_exif.jpg").shape == (512, 512, 3)


def _with_inflating_chunk(kind: bytes) -> bytes:
    """An 8x8 PNG with a zTXt (or iCCP) chunk of 20 kB that inflates to 20 MB, past Pillow's
    ``MAX_TEXT_CHUNK``: Pillow refuses it with a ValueError, as it should."""
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    body = (b"Comment\x00\x00" if kind == b"zTXt" else b"icc\x00\x00") + zlib.compress(bytes(20_000_000), 9)
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return plain.getvalue()[:33] + chunk + plain.getvalue()[33:]


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_a_png_whose_metadata_inflates_too_far_is_named_as_such_not_corrupt(kind: bytes) -> None:
    # It was "corrupt image: Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK".
    with pytest.raises(MediaError, match=r"metadata too large") as refused:
        read_image_bytes(_with_inflating_chunk(kind), source="still.png")
    assert "still.png" in str(refused.value) and "corrupt" not in str(refused.value)
