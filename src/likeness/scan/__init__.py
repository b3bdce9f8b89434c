"""Large-collection scans: one executor interface (this process, a local process pool, Dask
distributed), a resumable Parquet results dataset, and cases of reposts.

Example::

    summary = scan_collection(workspace, ["/crawl/2026-12-05"], Path("results"), engine="dask")
"""

from likeness.scan.results import ResultsDataset
from likeness.scan.run import ScanStart, ScanSummary, scan_collection
from likeness.scan.sources import ScanItem, collect_items

__all__ = ["ResultsDataset", "ScanItem", "ScanStart", "ScanSummary", "collect_items", "scan_collection"]
