"""Identity filter quality of ``likeness extract`` on development media, through the product path.

Usage:
    .venv/bin/python benchmarks/identity_filter.py [MEDIA_DIR]      # default ../shared/media

Each subject is enrolled (``enroll_reference_photos``) in a throw-away workspace with a training
grant, from ONE reference photo, or from THREE (x3 subjects: the main photo plus two variety
photos, which are then left out of the test inputs). ``extract_faceset`` then runs on footage
folders with every quality filter opened up (no dedup, no size/blur/pose limits) and the identity
threshold opened too, so every face that reached the identity filter is recorded with its
distance; acceptance is then read off side by side at the calibrated ``faces.IDENTITY_THRESHOLD``
and at the baseline, dlib's customary 0.6. Group photos run through the real filter
(``ExtractOptions(identity_threshold=...)``) at both thresholds.

Cases:
* same identity: DigiFace-1M ``id*_variety`` (reference ``id*_main``) and the seeprettyface edit
  strips (reference: the first tile of the "smile" strip; the other 7 tiles of both strips of the
  same generator are the same person). Reported: acceptance = kept / faces that reached the filter.
* different people: every other synthetic person against each enrolled reference (false accepts).
* group photos: composed groups of three synthetic people with the subject in each position, and
  the Obama/Biden photo with each man enrolled from his official portrait: the kept face must be
  the subject's (the crop centre mapped back into the frame lies in the subject's cell / the two
  runs keep different faces), and exactly one face kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=UserWarning, module="google.protobuf")
warnings.filterwarnings("ignore", category=UserWarning, module="face_recognition_models")
os.environ.setdefault("GLOG_minloglevel", "2")

BASELINE_THRESHOLD = 0.6
OPEN_FILTERS = dict(dedup_hamming=None, min_face=0, min_sharpness=0.0, max_yaw=180.0, max_pitch=180.0, max_faces=16)


def build_world(home: Path):
    from likeness.config import Settings
    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.workspace import Workspace

    workspace = Workspace.init(Settings(home=home))
    workspace.registry.add_org("bench", "Benchmark studio")
    return workspace, USES, now_utc() + timedelta(days=1)


def enroll(workspace, uses, until, slug: str, *references: Path) -> None:
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import enroll_reference_photos

    holders = HolderMachine.beside(workspace.home)  # the rights holders sign on their own machine
    holders.enrol(workspace.registry, slug, slug, kind="virtual_idol", owner_org="bench")
    holders.grant(workspace.registry, slug, "bench", uses, valid_until=until, purpose="benchmark")
    report = enroll_reference_photos(workspace, slug, list(references))
    if report.added != len(references):
        raise SystemExit(f"{slug}: could not enrol every reference ({report.skipped})")


def add_references(workspace, slug: str, candidates: list[Path], *, wanted: int) -> list[Path]:
    """Enrol the first ``wanted`` candidates that enrollment accepts (one face, consistent)."""
    from likeness.faceset import enroll_reference_photos

    used: list[Path] = []
    for path in candidates:
        if len(used) == wanted:
            break
        if enroll_reference_photos(workspace, slug, [path]).added == 1:
            used.append(path)
    return used


def first_with_one_face(paths: list[Path]) -> np.ndarray:
    """The first image in which the detector finds exactly one face (some renders have none)."""
    from likeness.faces import FaceDetector
    from likeness.media import read_image

    with FaceDetector(max_faces=4) as detector:
        for path in paths:
            rgb = read_image(path)
            if len(detector.detect(rgb)) == 1:
                return rgb
    raise SystemExit("no single-face image among the held-out photos")


def run_filter(workspace, slug: str, inputs: list[Path], out: Path, threshold: float | None):
    """(kept records, faces that reached the identity filter, seconds)."""
    from likeness.faceset import ExtractOptions, extract_faceset, load_faceset

    options = ExtractOptions(identity_threshold=threshold, **OPEN_FILTERS)
    authz = workspace.policy.authorize(slug, "training", "bench")
    started = time.perf_counter()
    report = extract_faceset(workspace, authz, inputs, out, options=options)
    seconds = time.perf_counter() - started
    judged = report.faces_kept + report.rejected["other_identity"]
    records = list(load_faceset(out)) if report.ok else []
    if report.ok:
        shutil.rmtree(out)
    return records, judged, seconds


def tiles(strip: Path, folder: Path) -> list[Path]:
    from likeness.media import read_image, write_image

    rgb = read_image(strip)
    side = rgb.shape[0]
    return [
        write_image(folder / f"{strip.stem}_{i}.png", np.ascontiguousarray(rgb[:, i * side : (i + 1) * side]))
        for i in range(rgb.shape[1] // side)
    ]


def crop_centre_in_frame(record) -> np.ndarray:
    """Frame (x, y) of a kept face: its landmark centroid mapped back through the stored affine."""
    inverse = np.linalg.inv(np.vstack([record.affine, [0.0, 0.0, 1.0]]))
    centre = np.array([record.landmarks[:, 0].mean(), record.landmarks[:, 1].mean(), 1.0])
    return (inverse @ centre)[:2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("media", nargs="?", default="../shared/media", type=Path)
    args = parser.parse_args()
    root: Path = args.media
    people = root / "synthetic_people"
    if not people.is_dir():
        raise SystemExit(f"{people}: not found (pass the shared media folder)")
    logging.disable(logging.WARNING)

    from likeness.faces import IDENTITY_THRESHOLD
    from likeness.media import read_image, synthetic, write_image

    thresholds = {"calibrated": IDENTITY_THRESHOLD, "baseline": BASELINE_THRESHOLD}
    rows: list[tuple[str, str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="likeness-idbench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace, uses, until = build_world(tmp / "home")
        work = tmp / "work"
        work.mkdir()
        digi = people / "digiface1m"
        spf_strips = people / "seeprettyface_1024" / "edit_strips"
        strip_tiles = {
            gen: tiles(spf_strips / f"{gen}_edit_smile.jpg", work) + tiles(spf_strips / f"{gen}_edit_angle.jpg", work)
            for gen in ("model", "wanghong")
        }
        variety = {i: sorted((digi / f"id{i}_variety").glob("*.jpg")) for i in (1, 2)}
        enroll(workspace, uses, until, "digi1", digi / "id1_main.jpg")
        enroll(workspace, uses, until, "digi2", digi / "id2_main.jpg")
        extra_refs = {}
        for i in (1, 2):
            enroll(workspace, uses, until, f"digi{i}x3", digi / f"id{i}_main.jpg")
            extra_refs[i] = add_references(workspace, f"digi{i}x3", variety[i], wanted=2)
        held_out = {i: [p for p in variety[i] if p not in extra_refs[i]] for i in (1, 2)}
        enroll(workspace, uses, until, "spfmodel", strip_tiles["model"][0])
        enroll(workspace, uses, until, "spfwanghong", strip_tiles["wanghong"][0])

        others = sorted(
            p
            for folder in (
                "stylegan1_teaser",
                "stylegan2_ffhq_samples",
                "stylegan2_teaser",
                "stylegan3_teaser",
                "facesynthetics",
                "diffusion_generated_sadtalker",
            )
            for p in (people / folder).glob("*")
            if p.suffix.lower() in {".png", ".jpg"}
        )
        cases = [
            ("same", f"digi1 <- id1_variety (held-out {len(held_out[1])})", "digi1", held_out[1]),
            ("same", f"digi2 <- id2_variety (held-out {len(held_out[2])})", "digi2", held_out[2]),
            ("same", f"digi1x3 <- id1_variety (held-out {len(held_out[1])})", "digi1x3", held_out[1]),
            ("same", f"digi2x3 <- id2_variety (held-out {len(held_out[2])})", "digi2x3", held_out[2]),
            ("same", "spfmodel <- model strips", "spfmodel", strip_tiles["model"][1:]),
            ("same", "spfwanghong <- wanghong strips", "spfwanghong", strip_tiles["wanghong"][1:]),
            ("diff", "digi1 <- id2_variety", "digi1", variety[2]),
            ("diff", "digi2 <- id1_variety", "digi2", variety[1]),
            ("diff", "digi1x3 <- id2_variety", "digi1x3", variety[2]),
            ("diff", "digi2x3 <- id1_variety", "digi2x3", variety[1]),
            ("diff", "spfmodel <- wanghong strips", "spfmodel", strip_tiles["wanghong"]),
            ("diff", "spfwanghong <- model strips", "spfwanghong", strip_tiles["model"]),
        ]
        for slug in ("digi1", "digi2", "digi1x3", "digi2x3", "spfmodel", "spfwanghong"):
            cases.append(("diff", f"{slug} <- {len(others)} other synthetic people", slug, others))

        timings: list[float] = []
        for kind, label, slug, inputs in cases:
            # Threshold opened wide: every face that reached the filter is kept with its distance.
            records, judged, seconds = run_filter(workspace, slug, inputs, work / "out", 10.0)
            assert len(records) == judged
            timings.append(seconds / max(1, judged))
            rows.append((kind, label, [r.identity_distance for r in records]))

        # Group photos: the subject among two other synthetic people, in each of the three cells.
        group_rows: list[tuple[str, str, int, int, int]] = []
        faces = {
            1: first_with_one_face(held_out[1]),
            2: first_with_one_face(held_out[2]),
            0: read_image(people / "stylegan2_ffhq_samples" / "sg2f_r0c0.jpg"),
        }
        size = (1536, 512)
        groups = {}
        for subject in (1, 2):
            for position in range(3):
                lineup = [k for k in faces if k != subject]
                lineup.insert(position, subject)
                groups[(subject, position)] = write_image(
                    work / f"group_{subject}_{position}.png",
                    synthetic.compose_group([faces[k] for k in lineup], size=size),
                )
        for refs in ("", "x3"):
            for name, threshold in thresholds.items():
                right = wrong = total = 0
                for (subject, position), group in groups.items():
                    records, _, _ = run_filter(workspace, f"digi{subject}{refs}", [group], work / "g", threshold)
                    total += 1
                    picked = [int(crop_centre_in_frame(r)[0] // (size[0] // 3)) for r in records]
                    if picked == [position]:
                        right += 1
                    elif picked:
                        wrong += 1
                group_rows.append((refs or "x1", name, total, right, wrong))

        # Real group photo: each man enrolled from his official portrait; each run must keep one
        # face, and not the same one.
        portraits = root / "portraits"
        two = portraits / "group" / "obama_biden_two_people.jpg"
        real_rows: list[tuple[str, str]] = []
        if two.is_file():
            enroll(workspace, uses, until, "obama", portraits / "single" / "obama_official_portrait.jpg")
            enroll(workspace, uses, until, "biden", portraits / "single" / "biden_official_portrait_7mpx.jpg")
            for name, threshold in thresholds.items():
                picks = {}
                for slug in ("obama", "biden"):
                    records, judged, _ = run_filter(workspace, slug, [two], work / "r", threshold)
                    picks[slug] = [f"x={crop_centre_in_frame(r)[0]:.0f} d={r.identity_distance:.3f}" for r in records]
                ok = (
                    len(picks["obama"]) == 1
                    and len(picks["biden"]) == 1
                    and picks["obama"][0][:6] != picks["biden"][0][:6]
                )
                real_rows.append(
                    (name, f"obama kept {picks['obama']}, biden kept {picks['biden']}: {'right' if ok else 'WRONG'}")
                )
        workspace.close()

    cal, base = f"@{IDENTITY_THRESHOLD:.2f} calibrated", f"@{BASELINE_THRESHOLD:.2f} baseline"
    print(f"\nIdentity filter of extract_faceset; media: {root}")
    print("kept = share of faces reaching the identity filter that are kept (same: acceptance, diff: false accepts)\n")
    print(
        f"{'case':<5} {'subject <- inputs':<44} {'faces':>5} {'median d':>9} | {'kept ' + cal:>22} | {'kept ' + base:>20}"
    )
    print("-" * 114)
    totals: dict[str, list[float]] = {"same": [], "diff": []}
    for kind, label, distances in rows:
        d = np.array(distances)
        totals[kind].extend(distances)
        med = f"{np.median(d):.3f}" if len(d) else "n/a"
        print(
            f"{kind:<5} {label:<44} {len(d):>5} {med:>9} | "
            f"{100 * np.mean(d <= IDENTITY_THRESHOLD) if len(d) else float('nan'):>21.1f}% | "
            f"{100 * np.mean(d <= BASELINE_THRESHOLD) if len(d) else float('nan'):>19.1f}%"
        )
    print("-" * 114)
    for kind, title in (("same", "ALL same identity: acceptance"), ("diff", "ALL different people: false accepts")):
        d = np.array(totals[kind])
        print(
            f"{'':<5} {title:<44} {len(d):>5} {np.median(d):>9.3f} | "
            f"{100 * np.mean(d <= IDENTITY_THRESHOLD):>21.1f}% | {100 * np.mean(d <= BASELINE_THRESHOLD):>19.1f}%"
        )
    print("\nComposed groups (subject + another DigiFace identity + a StyleGAN2 person; subject in each of 3 cells):")
    for refs, name, total, right, wrong in group_rows:
        print(
            f"  references {refs}  {name:<10} right face kept {right}/{total}, wrong face kept {wrong}/{total}, none kept {total - right - wrong}/{total}"
        )
    for name, line in real_rows:
        print(f"  obama_biden_two_people.jpg {name:<10} {line}")
    print(f"\nmedian extraction time per judged face (open filters, image mode): {statistics.median(timings):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
