"""A scan's results: a Parquet dataset (a folder of part files), one row per file.

Only the scan's parent process writes it, in part files that appear atomically (written under a
temporary name, flushed, renamed), so a reader or a re-run sees whole parts or nothing. A row is
keyed by (location, sha256, verifier_version): a re-run skips keys already present, and a part
is never written twice for the same key by one run. Rows of earlier runs stay (a new verifier
version adds new rows beside the old ones; ``latest_rows`` picks one per location).

Example::

    dataset = ResultsDataset(Path("results"))
    table = dataset.read()          # pyarrow.Table of every row
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from likeness.config import resolve_user_path
from likeness.durable import atomic_path
from likeness.errors import ConfigError

SCHEMA = pa.schema(
    [
        pa.field("location", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),
        pa.field("verifier_version", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64()),
        pa.field("media_type", pa.string()),
        pa.field("verdict", pa.string(), nullable=False),
        pa.field("rule", pa.string()),
        pa.field("watermark_payload", pa.string()),
        pa.field("render_job_id", pa.string()),
        pa.field("c2pa_state", pa.string()),
        pa.field("matched_subjects", pa.list_(pa.string())),
        pa.field("manipulation", pa.string()),
        pa.field("visible_label", pa.bool_()),
        pa.field("errors", pa.list_(pa.string())),
        # perceptual hashes (hex) of the image or of a clip's sampled frames, and of their mirror
        pa.field("phashes", pa.list_(pa.string())),
        pa.field("phashes_mirror", pa.list_(pa.string())),
        pa.field("evidence", pa.string()),  # evidence pack (zip) for files that need review
        pa.field("same_as", pa.string()),  # another location with the same bytes, verified once
        pa.field("fetch_s", pa.float64()),
        pa.field("verify_s", pa.float64()),
        pa.field("hash_s", pa.float64()),
        pa.field("worker", pa.string()),
        pa.field("scanned_at", pa.string(), nullable=False),
    ]
)
COLUMNS = tuple(SCHEMA.names)

Key = tuple[str, str, str]  # (location, sha256 or "", verifier_version)


def row_key(row: dict[str, Any]) -> Key:
    return (row["location"], row.get("sha256") or "", row["verifier_version"])


class ResultsDataset:
    """The Parquet dataset under ``folder`` (created on the first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        # refused before a scan, not after it: ``exists`` says False for a symbolic link loop,
        # which would otherwise show only when the first part is written, every file verified
        resolve_user_path(self.folder, "scan results are a folder of Parquet parts")
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.folder}: not a folder; scan results are a folder of Parquet parts")

    def create(self) -> None:
        """Make the folder before a scan verifies anything: one that cannot be made (under a
        file, on a read-only disk) showed only at the first write, after a batch of files was
        verified and put on the ledger with no row."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.folder}: cannot make the results folder ({exc.strerror or exc})") from None

    def parts(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("part-*.parquet") if p.is_file())

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        parts = self.parts()
        if not parts:
            return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(list(columns))
        tables = [pq.read_table(p, columns=list(columns) if columns else None, schema=SCHEMA) for p in parts]
        return pa.concat_tables(tables)

    def rows(self) -> list[dict[str, Any]]:
        return self.read().to_pylist()

    def keys(self) -> set[Key]:
        table = self.read(["location", "sha256", "verifier_version"])
        return {
            (loc, sha or "", ver)
            for loc, sha, ver in zip(
                table.column("location").to_pylist(),
                table.column("sha256").to_pylist(),
                table.column("verifier_version").to_pylist(),
                strict=True,
            )
        }

    def by_content(self, verifier_version: str) -> dict[str, dict[str, Any]]:
        """A verified row per sha256 under ``verifier_version`` (for identical bytes elsewhere)."""
        import pyarrow.compute as pc

        table = self.read()
        verified = table.filter(
            pc.and_(
                pc.equal(table.column("verifier_version"), verifier_version),
                pc.and_(pc.is_valid(table.column("sha256")), pc.is_null(table.column("same_as"))),
            )
        )
        found: dict[str, dict[str, Any]] = {}
        for row in verified.to_pylist():
            found.setdefault(row["sha256"], row)
        return found

    def append(self, rows: Iterable[dict[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part file, atomically; None when there are none."""
        rows = list(rows)
        if not rows:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS} for row in rows], schema=SCHEMA)
        name = f"part-{_now_token()}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(self.folder / name) as temporary, open(temporary, "wb") as handle:
            pq.write_table(table, handle)
        return self.folder / name


def latest_rows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per location: the most recently scanned."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row["location"])
        if kept is None or row["scanned_at"] >= kept["scanned_at"]:
            latest[row["location"]] = row
    return latest


def _now_token() -> str:
    import time

    return f"{time.time_ns():020d}"
