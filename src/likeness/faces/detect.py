"""Face detection with 478 MediaPipe FaceMesh landmarks (468 mesh points + 10 iris points).

Two modes, one interface:

* ``mode="image"`` (independent photos): MediaPipe's full-range face detector finds faces on a
  copy downscaled to ``max_side`` (and, for large frames, on overlapping tiles so small faces in
  group shots survive the detector's 192 px input); FaceMesh then runs on a padded crop around
  each face and its landmarks are mapped back to frame pixels.
* Two options for finding faces where people put them (verification turns them on; the render
  path keeps the defaults, its speed unchanged): ``crop_retry`` pads an image in which nothing
  was found and looks again (the full-range detector misses a face that fills the frame), and
  ``small_faces`` looks again in finer tiles when the faces found are small or none were found
  (the detector sees 192 px, so a 25 px face in a group photo vanishes in a whole-frame pass).
* ``mode="video"`` (consecutive frames of one clip): FaceMesh in tracking mode; its detector runs
  only when a face is lost, and landmarks of the previous frame seed the next, which is several
  times faster. Call ``reset()`` between clips.

Construct one detector per worker and close it (or use it as a context manager).

Example:
    >>> import skimage.data
    >>> with FaceDetector(max_faces=1) as detector:
    ...     faces = detector.detect(skimage.data.astronaut())
    >>> len(faces), faces[0].landmarks.shape
    (1, (478, 2))
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from likeness.checks import check_rgb
from likeness.errors import FaceError
from likeness.faces.align import invert_affine, transform_points
from likeness.faces.canonical import N_LANDMARKS

DetectorMode = Literal["image", "video"]


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One detected face.

    Attributes:
        bbox: ``(x0, y0, x1, y1)`` frame pixels, the extent of the 478 landmarks.
        score: detector confidence in [0, 1]. In video mode MediaPipe does not expose a
            per-face score; there it is ``min_confidence``, the bound every returned face passed.
        landmarks: float32 ``(478, 2)`` frame pixel coordinates ``(x, y)``.
    """

    bbox: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` as ``(x0, y0, x1, y1)``: ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float) -> list[int]:
    """Indices of boxes kept by greedy NMS, highest score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            ious = box_iou(boxes[best : best + 1], boxes[order])[0]
            order = [i for i, iou in zip(order, ious) if iou < iou_threshold]
    return keep


def continuing_faces(
    faces: list[DetectedFace], previous_boxes: np.ndarray, *, iou_threshold: float = 0.5
) -> list[DetectedFace]:
    """``faces`` without duplicates: of faces whose boxes overlap by ``iou_threshold`` or more, the
    one that best continues a face of the previous frame (``previous_boxes (M, 4)``), else the first.

    FaceMesh in tracking mode sometimes re-detects a face it is already tracking and returns both
    meshes; left in, the face would be swapped and pasted twice on that frame. Order is kept.
    """
    if len(faces) < 2:
        return list(faces)
    boxes = np.array([face.bbox for face in faces])
    previous = np.asarray(previous_boxes, dtype=np.float64).reshape(-1, 4)
    continuity = box_iou(boxes, previous).max(axis=1) if len(previous) else np.zeros(len(faces))
    keep = non_max_suppression(boxes, continuity, iou_threshold=iou_threshold)
    return [faces[i] for i in sorted(keep)]


def landmark_bbox(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` extent of ``(N, 2)`` landmarks."""
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def downscale_to(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale by the smallest integer factor that brings the longer side to ``max_side`` or less.

    Integer factors keep ``INTER_AREA`` on OpenCV's fast path (a non-integer area resize of a
    1080p frame costs about as much as FaceMesh itself) and avoid aliasing.
    Returns (image, scale factor = 1 / integer factor).
    """
    height, width = rgb.shape[:2]
    factor = -(-max(height, width) // max_side)
    if factor <= 1:
        return rgb, 1.0
    size = (max(1, width // factor), max(1, height // factor))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), 1.0 / factor


#: ``crop_retry``: the padded copy is this many times the image's longer side (the face that
#: filled the frame then fills half of it, which the full-range detector finds). Grey, not
#: replicated edges: smeared edge pixels made faces harder to find, not easier.
CROP_RETRY_SCALE = 2.0
CROP_RETRY_FILL = (128, 128, 128)
#: ``small_faces``: faces narrower than this fraction of the frame's shorter side are "small"
#: and ask for a finer tile pass.
SMALL_FACE_FRACTION = 1.0 / 8.0
#: Finer tiles are this many face widths across (the detector's 192 px input then sees a face
#: of about 192 / 8 = 24 px, where the full-range model still finds it), within these bounds.
SMALL_FACE_TILE_FACES = 8.0
SMALL_FACE_TILE_RANGE = (256, 1024)
#: Tile side of the search when the whole frame shows no face at all.
NO_FACE_TILE = 512
#: Most detector calls one fine pass may make; beyond it the tiles grow (larger faces only).
MAX_FINE_TILES = 96
#: The same bound for the search of a frame where no face was found at all (most such frames
#: hold none: a 1080p one gets 6 tiles of 800 px, not 15 of 512).
MAX_NO_FACE_TILES = 8
#: ``crop_retry`` only for images up to this side: a face crop is rarely bigger, and a big
#: faceless frame should not pay for a second look.
CROP_RETRY_MAX_SIDE = 1280


def small_face_tile(face_sides: np.ndarray, *, frame_short_side: int) -> int | None:
    """Tile side for the finer pass, or None when no finer pass is needed.

    ``face_sides (N,)`` are the widths (pixels) of the faces found so far. No face: a pass with
    :data:`NO_FACE_TILE` tiles. Any face narrower than :data:`SMALL_FACE_FRACTION` of the
    frame's shorter side: tiles :data:`SMALL_FACE_TILE_FACES` times the smallest face.

    >>> small_face_tile(np.array([]), frame_short_side=1080)
    512
    >>> small_face_tile(np.array([400.0]), frame_short_side=1080) is None
    True
    >>> small_face_tile(np.array([30.0, 400.0]), frame_short_side=1080)
    256
    """
    sides = np.asarray(face_sides, dtype=np.float64).reshape(-1)
    if sides.size == 0:
        return NO_FACE_TILE if frame_short_side > NO_FACE_TILE * 0.75 else None
    smallest = float(sides.min())
    if smallest >= SMALL_FACE_FRACTION * frame_short_side:
        return None
    low, high = SMALL_FACE_TILE_RANGE
    return int(np.clip(round(SMALL_FACE_TILE_FACES * smallest), low, high))


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def _close_graphs(graphs: list[Any]) -> None:
    """Close and forget the MediaPipe solutions in ``graphs`` (each closed once)."""
    while graphs:
        graphs.pop().close()


class FaceDetector:
    """MediaPipe face detector + 478-point FaceMesh; see the module docstring.

    Args:
        max_faces: most faces returned per frame (highest scores first).
        min_confidence: detector score threshold in [0, 1].
        mode: ``"image"`` or ``"video"``.
        max_side: frames are analysed on a copy whose longer side is at most this many pixels.
        tile_side: image mode only; frames whose longer side exceeds ``1.5 * tile_side`` are
            also scanned in overlapping tiles of this side (small faces in group photos).
        crop_retry: image mode only; when nothing is found in an image no more than twice as
            long as wide and at most ``CROP_RETRY_MAX_SIDE`` (a likely face crop), look again on
            a grey-padded copy
            (:data:`CROP_RETRY_SCALE`). Off by default (costs one detector call per faceless
            image).
        small_faces: image mode only; after the first pass, look again in finer overlapping
            tiles when no face or a small one was found (:func:`small_face_tile`), for group
            photos. Off by default (costs up to :data:`MAX_NO_FACE_TILES` detector calls on a
            faceless frame, up to :data:`MAX_FINE_TILES` on a group photo).
    """

    def __init__(
        self,
        max_faces: int = 8,
        min_confidence: float = 0.5,
        *,
        mode: DetectorMode = "image",
        max_side: int = 1280,
        tile_side: int = 640,
        crop_retry: bool = False,
        small_faces: bool = False,
    ) -> None:
        if not isinstance(max_faces, int) or max_faces < 1:
            raise FaceError(f"max_faces must be a positive integer, got {max_faces!r}")
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise FaceError(f"min_confidence must lie in [0, 1], got {min_confidence!r}")
        if mode not in ("image", "video"):
            raise FaceError(f"mode must be 'image' or 'video', got {mode!r}")
        if max_side < 64 or tile_side < 64:
            raise FaceError("max_side and tile_side must be at least 64 pixels")
        self.max_faces = max_faces
        self.min_confidence = float(min_confidence)
        self.mode: DetectorMode = mode
        self.max_side = int(max_side)
        self.tile_side = int(tile_side)
        self.crop_retry = bool(crop_retry)
        self.small_faces = bool(small_faces)
        self._detector: Any = None
        self._mesh: Any = None
        # A MediaPipe graph left running keeps its threads and models (about 45 MB) until the
        # process ends, even once collected: a detector dropped without close() shuts its own.
        self._graphs: list[Any] = []
        weakref.finalize(self, _close_graphs, self._graphs)
        self._closed = False
        self._open()

    def _open(self) -> None:
        from mediapipe.python.solutions import face_detection, face_mesh

        self._previous_boxes = np.zeros((0, 4))
        if self.mode == "video":
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=False,
                max_num_faces=self.max_faces,
                refine_landmarks=True,
                min_detection_confidence=self.min_confidence,
                min_tracking_confidence=0.5,
            )
        else:
            # Full-range model (model_selection=1): also finds faces far from the camera.
            self._detector = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_confidence
            )
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=0.3,
            )
        self._graphs[:] = [graph for graph in (self._detector, self._mesh) if graph is not None]

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graphs; further ``detect`` calls raise ``FaceError``."""
        _close_graphs(self._graphs)
        self._detector = self._mesh = None
        self._closed = True

    def reset(self) -> None:
        """Forget tracking state (start of a new clip in video mode)."""
        if self._closed:
            raise FaceError("detector is closed")
        self.close()
        self._closed = False
        self._open()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in a uint8 RGB frame ``(H, W, 3)``, highest score first (at most ``max_faces``)."""
        if self._closed:
            raise FaceError("detector is closed")
        check_rgb(rgb, error=FaceError)
        if min(rgb.shape[:2]) < 16:
            return []
        if self.mode == "video":
            return self._detect_video(rgb)
        return self._detect_image(rgb)

    def _detect_video(self, rgb: np.ndarray) -> list[DetectedFace]:
        small, _ = downscale_to(rgb, self.max_side)
        result = self._mesh.process(np.ascontiguousarray(small))
        if not result.multi_face_landmarks:
            return []
        height, width = rgb.shape[:2]
        # MediaPipe landmarks are normalised to the image, so they map to the full-size frame
        # directly, whatever the downscale.
        size = np.array([width, height], dtype=np.float32)
        faces = []
        for face_landmarks in result.multi_face_landmarks:
            points = _landmarks_array(face_landmarks) * size
            faces.append(DetectedFace(landmark_bbox(points), self.min_confidence, points))
        faces = continuing_faces(faces, self._previous_boxes)
        self._previous_boxes = np.array([face.bbox for face in faces])
        return faces

    def _candidate_boxes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detector boxes ``(N, 4)`` in frame pixels and their scores ``(N,)``."""
        height, width = rgb.shape[:2]
        boxes, scores = self._detections_in(rgb, 0.0, 0.0)
        if max(height, width) > 1.5 * self.tile_side:
            tiled = self._tiled(rgb, self.tile_side)
            boxes, scores = boxes + tiled[0], scores + tiled[1]
        if self.small_faces:
            fine = self._fine_tiles(rgb, boxes)
            boxes, scores = boxes + fine[0], scores + fine[1]
        if (
            not boxes
            and self.crop_retry
            and max(height, width) <= CROP_RETRY_MAX_SIDE
            and max(height, width) <= 2 * min(height, width)
        ):
            boxes, scores = self._padded_retry(rgb)
        if not boxes:
            return np.zeros((0, 4)), np.zeros(0)
        boxes_arr, scores_arr = np.array(boxes), np.array(scores)
        keep = non_max_suppression(boxes_arr, scores_arr, iou_threshold=0.3)
        return boxes_arr[keep], scores_arr[keep]

    def _detections_in(self, view: np.ndarray, off_x: float, off_y: float) -> tuple[list, list]:
        """Detector boxes (frame pixels, offset by the view's origin) and scores of one view."""
        small, _ = downscale_to(view, self.max_side)
        result = self._detector.process(np.ascontiguousarray(small))
        vh, vw = view.shape[:2]
        boxes, scores = [], []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0 = off_x + rel.xmin * vw
            y0 = off_y + rel.ymin * vh
            boxes.append([x0, y0, x0 + rel.width * vw, y0 + rel.height * vh])
            scores.append(float(detection.score[0]))
        return boxes, scores

    def _tiled(self, rgb: np.ndarray, tile: int) -> tuple[list, list]:
        height, width = rgb.shape[:2]
        boxes: list = []
        scores: list = []
        for y in tile_origins(height, tile, 0.25):
            for x in tile_origins(width, tile, 0.25):
                found = self._detections_in(rgb[y : y + tile, x : x + tile], x, y)
                boxes += found[0]
                scores += found[1]
        return boxes, scores

    def _fine_tiles(self, rgb: np.ndarray, boxes: list) -> tuple[list, list]:
        """``small_faces``: finer tile passes sized to the smallest face found so far (at most
        two: a faceless frame is searched in :data:`NO_FACE_TILE` tiles first, and the small
        faces found there set the tile of the second pass)."""
        height, width = rgb.shape[:2]
        found: tuple[list, list] = ([], [])
        previous = max(height, width)
        for _ in range(2):
            sides = np.array([b[2] - b[0] for b in boxes + found[0]], dtype=np.float64)
            tile = small_face_tile(sides, frame_short_side=min(height, width))
            if tile is None or tile >= previous:
                break
            limit = MAX_FINE_TILES if sides.size else MAX_NO_FACE_TILES
            while len(tile_origins(height, tile, 0.25)) * len(tile_origins(width, tile, 0.25)) > limit:
                tile = int(tile * 1.25)
            if tile >= previous:
                break
            more = self._tiled(rgb, tile)
            found = (found[0] + more[0], found[1] + more[1])
            previous = tile
        return found

    def _padded_retry(self, rgb: np.ndarray) -> tuple[list, list]:
        """``crop_retry``: detections on a grey-padded copy, mapped back to frame pixels.

        The copy is padded after downscaling to half of ``max_side``, so a big faceless image
        costs one small detector call, never a frame four times its size.
        """
        small, scale = downscale_to(rgb, max(64, self.max_side // 2))
        pad = int(round((CROP_RETRY_SCALE - 1.0) / 2.0 * max(small.shape[:2])))
        padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=CROP_RETRY_FILL)
        boxes, scores = self._detections_in(padded, -pad, -pad)
        return [[v / scale for v in box] for box in boxes], scores

    def _detect_image(self, rgb: np.ndarray) -> list[DetectedFace]:
        boxes, scores = self._candidate_boxes(rgb)
        faces: list[DetectedFace] = []
        for box, score in zip(boxes, scores):
            points = self._mesh_in_box(rgb, box)
            if points is None:
                continue
            # FaceMesh may lock onto a neighbouring face inside the padded crop: keep the mesh
            # only if its centre lies in the detector's box.
            centre = points.mean(axis=0)
            if not (box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]):
                continue
            faces.append(DetectedFace(landmark_bbox(points), float(score), points))
        if not faces:
            return []
        mesh_boxes = np.array([face.bbox for face in faces])
        keep = non_max_suppression(mesh_boxes, np.array([f.score for f in faces]), iou_threshold=0.5)
        return [faces[i] for i in keep[: self.max_faces]]

    def _mesh_in_box(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """FaceMesh landmarks (478, 2) in frame pixels for the face in ``box``, or None."""
        side = 2.0 * max(box[2] - box[0], box[3] - box[1])
        if side < 8:
            return None
        # FaceMesh's own short-range detector expects a face filling a good part of its input:
        # a square crop twice the box, resampled to a fixed size (also upsamples tiny faces).
        crop_size = 384
        scale = crop_size / side
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        to_crop = np.array([[scale, 0.0, crop_size / 2.0 - scale * cx], [0.0, scale, crop_size / 2.0 - scale * cy]])
        crop = cv2.warpAffine(
            rgb,
            to_crop,
            (crop_size, crop_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        points = _landmarks_array(result.multi_face_landmarks[0]) * crop_size
        return transform_points(points, invert_affine(to_crop)).astype(np.float32)


def _landmarks_array(face_landmarks: Any) -> np.ndarray:
    points = np.array([(lm.x, lm.y) for lm in face_landmarks.landmark], dtype=np.float32)
    if points.shape != (N_LANDMARKS, 2):
        raise FaceError(
            f"FaceMesh returned {points.shape[0]} landmarks, expected {N_LANDMARKS} (refine_landmarks must be on)"
        )
    return points
