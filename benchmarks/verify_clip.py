"""Verification of a 10 s 1080p clip (issue 30): this tree against a baseline tree, side by side.

    git archive main src | tar -x -C /tmp/base     # the revision to compare with
    .venv/bin/python benchmarks/verify_clip.py --baseline-src /tmp/base/src --repeats 7

Each tree runs in its own process with a warm ``Verifier`` (models loaded, one verify first) on
the same files: ``write_clip`` of the astronaut (the enrolled artist ``mina``) at 1920x1080,
25 fps, 10 s, H.264 (x264 defaults: one keyframe per 250 frames), as in
``benchmarks/public_verify.py``. The two processes verify in turn (A, B, A, B, ...), so both see
the same load on a shared machine; the table gives medians of wall and CPU time (all threads of
the process) and their ratio, and checks that both trees reach the same verdict, faces and
watermark reading. ``--stages`` also times each stage of this tree alone on the clip (serially,
one thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve(src: str, folder: Path) -> None:
    """Child: build the world from ``src``'s code, then verify the clip once per line read."""
    sys.path.insert(0, src)
    sys.path.insert(1, str(ROOT / "benchmarks"))
    from likeness.verify.pipeline import Verifier
    from public_verify import make_files, make_world

    _, workspace = make_world(folder / "home", folder)
    clip = make_files(folder, 0)["10 s 1080p clip"]
    verifier = Verifier(workspace)
    verifier.verify(clip)  # warm: models loaded, gallery synced
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        wall, cpu = time.perf_counter(), time.process_time()
        result, _ = verifier.verify(clip)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        faces = result.faces.faces if result.faces is not None else ()
        print(
            json.dumps(
                {
                    "wall": wall,
                    "cpu": cpu,
                    "verdict": result.verdict.code,
                    "faces": [
                        (f.match.slug if f.match else None, f.match.distance if f.match else None, f.timestamps_s)
                        for f in faces
                    ],
                    "watermark": None if result.watermark is None else repr(result.watermark),
                    "frames": result.faces.frame_timestamps_s if result.faces is not None else None,
                }
            ),
            flush=True,
        )
    verifier.close()


def stages(folder: Path) -> list[tuple[str, float]]:
    """Each stage of this tree alone on the clip (seconds, median of 3, one thread each)."""
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(1, str(ROOT / "benchmarks"))
    from likeness.digests import sha256_file
    from likeness.media import sample_video_frames
    from likeness.provenance.label_detect import detect_visible_label
    from likeness.provenance.watermark import extract_watermark_frames
    from likeness.verify.pipeline import MAX_VIDEO_FRAMES, Verifier
    from public_verify import make_files, make_world

    _, workspace = make_world(folder / "home", folder)
    clip = make_files(folder, 0)["10 s 1080p clip"]
    verifier = Verifier(workspace)
    verifier.verify(clip)
    frames = [f.rgb for f in sample_video_frames(clip, every_s=1.0, max_frames=MAX_VIDEO_FRAMES)]
    detector = verifier._detector("video")

    def detect_and_embed() -> None:
        embedder = verifier._embedder_model()
        for rgb in frames:
            for face in detector.detect(rgb):
                embedder.embed_many(rgb, [face.landmarks])

    work = [
        ("file SHA-256 + C2PA read", lambda: (sha256_file(clip), verifier._read_c2pa(clip, []))),
        (f"decode {len(frames)} sampled 1080p frames", lambda: list(sample_video_frames(clip, max_frames=16))),
        ("watermark fold of the sampled frames", lambda: extract_watermark_frames(frames)),
        ("face detection (+ embedding every face)", detect_and_embed),
        ("visible-label search (every 4th frame)", lambda: [detect_visible_label(rgb) for rgb in frames[::4]]),
        ("whole verify (threads overlapping)", lambda: verifier.verify(clip)),
    ]
    rows = []
    for name, fn in work:
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        rows.append((name, statistics.median(samples)))
    verifier.close()
    return rows


def start(src: str, folder: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=src)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", src, "--folder", str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(folder / "stderr.txt", "w"),  # noqa: SIM115 - the child's log, read on failure
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.strip().startswith('{"ready"'):
        raise SystemExit(f"{src}: the verifier did not start: {(folder / 'stderr.txt').read_text()[-2000:]}")
    return child


def ask(child: subprocess.Popen[str]) -> dict:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("verify\n")
    child.stdin.flush()
    return json.loads(child.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", help="src folder of the revision to compare with")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stages", action="store_true", help="also time each stage of this tree alone")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, Path(args.folder))
        return
    with tempfile.TemporaryDirectory(prefix="likeness-verify-clip-") as tmp:
        if args.stages:
            print(f"load average {os.getloadavg()[0]:.1f}")
            print("| stage, alone | median |\n|---|---|")
            for name, seconds in stages(Path(tmp) / "stages"):
                print(f"| {name} | {seconds:.3f} s |")
        trees = {"this tree": str(ROOT / "src")}
        if args.baseline_src:
            trees = {"baseline": str(Path(args.baseline_src).resolve()), **trees}
        children = {}
        for name, src in trees.items():
            folder = Path(tmp) / name.replace(" ", "-")
            folder.mkdir()
            children[name] = start(src, folder)
        loads = []
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        try:
            for _ in range(args.repeats):
                for name, child in children.items():
                    loads.append(os.getloadavg()[0])
                    runs[name].append(ask(child))
        finally:
            for child in children.values():
                assert child.stdin is not None
                child.stdin.close()
                child.wait()
        print(f"\nload average {min(loads):.1f}-{max(loads):.1f}, {args.repeats} verifies each, in turn")
        print("| tree | wall (median) | CPU (median) | wall range | verdict |\n|---|---|---|---|---|")
        for name, samples in runs.items():
            walls = [s["wall"] for s in samples]
            print(
                f"| {name} | {statistics.median(walls):.2f} s | {statistics.median(s['cpu'] for s in samples):.2f} s"
                f" | {min(walls):.2f}-{max(walls):.2f} s | {samples[0]['verdict']} |"
            )
        if args.baseline_src:
            base, new = runs["baseline"], runs["this tree"]
            wall = statistics.median(s["wall"] for s in new) / statistics.median(s["wall"] for s in base)
            cpu = statistics.median(s["cpu"] for s in new) / statistics.median(s["cpu"] for s in base)
            print(f"\nratio this tree / baseline: wall {wall:.2f}x, CPU {cpu:.2f}x")
            facts = [{k: v for k, v in s.items() if k not in ("wall", "cpu")} for s in base + new]
            same = all(f == facts[0] for f in facts)
            if not same:
                for key in facts[0]:
                    print(key, sorted({json.dumps(f[key]) for f in facts}))
            print("same verdict, faces, frames and watermark reading in every run:", same)


if __name__ == "__main__":
    main()
