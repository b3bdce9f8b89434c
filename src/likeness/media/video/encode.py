"""Encode RGB frames to H.264 MP4 with the source's audio (:class:`VideoEncoder`, :func:`transcode`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import cv2
import numpy as np

from likeness.durable import commit_temporary, create_temporary, remove_stale_temporaries, remove_temporary
from likeness.errors import MediaError
from likeness.media.images import require_rgb
from likeness.media.video.budget import sound_refusal
from likeness.media.video.colour import ColourTags
from likeness.media.video.decode import _AV_ERRORS, _describe, _open_input, iter_video_frames, probe_video
from likeness.prefetch import WriteBehind

# Audio codecs the MP4 muxer carries as-is; anything else (PCM, Vorbis, ...) is re-encoded to AAC.
COPYABLE_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})

# Output clock: 1/90000 s represents 24, 25, 30, 50, 60 and the NTSC 1000/1001 rates exactly.
_ENCODER_TIME_BASE = Fraction(1, 90_000)
# A skip in re-encoded audio smaller than this is not filled (timestamp rounding, e.g. 1 ms time
# bases); well under the ~45 ms at which viewers notice sound out of step with lips.
AUDIO_GAP_S = 0.02
# Audio tracks carried into an output (a mix, stems, languages); a file declaring hundreds gets
# no encoder for each.
MAX_AUDIO_TRACKS = 16
# Channel layouts FFmpeg's AAC encoder opens; a source's other layouts map by channel count, as
# do layouts with no channel order (PCM in Matroska or WAV says only "2 channels").
_AAC_LAYOUTS = frozenset(
    {"mono", "stereo", "2.1", "3.0", "3.0(back)", "4.0", "quad", "5.0", "5.0(side)", "5.1", "5.1(side)", "6.1",
     "6.1(back)", "7.1", "7.1(wide)", "7.1(wide-side)"}
)  # fmt: skip
_AAC_LAYOUT_BY_CHANNELS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def audio_tracks_note(declared: int) -> str | None:
    """What a user is told when ``declared`` sound tracks are more than are kept, else None.

    >>> audio_tracks_note(18)
    'kept 16 of 18 sound tracks (at most 16)'
    """
    if declared <= MAX_AUDIO_TRACKS:
        return None
    return f"kept {MAX_AUDIO_TRACKS} of {declared} sound tracks (at most {MAX_AUDIO_TRACKS})"


_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _as_frame_rate(fps: Fraction | float | int, path: Path) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(10_000) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError) as exc:
        raise MediaError(path, f"fps must be a positive number, got {fps!r}") from exc
    if not rate > 0 or rate > 1000:
        raise MediaError(path, f"fps must be in (0, 1000], got {fps!r}")
    return rate


@dataclass(slots=True)
class _AudioTrack:
    """One source audio track on its way into the output: ``mode`` ``"copy"`` or ``"aac"``;
    ``at_s``, where the AAC encoder's next sample plays; ``ended``, past the video's end."""

    out_stream: av.audio.stream.AudioStream
    mode: str
    at_s: float | None = None
    ended: bool = False


class VideoEncoder:
    """Write RGB frames to an H.264 (libx264, yuv420p, limited range) MP4, optionally with the
    audio of ``audio_source``. Use as a context manager::

        with VideoEncoder("out.mp4", width=640, height=360, fps=25, audio_source="in.mp4") as enc:
            enc.write(rgb)                    # constant rate: frame n at n / fps
            enc.write(rgb, pts_s=1.234)       # or explicit times (keeps variable frame rate)

    * Odd sizes: yuv420p needs even dimensions, so an odd ``width``/``height`` is padded by one
      replicated column/row on the right/bottom; ``encoded_size`` says what was written and
      ``padded`` is True. Content keeps its pixel coordinates (top-left aligned).
    * Audio: every audio stream of ``audio_source`` is copied packet-for-packet when MP4
      carries its codec (:data:`COPYABLE_AUDIO_CODECS`), else decoded and re-encoded to AAC at
      the source's times (a late start kept, a skip filled with silence);
      ``audio_mode`` is the first stream's, ``"copy"`` or ``"aac"``, or None (no source or no
      audio stream). At most :data:`MAX_AUDIO_TRACKS` are kept; ``audio_note`` says so when a
      source has more (:func:`audio_tracks_note`), else None. Re-encoded sound (silence filled
      in included) beyond what the source's bytes could hold as real sound is refused, naming
      the source (:func:`~likeness.media.video.budget.sound_refusal`). Audio past the end of the video
      is dropped so the tracks end together.
    * ``rotation`` (degrees counter-clockwise, a multiple of 90) is written as the display
      matrix, so players show the frames turned as the source was.
    * ``colour`` (:class:`ColourTags`, default BT.709) picks the RGB->YUV matrix and the
      primaries/transfer/matrix tags; pass ``ColourTags.of(probe_video(source))`` to keep a
      source's description.
    * ``deadzones`` (inter, intra), 0..32: x264's quantisation deadzones, used by the presets
      without trellis (``ultrafast`` to ``veryfast``). Smaller keeps more low-amplitude detail
      at a larger file; None keeps x264's (21, 11). The labelled writer lowers them for small
      frames so the invisible watermark survives (``docs/watermark.md``).
    * Atomic: frames go to a temporary file beside ``path`` that is renamed over ``path`` only
      when :meth:`close` succeeds; an exception inside the ``with`` block (or :meth:`abort`)
      leaves no output file; the finished file's bytes and folder are fsynced
      (:func:`~likeness.durable.commit_temporary`). A process killed outright (SIGKILL, out of
      memory, power loss) never reaches that cleanup and leaves ``.<name>.<random>.<writer>.part``; the
      next encoder for the same ``path`` removes it
      (:func:`~likeness.durable.remove_stale_temporaries`). The MP4 index is moved to the front
      (``faststart``) for streaming.
    * Overlapped: :meth:`write` converts the frame to YUV on the caller's thread and hands it to
      an encoding thread (H.264 and muxing), which keeps x264 fed while the caller prepares the
      next frame. A failure there is raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: Fraction | float | int,
        audio_source: str | os.PathLike[str] | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        rotation: int = 0,
        colour: ColourTags | None = None,
        deadzones: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= 16384:
                raise MediaError(self.path, f"{name} must be an integer in 1..16384, got {value!r}")
        if not isinstance(crf, (int, np.integer)) or not 0 <= int(crf) <= 51:
            raise MediaError(self.path, f"crf must be an integer in 0..51, got {crf!r}")
        if preset not in _X264_PRESETS:
            raise MediaError(self.path, f"preset must be one of {', '.join(_X264_PRESETS)}, got {preset!r}")
        if not isinstance(rotation, (int, np.integer)) or int(rotation) % 90:
            raise MediaError(self.path, f"rotation must be a multiple of 90 degrees, got {rotation!r}")
        if deadzones is not None and not (
            isinstance(deadzones, tuple)
            and len(deadzones) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 32 for v in deadzones)
        ):
            raise MediaError(self.path, f"deadzones must be (inter, intra) integers in 0..32, got {deadzones!r}")
        self.deadzones = None if deadzones is None else (int(deadzones[0]), int(deadzones[1]))
        self.width, self.height = int(width), int(height)
        self.frame_rate = _as_frame_rate(fps, self.path)
        self.rotation = int(rotation) % 360
        if colour is not None and not isinstance(colour, ColourTags):
            raise MediaError(self.path, f"colour must be ColourTags, got {type(colour).__name__}")
        self.colour = colour or ColourTags()
        self._primaries, self._trc, self._colorspace, self._matrix = self.colour.resolved()
        self.encoded_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.padded = self.encoded_size != (self.width, self.height)
        self.frames_written = 0
        self.audio_mode: str | None = None
        self.audio_note: str | None = None
        self._frame_ticks = float(1 / self.frame_rate / _ENCODER_TIME_BASE)
        self._shortest_step: int | None = None  # encoder ticks between written frames
        self._durations: dict[int, int] = {}  # pts -> duration, of frames inside the encoder
        self._next_pts_s = 0.0
        self._last_pts: int | None = None
        self._end_s = 0.0
        self._closed = False
        self._audio_input: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None
        self._audio_tracks: dict[int, _AudioTrack] = {}  # by the source stream's index
        self._audio_source: Path | None = None
        self._audio_source_bytes = 0
        self._sound_channel_s = 0.0  # re-encoded so far, silence filled in included
        # Frames waiting for the encoding thread: a few are enough to absorb jitter, and each
        # 1080p YUV frame is 3 MB.
        self._worker: WriteBehind[tuple[av.VideoFrame, float, int]] | None = None
        self._failure: BaseException | None = None

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.path)
            handle, temporary = create_temporary(self.path)
            os.close(handle)
        except OSError as exc:
            raise MediaError(self.path, f"cannot create output: {exc.strerror or exc}") from exc
        self._temporary = Path(temporary)
        try:
            self._output = av.open(
                str(self._temporary), mode="w", format="mp4", container_options={"movflags": "+faststart"}
            )
            self._video = self._add_video_stream(int(crf), preset)
            if audio_source is not None:
                self._add_audio(Path(audio_source))
        except BaseException as exc:
            self.abort()
            if isinstance(exc, MediaError):
                raise
            if isinstance(exc, _AV_ERRORS):
                raise MediaError(self.path, f"cannot start encoding: {_describe(exc)}") from exc
            raise

    def _add_video_stream(self, crf: int, preset: str) -> av.video.stream.VideoStream:
        options = {"crf": str(crf), "preset": preset}
        if self.deadzones is not None:
            options["x264-params"] = "deadzone-inter={}:deadzone-intra={}".format(*self.deadzones)
        stream = self._output.add_stream("libx264", rate=self.frame_rate, options=options)
        stream.width, stream.height = self.encoded_size
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.time_base = _ENCODER_TIME_BASE
        # Tag what _yuv_from_rgb produces, so decoders pick the same matrix back.
        context.colorspace = self._colorspace
        context.color_primaries = self._primaries
        context.color_trc = self._trc
        context.color_range = 1
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self._reformatter = av.video.reformatter.VideoReformatter()
        return stream

    def _add_audio(self, source: Path) -> None:
        self._audio_input = _open_input(source)
        self._audio_source = source
        try:
            self._audio_source_bytes = source.stat().st_size
        except OSError as exc:
            raise MediaError(source, f"cannot read: {exc.strerror or exc}") from exc
        declared = list(self._audio_input.streams.audio)
        self.audio_note = audio_tracks_note(len(declared))
        in_streams = declared[:MAX_AUDIO_TRACKS]
        if not in_streams:
            self._audio_input.close()
            self._audio_input = None
            return
        for number, in_stream in enumerate(in_streams, 1):  # every track: a mix and its stems, or two languages
            if in_stream.codec_context.name in COPYABLE_AUDIO_CODECS:
                track = _AudioTrack(self._output.add_stream_from_template(in_stream), "copy")
            else:
                context = in_stream.codec_context
                channels = int(context.channels or 0)
                if channels > len(_AAC_LAYOUT_BY_CHANNELS) and context.layout.name == f"{channels} channels":
                    # Named layouts (22.2, hexadecagonal) are mixed down to stereo; channels in no
                    # order cannot be, and the encoder said only "Invalid argument" at frame 0.
                    raise MediaError(
                        source,
                        f"sound track {number}: {channels} channels in no named order; AAC holds at most "
                        f"{len(_AAC_LAYOUT_BY_CHANNELS)} and there is no order to mix them down by",
                    )
                rate = int(context.sample_rate) if 8000 <= int(context.sample_rate or 0) <= 96000 else 48000
                layout = _aac_layout(context.layout.name, channels)
                track = _AudioTrack(self._output.add_stream("aac", rate=rate, layout=layout), "aac")
            self._audio_tracks[in_stream.index] = track
        self.audio_mode = self._audio_tracks[in_streams[0].index].mode
        self._audio_packets = iter(self._audio_input.demux(*in_streams))

    # -- frames -----------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, *, pts_s: float | None = None, luma_offset: np.ndarray | None = None) -> None:
        """Encode one RGB ``uint8 (height, width, 3)`` frame.

        Without ``pts_s`` the frame follows the previous one by ``1 / fps``; with it, the frame
        is shown at ``pts_s`` seconds (must increase by at least 1/90000 s per frame).
        ``luma_offset``: int16 ``(height, width)`` levels added (with saturation) to the Y plane
        after the RGB->YUV conversion; the labelled writer marks frames this way
        (``WatermarkEmbedder.luma_offset``).
        """
        if self._closed:
            raise MediaError(self.path, "encoder is closed")
        try:
            require_rgb(rgb, name=f"frame {self.frames_written}")
        except MediaError as exc:
            raise MediaError(self.path, exc.reason) from exc
        if rgb.shape[:2] != (self.height, self.width):
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: expected shape ({self.height}, {self.width}, 3), got {rgb.shape}",
            )
        time_s = self._next_pts_s if pts_s is None else float(pts_s)
        if not math.isfinite(time_s):
            raise MediaError(self.path, f"frame {self.frames_written}: pts_s must be finite, got {pts_s!r}")
        pts = int(round(time_s / float(_ENCODER_TIME_BASE)))
        if self._last_pts is not None and pts <= self._last_pts:
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: timestamps must increase "
                f"(got {time_s:.6f}s after {self._last_pts * float(_ENCODER_TIME_BASE):.6f}s)",
            )
        if luma_offset is not None and (
            not isinstance(luma_offset, np.ndarray)
            or luma_offset.dtype != np.int16
            or luma_offset.shape != (self.height, self.width)
        ):
            got = (
                f"{luma_offset.dtype} {luma_offset.shape}"
                if isinstance(luma_offset, np.ndarray)
                else type(luma_offset).__name__
            )
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: luma_offset must be int16 ({self.height}, {self.width}), got {got}",
            )
        self._raise_failure()
        frame = self._yuv_from_rgb(rgb)
        if luma_offset is not None:
            _add_to_luma(frame, luma_offset)
        if self._last_pts is not None:
            step = pts - self._last_pts
            self._shortest_step = step if self._shortest_step is None else min(self._shortest_step, step)
        # A frame lasts one frame period, or the shortest step so far where that is shorter: with
        # explicit times the rate may be an average, and a pause would hold the last frame for a
        # whole average period (20 minutes after an hour's pause at 3 frames an hour).
        duration = int(round(min(self._frame_ticks, self._shortest_step or self._frame_ticks)))
        self._durations[pts] = duration  # x264 times its packets by the rate: see _timed
        frame.pts = pts
        frame.time_base = _ENCODER_TIME_BASE
        frame.duration = duration
        self._last_pts = pts
        self._next_pts_s = time_s + float(1 / self.frame_rate)
        self._end_s = max(self._end_s, time_s + duration * float(_ENCODER_TIME_BASE))
        if self._worker is None:
            self._worker = WriteBehind(self._encode_one, depth=4, name="video-encode")
        self._worker.put((frame, time_s, self.frames_written))
        self.frames_written += 1

    def _encode_one(self, item: tuple[av.VideoFrame, float, int]) -> None:
        """On the encoding thread: H.264-encode and mux one queued frame (and the audio up to it).
        A failure is kept by the ``WriteBehind`` and raised again on the caller's thread; the
        frames after it are dropped, so a writer blocked on a full queue is always released."""
        frame, time_s, index = item
        try:
            self._output.mux(self._timed(self._video.encode(frame)))
            self._pump_audio(until_s=time_s)
        except _AV_ERRORS as exc:
            raise MediaError(self.path, f"encoding failed at frame {index}: {_describe(exc)}") from exc

    def _timed(self, packets: list[av.Packet]) -> list[av.Packet]:
        """``packets`` with the durations their frames were given (x264 gives each one frame
        period at the stream's rate, which the last frame of the file keeps)."""
        for packet in packets:
            if packet.pts is not None and packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
        return packets

    def _finish_pending(self) -> None:
        """Wait until every queued frame is encoded (or dropped after a failure)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
            self._failure = self._failure or worker.failure

    def _raise_failure(self) -> None:
        failure = self._failure or (self._worker.failure if self._worker is not None else None)
        if failure is not None:
            self.abort()
            raise failure

    def _yuv_from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        if self.padded:
            rgb = np.pad(
                rgb,
                ((0, self.encoded_size[1] - self.height), (0, self.encoded_size[0] - self.width), (0, 0)),
                mode="edge",
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # PyAV takes a colorspace name too; its stub says int only.
        return self._reformatter.reformat(
            frame,
            format="yuv420p",
            dst_colorspace=self._matrix,  # type: ignore[arg-type]
            dst_color_range="MPEG",
        )

    # -- audio ------------------------------------------------------------------------------

    def _next_audio_packet(self) -> av.Packet | None:
        if self._pending_audio is not None:
            packet, self._pending_audio = self._pending_audio, None
            return packet
        if self._audio_packets is None:
            return None
        try:
            return next(self._audio_packets)
        except StopIteration:
            self._audio_packets = None
            return None

    def _pump_audio(self, *, until_s: float, final: bool = False) -> None:
        """Mux source audio up to ``until_s`` so the file stays interleaved."""
        if not self._audio_tracks:
            return
        while True:
            packet = self._next_audio_packet()
            if packet is None:
                if final:
                    for track in self._audio_tracks.values():
                        if track.mode == "aac":
                            self._output.mux(track.out_stream.encode(None))
                return
            track = self._audio_tracks[packet.stream.index]
            start_s = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if track.ended or (start_s is not None and start_s >= self._end_s and final):
                # Past the end of the video: drop the rest, and stop reading once every track is there.
                track.ended = True
                if all(t.ended for t in self._audio_tracks.values()):
                    self._audio_packets = None
                continue
            if start_s is not None and start_s > until_s and not final:
                self._pending_audio = packet
                return
            if track.mode == "copy":
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = track.out_stream
                self._output.mux(packet)
            else:
                for audio_frame in packet.decode():
                    if isinstance(audio_frame, av.AudioFrame):  # an audio packet decodes to audio
                        self._reencode_audio(track, audio_frame)

    def _reencode_audio(self, track: _AudioTrack, audio_frame: av.AudioFrame) -> None:
        """AAC-encode one decoded frame where the source plays it.

        The encoder takes the first frame's time and lays every later sample after the one
        before, so a stretch the source skips (a cut take, sound starting late in a file whose
        audio was edited apart) is filled with silence; otherwise the sound after it would play
        early against the picture. Gaps under ``AUDIO_GAP_S`` are left: timestamps rounded to a
        coarse time base (1 ms in Matroska) step unevenly, and filling each step would cut a few
        samples of silence into continuous sound. A gap left still counts in the next one (the
        next sample is laid where the encoder is, not where the source says), so the sound stays
        within ``AUDIO_GAP_S`` of its place, never drifting further."""
        start_s = float(audio_frame.time) if audio_frame.time is not None else None
        channels = len(audio_frame.layout.channels)
        if start_s is not None and track.at_s is not None and start_s - track.at_s >= AUDIO_GAP_S:
            rate = audio_frame.sample_rate
            missing = round((start_s - track.at_s) * rate)
            self._spend_sound(missing / rate * channels)
            while missing > 0:
                samples = min(missing, rate)  # at most a second of silence per frame
                self._output.mux(track.out_stream.encode(_silence(audio_frame, samples)))
                track.at_s += samples / rate
                missing -= samples
        self._spend_sound(audio_frame.samples / audio_frame.sample_rate * channels)
        if track.at_s is None:
            track.at_s = start_s or 0.0
        self._output.mux(track.out_stream.encode(audio_frame))
        track.at_s += audio_frame.samples / audio_frame.sample_rate

    def _spend_sound(self, channel_seconds: float) -> None:
        """Count sound about to be encoded against what the source file's bytes can hold
        (:func:`~likeness.media.video.budget.sound_refusal`): filling a skip costs as much as
        encoding real sound, and a file of a few packets can skip for hours on every track."""
        self._sound_channel_s += channel_seconds
        refusal = sound_refusal(channel_seconds=self._sound_channel_s, size_bytes=self._audio_source_bytes)
        if refusal is not None:
            raise MediaError(self._audio_source, refusal)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, finish the audio, and move the file into place. Returns ``path``."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise MediaError(self.path, "no frames were written")
        self._finish_pending()
        self._raise_failure()
        try:
            self._output.mux(self._timed(self._video.encode(None)))
            self._pump_audio(until_s=self._end_s, final=True)
            self._output.close()
            if self._audio_input is not None:
                self._audio_input.close()
            commit_temporary(self._temporary, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, _AV_ERRORS):
                raise MediaError(self.path, f"finishing the video failed: {_describe(exc)}") from exc
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop without producing an output file (the temporary file is removed)."""
        self._closed = True
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.cancel()  # the encoding thread drops what is still queued
            self._finish_pending()
        for container in (getattr(self, "_output", None), self._audio_input):
            if container is not None:
                try:
                    container.close()
                except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                    pass
        if hasattr(self, "_temporary"):
            remove_temporary(self._temporary)

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _aac_layout(source_layout: str, channels: int) -> str:
    """The layout to AAC-encode a source's audio in (stereo for what has no AAC layout)."""
    if source_layout in _AAC_LAYOUTS:
        return source_layout
    return _AAC_LAYOUT_BY_CHANNELS.get(channels, "stereo")


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    """``samples`` of silence in ``like``'s sample format, layout and rate."""
    silence = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=samples)
    quiet = b"\x80" if like.format.name in ("u8", "u8p") else b"\x00"  # unsigned 8-bit is centred on 128
    for plane in silence.planes:
        plane.update(quiet * plane.buffer_size)
    silence.sample_rate = like.sample_rate
    return silence


def _add_to_luma(frame: av.VideoFrame, offset: np.ndarray) -> None:
    """Add int16 ``offset`` (H, W) to the top-left of ``frame``'s 8-bit Y plane, in place, saturating."""
    plane = frame.planes[0]
    # A VideoPlane is a buffer (PyAV implements the buffer protocol; its stub does not declare it).
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)  # type: ignore[call-overload]
    region = luma[: offset.shape[0], : offset.shape[1]]
    result = cv2.add(region, offset, dst=region, dtype=cv2.CV_8U)
    if not np.shares_memory(result, luma):  # a copy would leave the frame unmarked
        raise MediaError(None, "could not add the luma offset to the frame in place")


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    crf: int = 20,
    preset: str = "veryfast",
    max_frames: int | None = None,
) -> int:
    """Decode ``src`` to RGB and encode it again with :class:`VideoEncoder` (timestamps,
    rotation, colour tags and audio kept; audio is trimmed to the video). Nothing else is done to the
    pixels, so its speed is the floor any per-frame render can reach. ``max_frames`` stops
    after that many frames. Returns the number of frames written."""
    if max_frames is not None and max_frames < 1:
        raise MediaError(src, f"max_frames must be >= 1 or None, got {max_frames!r}")
    info = probe_video(src)
    # A mirroring display matrix cannot be written back: such frames are written as shown.
    width, height = info.display_size if info.mirrored else (info.width, info.height)
    with VideoEncoder(
        dst,
        width=width,
        height=height,
        fps=info.frame_rate or Fraction(25),
        audio_source=src if info.has_audio else None,
        crf=crf,
        preset=preset,
        rotation=0 if info.mirrored else info.rotation,
        colour=ColourTags.of(info),
    ) as encoder:
        for frame in iter_video_frames(src, autorotate=info.mirrored, exact=True):
            if max_frames is not None and encoder.frames_written >= max_frames:
                break
            encoder.write(frame.rgb, pts_s=frame.pts_s)
    return encoder.frames_written
