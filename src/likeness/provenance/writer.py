"""The labelled writer: the only way synthetic pixels leave the product.

``LabelledWriter(workspace)`` takes an ``Authorization`` (issued by the policy engine) and a
``RenderJob`` and, for every output:

1. checks the authorization is genuine and still valid (``authz.recheck()``) and counts the
   render against the grant (``authz.consume_render(job_id)``);
2. burns in the visible "AI 생성 · AI-generated" label (omitted only when the job asks for
   an unlabelled look *and* the grant allows it) and embeds the invisible watermark whose
   payload identifies the job;
3. encodes to a temporary file beside the output, signs a C2PA manifest into a second
   temporary file, hashes it, appends ``render.completed`` to the ledger, and renames it into
   place without overwriting (a hard link, else an exclusive create then rename).

Any failure at any step removes the temporaries: there is never a partial or unlabelled
output. A failure after the render was counted (signing, encoding, the ledger, an abort, a
render that swapped no face) gives the slot back (``authz.refund_render(job_id, reason)``): only
outputs that were placed use up a grant's render limit. Render code receives pixels-in, nothing-out objects (``LabelledVideo.write`` takes a
frame and returns nothing); it never gets a path-writing encoder.

Example::

    writer = LabelledWriter(workspace)
    job = RenderJob.new("image")
    result = writer.write_image(authz, job, rgb, Path("out/shot.jpg"))
    result.sha256, result.watermark_payload_hex
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from likeness.checks import check_rgb
from likeness.consent import Authorization, require_authorization
from likeness.digests import sha256_file
from likeness.durable import commit_temporary, remove_stale_temporaries
from likeness.errors import ConsentError, MediaError, ProvenanceError
from likeness.provenance.c2pa_manifest import ConsentClaim, build_manifest, sign_file
from likeness.provenance.certificates import SigningSetup, ensure_signing_setup
from likeness.provenance.visible_label import PLACEMENTS, Box, FaceTag, Placement, VisibleLabel
from likeness.provenance.watermark import WATERMARK_ALGORITHM, WatermarkEmbedder, video_encoder_options

if TYPE_CHECKING:
    from likeness.media import ColourTags

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_SUFFIXES = (".mp4",)
RECHECK_EVERY_FRAMES = 250  # revocation stops a running video job within ~10 s of footage
ROTATIONS = (0, 90, 180, 270)

JobKind = Literal["image", "video"]


@dataclass(frozen=True)
class RenderJob:
    """One requested output. ``job_id`` is a uuid4 hex; the watermark payload derives from it.

    ``unlabelled_requested``: the caller asks for no visible label; honoured only when the
    authorization's grant allows it (otherwise the write is refused).
    """

    job_id: str
    kind: JobKind
    unlabelled_requested: bool = False
    label_placement: Placement = "safe"

    def __post_init__(self) -> None:
        if not (isinstance(self.job_id, str) and len(self.job_id) == 32 and _is_hex(self.job_id)):
            raise ProvenanceError(f"job_id must be 32 lowercase hex characters (uuid4 hex), got {self.job_id!r}")
        if self.kind not in ("image", "video"):
            raise ProvenanceError(f"job kind must be 'image' or 'video', got {self.kind!r}")
        if self.label_placement not in PLACEMENTS:
            raise ProvenanceError(
                f"label placement must be one of {', '.join(PLACEMENTS)}; got {self.label_placement!r}"
            )

    @classmethod
    def new(
        cls, kind: JobKind, *, unlabelled_requested: bool = False, label_placement: Placement = "safe"
    ) -> RenderJob:
        """A job with a fresh uuid4 id."""
        return cls(uuid.uuid4().hex, kind, unlabelled_requested, label_placement)

    @property
    def watermark_payload(self) -> bytes:
        """8 bytes: the first 8 of sha256("likeness-render-job:" + job_id)."""
        return watermark_payload_for(self.job_id)


def watermark_payload_for(job_id: str) -> bytes:
    """The 8-byte watermark payload a render job embeds (looked up in the ledger on verify)."""
    return hashlib.sha256(f"likeness-render-job:{job_id}".encode("ascii")).digest()[:8]


@dataclass(frozen=True)
class RenderOutput:
    """What the writer produced and recorded."""

    path: Path
    sha256: str
    job_id: str
    watermark_payload_hex: str
    labelled: bool
    manifest_bytes: int
    frames: int
    ledger_seq: int | None = None


class LabelledWriter:
    """Writes authorized synthetic media: labelled, watermarked, C2PA-signed, ledgered."""

    def __init__(self, workspace: Any) -> None:
        self._workspace = workspace
        self._setup: SigningSetup | None = None

    @property
    def signing_dir(self) -> Path:
        return Path(self._workspace.keys_dir) / "c2pa"

    def signing_setup(self, authz: Authorization) -> SigningSetup:
        """The workspace's C2PA signing setup, created for the grantee org on first use with
        the display name its ``org.created`` event recorded (``org_altered`` when the row's
        slug or name was edited: the name goes into the certificates)."""
        if self._setup is None:
            self._setup = ensure_signing_setup(
                self.signing_dir, self._workspace.registry.org_display_name(authz.org_id)
            )
        return self._setup

    def write_image(
        self,
        authz: Authorization,
        job: RenderJob,
        rgb: np.ndarray,
        out_path: Path,
        *,
        source_path: Path | None = None,
        quality: int = 95,
        faces: Sequence[Box] = (),
    ) -> RenderOutput:
        """Label, watermark, encode (by suffix: JPEG/PNG/WebP), sign, record and place ``rgb``.

        ``rgb``: uint8 (H, W, 3). ``source_path``: the target image a face was swapped into
        (parent ingredient, ``c2pa.edited``); without it the output is ``c2pa.created``.
        ``faces``: face boxes ``(x0, y0, x1, y1)`` the visible label keeps clear of.
        """
        require_authorization(authz, step="render")
        _require_job(job, "image")
        out_path = _check_out_path(out_path, IMAGE_SUFFIXES)
        height, width = _check_rgb(rgb)
        labelled = _labelled(authz, job)
        from likeness.media import write_image

        authz.recheck()
        setup = self.signing_setup(authz)
        authz.consume_render(job.job_id)
        temps = _Temporaries(out_path, job.job_id)
        try:
            marked = _mark(rgb, job, labelled, width, height, faces)
            write_image(temps.unsigned, marked, quality=quality)
            return self._finish(
                authz, job, setup, temps, out_path, source_path, labelled, frames=1, width=width, height=height
            )
        except BaseException as exc:
            refund_render(authz, job.job_id, failure_reason(exc))
            raise
        finally:
            temps.remove()

    def open_video(
        self,
        authz: Authorization,
        job: RenderJob,
        out_path: Path,
        *,
        width: int,
        height: int,
        fps: float | Fraction,
        audio_source: Path | None = None,
        source_path: Path | None = None,
        rotation: int = 0,
        colour: ColourTags | None = None,
    ) -> LabelledVideo:
        """Start a labelled MP4: use as a context manager and ``.write(rgb)`` each frame.

        ``width`` x ``height`` is the size of the frames as *shown* (upright); odd sizes are
        fine (the encoder pads one replicated column/row, ``LabelledVideo.padded`` says so).
        ``rotation`` (0, 90, 180 or 270 degrees counter-clockwise, as
        ``likeness.media.VideoInfo.rotation``) keeps a source's display matrix: frames are
        labelled upright, turned back to the source's stored orientation, watermarked there
        (where verification reads them) and encoded with the same display rotation, so the file
        is stored and shown like its source. ``colour`` (``ColourTags.of(probe_video(source))``)
        keeps the source's colour description; default BT.709.

        On a clean exit the video is signed, recorded and placed; on an exception (or
        ``abort()``) nothing is left behind. ``audio_source``'s audio is copied unchanged;
        ``source_path`` (the target footage) becomes the C2PA parent ingredient.
        """
        require_authorization(authz, step="render")
        _require_job(job, "video")
        out_path = _check_out_path(out_path, VIDEO_SUFFIXES)
        if not (isinstance(width, int) and isinstance(height, int)) or width < 2 or height < 2:
            raise MediaError(out_path, f"video size must be integers >= 2, got {width!r}x{height!r}")
        if not float(fps) > 0:
            raise MediaError(out_path, f"fps must be positive, got {fps!r}")
        if isinstance(rotation, bool) or not isinstance(rotation, int) or rotation % 360 not in ROTATIONS:
            raise MediaError(out_path, f"rotation must be one of {ROTATIONS} degrees, got {rotation!r}")
        labelled = _labelled(authz, job)
        authz.recheck()
        setup = self.signing_setup(authz)
        authz.consume_render(job.job_id)
        try:
            return LabelledVideo(
                self,
                authz,
                job,
                setup,
                out_path,
                width=width,
                height=height,
                fps=fps,
                audio_source=audio_source,
                source_path=source_path,
                labelled=labelled,
                rotation=rotation % 360,
                colour=colour,
            )
        except BaseException as exc:
            refund_render(authz, job.job_id, failure_reason(exc))
            raise

    def _finish(
        self,
        authz: Authorization,
        job: RenderJob,
        setup: SigningSetup,
        temps: _Temporaries,
        out_path: Path,
        source_path: Path | None,
        labelled: bool,
        *,
        frames: int,
        width: int,
        height: int,
        extra: dict[str, Any] | None = None,
    ) -> RenderOutput:
        manifest = build_manifest(
            title=out_path.name,
            consent=ConsentClaim.from_authorization(authz),
            watermark_algorithm=WATERMARK_ALGORITHM,
            watermark_payload=job.watermark_payload,
            job_id=job.job_id,
            composite=source_path is not None,
        )
        manifest_bytes = sign_file(temps.unsigned, temps.signed, manifest, setup, parent=source_path)
        digest = sha256_file(temps.signed)
        # Last check before the output becomes real: a revocation during encoding still bites.
        authz.recheck()
        # Another render may have taken the name since the job started: keep both, never overwrite.
        if out_path.exists():
            out_path = _job_named(out_path, job.job_id)
        event = authz.record(
            "render.completed",
            {
                "job_id": job.job_id,
                "output_sha256": digest,
                "output_name": out_path.name,
                "watermark_payload": job.watermark_payload.hex(),
                "watermark_algorithm": WATERMARK_ALGORITHM,
                "c2pa": True,
                "labelled": labelled,
                "kind": job.kind,
                "frames": frames,
                "width": width,
                "height": height,
                "source_name": source_path.name if source_path is not None else None,
                **(extra or {}),
            },
        )
        out_path = _place_new(temps.signed, out_path, job.job_id)
        return RenderOutput(
            path=out_path,
            sha256=digest,
            job_id=job.job_id,
            watermark_payload_hex=job.watermark_payload.hex(),
            labelled=labelled,
            manifest_bytes=manifest_bytes,
            frames=frames,
            ledger_seq=getattr(event, "seq", None),
        )


class LabelledVideo:
    """An open labelled video: ``write(rgb)`` frames, then close (or leave the ``with``)."""

    def __init__(
        self,
        writer: LabelledWriter,
        authz: Authorization,
        job: RenderJob,
        setup: SigningSetup,
        out_path: Path,
        *,
        width: int,
        height: int,
        fps: float | Fraction,
        audio_source: Path | None,
        source_path: Path | None,
        labelled: bool,
        rotation: int = 0,
        colour: ColourTags | None = None,
    ) -> None:
        from likeness.media import VideoEncoder

        self._writer, self._authz, self._job, self._setup = writer, authz, job, setup
        self.out_path, self.width, self.height, self.labelled = out_path, width, height, labelled
        self.rotation = rotation
        self._source_path = source_path
        # Stored orientation: display = np.rot90(stored, k), so stored = np.rot90(display, -k).
        self._quarter_turns = rotation // 90
        stored_width, stored_height = (height, width) if self._quarter_turns % 2 else (width, height)
        # The watermark pattern is built once per size here, the label at the first frame: neither
        # per frame. The label is placed at the first frame, clear of the faces that frame names, and stays
        # there; the second, smaller label (face tag) follows the synthetic face.
        self._label: VisibleLabel | None = None
        self._tag: FaceTag | None = None
        self._fps = float(fps)
        # Anchored: the mark follows a camera pan, so a platform's re-encode keeps it in P and B
        # frames (docs/watermark.md, "Anchored marks").
        self._embedder = WatermarkEmbedder(job.watermark_payload, stored_width, stored_height, anchored=True)
        self._temps = _Temporaries(out_path, job.job_id)
        self._temps.remove()  # what a killed earlier run of this job (a resume) left behind
        self.frames = 0
        self.result: RenderOutput | None = None
        self._closed = False
        try:
            self._encoder = VideoEncoder(
                self._temps.unsigned,
                width=stored_width,
                height=stored_height,
                fps=fps,
                audio_source=audio_source,
                rotation=rotation,
                colour=colour,
                **video_encoder_options(stored_width, stored_height),
            )
        except BaseException:
            self._temps.remove()
            raise

    @property
    def padded(self) -> bool:
        """True when an odd size was padded to even by one replicated column/row."""
        return bool(self._encoder.padded)

    @property
    def audio_note(self) -> str | None:
        """What was left out of the source's sound (tracks past the most kept), or None."""
        return self._encoder.audio_note

    @property
    def encoded_size(self) -> tuple[int, int]:
        """``(width, height)`` of the encoded (stored) picture, after padding."""
        return tuple(self._encoder.encoded_size)  # type: ignore[return-value]

    def write(
        self,
        rgb: np.ndarray,
        *,
        pts_s: float | None = None,
        owned: bool = False,
        faces: Sequence[Box] | None = None,
        other_faces: Sequence[Box] = (),
    ) -> None:
        """Label, watermark and encode one frame (uint8 (height, width, 3)).

        ``faces``: boxes ``(x0, y0, x1, y1)`` of the synthetic faces in this frame (upright
        pixels); the face tag follows them (``None``: not known for this frame, the tag holds)
        and keeps clear of them and of ``other_faces``.

        ``pts_s``: presentation time in seconds (keeps a source's variable frame rate);
        default: the previous frame + 1 / fps. ``owned=True``: the caller hands ``rgb`` over and
        never reads it again, so the label is drawn into it rather than into a copy (on two
        cores a frame-sized copy per frame is measurable, docs/render.md). A bad frame aborts
        the whole video.
        """
        if self._closed:
            raise ProvenanceError(f"{self.out_path}: video already closed")
        try:
            if not isinstance(rgb, np.ndarray) or rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
                got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
                raise MediaError(self.out_path, f"frame must be uint8 ({self.height}, {self.width}, 3), got {got}")
            if self.frames and self.frames % RECHECK_EVERY_FRAMES == 0:
                self._authz.recheck()
            if self.labelled and self._label is None:
                self._label = VisibleLabel(
                    self.width, self.height, self._job.label_placement, avoid=[*(faces or ()), *other_faces]
                )
                self._tag = FaceTag(self.width, self.height, fps=self._fps, label_box=self._label.geometry.box)
            frame = self._label.apply(rgb, in_place=owned) if self._label is not None else rgb
            if self._tag is not None:
                self._tag.apply(frame, faces, avoid=other_faces, in_place=True)  # ours now (owned or a copy)
            if self._quarter_turns:
                # Verification reads frames as stored, so the mark goes on the stored orientation.
                frame = np.ascontiguousarray(np.rot90(frame, -self._quarter_turns))
            # The mark goes onto the Y plane after the RGB->YUV conversion: the same luma offset as
            # embed() on the RGB frame, for about a third of the memory traffic.
            self._encoder.write(frame, pts_s=pts_s, luma_offset=self._embedder.luma_offset(frame))
            self.frames += 1
        except BaseException as exc:
            self.abort(reason=failure_reason(exc))
            raise

    def close(self) -> RenderOutput:
        """Finish: flush the encoder, sign, hash, record and place the video."""
        if self.result is not None:
            return self.result
        if self._closed:
            raise ProvenanceError(f"{self.out_path}: video was aborted")
        self._closed = True
        try:
            if self.frames == 0:
                raise MediaError(self.out_path, "no frames were written")
            self._encoder.close()  # flush; the encoder renames onto our unsigned temporary
            padded = self.padded
            self.result = self._writer._finish(
                self._authz,
                self._job,
                self._setup,
                self._temps,
                self.out_path,
                self._source_path,
                self.labelled,
                frames=self.frames,
                width=self.width,
                height=self.height,
                extra={"rotation": self.rotation, "padded_to_even": padded},
            )
            return self.result
        except BaseException as exc:
            refund_render(self._authz, self._job.job_id, failure_reason(exc))
            raise
        finally:
            with contextlib.suppress(Exception):
                self._encoder.abort()
            self._temps.remove()

    def abort(self, *, reason: str = "aborted") -> None:
        """Discard everything written so far; leaves no file and gives the render slot back.

        ``reason``: a short code for the ledger's refund event (e.g. ``no_face_swapped``).
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._encoder.abort()
        finally:
            self._temps.remove()
            refund_render(self._authz, self._job.job_id, reason)

    def __enter__(self) -> LabelledVideo:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class _Temporaries:
    """Hidden same-folder temporaries (so the final rename is atomic on one filesystem)."""

    out_path: Path
    job_id: str
    unsigned: Path = field(init=False)
    signed: Path = field(init=False)

    def __post_init__(self) -> None:
        folder, stem, suffix = self.out_path.parent, self.out_path.stem, self.out_path.suffix
        self.unsigned = folder / f".{stem}.{self.job_id}.unsigned{suffix}"
        self.signed = folder / f".{stem}.{self.job_id}.signed{suffix}"

    def remove(self) -> None:
        for path in (self.unsigned, self.signed):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            remove_stale_temporaries(path)  # a killed encoder's or signer's own temporary of this one


def remove_job_temporaries(out_path: Path, job_id: str) -> None:
    """Remove every temporary a killed writer of ``job_id`` left beside ``out_path``."""
    _Temporaries(Path(out_path), job_id).remove()


def failure_reason(exc: BaseException) -> str:
    """A short code saying why a counted render produced no output (for the refund event)."""
    if isinstance(exc, ConsentError):
        return f"refused: {exc.reason}"
    if isinstance(exc, ProvenanceError):
        return "signing_failed"
    if isinstance(exc, MediaError):
        return "encode_failed"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"failed: {type(exc).__name__}"


def refund_render(authz: Authorization, job_id: str, reason: str) -> None:
    """Give back the render slot ``job_id`` holds (``Authorization.refund_render``).

    Called only while another error is on its way out or the render was abandoned, so a failing
    refund (the database itself is down) never hides that error; the slot then stays used.
    """
    with contextlib.suppress(Exception):
        authz.refund_render(job_id, reason)


def _require_job(job: object, kind: JobKind) -> None:
    if not isinstance(job, RenderJob):
        raise ProvenanceError(f"expected a RenderJob, got {type(job).__name__}")
    if job.kind != kind:
        raise ProvenanceError(f"job {job.job_id} is a {job.kind} job, not {kind}")


def _labelled(authz: Authorization, job: RenderJob) -> bool:
    if not job.unlabelled_requested:
        return True
    if not authz.allow_unlabelled:
        raise ConsentError(
            "use_not_granted",
            f"grant {authz.grant_id} does not allow output without the visible AI label",
        )
    return False


def _job_named(out_path: Path, job_id: str) -> Path:
    """``clip.mp4`` -> ``clip.<job id>.mp4``: unique, since job ids are."""
    return out_path.with_name(f"{out_path.stem}.{job_id}{out_path.suffix}")


def _place_new(signed: Path, out_path: Path, job_id: str) -> Path:
    """Move the signed file to ``out_path`` without ever replacing an existing file; if the name
    was taken in the meantime, to the job-named path. Returns where it went."""
    for target in (out_path, _job_named(out_path, job_id)):
        try:
            commit_temporary(signed, target, overwrite=False)
        except FileExistsError:
            continue
        return target
    raise MediaError(out_path, "output name and its job-named alternative are both taken")


def _check_out_path(out_path: Path, suffixes: tuple[str, ...]) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() not in suffixes:
        raise MediaError(out_path, f"output must end in {', '.join(suffixes)}")
    if out_path.exists():
        raise MediaError(out_path, "output already exists; pick a new name (outputs are never overwritten)")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(out_path, f"cannot create output folder: {exc.strerror or exc}") from None
    return out_path


def _check_rgb(rgb: object) -> tuple[int, int]:
    image = check_rgb(rgb, name="synthetic image")
    return int(image.shape[0]), int(image.shape[1])


def _mark(
    rgb: np.ndarray, job: RenderJob, labelled: bool, width: int, height: int, faces: Sequence[Box] = ()
) -> np.ndarray:
    # Label first, then watermark: the mark then also covers the label's pixels.
    frame = VisibleLabel(width, height, job.label_placement, avoid=faces).apply(rgb) if labelled else rgb
    return WatermarkEmbedder(job.watermark_payload, width, height).embed(frame)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
