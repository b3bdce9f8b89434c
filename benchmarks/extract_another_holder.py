"""Extraction's check against other rights holders' subjects: what it costs on a short clip.

A throw-away workspace: mina (the astronaut portrait, studio's) enrolled and granted training,
and ``--subjects`` subjects of other rights holders with ``--refs`` sealed references each
(generated 128-D embeddings, a random direction per person, as in ``face_reuse.py``), of which
``--near`` lie 0.7 from mina's reference (as close as other people come; none of her faces is
within 0.40 of them). Then ``--seconds`` of a generated clip of mina is extracted ``--repeats``
times, alternating "without" (``OtherHoldersFaces`` switched off in ``faceset.extract``: the
pipeline as before the check, which is all the check added) and "with" (the product), so that load
from other processes hits both alike. Reported: median wall time of ``extract_faceset`` for each,
and the check's own parts (the stored rows read at the start; one batch of faces held against
them; a subject read the first time a face is near it).

    PYTHONPATH=src .venv/bin/python benchmarks/extract_another_holder.py --subjects 300 --near 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--refs", type=int, default=4)
    parser.add_argument("--near", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import cv2

    import likeness.faceset.extract as extract_module
    from likeness.config import Settings
    from likeness.consent.canonical import now_utc
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import ExtractOptions, enroll_reference_photos, extract_faceset
    from likeness.faceset.enrolled_faces import OtherHoldersFaces
    from likeness.media import synthetic
    from likeness.workspace import Workspace

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        workspace = Workspace.init(Settings(home=home))
        registry = workspace.registry
        registry.add_org("studio", "Studio Haneul")
        registry.add_org("byeol", "Byeol Entertainment")
        holders = HolderMachine.beside(home)
        holders.enrol(registry, "mina", "Mina", org="studio")
        photo = Path(tmp) / "mina.png"
        cv2.imwrite(str(photo), cv2.cvtColor(synthetic.astronaut(), cv2.COLOR_RGB2BGR))
        assert enroll_reference_photos(workspace, "mina", [photo]).added == 1
        holders.grant(registry, "mina", "studio", ["training"], valid_until=now_utc() + timedelta(days=1), purpose="b")
        (mina,) = registry.reference_embeddings("mina")
        started = time.perf_counter()
        for number in range(args.subjects):
            direction = rng.normal(size=128)
            direction /= np.linalg.norm(direction)
            centre = mina + 0.7 * direction if number < args.near else direction
            slug = f"artist{number}"
            holders.enrol(registry, slug, f"Artist {number:04d}", org="byeol")
            for k in range(args.refs):
                vector = (centre + rng.normal(scale=0.05 / np.sqrt(128), size=128)).astype(np.float32)
                registry.add_reference_embedding(
                    slug, vector, source_name=f"{slug}-{k}.png", source_sha256=f"{number:032x}{k:032x}", org="byeol"
                )
        print(f"gallery: {args.subjects} subjects x {args.refs} references in {time.perf_counter() - started:.0f} s")
        clip = synthetic.write_clip(
            Path(tmp) / "mina.mp4", synthetic.astronaut(), seconds=args.seconds, fps=25, size=(640, 360), seed=3
        )
        options = ExtractOptions(dedup_hamming=None, min_face=48)
        authz = workspace.policy.authorize("mina", "training", "studio")

        started = time.perf_counter()
        others = OtherHoldersFaces(registry, "mina")
        read_s = time.perf_counter() - started
        batch = np.repeat(mina[None, :], 2, axis=0)
        started = time.perf_counter()
        for _ in range(1000):
            others.closest_matches(batch)
        match_s = (time.perf_counter() - started) / 1000
        lookalike = registry.reference_embeddings("artist0")[:1]
        started = time.perf_counter()
        assert others.closest_matches(lookalike)[0] is not None
        first_near_s = time.perf_counter() - started

        class SwitchedOff:
            def __init__(self, *_args: object) -> None:
                pass

            def closest_matches(self, embeddings: np.ndarray) -> list[None]:
                return [None] * len(embeddings)

        check = OtherHoldersFaces.__name__  # what extraction calls it by
        times: dict[str, list[float]] = {"without": [], "with": []}
        kept: dict[str, int] = {}
        for repeat in range(args.repeats):
            for label in ("without", "with"):
                setattr(extract_module, check, SwitchedOff if label == "without" else OtherHoldersFaces)
                started = time.perf_counter()
                report = extract_faceset(workspace, authz, [clip], Path(tmp) / f"fs-{label}-{repeat}", options=options)
                times[label].append(time.perf_counter() - started)
                kept[label] = report.faces_kept
        setattr(extract_module, check, OtherHoldersFaces)
        workspace.close()

    frames = round(args.seconds * 25)
    rows = args.subjects * args.refs + 1
    print(f"stored reference rows read at the start: {rows} in {1000 * read_s:.1f} ms")
    print(f"one batch of 2 faces held against them (none near): {1e6 * match_s:.0f} us")
    print(f"a face near another holder's subject, that subject read the first time: {1000 * first_near_s:.1f} ms")
    print()
    print("| clip | check | extract_faceset (median) | runs | faces kept |")
    print("|---|---|---:|---|---:|")
    for label in ("without", "with"):
        runs = ", ".join(f"{t:.2f}" for t in times[label])
        print(
            f"| {frames} frames 640x360 | {label} | {statistics.median(times[label]):.2f} s | {runs} | {kept[label]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
