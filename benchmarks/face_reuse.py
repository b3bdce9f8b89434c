"""Enrolling a face another rights holder's subject holds: the cost of the check, and its false refusals.

Two measurements, each printing a table:

``enrol``: a throw-away workspace with ``--subjects`` enrolled subjects, each under its own
rights holder, with ``--refs`` sealed references each (generated 128-D embeddings: a random
direction per person and a small spread around it, about as far apart as dlib's descriptors of
different people; no photos needed to fill the gallery). Then one reference photo (the
astronaut portrait) is enrolled for a new subject of another holder, ``--repeat`` times (a new
subject of that holder each time), through ``enroll_reference_photos`` with the face models built once (as a
worker holds them). Reported: the median time to add the photo, and the check alone (one read
of the stored reference vectors, one matrix product, and the seals of the subjects found near,
none here; ``--near`` gives the newcomer's face to that many enrolled subjects of other holders,
whose seals are then checked too). Run it on the source before the check with
``--src`` to compare.

``false-refusals PORTRAITS``: every portrait of a folder of different people (one face each,
e.g. 293 official portraits) is embedded with the product's detector and embedder; every pair
of different people closer than the threshold a subject enrolled from that one photo would get
(``SINGLE_REFERENCE_THRESHOLD``) is an enrolment the check would refuse wrongly. Reported: such
pairs, and the people who would be refused after all the others were enrolled.

    PYTHONPATH=src .venv/bin/python benchmarks/face_reuse.py enrol --subjects 300
    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/face_reuse.py enrol --subjects 300
    PYTHONPATH=src .venv/bin/python benchmarks/face_reuse.py false-refusals ../shared/media/portraits/congress_pd
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _person_embeddings(rng: np.random.Generator, people: int, refs: int) -> np.ndarray:
    """``(people, refs, 128)`` float32: a unit direction per person (distinct people ~1.4 apart,
    dlib's different people are 0.5-1.0) and references ~0.25 around it (a person's photos)."""
    centres = rng.normal(size=(people, 1, 128))
    centres /= np.linalg.norm(centres, axis=2, keepdims=True)
    return (centres + rng.normal(scale=0.25 / np.sqrt(128), size=(people, refs, 128))).astype(np.float32)


def enrol(subjects: int, refs: int, repeat: int) -> None:
    import cv2

    from likeness import faces
    from likeness.config import Settings
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import enroll_reference_photos
    from likeness.media.synthetic import astronaut
    from likeness.workspace import Workspace

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        workspace = Workspace.init(Settings(home=home))
        registry = workspace.registry
        registry.add_org("haneul", "Haneul Entertainment")
        registry.add_org("byeol", "Byeol Entertainment")
        holders = HolderMachine.beside(home)
        started = time.perf_counter()
        for number, vectors in enumerate(_person_embeddings(rng, subjects, refs)):
            slug = f"artist{number}"
            holders.enrol(registry, slug, f"Artist {number:04d}", org="haneul")
            for k, vector in enumerate(vectors):
                registry.add_reference_embedding(
                    slug, vector, source_name=f"{slug}-{k}.png", source_sha256=f"{number:032x}{k:032x}", org="haneul"
                )
        print(f"filled the gallery: {subjects} subjects x {refs} references in {time.perf_counter() - started:.0f} s")
        photo = Path(tmp) / "newcomer.png"
        cv2.imwrite(str(photo), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
        detector = faces.FaceDetector(max_faces=4, min_confidence=0.5)
        embedder = faces.FaceEmbedder()
        times: list[float] = []
        check_times = _timing_the_check()
        for number in range(repeat):
            slug = f"newcomer{number}"
            # All of one holder (the same person under several subjects may share a face), so
            # each newcomer is checked against all the enrolled subjects and then enrolled.
            holder = {"holder": "newcomer0-holder"} if number else {}
            holders.enrol(registry, slug, f"Newcomer {number:04d}", org="byeol", **holder)
            started = time.perf_counter()
            report = enroll_reference_photos(
                workspace, slug, [photo], detector=detector, embedder=embedder, org="byeol"
            )
            times.append(time.perf_counter() - started)
            assert report.added == 1, report
        alone = _check_times(workspace, repeat)
        workspace.close()
    print()
    print("| enrolled subjects | references | add one photo | of which the check | the check, no face near |")
    print("|---:|---:|---:|---:|---:|")
    per_enrolment = _per_enrolment(check_times, repeat)
    within = f"{1000 * statistics.median(per_enrolment):.1f} ms" if per_enrolment else "(no check in this source)"
    probe = f"{1000 * statistics.median(alone):.1f} ms" if alone else "-"
    print(f"| {subjects} | {subjects * refs} | {1000 * statistics.median(times):.0f} ms | {within} | {probe} |")


def _timing_the_check() -> list[float]:
    """Times of each call of the check inside the enrolments that follow (where the source has
    it): enrolment holds the call's faces, and the registry each reference again where it is
    written. The share of the enrolment they cost, measured in the same calls, whatever else
    loads the machine."""
    import likeness.faceset.enroll as enroll_module

    times: list[float] = []
    try:
        import likeness.faceset.enrolled_faces as faces_module
    except ImportError:  # a source before the check
        return times
    name = "refuse_faces_of_other_holders"
    for module in (enroll_module, faces_module):
        check = getattr(module, name, None)
        if check is None:
            continue

        def timed(*args, _check=check, **kwargs):
            started = time.perf_counter()
            try:
                return _check(*args, **kwargs)
            finally:
                times.append(time.perf_counter() - started)

        setattr(module, name, timed)
    return times


def _per_enrolment(call_times: list[float], enrolments: int) -> list[float]:
    """The check's time in each enrolment: its calls' times added up (the same number each)."""
    calls = len(call_times) // enrolments if enrolments else 0
    return [sum(call_times[i * calls : (i + 1) * calls]) for i in range(enrolments)] if calls else []


def _check_times(workspace, repeat: int) -> list[float]:
    """Times of reading the enrolled faces and matching one embedding against them, where the
    source has the check."""
    try:
        from likeness.faceset.enrolled_faces import OtherHoldersFaces
    except ImportError:
        return []
    probe = np.zeros(128, np.float32)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        OtherHoldersFaces(workspace.registry, "newcomer0").closest_matches(probe)
        times.append(time.perf_counter() - started)
    return times


def false_refusals(folder: Path) -> None:
    from likeness import faces
    from likeness.errors import LikenessError
    from likeness.faces.identity import SINGLE_REFERENCE_THRESHOLD
    from likeness.media import read_image

    detector = faces.FaceDetector(max_faces=2, min_confidence=0.5)
    embedder = faces.FaceEmbedder()
    names, vectors, unusable = [], [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        try:
            rgb = read_image(path)
            found = detector.detect(rgb)
            if len(found) != 1:
                unusable.append(f"{path.name}: {len(found)} faces")
                continue
            vectors.append(embedder.embed(rgb, found[0].landmarks))
            names.append(path.name)
        except LikenessError as exc:
            unusable.append(f"{path.name}: {exc}")
    matrix = np.asarray(vectors, np.float64)
    squared = (matrix**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * matrix @ matrix.T, 0))
    upper = distances[np.triu_indices(len(names), 1)]
    np.fill_diagonal(distances, np.inf)
    print(f"{len(names)} people embedded ({len(unusable)} portraits unusable: {'; '.join(unusable) or 'none'})")
    print(f"closest pair of different people: {upper.min():.3f}; 1st percentile {np.percentile(upper, 1):.3f}")
    print()
    print("| threshold | pairs of different people within it | rate | people refused (all others enrolled) |")
    print("|---:|---:|---:|---:|")
    for threshold in sorted({SINGLE_REFERENCE_THRESHOLD, faces.IDENTITY_THRESHOLD, 0.45, 0.5}):
        pairs = int((upper <= threshold).sum())
        refused = int((distances.min(axis=1) <= threshold).sum())
        print(
            f"| {threshold:.2f} | {pairs} of {len(upper)} | {pairs / len(upper):.2e} | "
            f"{refused} of {len(names)} ({100 * refused / len(names):.1f} %) |"
        )
    for i, j in zip(*np.where(np.triu(distances <= 0.5, 1))):
        print(f"  {names[i]} ~ {names[j]}: {distances[i, j]:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("enrol", help="time adding a photo with many subjects enrolled")
    timing.add_argument("--subjects", type=int, default=300)
    timing.add_argument("--refs", type=int, default=3)
    timing.add_argument("--repeat", type=int, default=7)
    refusals = commands.add_parser("false-refusals", help="distinct people within the threshold")
    refusals.add_argument("portraits", type=Path)
    args = parser.parse_args(argv)
    if args.command == "enrol":
        enrol(args.subjects, args.refs, args.repeat)
    else:
        false_refusals(args.portraits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
