"""Library warnings never reach the terminal as Python warning lines: an image over the pixel
limit is a ``MediaError`` naming the file, and any other warning during a command is a notice."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from likeness.cli import app
from likeness.errors import MediaError
from likeness.media import read_image

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def _declared_png(path: Path, width: int, height: int) -> Path:
    """A PNG of a few hundred bytes whose header declares ``width x height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


# 10000 x 10000 = 100 M pixels: above Pillow's warning limit (89 M), below its hard limit (179 M).
BIG = (10_000, 10_000)


@pytest.fixture
def as_outside_pytest():
    """Warning filters as a user's terminal has them (pytest turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("default", category=Image.DecompressionBombWarning)
        warnings.filterwarnings("default", message="a library speaks", category=UserWarning)
        yield


def test_read_image_refuses_by_name_without_a_warning(tmp_path, as_outside_pytest):
    path = _declared_png(tmp_path / "poster.png", *BIG)
    with warnings.catch_warnings(record=True) as caught:
        with pytest.raises(MediaError) as refused:
            read_image(path, max_pixels=200_000_000)  # even where our own limit would allow it
    assert "poster.png" in str(refused.value) and "too large" in refused.value.reason
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_verify_of_a_huge_declared_png_prints_no_python_warning(consent_world, tmp_path, as_outside_pytest):
    path = _declared_png(tmp_path / "poster.png", *BIG)
    result = CliRunner().invoke(
        app, ["--home", str(consent_world.workspace.home), "verify", str(path), "--workers", "1"]
    )
    output = result.stdout + result.stderr
    assert "Warning" not in output and "warnings.warn" not in output, output
    assert "poster.png" in result.stdout and "too large" in result.stdout
    assert result.exit_code == 1  # the file got no verdict


def test_other_warnings_during_a_command_are_one_line_notices(consent_world, tmp_path, monkeypatch, as_outside_pytest):
    import likeness.verify.scan as scan

    original = scan.verify_many

    def noisy(*args, **kwargs):
        warnings.warn("a library speaks\n  over two lines", UserWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(scan, "verify_many", noisy)
    result = CliRunner().invoke(
        app, ["--home", str(consent_world.workspace.home), "verify", str(tmp_path), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "notice: a library speaks over two lines" in result.stderr
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_error_messages_with_brackets_are_printed_as_text():
    import typer

    from likeness.cli.common import fail

    runner_app = typer.Typer()

    @runner_app.command()
    def broken() -> None:
        fail("x: [Errno 2] no such file [/tmp/a]")

    result = CliRunner().invoke(runner_app, [])
    assert result.exit_code == 1
    assert "[Errno 2] no such file [/tmp/a]" in result.stderr and "Traceback" not in result.output
