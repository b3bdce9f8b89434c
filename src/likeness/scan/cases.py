"""Cases: files of a scan that are the same picture or clip, re-uploaded, re-encoded, rescaled,
cropped a little or mirrored, grouped so that a takedown goes out per case, not per file.

Two files are near-duplicates when a perceptual hash of one (the picture, or a sampled frame of
a clip) is within ``max_distance`` bits of a hash of the other, or of the other's mirror. Files
with the same bytes always are. Groups are the connected components of that relation (a chain
of near-duplicates is one case). Measured on the astronaut portrait: a JPEG re-save and a 360p
downscale are 0 bits from the original, a 5% crop 6, letterbox bars 12, a 10% crop 14, a
mirror 0 against the mirror hash, unrelated portraits 28-32; the default threshold is 12.

Cost: every hash is compared with every other (NumPy, in blocks), so a few hundred thousand
files take seconds and millions need an index (multi-index hashing) that is not built yet.

Example::

    for case in group_cases(ResultsDataset(Path("results")).rows()):
        print(case.case_id, len(case.members), case.verdicts)
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.durable import atomic_path, write_atomic
from likeness.scan.results import latest_rows

DEFAULT_MAX_DISTANCE = 12
_BLOCK = 2048
#: how strongly a member's row can back a takedown, best first
_EVIDENCE_RANK = ("evidence", "watermark_payload", "c2pa_state")
LOCATION_COLUMNS = (
    "location",
    "sha256",
    "verdict",
    "rule",
    "watermark_payload",
    "render_job_id",
    "c2pa_state",
    "matched_subjects",
    "mirrored",
    "same_as",
    "scanned_at",
    "evidence",
)


@dataclass(frozen=True)
class CaseMember:
    row: dict[str, Any]
    mirrored: bool  # matched the case's first member through the mirror hash


@dataclass(frozen=True)
class Case:
    case_id: str
    members: tuple[CaseMember, ...]

    @property
    def first_seen(self) -> str:
        return min(m.row["scanned_at"] for m in self.members)

    @property
    def last_seen(self) -> str:
        return max(m.row["scanned_at"] for m in self.members)

    @property
    def verdicts(self) -> dict[str, int]:
        return dict(Counter(m.row["verdict"] for m in self.members).most_common())

    @property
    def best(self) -> CaseMember:
        """The member whose row backs a takedown best: an evidence pack, then a watermark
        traced on the ledger, then a C2PA manifest, then the largest file."""

        def strength(member: CaseMember) -> tuple:
            row = member.row
            return (*(row.get(k) is not None for k in _EVIDENCE_RANK), row.get("size_bytes") or 0)

        return max(self.members, key=strength)

    def summary(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "members": len(self.members),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "verdicts": self.verdicts,
            "best_evidence": self.best.row["location"],
            "subjects": sorted({s for m in self.members for s in (m.row.get("matched_subjects") or ())}),
        }


def _hash_table(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(file index, hash, mirror hash) per hashed picture or frame, as arrays."""
    owners, hashes, mirrors = [], [], []
    for index, row in enumerate(rows):
        for phash, mirror in zip(row.get("phashes") or (), row.get("phashes_mirror") or (), strict=False):
            owners.append(index)
            hashes.append(int(phash, 16))
            mirrors.append(int(mirror, 16))
    return (
        np.asarray(owners, dtype=np.int64),
        np.asarray(hashes, dtype=np.uint64),
        np.asarray(mirrors, dtype=np.uint64),
    )


def group_cases(
    rows: Iterable[dict[str, Any]], *, max_distance: int = DEFAULT_MAX_DISTANCE, min_members: int = 2
) -> list[Case]:
    """Cases among the latest row of each location; groups smaller than ``min_members`` are
    left out. Sorted by size, then by first member."""
    files = sorted(latest_rows(rows).values(), key=lambda r: (r["scanned_at"], r["location"]))
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    by_sha: dict[str, int] = {}
    for index, row in enumerate(files):
        if row.get("sha256"):
            union(index, by_sha.setdefault(row["sha256"], index))
    owners, hashes, mirrors = _hash_table(files)
    mirrored_pairs: set[tuple[int, int]] = set()
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start : start + _BLOCK, None]
        direct = np.bitwise_count(block ^ hashes[None, :]) <= max_distance
        flipped = np.bitwise_count(block ^ mirrors[None, :]) <= max_distance
        for a, b in zip(*np.nonzero(direct | flipped), strict=True):
            i, j = int(owners[start + a]), int(owners[b])
            if i != j:
                union(i, j)
                if flipped[a, b] and not direct[a, b]:
                    mirrored_pairs.add((min(i, j), max(i, j)))
    groups: dict[int, list[int]] = {}
    for index in range(len(files)):
        groups.setdefault(find(index), []).append(index)
    cases = []
    for root, members in groups.items():
        if len(members) < min_members:
            continue
        first = files[root]
        cases.append(
            Case(
                case_id=f"case-{(first.get('sha256') or first['location'])[:12]}",
                members=tuple(CaseMember(files[i], (min(root, i), max(root, i)) in mirrored_pairs) for i in members),
            )
        )
    return sorted(cases, key=lambda c: (-len(c.members), c.first_seen, c.case_id))


def find_case(cases: Sequence[Case], case_id: str) -> Case | None:
    return next((c for c in cases if c.case_id == case_id), None)


def locations_csv(case: Case) -> str:
    """The case's members as CSV (one row per location), for a takedown request."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(LOCATION_COLUMNS)
    for member in case.members:
        row = {**member.row, "mirrored": member.mirrored}
        writer.writerow(
            [
                ";".join(row[c]) if isinstance(row.get(c), list) else ("" if row.get(c) is None else row[c])
                for c in LOCATION_COLUMNS
            ]
        )
    return buffer.getvalue()


def export_case(case: Case, folder: Path) -> tuple[Path, Path]:
    """Write ``CASE_ID-locations.csv`` and ``CASE_ID-evidence.zip`` (case summary, the members'
    rows, every member's evidence pack, and the best member's original when it is a local file
    that still has the hash the scan recorded) into ``folder``."""
    from likeness.digests import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{case.case_id}-locations.csv"
    zip_path = folder / f"{case.case_id}-evidence.zip"
    write_atomic(csv_path, locations_csv(case).encode("utf-8"))
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(
            "case.json",
            json.dumps(
                {
                    **case.summary(),
                    "members": [{**m.row, "mirrored": m.mirrored} for m in case.members],
                },
                indent=2,
                ensure_ascii=False,
                default=str,
            ),
        )
        bundle.writestr("locations.csv", locations_csv(case))
        for member in case.members:
            pack = member.row.get("evidence")
            if pack and Path(pack).is_file():
                bundle.write(pack, f"evidence/{Path(pack).name}")
        best = case.best.row
        original = Path(best["location"])
        if "://" not in best["location"] and original.is_file() and best.get("sha256"):
            try:
                if sha256_file(original) == best["sha256"]:
                    bundle.write(original, f"original/{original.name}")
            except OSError:
                pass
    return csv_path, zip_path
