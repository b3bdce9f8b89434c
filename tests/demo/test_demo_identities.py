"""The demo's idol and performer are people who do not exist, by the product's own recogniser."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.faces import IDENTITY_THRESHOLD, FaceDetector, FaceEmbedder
from likeness.media import synthetic
from likeness.media.synthetic_identities import DEMO_IDENTITIES, synthetic_identity


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    """dlib embeddings of the package portraits and of the demo's composed people."""
    images = {"astronaut": synthetic.astronaut(), "grace_hopper": synthetic.grace_hopper()}
    images |= {name: synthetic_identity(name) for name in DEMO_IDENTITIES}
    embedder, vectors = FaceEmbedder(), {}
    with FaceDetector(max_faces=1) as detector:
        for name, rgb in images.items():
            found = detector.detect(rgb)
            assert len(found) == 1, f"{name}: the detector must find exactly one face"
            vectors[name] = embedder.embed(rgb, found[0].landmarks)
    return vectors


@pytest.mark.parametrize("identity", sorted(DEMO_IDENTITIES))
@pytest.mark.parametrize("portrait", ["astronaut", "grace_hopper"])
def test_demo_identity_is_not_a_package_portrait(embeddings, identity, portrait) -> None:
    distance = float(np.linalg.norm(embeddings[identity] - embeddings[portrait]))
    assert distance > IDENTITY_THRESHOLD, f"{identity} matches {portrait} (distance {distance:.3f})"


def test_demo_idol_and_performer_are_different_people(embeddings) -> None:
    assert float(np.linalg.norm(embeddings["mina"] - embeddings["jun"])) > IDENTITY_THRESHOLD


def test_an_unknown_identity_is_named() -> None:
    with pytest.raises(MediaError, match="no synthetic identity 'eileen'"):
        synthetic_identity("eileen")
