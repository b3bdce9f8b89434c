"""Canonical face geometry for MediaPipe FaceMesh landmarks (478 points with irises).

The 3D points below are a mean shape measured by running FaceMesh (refine_landmarks=True) on 33
near-frontal synthetic and public-domain portraits, Procrustes-normalised (outer eye corners at
x = -0.5 and +0.5, eye line horizontal, centroid of the mesh at the origin) and made exactly
left/right symmetric. Axes follow the image: x to the image right (the subject's left), y down,
z away from the camera. Units: outer inter-ocular distance = 1.

Only a subset of the mesh is kept: the points alignment, pose and quality need. Index names
use the subject's own left/right (MediaPipe's convention: ``RIGHT_EYE_OUTER`` = 33 appears on
the image left in a frontal photo).
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478

RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473
NOSE_TIP, SUBNASALE, NOSE_BRIDGE = 1, 2, 168
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
INNER_LIP_RIGHT, INNER_LIP_LEFT = 78, 308
INNER_LIP_UPPER, INNER_LIP_LOWER = 13, 14
# The inner-lip contour as one closed loop: the upper lip right to left, then the lower lip back.
INNER_LIP_LOOP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
CHIN, FOREHEAD_TOP = 152, 10

# Upper/lower lid pairs, each eye ordered outer to inner.
RIGHT_EYE_LIDS = ((160, 144), (159, 145), (158, 153))
LEFT_EYE_LIDS = ((387, 373), (386, 374), (385, 380))

# Eyebrow points (both brows) moved upwards by hull_mask's forehead extension.
BROW_POINTS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)

# Points that move least with expression: eye corners, nose bridge and base, brows' inner
# halves and mouth corners (mouth corners keep the vertical scale stable under yaw).
ALIGN_INDICES = np.array(
    [33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 107, 336, 105, 334, 61, 291],
    dtype=np.int64,
)

# Rigid points for solvePnP: no jaw, no lips (they move with speech).
POSE_INDICES = np.array(
    [
        33,
        133,
        362,
        263,
        168,
        6,
        197,
        195,
        5,
        4,
        1,
        2,
        98,
        327,
        129,
        358,
        70,
        300,
        105,
        334,
        107,
        336,
        9,
        151,
        10,
        234,
        454,
        127,
        356,
        93,
        323,
    ],
    dtype=np.int64,
)

CANONICAL_POINTS = {
    0: (0.0000, 0.3199, -0.1693),
    1: (0.0000, 0.1161, -0.3674),
    2: (0.0000, 0.1726, -0.1861),
    4: (0.0000, 0.0436, -0.3950),
    5: (0.0000, -0.0554, -0.3739),
    6: (0.0000, -0.2991, -0.2087),
    9: (0.0000, -0.5700, -0.1968),
    10: (0.0000, -0.9301, -0.1515),
    13: (0.0000, 0.3772, -0.1014),
    14: (0.0000, 0.4441, -0.0839),
    17: (0.0000, 0.5497, -0.0899),
    21: (-0.7288, -0.6232, 0.3592),
    33: (-0.5000, -0.3612, 0.0833),
    54: (-0.6651, -0.7429, 0.2153),
    58: (-0.6775, 0.3374, 0.6514),
    61: (-0.3027, 0.3794, 0.0670),
    67: (-0.3948, -0.8975, -0.0596),
    70: (-0.6377, -0.5259, 0.0802),
    78: (-0.2806, 0.3812, 0.0493),
    93: (-0.7533, -0.0172, 0.5961),
    98: (-0.2002, 0.1376, -0.0989),
    103: (-0.5599, -0.8371, 0.0677),
    105: (-0.4643, -0.6140, -0.0916),
    107: (-0.1646, -0.5814, -0.1888),
    109: (-0.2144, -0.9251, -0.1330),
    127: (-0.7701, -0.3280, 0.5825),
    129: (-0.2394, 0.0606, -0.0801),
    132: (-0.7272, 0.1563, 0.7035),
    133: (-0.1939, -0.3325, 0.0248),
    136: (-0.5274, 0.5946, 0.4354),
    145: (-0.3539, -0.3128, 0.0064),
    150: (-0.4266, 0.6926, 0.3428),
    151: (0.0000, -0.7542, -0.1802),
    152: (0.0000, 0.8819, 0.1210),
    159: (-0.3754, -0.4126, -0.0125),
    162: (-0.7626, -0.4938, 0.5131),
    168: (0.0000, -0.3905, -0.1659),
    172: (-0.6073, 0.4846, 0.5491),
    176: (-0.2488, 0.8235, 0.1912),
    195: (0.0000, -0.1385, -0.3159),
    197: (0.0000, -0.2158, -0.2601),
    234: (-0.7658, -0.1744, 0.6383),
    251: (0.7288, -0.6232, 0.3592),
    263: (0.5000, -0.3612, 0.0833),
    284: (0.6651, -0.7429, 0.2153),
    288: (0.6775, 0.3374, 0.6514),
    291: (0.3027, 0.3794, 0.0670),
    297: (0.3948, -0.8975, -0.0596),
    300: (0.6377, -0.5259, 0.0802),
    308: (0.2806, 0.3812, 0.0493),
    323: (0.7533, -0.0172, 0.5961),
    327: (0.2002, 0.1376, -0.0989),
    332: (0.5599, -0.8371, 0.0677),
    334: (0.4643, -0.6140, -0.0916),
    336: (0.1646, -0.5814, -0.1888),
    338: (0.2144, -0.9251, -0.1330),
    356: (0.7701, -0.3280, 0.5825),
    358: (0.2394, 0.0606, -0.0801),
    361: (0.7272, 0.1563, 0.7035),
    362: (0.1939, -0.3325, 0.0248),
    365: (0.5274, 0.5946, 0.4354),
    374: (0.3539, -0.3128, 0.0064),
    379: (0.4266, 0.6926, 0.3428),
    386: (0.3754, -0.4126, -0.0125),
    389: (0.7626, -0.4938, 0.5131),
    397: (0.6073, 0.4846, 0.5491),
    400: (0.2488, 0.8235, 0.1912),
    454: (0.7658, -0.1744, 0.6383),
    468: (-0.3562, -0.3679, 0.0219),
    473: (0.3562, -0.3679, 0.0219),
}
"""Landmark index -> (x, y, z) of the canonical face, units of outer inter-ocular distance."""


def canonical_points(indices: np.ndarray) -> np.ndarray:
    """Canonical 3D coordinates ``float64 (K, 3)`` for MediaPipe landmark ``indices`` (K,)."""
    return np.array([CANONICAL_POINTS[int(i)] for i in indices], dtype=np.float64)
