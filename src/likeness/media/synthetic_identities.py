"""People who do not exist, composed by code from the two package portraits, for the demo.

The demo's idol and performer must not be real, identifiable people, and nothing may be
downloaded, so each identity is built from the public-domain portraits that ship in installed
packages (:func:`likeness.media.synthetic.astronaut`, :func:`~likeness.media.synthetic.grace_hopper`):

1. **Shape.** The base portrait's 478 FaceMesh landmarks are moved part of the way towards the
   donor portrait's (aligned by a similarity transform on the eye corners and nose bridge), then
   edited like a "liquify" tool: eyes scaled about their centres, eyes moved apart or together,
   the nose and mouth scaled, the face oval widened or narrowed and the chin lengthened. The
   base image is warped onto the new landmarks (piecewise affine over a Delaunay triangulation,
   with the image border fixed).
2. **Texture.** The donor's face, warped onto the same landmarks, is blended into the cheeks,
   nose, mouth and chin (not the eye band: the donor may wear glasses), feathered at the edges.
3. **Colour.** Skin is shifted in CIE Lab inside the face and neck; hair (around the head, what is
   neither skin nor the backdrop beside the head) is recoloured, keeping its light and shade.

:data:`DEMO_IDENTITIES` holds the demo's two recipes. Whether a composed face is a new person is
not assumed but measured with the product's own recogniser: ``tests/demo`` checks that each
identity's dlib distance to every package portrait, and to the other identity, is above
:data:`likeness.faces.IDENTITY_THRESHOLD` (the figures are in docs/demo.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from likeness.errors import MediaError

__all__ = [
    "DEMO_IDENTITIES",
    "IdentityRecipe",
    "compose_identity",
    "compose_recipe",
    "population_recipe",
    "portrait_landmarks",
    "synthetic_identity",
]

# MediaPipe FaceMesh indices (subject's right eye is the image's left).
_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, 468, 469, 470, 471, 472)
_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466, 473, 474, 475, 476, 477)
_NOSE_TIP, _NOSE_BRIDGE, _CHIN, _FOREHEAD = 1, 168, 152, 10
_MOUTH_CORNERS = (61, 291)
_LOWER_LIP = 17
_ALIGN_POINTS = (33, 133, 362, 263, 168, 1)
_FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150,
    136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


def _portraits() -> dict[str, Callable[[], np.ndarray]]:
    from likeness.media import synthetic

    return {"astronaut": synthetic.astronaut, "grace_hopper": synthetic.grace_hopper}


@dataclass(frozen=True)
class IdentityRecipe:
    """How one synthetic person is composed (see the module docstring).

    Scales are factors (1 = unchanged); ``eye_spacing`` moves each eye outwards by that fraction
    of the inter-ocular distance; ``chin`` moves the chin down by that fraction of the face height;
    ``skin_lab`` is added to the skin's (L, a, b) in OpenCV's 8-bit Lab units; ``hair_rgb`` is the
    new hair colour (None: unchanged).
    """

    name: str
    base: str
    donor: str
    donor_shape: float = 0.5
    donor_texture: float = 0.4
    eye_scale: float = 1.0
    eye_spacing: float = 0.0
    nose_scale: tuple[float, float] = (1.0, 1.0)
    mouth_scale: tuple[float, float] = (1.0, 1.0)
    face_width: float = 1.0
    chin: float = 0.0
    skin_lab: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hair_rgb: tuple[int, int, int] | None = None


#: The demo's idol (Mina) and performer (Jun). Figures for these are in docs/demo.md.
DEMO_IDENTITIES: dict[str, IdentityRecipe] = {
    "mina": IdentityRecipe(
        name="mina",
        base="astronaut",
        donor="grace_hopper",
        donor_shape=0.45,
        donor_texture=0.35,
        eye_scale=1.25,
        eye_spacing=0.05,
        nose_scale=(0.85, 0.85),
        mouth_scale=(0.85, 1.1),
        face_width=0.9,
        chin=0.03,
        skin_lab=(8.0, -2.0, -6.0),
        hair_rgb=(28, 22, 24),
    ),
    "jun": IdentityRecipe(
        name="jun",
        base="astronaut",
        donor="grace_hopper",
        donor_shape=0.8,
        donor_texture=0.55,
        eye_scale=0.85,
        eye_spacing=-0.04,
        nose_scale=(1.25, 1.1),
        mouth_scale=(1.15, 0.9),
        face_width=1.12,
        chin=-0.04,
        skin_lab=(-22.0, 6.0, 12.0),
        hair_rgb=(20, 16, 14),
    ),
}


def portrait_landmarks(rgb: np.ndarray) -> np.ndarray:
    """float32 (478, 2) landmarks of the one face in a package portrait (``MediaError`` if none)."""
    from likeness.faces import FaceDetector

    with FaceDetector(max_faces=1, mode="image") as detector:
        faces = detector.detect(rgb)
    if not faces:
        raise MediaError(None, "no face found in the portrait")
    return faces[0].landmarks.astype(np.float32)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform taking points ``src`` onto ``dst`` (least squares)."""
    matrix, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if matrix is None:
        raise MediaError(None, "cannot align the donor portrait's landmarks")
    return matrix


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _scale_about(points: np.ndarray, index: tuple[int, ...], centre: np.ndarray, scale: tuple[float, float]) -> None:
    idx = list(index)
    points[idx] = centre + (points[idx] - centre) * np.asarray(scale)


def _near(points: np.ndarray, centre: np.ndarray, radius: float) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(np.linalg.norm(points - centre, axis=1) < radius))


def edited_landmarks(base: np.ndarray, donor: np.ndarray, recipe: IdentityRecipe) -> np.ndarray:
    """The new face's landmarks: ``base`` moved towards the aligned ``donor``, then edited."""
    aligned = _apply(_similarity(donor[list(_ALIGN_POINTS)], base[list(_ALIGN_POINTS)]), donor)
    points = base + recipe.donor_shape * (aligned - base)
    right, left = points[list(_RIGHT_EYE)].mean(0), points[list(_LEFT_EYE)].mean(0)
    ocular = float(np.linalg.norm(left - right))
    across = (left - right) / ocular
    for eye, centre, side in ((_RIGHT_EYE, right, -1.0), (_LEFT_EYE, left, 1.0)):
        _scale_about(points, eye, centre, (recipe.eye_scale, recipe.eye_scale))
        points[list(eye)] += side * recipe.eye_spacing * ocular * across
    nose = points[_NOSE_TIP]
    _scale_about(points, _near(points, nose, 0.32 * ocular), nose, recipe.nose_scale)
    mouth = points[list(_MOUTH_CORNERS)].mean(0)
    mouth_width = float(np.linalg.norm(points[_MOUTH_CORNERS[1]] - points[_MOUTH_CORNERS[0]]))
    _scale_about(points, _near(points, mouth, 0.7 * mouth_width), mouth, recipe.mouth_scale)
    centre = points.mean(0)
    height = float(np.linalg.norm(points[_CHIN] - points[_FOREHEAD]))
    below_eyes = np.clip((points[:, 1] - (right[1] + left[1]) / 2) / height, 0.0, 1.0)
    points[:, 0] = centre[0] + (points[:, 0] - centre[0]) * (1 + (recipe.face_width - 1) * below_eyes)
    points[:, 1] += recipe.chin * height * below_eyes**2
    return points.astype(np.float32)


def warp_to_landmarks(rgb: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``rgb`` warped piecewise-affinely so its points ``src`` land on ``dst``; the border stays put."""
    from scipy.interpolate import LinearNDInterpolator

    height, width = rgb.shape[:2]
    border = np.array(
        [[x, y] for x in np.linspace(0, width - 1, 9) for y in (0, height - 1)]
        + [[x, y] for y in np.linspace(0, height - 1, 9)[1:-1] for x in (0, width - 1)],
        np.float32,
    )
    inverse = LinearNDInterpolator(np.vstack([dst, border]), np.vstack([src, border]))
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    maps = inverse(grid_x, grid_y).astype(np.float32)
    return cv2.remap(rgb, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _feathered(mask: np.ndarray, blur: float) -> np.ndarray:
    size = int(blur) * 2 + 1
    return cv2.GaussianBlur(mask.astype(np.float32), (size, size), blur / 2)


def _face_masks(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """(face oval mask, eye-band mask, face height) as float32 in [0, 1]."""
    height = float(np.linalg.norm(points[_CHIN] - points[_FOREHEAD]))
    oval = np.zeros(shape, np.uint8)
    cv2.fillPoly(oval, [np.round(points[list(_FACE_OVAL)]).astype(np.int32)], 1)
    band = np.zeros(shape, np.uint8)
    eyes = points[list(_RIGHT_EYE + _LEFT_EYE)]
    top, bottom = eyes[:, 1].min() - 0.2 * height, eyes[:, 1].max() + 0.13 * height
    band[int(max(0, top)) : int(bottom) + 1] = 1
    return oval.astype(np.float32), band.astype(np.float32), height


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)


def _colour_near(lab: np.ndarray, reference: np.ndarray, radius: float) -> np.ndarray:
    """Soft [0, 1] weight of pixels whose Lab colour is within ``radius`` of ``reference``."""
    return np.clip(1.5 - np.linalg.norm(lab - reference, axis=-1) / radius, 0.0, 1.0)


def _head_region(points: np.ndarray, shape: tuple[int, int], height: float) -> np.ndarray:
    """An ellipse around head and neck, where hair and skin are looked for."""
    centre = points[list(_FACE_OVAL)].mean(0)
    head = np.zeros(shape, np.uint8)
    axes = (int(0.85 * height), int(1.1 * height))
    cv2.ellipse(head, (int(centre[0]), int(centre[1] - 0.1 * height)), axes, 0, 0, 360, 1, -1)
    return head.astype(np.float32)


def _skin_and_hair(
    rgb: np.ndarray, points: np.ndarray, oval: np.ndarray, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Soft masks, inside the head region, of skin (face and neck, by the face's median colour)
    and hair (above the lower lip and outside the face: neither skin nor the backdrop sampled
    beside the head)."""
    lab = _lab(rgb)
    head = _head_region(points, oval.shape, height)
    skin = _colour_near(lab, np.median(lab[oval > 0], axis=0), 18.0) * head
    # Background: beside the head at eye level, where a portrait shows the studio backdrop.
    centre = points[list(_FACE_OVAL)].mean(0)
    backdrop = np.zeros(oval.shape, np.float32)
    y0 = int(max(0, points[_NOSE_BRIDGE][1] - 0.3 * height))
    for side in (-1.0, 0.9):
        x0 = int(np.clip(centre[0] + side * 1.05 * height, 0, oval.shape[1] - 1))
        sample = lab[y0 : y0 + int(0.2 * height), x0 : x0 + int(0.15 * height)].reshape(-1, 3)
        if len(sample):
            backdrop = np.maximum(backdrop, _colour_near(lab, np.median(sample, axis=0), 14.0))
    not_backdrop = 1.0 - backdrop
    hair = np.clip(not_backdrop - skin, 0, 1) * head * (1.0 - _feathered(oval, 0.03 * height))
    above_mouth = (np.arange(oval.shape[0])[:, None] < points[_LOWER_LIP][1]).astype(np.float32)
    hair = cv2.morphologyEx(hair * above_mouth, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    return np.clip(skin - hair, 0, 1), hair


def _recolour(rgb: np.ndarray, skin: np.ndarray, hair: np.ndarray, recipe: IdentityRecipe) -> np.ndarray:
    lab = _lab(rgb)
    lab += skin[..., None] * np.asarray(recipe.skin_lab, np.float32)
    if recipe.hair_rgb is not None:
        target = _lab(np.asarray(recipe.hair_rgb, np.uint8)[None, None])[0, 0]
        # Keep the hair's own light and shade (L relative to its mean), take the new colour.
        lit = target[0] + 0.6 * (lab[..., 0] - float(np.sum(lab[..., 0] * hair) / max(1.0, float(hair.sum()))))
        dyed = np.stack([lit, np.full_like(lit, target[1]), np.full_like(lit, target[2])], axis=-1)
        lab = lab * (1 - hair[..., None]) + dyed * hair[..., None]
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def compose_identity(
    base_rgb: np.ndarray,
    base_landmarks: np.ndarray,
    donor_rgb: np.ndarray,
    donor_landmarks: np.ndarray,
    recipe: IdentityRecipe,
) -> np.ndarray:
    """A new face, uint8 RGB of ``base_rgb``'s size, composed as the module docstring says (pure)."""
    points = edited_landmarks(base_landmarks, donor_landmarks, recipe)
    shape = base_rgb.shape[:2]
    out = warp_to_landmarks(base_rgb, base_landmarks, points).astype(np.float32)
    # The donor, moved into the base's frame, then warped onto the same new landmarks.
    to_base = _similarity(donor_landmarks[list(_ALIGN_POINTS)], base_landmarks[list(_ALIGN_POINTS)])
    donor_in_base = cv2.warpAffine(donor_rgb, to_base, (shape[1], shape[0]), borderMode=cv2.BORDER_REFLECT)
    donor = warp_to_landmarks(donor_in_base, _apply(to_base, donor_landmarks), points).astype(np.float32)
    oval, band, height = _face_masks(points, shape)
    inner = cv2.erode(oval, np.ones((3, 3), np.uint8), iterations=max(1, int(0.06 * height)))
    texture = _feathered(inner * (1.0 - band), 0.05 * height) * recipe.donor_texture
    # The donor's colour is matched to the base's skin first, so only its detail comes across.
    skin = inner > 0
    donor = (donor - donor[skin].mean(0)) / (donor[skin].std(0) + 1e-6) * out[skin].std(0) + out[skin].mean(0)
    out = out * (1 - texture[..., None]) + donor * texture[..., None]
    out_u8 = np.clip(out, 0, 255).astype(np.uint8)
    skin_mask, hair = _skin_and_hair(out_u8, points, oval, height)
    out_u8 = _recolour(out_u8, _feathered(skin_mask, 0.02 * height), _feathered(hair, 0.015 * height), recipe)
    return out_u8


@functools.lru_cache(maxsize=4)
def _landmarks_of(portrait: str) -> np.ndarray:
    return portrait_landmarks(_portraits()[portrait]())


def synthetic_identity(name: str) -> np.ndarray:
    """The demo identity ``name`` (a key of :data:`DEMO_IDENTITIES`) as uint8 RGB; deterministic
    (composed once per process: a few seconds)."""
    if name not in DEMO_IDENTITIES:
        raise MediaError(None, f"no synthetic identity {name!r}; known: {', '.join(DEMO_IDENTITIES)}")
    return _demo_identity(name).copy()


@functools.lru_cache(maxsize=len(DEMO_IDENTITIES))
def _demo_identity(name: str) -> np.ndarray:
    return compose_recipe(DEMO_IDENTITIES[name])


_HAIR_COLOURS = ((28, 22, 24), (20, 16, 14), (70, 45, 30), (120, 80, 50), (150, 120, 80), (60, 40, 60))


def population_recipe(index: int, *, seed: int = 0) -> IdentityRecipe:
    """A random recipe for member ``index`` of a seeded population of composed people (the base
    model's pretraining set; the demo's two recipes are fixed in :data:`DEMO_IDENTITIES`)."""
    rng = np.random.default_rng([seed, index])
    base, donor = ("astronaut", "grace_hopper") if rng.random() < 0.75 else ("grace_hopper", "astronaut")

    def pair(low: float, high: float) -> tuple[float, float]:
        return (float(rng.uniform(low, high)), float(rng.uniform(low, high)))

    return IdentityRecipe(
        name=f"population-{seed}-{index}",
        base=base,
        donor=donor,
        donor_shape=float(rng.uniform(0.0, 1.0)),
        donor_texture=float(rng.uniform(0.1, 0.6)),
        eye_scale=float(rng.uniform(0.8, 1.3)),
        eye_spacing=float(rng.uniform(-0.06, 0.06)),
        nose_scale=pair(0.8, 1.3),
        mouth_scale=pair(0.8, 1.25),
        face_width=float(rng.uniform(0.85, 1.15)),
        chin=float(rng.uniform(-0.05, 0.05)),
        skin_lab=(float(rng.uniform(-25, 12)), float(rng.uniform(-4, 8)), float(rng.uniform(-8, 14))),
        hair_rgb=_HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))] if base == "astronaut" else None,
    )


def compose_recipe(recipe: IdentityRecipe) -> np.ndarray:
    """The person ``recipe`` describes, as uint8 RGB of the base portrait's size; deterministic."""
    portraits = _portraits()
    return compose_identity(
        portraits[recipe.base](),
        _landmarks_of(recipe.base),
        portraits[recipe.donor](),
        _landmarks_of(recipe.donor),
        recipe,
    )
