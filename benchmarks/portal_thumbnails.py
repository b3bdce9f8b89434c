"""The portal's made list and its thumbnails: finding the kept files on disk.

A made event records a bare file name and the file's SHA-256, not where it lies, so the portal
finds each file by name under the outputs folder. Before, the page walked the folder once
(``rglob("*")``) and each of its up to 50 thumbnails walked it again (``rglob(name)``). Now one
walk (``kept_files.kept_paths``) serves the page and its thumbnails. Both run here on the same
folder: ``--jobs`` service render folders (``outputs/service/<job>/``, each with the render, its
two report files and ``--chunks`` checkpoint files), as the first view after the kept walk has
aged out (the cache cleared before each). File hashes are cached per file version in both, so
what is timed is finding the files. Prints a table of median milliseconds.

    PYTHONPATH=src:. .venv/bin/python benchmarks/portal_thumbnails.py --jobs 2000
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from likeness.service import kept_files
from likeness.service.portal import MADE_PAGE


def build(outputs: Path, jobs: int, chunks: int) -> list[tuple[str, str]]:
    """``jobs`` render folders; the (name, sha256) of each render."""
    made = []
    for n in range(jobs):
        folder = outputs / "service" / f"{n:032x}"
        (folder / "checkpoint").mkdir(parents=True)
        render = folder / f"take-{n}.render.png"
        render.write_bytes(n.to_bytes(4, "big") * 64)
        for extra in ("report.html", "report.json"):
            (folder / f"take-{n}.render.{extra}").write_text("{}")
        for k in range(chunks):
            (folder / "checkpoint" / f"chunk-{k:04d}.bin").write_bytes(b"\0")
        made.append((render.name, hashlib.sha256(render.read_bytes()).hexdigest()))
    return made


def before(outputs: Path, page: list[tuple[str, str]]) -> int:
    """The page's walk, then each thumbnail's own walk for its name (hashes cached per version)."""
    wanted = {name for name, _ in page}
    listed = {p.name for p in outputs.rglob("*") if p.name in wanted}
    shown = 0
    for name, digest in page:
        if name in listed:
            for candidate in sorted(outputs.rglob(name))[:20]:
                if candidate.is_file() and kept_files._hashes_to(candidate, digest):
                    shown += 1
                    break
    return shown


def after(outputs: Path, page: list[tuple[str, str]]) -> int:
    found = kept_files.kept_paths([outputs], [[name] for name, _ in page])
    names = [name for name, _ in page if found[name]]
    return sum(kept_files.kept_file([outputs], [name], digest) is not None for name, digest in page if name in names)


def _median_ms(call: Callable[[], int], repeat: int) -> tuple[float, int]:
    samples, result = [], call()  # warm-up: hashes every render once, as a first view does
    for _ in range(repeat):
        kept_files._indexes.clear()
        start = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--chunks", type=int, default=8, help="checkpoint files per render folder")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'renders':>8} | {'files':>7} | {'before ms':>10} | {'after ms':>9} | {'ratio':>6} | shown (both)")
    for jobs in args.jobs:
        scratch = Path(tempfile.mkdtemp(prefix="portal-thumbs-"))
        try:
            outputs = scratch / "outputs"
            made = build(outputs, jobs, args.chunks)
            page = made[-MADE_PAGE:]  # the newest page
            files = sum(1 for p in outputs.rglob("*") if p.is_file())
            old_ms, old = _median_ms(lambda: before(outputs, page), args.repeat)
            new_ms, new = _median_ms(lambda: after(outputs, page), args.repeat)
            assert old == new == len(page), (old, new)
            print(f"{jobs:>8} | {files:>7} | {old_ms:>10.1f} | {new_ms:>9.1f} | {old_ms / new_ms:>6.1f} | {new}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
