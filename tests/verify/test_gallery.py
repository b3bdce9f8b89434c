"""The FAISS artist gallery: matching, thresholds, persistence and incremental rebuilds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from likeness.errors import FaceError
from likeness.verify.gallery import (
    IDS_FILE,
    INDEX_FILE,
    ArtistGallery,
    SubjectReferences,
    distance_to_similarity,
)

THRESHOLD = 0.5


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(vector: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A point exactly ``distance`` away from ``vector``."""
    direction = rng.normal(size=128).astype(np.float32)
    direction /= np.linalg.norm(direction)
    return (vector + distance * direction).astype(np.float32)


@pytest.fixture()
def people():
    rng = np.random.default_rng(7)
    return {
        "mina": SubjectReferences("s-mina", "mina", "Mina", unit(rng, 3)),
        "jun": SubjectReferences("s-jun", "jun", "Jun", unit(rng, 2)),
    }


def test_query_finds_the_right_subject_with_documented_similarity(tmp_path, people):
    rng = np.random.default_rng(1)
    gallery = ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    probe = near(people["mina"].embeddings[1], 0.2, rng)
    result = gallery.query(probe)
    assert result.match is not None and result.match.slug == "mina"
    assert result.match.distance == pytest.approx(0.2, abs=1e-4)
    assert result.match.similarity == pytest.approx(1 - 0.2 / (2 * THRESHOLD), abs=1e-4)
    # One candidate per subject, closest first.
    assert [c.slug for c in result.candidates] == ["mina", "jun"]


def test_threshold_is_inclusive_and_outside_is_no_match(tmp_path, people):
    rng = np.random.default_rng(2)
    gallery = ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    inside = gallery.query(near(people["jun"].embeddings[0], THRESHOLD - 0.01, rng))
    outside = gallery.query(near(people["jun"].embeddings[0], THRESHOLD + 0.05, rng))
    assert inside.match is not None and inside.match.slug == "jun"
    assert outside.match is None
    assert outside.nearest is not None and outside.nearest.similarity < 0.5


def test_similarity_mapping():
    assert distance_to_similarity(0.0, threshold=0.4) == 1.0
    assert distance_to_similarity(0.4, threshold=0.4) == 0.5
    assert distance_to_similarity(0.8, threshold=0.4) == 0.0
    assert distance_to_similarity(5.0, threshold=0.4) == 0.0
    with pytest.raises(ValueError):
        distance_to_similarity(0.1, threshold=0.0)


def test_empty_gallery_matches_nothing(tmp_path):
    gallery = ArtistGallery.sync(tmp_path, [], threshold=THRESHOLD)
    assert gallery.size == 0
    result = gallery.query(np.zeros(128, np.float32))
    assert result.match is None and result.candidates == ()


def test_persisted_and_reloaded(tmp_path, people):
    first = ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    assert (tmp_path / INDEX_FILE).exists() and (tmp_path / IDS_FILE).exists()
    loaded = ArtistGallery.load(tmp_path, threshold=THRESHOLD)
    assert loaded.size == first.size == 5
    assert loaded.fingerprint == first.fingerprint
    assert loaded.query(people["jun"].embeddings[1]).match.slug == "jun"


def test_incremental_sync_adds_only_new_rows(tmp_path, people):
    rng = np.random.default_rng(3)
    ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    again = ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    assert (again.last_sync_added, again.last_sync_rebuilt) == (0, False)

    extra = unit(rng, 1)
    grown_mina = SubjectReferences("s-mina", "mina", "Mina", np.vstack([people["mina"].embeddings, extra]))
    newcomer = SubjectReferences("s-hana", "hana", "Hana", unit(rng, 2))
    grown = ArtistGallery.sync(tmp_path, [grown_mina, people["jun"], newcomer], threshold=THRESHOLD)
    assert (grown.last_sync_added, grown.last_sync_rebuilt) == (3, False)
    assert grown.size == 8 and grown.subject_count == 3
    assert grown.query(extra[0]).match.slug == "mina"
    assert grown.query(newcomer.embeddings[1]).match.slug == "hana"
    assert grown.fingerprint != again.fingerprint


def test_removed_reference_forces_rebuild(tmp_path, people):
    ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    only_mina = ArtistGallery.sync(tmp_path, [people["mina"]], threshold=THRESHOLD)
    assert only_mina.last_sync_rebuilt and only_mina.size == 3
    assert only_mina.query(people["jun"].embeddings[0]).match is None


def test_damaged_index_is_rebuilt_not_fatal(tmp_path, people):
    ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    (tmp_path / INDEX_FILE).write_bytes(b"not a faiss index")
    repaired = ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    assert repaired.last_sync_rebuilt and repaired.size == 5
    ids = json.loads((tmp_path / IDS_FILE).read_text())
    ids["rows"] = ids["rows"][:2]  # index and ids disagree
    (tmp_path / IDS_FILE).write_text(json.dumps(ids))
    assert ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD).last_sync_rebuilt


def test_renamed_subject_is_relabelled_without_rebuild(tmp_path, people):
    ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    renamed = SubjectReferences("s-jun", "jun", "Jun (solo)", people["jun"].embeddings)
    gallery = ArtistGallery.sync(tmp_path, [people["mina"], renamed], threshold=THRESHOLD)
    assert not gallery.last_sync_rebuilt
    assert ArtistGallery.load(tmp_path, threshold=THRESHOLD).query(renamed.embeddings[0]).match.name == "Jun (solo)"


def test_duplicate_rows_are_indexed_once(tmp_path, people):
    doubled = SubjectReferences("s-mina", "mina", "Mina", np.vstack([people["mina"].embeddings] * 2))
    assert ArtistGallery.sync(tmp_path, [doubled], threshold=THRESHOLD).size == 3


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 64), np.float32), np.zeros((2, 128), np.int32), np.full((1, 128), np.nan, np.float32)],
    ids=["wrong-dim", "int-dtype", "nan"],
)
def test_bad_embeddings_raise_typed_error(tmp_path, bad):
    with pytest.raises(FaceError, match="mina"):
        ArtistGallery.sync(tmp_path, [SubjectReferences("s", "mina", "Mina", bad)], threshold=THRESHOLD)
    gallery = ArtistGallery.sync(tmp_path, [], threshold=THRESHOLD)
    with pytest.raises(FaceError, match="query"):
        gallery.query_many(bad)


def test_many_references_do_not_crowd_out_other_subjects(tmp_path):
    rng = np.random.default_rng(5)
    base = unit(rng, 1)[0]
    crowd = np.stack([near(base, 0.05, rng) for _ in range(100)])
    other = near(base, 0.3, rng)[None, :]
    gallery = ArtistGallery.sync(
        tmp_path,
        [SubjectReferences("s-a", "a", "A", crowd), SubjectReferences("s-b", "b", "B", other)],
        threshold=THRESHOLD,
    )
    result = gallery.query(near(base, 0.01, rng))
    assert [c.slug for c in result.candidates] == ["a", "b"]
    assert result.match.slug == "a"
    assert result.candidates[1].distance == pytest.approx(0.3, abs=0.05)


def test_the_gallery_files_are_written_whole_and_the_owner_s_alone(tmp_path, people, monkeypatch):
    """Both files were renamed into place unsynced; each is now fsynced under a temporary, placed,
    and the folder fsynced, 0600 as before."""
    from tests.durability import assert_written_whole, watch_disk

    log = watch_disk(monkeypatch)
    ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    for name in (INDEX_FILE, IDS_FILE):
        assert_written_whole(log, tmp_path / name)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_a_gallery_that_cannot_be_written_is_a_config_error_and_leaves_no_temporary(tmp_path, people, monkeypatch):
    """Its temporaries stayed behind in the workspace after a failed write."""
    from likeness.errors import ConfigError
    from tests.durability import failing_placements, hidden_files

    failing_placements(monkeypatch)
    with pytest.raises(ConfigError, match="cannot write the artist gallery in .*Input/output error"):
        ArtistGallery.sync(tmp_path, people.values(), threshold=THRESHOLD)
    assert hidden_files(tmp_path) == []
