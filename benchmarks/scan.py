"""Benchmark `likeness scan`: files/s on this process, the local pool (2) and a LocalCluster (2),
in the same run, plus per-file overhead, memory per worker, the Dask scheduler's per-task cost
and the ledger's batched write rate, for a projection to a cluster (docs/scale.md).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/scan.py [--files 60] [--workers 2]

The collection is generated from package-shipped faces (no ../shared media), 512 px stills,
every file distinct bytes (so the scan's same-bytes shortcut never applies): labelled renders
of an enrolled virtual idol and re-encoded, mirrored and downscaled copies of them, crops of
the enrolled portrait, a stranger, faceless images, and corrupt files. The figures in
docs/scale.md are from ``--files 2000`` (about 2-3 minutes per engine on 2 cores); the default
is small for a quick check, and the table says how many files it measured.

Each engine scans the same collection into its own results folder (same workspace, so the
gallery and verifier are the same). files/s is measured from the first result to the last
(steady state) and over the whole wall time (with worker start-up). Task ms is the median of
the task's own time (fetch + verify + hash; a worker's first file also loads its models).
Per-file overhead is the steady time per file times the workers, minus that median: what the
engine and the parent add per file (negative when the workers' threads overlap on 2 busy cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np


def make_world(home: Path):
    from likeness.config import Settings
    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import enroll_reference_photos
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut
    from likeness.workspace import Workspace

    workspace = Workspace.init(Settings(home=home))
    registry = workspace.registry
    registry.add_org("studio", "Studio Haneul")
    holders = HolderMachine.beside(home)  # the rights holder signs on their own machine
    holders.enrol(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
    holders.grant(registry, "mina", "studio", USES, valid_until=now_utc() + timedelta(days=30), purpose="benchmark")
    reference = home.parent / "mina_reference.png"
    write_image(reference, astronaut())
    enroll_reference_photos(workspace, "mina", [reference])
    return workspace


def make_collection(workspace, folder: Path, files: int) -> dict[str, int]:
    import cv2

    from likeness.media import encode_image, read_image, write_image
    from likeness.media.synthetic import astronaut, grace_hopper
    from likeness.provenance.writer import LabelledWriter, RenderJob

    rng = np.random.default_rng(5)
    folder.mkdir(parents=True)
    kinds = [
        "render",
        "render_copy",
        "render_copy",
        "portrait",
        "stranger",
        "stranger",
        "no_face",
        "no_face",
        "portrait",
        "corrupt",
    ]
    counts: dict[str, int] = {}
    writer = LabelledWriter(workspace)
    renders: list[np.ndarray] = []
    base_face, stranger = astronaut(), cv2.resize(grace_hopper(), (512, 512))
    for index in range(files):
        kind = kinds[index % len(kinds)]
        counts[kind] = counts.get(kind, 0) + 1
        shift = int(rng.integers(0, 24))
        if kind == "render" or (kind == "render_copy" and not renders):
            authz = workspace.policy.authorize("mina", "music_video", "studio")
            picture = np.ascontiguousarray(np.roll(base_face, shift, axis=1))
            out = writer.write_image(authz, RenderJob.new("image"), picture, folder / f"{index:05d}_render.png")
            renders.append(read_image(out.path))
        elif kind == "render_copy":
            source = renders[index % len(renders)]
            variant = index % 3
            if variant == 0:
                copy = source
            elif variant == 1:
                copy = np.ascontiguousarray(source[:, ::-1])
            else:
                copy = cv2.resize(source, (360, 360), interpolation=cv2.INTER_AREA)
            write_image(folder / f"{index:05d}_repost.jpg", copy, quality=int(70 + rng.integers(0, 25)))
        elif kind == "portrait":
            top = int(rng.integers(0, 60))
            write_image(
                folder / f"{index:05d}_portrait.jpg",
                np.ascontiguousarray(base_face[top : top + 400, 40:440]),
                quality=90,
            )
        elif kind == "stranger":
            write_image(
                folder / f"{index:05d}_stranger.jpg", np.ascontiguousarray(np.roll(stranger, shift, axis=0)), quality=88
            )
        elif kind == "no_face":
            gradient = np.linspace(0, 255, 512, dtype=np.float32)[None, :, None] * np.ones((384, 1, 3), np.float32)
            noisy = np.clip(gradient + rng.normal(0, 12, gradient.shape), 0, 255).astype(np.uint8)
            write_image(folder / f"{index:05d}_landscape.png", noisy)
        else:
            good = encode_image(stranger, suffix=".jpg", quality=85)
            (folder / f"{index:05d}_corrupt.jpg").write_bytes(good[: len(good) // (2 + index % 3)])
    return counts


def worker_rss_mb(engine_name: str, client=None) -> list[float]:
    import psutil

    if engine_name.startswith("dask") and client is not None:
        return sorted(v / 1e6 for v in client.run(lambda: __import__("psutil").Process().memory_info().rss).values())
    me = psutil.Process()
    if engine_name == "in-process":
        return [me.memory_info().rss / 1e6]
    children = [c for c in me.children(recursive=True) if "python" in (c.name() or "")]
    return sorted(c.memory_info().rss / 1e6 for c in children)


def run_engine(
    workspace, collection: Path, out: Path, name: str, workers: int, client=None, files_per_task: int = 1
) -> dict:
    from likeness.scan import ResultsDataset, scan_collection

    stamps: list[float] = []
    rss: list[list[float]] = []

    def on_file(_row) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) % 8 == 4:
            rss.append(worker_rss_mb(name, client))

    engine = "dask" if name.startswith("dask") else "local"
    started = time.perf_counter()
    summary = scan_collection(
        workspace,
        [collection],
        out,
        engine=engine,
        workers=workers,
        client=client,
        on_file=on_file,
        dashboard_address=":0",
        files_per_task=files_per_task,
    )
    wall = time.perf_counter() - started
    rows = ResultsDataset(out).rows()
    task_s = [(r["fetch_s"] or 0) + (r["verify_s"] or 0) + (r["hash_s"] or 0) for r in rows]
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    busy = workers if name != "in-process" else 1
    # a worker's first file also loads its models: the median is the steady per-file cost
    overhead = busy / steady - statistics.median(task_s)
    peak = max((max(s) for s in rss if s), default=float("nan"))
    return {
        "engine": name,
        "workers": busy,
        "files": summary.files,
        "wall_s": wall,
        "files_s": len(rows) / wall,
        "steady_files_s": steady,
        "first_result_s": stamps[0] - started if stamps else float("nan"),
        "task_ms": 1000 * statistics.median(task_s),
        "overhead_ms": 1000 * overhead,
        "peak_rss_mb": peak,
    }


def scheduler_overhead_ms(client, files: int = 2000, files_per_task: int = 1) -> float:
    """Dask scheduler and client cost per file: no-op futures of ``files_per_task`` items each,
    submitted and gathered."""

    def noop(batch):
        return batch

    batches = [list(range(i, min(i + files_per_task, files))) for i in range(0, files, files_per_task)]
    client.gather(client.map(noop, batches[:50], pure=False))  # warm
    started = time.perf_counter()
    client.gather(client.map(noop, batches, pure=False))
    return 1000 * (time.perf_counter() - started) / files


def ledger_batch_rate(workspace, batches: int = 20, size: int = 32) -> float:
    """verification.completed events/s appended in batches of ``size`` (one transaction each)."""
    payload = {
        "path": "/crawl/x.jpg",
        "name": "x.jpg",
        "sha256": "ab" * 32,
        "size_bytes": 1,
        "media_type": "image",
        "verdict": "no-face",
        "verdict_rule": "R6",
        "schema": "3",
        "c2pa_state": None,
        "watermark_payload": None,
        "render_job_id": None,
        "grant_ids": [],
        "matched_subjects": [],
        "partial": False,
        "manipulation": "not analysed",
        "visible_label": None,
    }
    started = time.perf_counter()
    for _ in range(batches):
        workspace.ledger.append_many([("verification.completed", payload)] * size)
    return batches * size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    scratch = Path(tempfile.mkdtemp(prefix="scan-bench-"))
    workspace = make_world(scratch / "home")
    counts = make_collection(workspace, scratch / "collection", args.files)
    print(f"collection: {args.files} files {counts}; load average {os.getloadavg()[0]:.1f}")
    results = [
        run_engine(workspace, scratch / "collection", scratch / "out-1", "in-process", 1),
        run_engine(workspace, scratch / "collection", scratch / "out-pool", "pool", args.workers),
    ]
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    try:
        results.append(
            run_engine(workspace, scratch / "collection", scratch / "out-dask", "dask", args.workers, client=client)
        )
        results.append(
            run_engine(
                workspace,
                scratch / "collection",
                scratch / "out-dask-8",
                "dask, 8 files/task",
                args.workers,
                client=client,
                files_per_task=8,
            )
        )
        per_task = scheduler_overhead_ms(client)
        per_file_batched = scheduler_overhead_ms(client, files_per_task=16)
    finally:
        client.close()
        cluster.close()
    ledger_rate = ledger_batch_rate(workspace)
    from likeness.scan.sources import collect_items

    started = time.perf_counter()
    items = collect_items([scratch / "collection"])
    listing_s = time.perf_counter() - started
    megabytes = sum((scratch / "collection" / Path(i.location).name).stat().st_size for i in items) / 1e6
    print(f"load average after: {os.getloadavg()[0]:.1f}\n")
    print(
        "| engine | workers | files | wall s | files/s (wall) | files/s (steady) | first result s "
        "| median task ms/file | overhead ms/file | peak RSS per worker MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['engine']} | {r['workers']} | {r['files']} | {r['wall_s']:.1f} | {r['files_s']:.2f} | "
            f"{r['steady_files_s']:.2f} | {r['first_result_s']:.1f} | {r['task_ms']:.0f} | {r['overhead_ms']:.0f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    print(
        f"\nDask scheduler + client per file (2000 no-op files): {per_task:.2f} ms at 1 file/task, "
        f"{per_file_batched:.3f} ms at 16 files/task"
    )
    print(f"ledger: verification.completed appended in batches of 32: {ledger_rate:.0f} events/s (SQLite)")
    print(
        f"parent listing + SHA-256 (page cache warm): {len(items) / listing_s:.0f} files/s, "
        f"{megabytes / listing_s:.0f} MB/s ({megabytes / len(items) * 1000:.0f} KB/file)"
    )
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
