"""Uploads: streamed to disk part by part, with size limits, the type sniffed from the bytes,
and the file name sanitised. Nothing is buffered whole in memory.

The request body is ``multipart/form-data`` with small text fields (e.g. ``csrf_token``)
before one file part named ``file``. The type is decided by the file's first bytes
(``likeness.verify.pipeline.sniff``), never by its name or the declared content type, and the
limit for that type (``Settings.upload_max_image_bytes`` / ``upload_max_video_bytes``) is
enforced while the bytes arrive.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from likeness.media.file_kind import SNIFF_BYTES, FileKind, sniff, unreadable_reason
from likeness.service.errors import EmptyFile, NoFile, ServiceError, UnsupportedMedia, UploadTimedOut, UploadTooLarge

if TYPE_CHECKING:  # a TypedDict the package defines only for type checkers
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def sanitise_filename(name: str | None, *, fallback: str = "upload") -> str:
    """A file name safe to create in a folder of ours: no folders, no traversal, no control or
    shell characters, no leading dot, at most 120 characters (Hangul and other letters kept).

    >>> sanitise_filename("../../etc/passwd")
    'passwd'
    >>> sanitise_filename("뮤비 컷 #1.mp4")
    '뮤비 컷 _1.mp4'
    """
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").split("/")[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text).strip(" ._")
    if not text:
        return fallback
    if len(text) > 120:
        stem, dot, suffix = text.rpartition(".")
        text = (stem[:110] + dot + suffix[:9]) if dot and len(suffix) <= 9 else text[:120]
    return text


@dataclass(frozen=True)
class UploadLimits:
    image_bytes: int
    video_bytes: int

    @property
    def largest(self) -> int:
        return max(self.image_bytes, self.video_bytes)

    def for_type(self, media_type: str) -> int:
        return self.image_bytes if media_type == "image" else self.video_bytes


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    original_name: str
    media_type: str
    container: str
    size_bytes: int
    fields: dict[str, str]


class _Form:
    """Callbacks for python-multipart's streaming parser: small fields in memory, the one file
    part straight to disk."""

    def __init__(
        self, folder: Path, limits: UploadLimits, before_file: Callable[[dict[str, str]], None] | None
    ) -> None:
        self.folder, self.limits, self.before_file = folder, limits, before_file
        self.fields: dict[str, str] = {}
        self.headers: dict[bytes, bytes] = {}
        self._field_name = b""
        self._header_value = b""
        self._name: str | None = None
        self._filename: str | None = None
        self._value = bytearray()
        self._file: BinaryIO | None = None
        self._head = bytearray()
        self._limit: int | None = None
        self.size = 0
        self.kind: FileKind | None = None
        self.path: Path | None = None
        self.original_name: str | None = None
        self.error: ServiceError | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers, self._name, self._filename = {}, None, None
        self._field_name, self._header_value = b"", b""
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self._field_name.lower()] = self._header_value
        self._field_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = filename.decode("utf-8", "replace") if filename is not None else None
        if self._filename == "" and self._name == "file":  # the browser's file field, left empty
            raise NoFile("choose a file: the form field 'file' is empty")
        if self._filename is not None:
            if self._name != "file" or self.path is not None:
                raise ServiceError("send exactly one file, in the form field 'file'")
            if self.before_file is not None:
                self.before_file(dict(self.fields))
            self.original_name = sanitise_filename(self._filename)
            self.path = self.folder / self.original_name
            self._file = open(self.path, "xb")  # noqa: SIM115 (closed at part end or on failure)
        elif len(self.fields) >= MAX_FIELDS:
            raise ServiceError("too many form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                raise ServiceError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")
            return
        self.size += len(chunk)
        if self._limit is None:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._decide_type()
        if self._limit is not None and self.size > self._limit:
            media_type = (self.kind.media_type if self.kind is not None else None) or "file"
            what = {"image": "an image", "video": "a video"}.get(media_type, "a file")
            raise UploadTooLarge(f"{self.original_name}: {what} larger than {self._limit} bytes is refused")
        if self.size > self.limits.largest:
            raise UploadTooLarge(f"{self.original_name}: larger than {self.limits.largest} bytes")
        self._file.write(chunk)

    def _decide_type(self) -> None:
        self.kind = sniff(bytes(self._head))
        if self.kind.media_type is None:
            cause = {"cause": "heic"} if self.kind.container == "heic" else None
            raise UnsupportedMedia(f"{self.original_name}: {unreadable_reason(self.kind)}", members=cause)
        self._limit = self.limits.for_type(self.kind.media_type)

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._limit is None:  # shorter than the sniffing window
                if not self._head:
                    raise EmptyFile(f"{self.original_name}: the file is empty (0 bytes)")
                self._decide_type()
        elif self._name is not None:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class TransferFloor:
    """At least ``bytes_per_s`` averaged over every ``window_s`` seconds of an upload, once its
    first ``window_s`` have passed: a client dripping a byte now and then would otherwise hold
    an upload slot (and its part file) until the upload's deadline. A sliding window, not the
    average since the start, so a fast first burst buys no time to drip after it.

    Times are the caller's clock (``time.monotonic()``), so the rule is checked without sleeping:

    >>> floor = TransferFloor(bytes_per_s=100, window_s=10, started=0.0)
    >>> floor.deadline()  # nothing received: the first window is all it gets
    10.0
    >>> floor.received(5.0, 5000)  # 50 s worth of the floor in one burst ...
    >>> floor.deadline()  # ... counts until the burst leaves the window
    15.0
    """

    bytes_per_s: float
    window_s: float
    started: float
    #: ``(time, bytes received by then)``, oldest first: the first at or before a window's start
    #: and the later ones, one per ``window_s / 30`` at most (a later one in that span replaces it)
    _marks: deque[tuple[float, int]] = field(default_factory=deque, init=False)

    def __post_init__(self) -> None:
        if self.bytes_per_s <= 0 or self.window_s <= 0:
            raise ValueError("a transfer floor needs a rate and a window above 0")
        self._marks.append((self.started, 0))

    def received(self, now: float, count: int) -> None:
        """``count`` more bytes arrived at ``now``."""
        total = self._marks[-1][1] + count
        if len(self._marks) >= 2 and now - self._marks[-2][0] < self.window_s / 30:
            self._marks[-1] = (now, total)  # its bytes counted as come now: longer in the window, the lenient side
        else:
            self._marks.append((now, total))
        while len(self._marks) >= 2 and self._marks[1][0] <= now - self.window_s:
            self._marks.popleft()

    def deadline(self) -> float:
        """When, if no byte comes before, the last ``window_s`` seconds will hold less than the
        floor: ``window_s`` after the first mark that counts towards it."""
        total, need = self._marks[-1][1], self.bytes_per_s * self.window_s
        # (the last mark holds ``total``, more than ``total - need`` for any floor above 0)
        first = next(when for when, by_then in self._marks if by_then > total - need)
        return max(self.started, first) + self.window_s

    def refusal(self) -> str:
        return f"the upload came slower than {self.bytes_per_s / 1024:g} KiB/s over {self.window_s:g} s"


async def receive_upload(
    content_type: str | None,
    body: AsyncIterator[bytes],
    folder: Path,
    limits: UploadLimits,
    *,
    declared_length: int | None = None,
    before_file: Callable[[dict[str, str]], None] | None = None,
    timeout_s: float | None = None,
    floor: TransferFloor | None = None,
    idle_s: float | None = None,
) -> StoredUpload:
    """Stream a multipart body's file part into ``folder`` (created, and removed again when the
    upload is refused). ``before_file(fields)`` sees the text fields sent before the file and
    may refuse (e.g. a CSRF check) before any byte of the file is written. With ``timeout_s``
    a body not received whole in that time is refused (``UploadTimedOut``), also while no byte
    comes: a client that sends a byte now and then would hold its part file for ever. With
    ``floor`` a body arriving slower than it is refused the same way when that shows; with
    ``idle_s``, one that sends nothing for that long."""
    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise ServiceError("send the file as multipart/form-data, in the form field 'file'")
    if declared_length is not None and declared_length > limits.largest + 64 * 1024:
        raise UploadTooLarge(f"the request body is larger than {limits.largest} bytes")
    if len(boundary) > 200:  # RFC 2046 allows 70 characters; the parser refuses far longer ones
        raise ServiceError("the multipart boundary is too long")
    folder.mkdir(parents=True, exist_ok=False)
    form = _Form(folder, limits, before_file)
    try:
        parser = MultipartParser(boundary, form.callbacks(), max_size=limits.largest + 64 * 1024)
        async for chunk in _until(body, timeout_s, floor, idle_s):
            parser.write(chunk)
        parser.finalize()
        form.close()
        if form.path is None:
            raise NoFile("no file in the form field 'file'")
        if form.kind is None or form.kind.media_type is None:
            raise ServiceError("no file in the form field 'file'")
    except ServiceError:
        form.close()
        _remove(folder)
        raise
    except (MultipartParseError, FormParserError, ClientDisconnect, OSError, ValueError) as exc:
        # malformed multipart, a client that went away, a disk that filled up
        form.close()
        _remove(folder)
        raise ServiceError(f"could not read the upload: {exc}") from None
    return StoredUpload(
        form.path,
        form.original_name or form.path.name,
        form.kind.media_type,
        form.kind.container or "",
        form.size,
        form.fields,
    )


async def _until(
    body: AsyncIterator[bytes],
    timeout_s: float | None,
    floor: TransferFloor | None = None,
    idle_s: float | None = None,
) -> AsyncIterator[bytes]:
    """``body``'s chunks while ``timeout_s`` lasts, they come no slower than ``floor`` and no
    more than ``idle_s`` apart (all of them without any of the three)."""
    if timeout_s is None and floor is None and idle_s is None:
        async for chunk in body:
            yield chunk
        return
    deadline = time.monotonic() + timeout_s if timeout_s is not None else float("inf")
    chunks = aiter(body)
    while True:
        now = time.monotonic()
        due = {"deadline": deadline}
        if floor is not None:
            due["floor"] = floor.deadline()
        if idle_s is not None:
            due["idle"] = now + idle_s
        reason = min(due, key=lambda name: due[name])
        try:
            chunk = await asyncio.wait_for(anext(chunks), timeout=max(0.0, due[reason] - now))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTimedOut(_timed_out(reason, timeout_s, floor, idle_s)) from None
        if floor is not None:
            floor.received(time.monotonic(), len(chunk))
        yield chunk


def _timed_out(reason: str, timeout_s: float | None, floor: TransferFloor | None, idle_s: float | None) -> str:
    if reason == "floor" and floor is not None:
        return floor.refusal()
    if reason == "idle":
        return f"no byte of the upload came for {idle_s:g} s"
    return f"the upload was not received whole within {timeout_s:g} s"


def new_upload_folder(uploads_root: Path) -> Path:
    return uploads_root / uuid.uuid4().hex


def _remove(folder: Path) -> None:
    for child in folder.glob("*"):
        try:
            child.unlink()
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass
