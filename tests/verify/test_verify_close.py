"""``Verifier.close()`` releases what the verifier built: a scan worker or the service's public
checker closes one and builds another, and the old ONNX sessions must not stay in memory."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from likeness.errors import FaceError
from likeness.faces import FaceEmbedder
from likeness.verify.pipeline import Verifier


class _LoadedModel:
    """Stands in for a registered detector's loaded model (its ONNX session)."""


def test_close_releases_the_embedder_session_and_the_loaded_detectors(workspace) -> None:
    verifier = Verifier(workspace)
    embedder = verifier._embedder_model()
    assert embedder.backend == "onnx"
    session = weakref.ref(embedder._session)
    model = _LoadedModel()
    verifier.detectors._loaded[("subject", 1)] = model
    loaded = weakref.ref(model)
    del model
    verifier.close()
    gc.collect()
    # Before, close() closed the face detectors only: the embedder (and its ONNX session) and
    # the detectors' models stayed referenced by the closed verifier.
    assert session() is None
    assert loaded() is None
    assert verifier._embedder is None


def test_a_closed_embedder_says_so() -> None:
    embedder = FaceEmbedder()
    embedder.close()
    embedder.close()  # twice is quiet
    with pytest.raises(FaceError, match="embedder is closed"):
        embedder.embed_many(np.zeros((64, 64, 3), np.uint8), [])
