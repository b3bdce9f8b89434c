"""Stand-ins for a scan worker's per-file task, importable by spawned worker processes (a test
module is not: pytest imports it under a name they cannot import)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from likeness.scan.sources import ScanItem


def timed_file(item: ScanItem, version: str) -> str:
    """Says which process took the file (``item.location`` is a marker file), then takes
    ``item.sha256`` seconds."""
    Path(item.location).write_text(str(os.getpid()))
    time.sleep(float(item.sha256 or 0))
    return item.location
