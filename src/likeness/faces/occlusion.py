"""Find what covers a face (glasses frames, hands, microphones, hair) in an aligned crop.

A swap must never paint over an occluder: the renderer multiplies its blend mask by one minus
this mask. The network is the product's own (``likeness.train.occlusion``; trained on synthetic
occluders over public-domain portraits) and ships in ``likeness/faces/weights`` with its card;
the file's SHA-256 is checked against the card on load.

Example::

    >>> from likeness.faces.detect import FaceDetector
    >>> from likeness.media.synthetic import astronaut
    >>> rgb = astronaut()
    >>> with FaceDetector(max_faces=1) as detector:
    ...     face = detector.detect(rgb)[0]
    >>> from likeness.faces.align import align_face
    >>> aligned = align_face(rgb, face.landmarks, size=64)
    >>> covered = OcclusionSegmenter().occluders(np.stack([aligned.image]), aligned.landmarks[None])
    >>> covered.shape, float((covered >= 0.5).mean()) < 0.05   # nothing in front of this face
    ((1, 64, 64), True)

The shipped network runs at 64 px, where a thin metal rim of a large face is under half a pixel
(issue 26). ``OcclusionSegmenter(thin=...)`` adds, for crops of 128 px and more, what is thin
(a white top-hat) in a second network's 128 px output, and only inside the spectacle zone the
landmarks give (around the eyes, over the nose bridge, up to the brows and temples), where rims
can be; shaded cheeks, wrinkles and the face's edge outside it stay the 64 px network's. The
add-on ships as ``THIN_ONNX_FILE`` and is opt-in (``likeness render --thin-rims``): it halves the
real thin rims painted over at 128 px but also marks some clear face (rings round each rim, and
wrinkle arcs inside the lenses), over the bar for a default (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from likeness import strict_json
from likeness.assets import check_asset_file
from likeness.digests import sha256_file
from likeness.errors import FaceError, ModelError
from likeness.faces.canonical import BROW_POINTS, LEFT_IRIS_CENTER, NOSE_TIP, RIGHT_IRIS_CENTER

WEIGHTS_DIR = Path(__file__).parent / "weights"
ONNX_FILE = "occlusion_mask.onnx"
CARD_FILE = "occlusion_mask.card.json"
#: The thin-rim add-on (``OcclusionSegmenter(thin=WEIGHTS_DIR / THIN_ONNX_FILE)``), card beside it.
THIN_ONNX_FILE = "occlusion_thin_rims.onnx"
#: The shipped networks' rows in ``likeness.assets``.
ASSET_NAMES = {ONNX_FILE: "occlusion-mask", THIN_ONNX_FILE: "occlusion-thin-rims"}
#: The network's input side when its card names no ``sizes`` (weights before v2).
MASK_INPUT = 64
#: Crops from this side up get the thin add-on; smaller ones are the 64 px network's alone.
THIN_FROM = 128
#: The side the add-on's network runs at (larger crops are shrunk to it and its output grown back).
THIN_SIDE = 128
#: What an opening of this many pixels (at THIN_SIDE) removes is thin: rims, not cheek patches.
THIN_OPENING_PX = 5


def card_file(onnx_file: str) -> str:
    """The card beside an ONNX file: ``occlusion_mask.onnx`` -> ``occlusion_mask.card.json``."""
    return Path(onnx_file).stem + ".card.json"


def load_card(folder: Path = WEIGHTS_DIR, onnx_file: str = ONNX_FILE) -> dict[str, Any]:
    """A network's model card, after checking the ONNX file's SHA-256 against it."""
    card_path, onnx_path = folder / card_file(onnx_file), folder / onnx_file
    try:
        card = strict_json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: unreadable occlusion-mask card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise ModelError(f"{card_path}: the card names no sha256")
    try:
        digest = sha256_file(onnx_path)
    except OSError as exc:
        raise ModelError(f"{onnx_path}: cannot be read ({exc})") from None
    if digest != card["sha256"]:
        raise ModelError(f"{onnx_path}: SHA-256 {digest[:16]}… does not match its card ({card['sha256'][:16]}…)")
    if folder == WEIGHTS_DIR and onnx_file in ASSET_NAMES:
        check_asset_file(ASSET_NAMES[onnx_file], onnx_path)  # the shipped weights are also in the asset table
    return card


def card_sizes(card: dict[str, Any], card_path: Path) -> tuple[int, ...]:
    """The crop sides a card says its network was trained at (``MASK_INPUT`` when it names none).

    The card is not covered by the ONNX file's SHA-256, so an edited ``sizes`` must be a typed
    error naming the card, not a traceback from the resize it would reach."""
    sizes = card.get("sizes", [MASK_INPUT])
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 1024 for s in sizes)
    ):
        raise ModelError(f"{card_path}: 'sizes' must be a list of crop sides of 8..1024 px, got {sizes!r}")
    return tuple(sizes)


def spectacle_zone(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where spectacle frames can be on an aligned face: float32 ``(size, size)`` in [0, 1].

    In units of the iris span ``s``, on axes along and across the eyes: the band from a little
    above the brows down to a little below the eyes, out to the temples (``1.3 s`` from the
    middle); a lens-shaped region around each eye reaching ``0.6 s`` below it (large lenses sit
    low); the nose bridge and pads. Nothing below the nose tip, and below the eyes nothing within
    ``0.15 s`` of the landmark hull's edge (the cheek's outline against the background). The edge
    is softened over a pixel or two so a rim crossing it fades rather than stops.
    """
    points = np.asarray(landmarks, np.float64)
    right, left = points[RIGHT_IRIS_CENTER], points[LEFT_IRIS_CENTER]
    span = float(np.linalg.norm(left - right))
    # An aligned crop's eyes are about a third of its side apart; beyond the side the landmarks
    # are not this crop's, and the hull erosion below would be sized by them (terabytes).
    if not np.isfinite(span) or not 2 <= span <= size:
        raise FaceError(f"spectacle_zone: the eyes are {span:.1f} px apart in this {size} px crop (2..{size} expected)")
    along = (left - right) / span
    across = np.array([-along[1], along[0]])  # image y grows downwards: across points to the chin
    middle = (right + left) / 2

    def frame(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offset = xy - middle
        return offset @ along / span, offset @ across / span

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = frame(np.stack([xx, yy], -1))
    top = float(frame(points[list(BROW_POINTS)])[1].min()) - 0.15
    nose = float(frame(points[NOSE_TIP])[1])
    lenses = ((np.abs(u) - 0.5) / 0.65) ** 2 + ((v - 0.05) / 0.55) ** 2 <= 1.0
    band = (np.abs(u) <= 1.3) & (v <= 0.15)
    bridge = (np.abs(u) <= 0.25) & (v <= 0.45)
    zone = (lenses | band | bridge) & (v >= top) & (v <= nose)
    hull = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    margin = max(1, round(0.15 * span))
    inner = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    zone &= (v <= 0.15) | inner.astype(bool)
    soft = cv2.GaussianBlur(zone.astype(np.float32), (0, 0), max(0.5, size / 128))
    return np.clip(soft, 0.0, 1.0)


def thin_structures(probability: np.ndarray, *, opening_px: int = THIN_OPENING_PX) -> np.ndarray:
    """The thin part of an occluder probability map: its white top-hat (the map minus its
    opening by an ``opening_px`` disc), so a rim stays and a broad patch does not."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (opening_px, opening_px))
    return cv2.morphologyEx(np.asarray(probability, np.float32), cv2.MORPH_TOPHAT, kernel)


def thin_in_zone(probability: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """What the thin add-on contributes: the thin structures of its ``(R, R)`` occluder
    probability (the opening as wide in the face as THIN_OPENING_PX at THIN_SIDE) inside the
    spectacle zone of the crop's ``landmarks``."""
    size = probability.shape[0]
    opening = THIN_OPENING_PX * size // THIN_SIDE | 1  # odd
    return thin_structures(probability, opening_px=opening) * spectacle_zone(landmarks, size)


class OcclusionSegmenter:
    """The shipped occlusion mask on ONNX Runtime (CPU, one thread unless told otherwise).

    ``thin``: the ONNX file of a thin-structure add-on for crops of THIN_FROM px and more (its
    card beside it, :func:`card_file`; the shipped one is ``WEIGHTS_DIR / THIN_ONNX_FILE``, what
    the renderer passes with ``RefineOptions.thin_rims``), or None (the default).
    """

    def __init__(self, folder: Path = WEIGHTS_DIR, *, thin: Path | None = None, threads: int = 1) -> None:
        from likeness.train.swap_model import ort_session

        self.card = load_card(folder)
        self.session = ort_session(folder / ONNX_FILE, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        #: The sides it was trained at: a crop of one of them runs as it is (a thin rim of a
        #: 128 px crop is lost when shrunk to 64), others are resized to the nearest and back.
        self.sizes = card_sizes(self.card, folder / card_file(ONNX_FILE))
        self.thin_card: dict[str, Any] | None = None
        self.thin_session: Any = None
        if thin is not None:
            self.thin_card = load_card(thin.parent, thin.name)
            if THIN_SIDE not in card_sizes(self.thin_card, thin.parent / card_file(thin.name)):
                raise ModelError(
                    f"{thin}: a thin add-on must be trained at {THIN_SIDE} px; its card names no such size"
                )
            self.thin_session = ort_session(thin, threads=threads)

    def input_size(self, size: int) -> int:
        """The side a crop of ``size`` runs at: itself when trained, else the nearest trained."""
        return min(self.sizes, key=lambda trained: (abs(trained - size), -trained))

    def occluders(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Occluder probability float32 ``(N, R, R)`` for uint8 RGB crops ``(N, R, R, 3)`` and
        their ``(N, 478, 2)`` landmarks in crop pixels (where the spectacle zone is)."""
        return self.occluders_and_thin_skips(crops, landmarks)[0]

    def occluders_and_thin_skips(self, crops: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`occluders`, and bool ``(N,)``: the faces the thin add-on was skipped for because
        their spectacle zone cannot be built (far-apart or degenerate landmarks). Such a face keeps
        the mask without the add-on: one odd face should not stop a whole render."""
        crops = np.asarray(crops)
        if (
            crops.dtype != np.uint8
            or crops.ndim != 4
            or crops.shape[3] != 3
            or crops.shape[1] != crops.shape[2]
            or crops.shape[0] == 0
            or crops.shape[1] < 8
        ):
            raise FaceError(f"occluders: expected uint8 square RGB crops (N, R, R, 3), got {crops.dtype} {crops.shape}")
        points = np.asarray(landmarks, np.float64)
        if points.shape != (crops.shape[0], 478, 2) or not np.isfinite(points).all():
            raise FaceError(f"occluders: expected finite landmarks ({crops.shape[0]}, 478, 2), got {points.shape}")
        size = crops.shape[1]
        probability = _run(self.session, crops, self.input_size(size))
        skipped = np.zeros(len(crops), bool)
        if self.thin_session is None or size < THIN_FROM:
            return probability, skipped
        thin = _run(self.thin_session, crops, THIN_SIDE)  # grown back to the crop's size
        for k, (t, marks) in enumerate(zip(thin, points)):
            try:
                probability[k] = np.maximum(probability[k], thin_in_zone(t, marks))
            except FaceError:
                skipped[k] = True
        return probability, skipped


def _resized(image: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """A crop (``cv2.INTER_AREA``) or a probability map (linear) at ``size``."""
    if image.shape[0] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _run(session: Any, crops: np.ndarray, side: int) -> np.ndarray:
    """Occluder probability of ``session``'s network run at ``side``, at the crops' own size:
    float32 ``(N, S, S)``."""
    size = crops.shape[1]
    small = crops if size == side else np.stack([_resized(c, side, cv2.INTER_AREA) for c in crops])
    batch = small.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    logits = session.run(None, {session.get_inputs()[0].name: batch})[0][:, 0]
    probability = (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
    if size == side:
        return probability
    return np.stack([_resized(p, size) for p in probability])
