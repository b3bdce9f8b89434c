"""Calibrate IDENTITY_THRESHOLD on synthetic people (no real identities are used as genuine pairs).

Usage:
    .venv/bin/python benchmarks/identity_calibration.py [MEDIA_DIR]   # default ../shared/media

Embeds every face under MEDIA_DIR/synthetic_people (MediaPipe landmarks -> dlib ResNet), builds
genuine pairs (same synthetic identity: the seeprettyface edit strips, whose "angle" and "smile"
strips of one generator show the same person, and the DigiFace-1M id*_main + id*_variety sets and
accessory rows) and impostor pairs (different synthetic people), and prints false-accept and
false-reject rates at several thresholds, for all impostors and for East Asian impostors only.
It also compares matching against a reference set by the minimum distance vs the mean of the 3
nearest (leave-one-out over the multi-image identities), and the two ways of getting dlib's 5
points (mapped MediaPipe landmarks vs dlib's own 5-point predictor).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from likeness.faces import FaceDetector, FaceEmbedder, match_identity

warnings.filterwarnings("ignore", category=UserWarning, module="google.protobuf")

THRESHOLDS = [0.40, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60]


@dataclass
class Sample:
    identity: str
    east_asian: bool
    name: str
    rgb: np.ndarray


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: cannot read image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def collect_samples(root: Path) -> list[Sample]:
    people = root / "synthetic_people"
    if not people.is_dir():
        raise SystemExit(f"{people}: not found (pass the shared media folder)")
    samples: list[Sample] = []
    spf = people / "seeprettyface_1024"
    # Edit strips: 1024x256 = 4 frames; "<generator>_edit_angle" and "<generator>_edit_smile"
    # show the same person (checked by eye), so the identity is the generator name.
    for strip in sorted((spf / "edit_strips").glob("*.jpg")):
        generator = strip.stem.split("_")[0]
        rgb = load_rgb(strip)
        width = rgb.shape[1] // 4
        for i in range(4):
            frame = np.ascontiguousarray(rgb[:, i * width : (i + 1) * width])
            samples.append(Sample(f"spf_strip_{generator}", generator != "model", f"{strip.stem}[{i}]", frame))
    # Single samples: the "model" generator makes mostly non-Asian faces (model_example3 is a
    # Black woman); "wanghong" and "yellow" make East Asian faces.
    for path in sorted(spf.glob("*.png")):
        samples.append(Sample(f"spf_{path.stem}", not path.stem.startswith("model"), path.name, load_rgb(path)))
    digi = people / "digiface1m"
    for ident in ("id1", "id2"):
        for path in [digi / f"{ident}_main.jpg", *sorted((digi / f"{ident}_variety").glob("*.jpg"))]:
            samples.append(Sample(f"digi_{ident}", False, path.name, load_rgb(path)))
        # Accessory figure: each row is one identity (acc0-3, acc4-7), not the main identity.
        for path in sorted(digi.glob(f"{ident}_acc*.jpg")):
            row = "a" if int(path.stem[-1]) < 4 else "b"
            samples.append(Sample(f"digi_{ident}_acc{row}", False, path.name, load_rgb(path)))
    for folder in (
        "stylegan1_teaser",
        "stylegan2_ffhq_samples",
        "stylegan2_teaser",
        "stylegan3_teaser",
        "facesynthetics",
        "diffusion_generated_sadtalker",
    ):
        for path in sorted((people / folder).glob("*.*")):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                samples.append(Sample(f"{folder}/{path.stem}", False, path.name, load_rgb(path)))
    return samples


def embed_samples(samples: list[Sample], shape: str) -> tuple[list[Sample], np.ndarray, list[str]]:
    """Embeddings of the largest face of each sample; returns kept samples, (N,128), skipped."""
    kept, vectors, skipped = [], [], []
    embedder = FaceEmbedder(shape=shape)
    with FaceDetector(max_faces=4) as detector:
        for sample in samples:
            faces = detector.detect(sample.rgb)
            if not faces:
                skipped.append(sample.name)
                continue
            face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            vector = embedder.embed(sample.rgb, face.landmarks)
            # The neutral frame appears in both the "angle" and the "smile" strip: count it once.
            if any(k.identity == sample.identity and np.linalg.norm(v - vector) < 1e-3 for k, v in zip(kept, vectors)):
                skipped.append(f"{sample.name} (duplicate)")
                continue
            kept.append(sample)
            vectors.append(vector)
    return kept, np.array(vectors), skipped


def pair_distances(samples: list[Sample], vectors: np.ndarray):
    genuine, impostor, impostor_ea = [], [], []
    for i, j in itertools.combinations(range(len(samples)), 2):
        distance = float(np.linalg.norm(vectors[i] - vectors[j]))
        if samples[i].identity == samples[j].identity:
            genuine.append(distance)
        else:
            impostor.append(distance)
            if samples[i].east_asian and samples[j].east_asian:
                impostor_ea.append(distance)
    return np.array(genuine), np.array(impostor), np.array(impostor_ea)


def rate(values: np.ndarray, accept: bool, threshold: float) -> str:
    if values.size == 0:
        return "n/a"
    hits = int((values <= threshold).sum()) if accept else int((values > threshold).sum())
    return f"{hits / values.size:.4f} ({hits}/{values.size})"


def leave_one_out(samples: list[Sample], vectors: np.ndarray, method: str, threshold: float):
    """Genuine accept rate and false-accept rate of match_identity against reference sets."""
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(sample.identity, []).append(index)
    galleries = {name: idx for name, idx in groups.items() if len(idx) >= 4}
    genuine_hits = genuine_total = false_accepts = impostor_total = ea_accepts = ea_total = 0
    for index, sample in enumerate(samples):
        for name, members in galleries.items():
            refs = [m for m in members if m != index]
            _, same = match_identity(vectors[index], vectors[refs], threshold=threshold, method=method)
            if name == sample.identity:
                genuine_total += 1
                genuine_hits += same
            else:
                impostor_total += 1
                false_accepts += same
                if sample.east_asian and samples[members[0]].east_asian:
                    ea_total += 1
                    ea_accepts += same
    return genuine_hits, genuine_total, false_accepts, impostor_total, ea_accepts, ea_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", nargs="?", default="../shared/media", type=Path)
    args = parser.parse_args()
    samples = collect_samples(args.media)
    print(f"# identity calibration on {len(samples)} synthetic images under {args.media}\n")
    results = {}
    for shape in ("mediapipe", "dlib5"):
        kept, vectors, skipped = embed_samples(samples, shape)
        genuine, impostor, impostor_ea = pair_distances(kept, vectors)
        results[shape] = (kept, vectors, genuine, impostor, impostor_ea)
        identities = {s.identity for s in kept}
        print(f"## 5-point source: {shape}")
        print(
            f"faces embedded: {len(kept)} of {len(samples)} images, {len(identities)} identities "
            f"({sum(s.east_asian for s in kept)} East Asian images in "
            f"{len({s.identity for s in kept if s.east_asian})} identities); "
            f"no face: {', '.join(skipped) or 'none'}"
        )
        print(f"pairs: genuine {genuine.size}, impostor {impostor.size} (East Asian vs East Asian {impostor_ea.size})")
        print(
            f"genuine distance median {np.median(genuine):.3f} [p5 {np.percentile(genuine, 5):.3f}, "
            f"p95 {np.percentile(genuine, 95):.3f}]; impostor median {np.median(impostor):.3f} "
            f"[min {impostor.min():.3f}]; East Asian impostor median {np.median(impostor_ea):.3f} "
            f"[min {impostor_ea.min():.3f}]\n"
        )
        print("| threshold | FAR all impostors | FAR East Asian impostors | FRR genuine | TAR |")
        print("|---|---|---|---|---|")
        for threshold in THRESHOLDS:
            tar = (genuine <= threshold).mean()
            print(
                f"| {threshold:.2f} | {rate(impostor, True, threshold)} | "
                f"{rate(impostor_ea, True, threshold)} | {rate(genuine, False, threshold)} | {tar:.3f} |"
            )
        print()
    kept, vectors = results["mediapipe"][:2]
    print("## matching against a reference set (leave-one-out, identities with >= 4 images)\n")
    print("| method | threshold | genuine accepted | false accepts (all) | false accepts (East Asian) |")
    print("|---|---|---|---|---|")
    for method in ("min", "mean_of_k"):
        for threshold in (0.38, 0.40, 0.42, 0.45, 0.50, 0.55, 0.60):
            gh, gt, fa, it, ea, et = leave_one_out(kept, vectors, method, threshold)
            print(
                f"| {method} | {threshold:.2f} | {gh}/{gt} ({gh / gt:.3f}) | {fa}/{it} ({fa / max(it, 1):.4f}) "
                f"| {ea}/{et} ({ea / max(et, 1):.3f}) |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
