"""Benchmark the artist recogniser: false match rate on strangers, true match rate on held-out
images of enrolled identities, before (nearest reference <= 0.40) and after (the gallery's
subject templates and thresholds, ``likeness.verify.gallery``).

Usage::

    .venv/bin/python benchmarks/recognizer.py ../shared/media [--cache /tmp/recognizer.npz]

Enrolled identities (the gallery): every synthetic identity of the development media with at
least 4 face images (seeprettyface edit strips, DigiFace-1M id1/id2 main + variety grids and
accessory rows; ``identity_calibration.collect_samples``). Each is enrolled with its first
``--references`` images (3 by default); the rest are its held-out genuine probes.

Strangers (impostor probes): every other face: the congress_pd portraits, the single portraits,
every face of the group photos, the public-domain paintings, the StyleGAN / FaceSynthetics /
diffusion people and the seeprettyface singles, and the LFW subset faces (25x25, upscaled 6x;
those the detector finds). Each stranger is compared with every enrolled identity; a false
match is a stranger matched to any of them. Held-out genuine probes are also counted as false
matches when matched to another enrolled identity.

One-reference subjects, every pair: every face above (strangers and enrolled identities' images)
is in turn a subject enrolled from that one photo and every face of another person its probe;
pairs that may show one person are left out (LFW with LFW, the single portraits, group photos and
congress portraits with each other, images of one synthetic identity). This is the largest impostor set the media give.

Video tracks: a track is scored on its 3 best views (``EMBEDDINGS_PER_TRACK``). Genuine tracks
are consecutive triples of an identity's held-out probes; impostor tracks are triples of images
of a *non-enrolled* identity: each enrolled identity is left out of the gallery in turn and its
images, in triples, are probed against the others (lookalikes seen several times, the case the
k-of-n rule is for). Before: the track's mean embedding against the nearest reference <= 0.40.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from identity_calibration import collect_samples, load_rgb  # noqa: E402


def stranger_images(root: Path):
    portraits = root / "portraits"
    for folder in ("congress_pd", "single", "group", "pd_paintings"):
        for path in sorted((portraits / folder).glob("*.*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                yield f"{folder}/{path.name}", load_rgb(path), folder == "group"
    lfw = portraits / "arrays" / "lfw_subset.npy"
    if lfw.is_file():
        for i, face in enumerate(np.load(lfw)[:100]):
            gray = np.clip(face * 255.0, 0, 255).astype(np.uint8)
            big = cv2.resize(gray, (150, 150), interpolation=cv2.INTER_CUBIC)
            yield f"lfw/{i}", np.ascontiguousarray(np.repeat(big[:, :, None], 3, axis=2)), False


def embed_all(root: Path, cache: Path):
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return (
            list(data["identities"]),
            data["identity_vectors"],
            list(data["stranger_names"]),
            data["stranger_vectors"],
        )
    from likeness.faces import FaceDetector, FaceEmbedder

    embedder = FaceEmbedder()
    detector = FaceDetector(max_faces=64, tile_side=1280, max_side=1280, crop_retry=True, small_faces=True)
    samples = collect_samples(root)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.identity] = counts.get(s.identity, 0) + 1
    identities, identity_vectors, strangers, stranger_vectors = [], [], [], []
    for sample in samples:
        faces = detector.detect(sample.rgb)
        if not faces:
            continue
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        vector = embedder.embed(sample.rgb, face.landmarks)
        if counts[sample.identity] >= 4:
            if any(
                i == sample.identity and np.linalg.norm(v - vector) < 1e-3 for i, v in zip(identities, identity_vectors)
            ):
                continue  # the neutral frame is in two strips
            identities.append(sample.identity)
            identity_vectors.append(vector)
        else:
            strangers.append(f"synthetic/{sample.name}")
            stranger_vectors.append(vector)
    for name, rgb, group in stranger_images(root):
        faces = detector.detect(rgb)
        if not group:
            faces = sorted(faces, key=lambda f: -(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))[:1]
        for k, face in enumerate(faces):
            strangers.append(f"{name}#{k}")
            stranger_vectors.append(embedder.embed(rgb, face.landmarks))
    result = (identities, np.array(identity_vectors, np.float32), strangers, np.array(stranger_vectors, np.float32))
    np.savez(
        cache,
        identities=np.array(identities),
        identity_vectors=result[1],
        stranger_names=np.array(strangers),
        stranger_vectors=result[3],
    )
    return result


def split(identities, vectors, references: int):
    enrolled: dict[str, np.ndarray] = {}
    probes: list[tuple[str, np.ndarray]] = []
    for ident in sorted(set(identities)):
        rows = [v for i, v in zip(identities, vectors) if i == ident]
        enrolled[ident] = np.array(rows[:references], np.float32)
        probes += [(ident, v) for v in rows[references:]]
    return enrolled, probes


def build_gallery(enrolled: dict[str, np.ndarray], folder: Path, **options):
    from likeness.verify.gallery import ArtistGallery, SubjectReferences

    refs = [SubjectReferences(ident, ident, ident, rows) for ident, rows in enrolled.items()]
    return ArtistGallery.sync(folder, refs, **options)


def evaluate(gallery, probes, strangers: np.ndarray, *, rule: str):
    """(true matches, genuine probes, wrong-identity matches, false matches, strangers, us/query)."""
    genuine_vectors = np.array([v for _, v in probes], np.float32)
    started = time.perf_counter()
    genuine = [q.match for q in gallery.query_many(genuine_vectors, rule=rule)]
    impostor = [q.match for q in gallery.query_many(strangers, rule=rule)]
    per_query = (time.perf_counter() - started) / (len(probes) + len(strangers)) * 1e6
    true = sum(1 for (ident, _), m in zip(probes, genuine) if m is not None and m.subject_id == ident)
    wrong = sum(1 for (ident, _), m in zip(probes, genuine) if m is not None and m.subject_id != ident)
    false = sum(1 for m in impostor if m is not None)
    return true, len(probes), wrong, false, len(strangers), per_query


def triples(rows: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(rows[i : i + 3]) for i in range(0, len(rows) - 2, 3)]


def track_query(gallery, tracks: list[np.ndarray], rule: str):
    if rule == "nearest":  # before: the mean of the views, nearest reference <= threshold
        means = np.stack([t.mean(axis=0) for t in tracks]).astype(np.float32)
        return gallery.query_many(means, rule="nearest")
    return gallery.query_tracks(tracks)


def evaluate_tracks(enrolled, probes, identities, vectors, references: int, tmp: Path):
    """Genuine tracks of held-out probes; impostor tracks of each left-out identity."""
    from likeness.faces import IDENTITY_THRESHOLD

    rows = {}
    for ident, vector in probes:
        rows.setdefault(ident, []).append(vector)
    genuine_tracks = [(ident, t) for ident, vs in rows.items() for t in triples(vs)]
    gallery = build_gallery(enrolled, tmp / "all", threshold=IDENTITY_THRESHOLD)
    out = {}
    for rule in ("nearest", "subject"):
        queries = track_query(gallery, [t for _, t in genuine_tracks], rule)
        true = sum(1 for (ident, _), q in zip(genuine_tracks, queries) if q.match and q.match.subject_id == ident)
        false = impostors = 0
        for left_out in sorted(enrolled):
            others = {k: v for k, v in enrolled.items() if k != left_out}
            sub = build_gallery(others, tmp / f"{rule}-{left_out}", threshold=IDENTITY_THRESHOLD)
            own = [v for i, v in zip(identities, vectors) if i == left_out]
            tracks = triples(own)
            impostors += len(tracks)
            false += sum(1 for q in track_query(sub, tracks, rule) if q.match is not None)
        out[rule] = (true, len(genuine_tracks), false, impostors)
    return out


def pairwise_single_reference(identities, vectors, stranger_names, strangers) -> None:
    from likeness.faces import IDENTITY_THRESHOLD
    from likeness.faces.identity import SINGLE_REFERENCE_THRESHOLD

    names = [f"id:{i}" for i in identities] + list(stranger_names)
    allv = np.concatenate([vectors, strangers]).astype(np.float64)
    source = [n.split("/")[0] if not n.startswith("id:") else n for n in names]
    distances = np.linalg.norm(allv[:, None, :] - allv[None, :, :], axis=2)
    iu = np.triu_indices(len(names), 1)
    keep = []
    for a, b in zip(*iu):
        sa, sb = source[a], source[b]
        if sa == sb and (sa.startswith("id:") or sa == "lfw"):
            continue  # one identity, or LFW (which repeats people)
        if {sa, sb} in ({"single", "group"}, {"single", "congress_pd"}, {"group", "congress_pd"}):
            continue  # the same politicians may be in both (Obama is in all three)
        keep.append(distances[a, b])
    impostor = np.array(keep)
    genuine = np.array([distances[a, b] for a, b in zip(*iu) if source[a] == source[b] and source[a].startswith("id:")])
    print(f"\nOne reference per subject, all pairs: {len(impostor)} impostor pairs, {len(genuine)} genuine pairs")
    print("| threshold | false matches | FMR | genuine pairs accepted |")
    print("|---|---|---|---|")
    for label, t in (
        ("before: 0.40", IDENTITY_THRESHOLD),
        (f"after: {SINGLE_REFERENCE_THRESHOLD:.2f}", SINGLE_REFERENCE_THRESHOLD),
    ):
        fm = int((impostor <= t).sum())
        print(
            f"| {label} | {fm} | {fm / len(impostor):.2e} | {(genuine <= t).sum()}/{len(genuine)} = "
            f"{(genuine <= t).mean():.3f} |"
        )
    print("closest impostor pairs: " + ", ".join(f"{d:.3f}" for d in np.sort(impostor)[:5]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/likeness-recognizer.npz"))
    parser.add_argument("--references", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    from likeness.faces import IDENTITY_THRESHOLD

    identities, vectors, stranger_names, strangers = embed_all(args.media, args.cache)
    enrolled, probes = split(identities, vectors, args.references)
    print(
        f"enrolled identities: {len(enrolled)} ({args.references} references each); held-out genuine "
        f"probes: {len(probes)}; stranger faces: {len(strangers)} "
        f"(x {len(enrolled)} identities = {len(strangers) * len(enrolled)} impostor comparisons)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        gallery = build_gallery(enrolled, Path(tmp), threshold=IDENTITY_THRESHOLD)
        print("| rule | TMR (held-out) | wrong identity | FMR (strangers matched) | us/query |")
        print("|---|---|---|---|---|")
        for name, rule in (
            ("before: nearest reference <= 0.40", "nearest"),
            ("after: per-subject threshold (reference spread)", "subject"),
        ):
            t, n, w, f, s, us = evaluate(gallery, probes, strangers, rule=rule)
            print(f"| {name} | {t}/{n} = {t / max(n, 1):.3f} | {w} | {f}/{s} = {f / max(s, 1):.4f} | {us:.0f} |")
        thresholds = ", ".join(f"{k} {v:.3f}" for k, v in sorted(gallery.subject_thresholds.items()))
        print(f"per-subject thresholds: {thresholds}")
        for rule in ("nearest", "subject"):
            scored = gallery.query_many(strangers, rule=rule)
            margins = sorted(
                (q.nearest.distance - q.nearest.threshold, name, q.nearest.slug, q.nearest.distance)
                for q, name in zip(scored, stranger_names)
                if q.nearest is not None
            )[:4]
            print(
                f"closest strangers ({rule}): "
                + ", ".join(f"{n} -> {s} {d:.3f} (margin {m:+.3f})" for m, n, s, d in margins)
            )
        pairwise_single_reference(identities, vectors, stranger_names, strangers)
        tracks = evaluate_tracks(enrolled, probes, identities, vectors, args.references, Path(tmp))
        print("\n| tracks (3 views) | genuine tracks matched | impostor tracks matched (left-out identities) |")
        print("|---|---|---|")
        for rule, label in (
            ("nearest", "before: mean of views, nearest reference <= 0.40"),
            ("subject", "after: mean within the subject's threshold, 2 of 3 views within 1.25x"),
        ):
            t, n, f, i = tracks[rule]
            print(f"| {label} | {t}/{n} | {f}/{i} |")


if __name__ == "__main__":
    main()
