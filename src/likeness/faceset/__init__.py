"""likeness.faceset: identity-filtered face extraction, the faceset format, coverage reports.

Public API (see docs/architecture.md):

* ``extract_faceset(workspace, authz, inputs, out, *, options, progress) -> ExtractionReport``
* ``load_faceset(path) -> Faceset`` (verifies the manifest hash)
* ``verify_faceset(workspace, faceset) -> LedgerEvent`` (the manifest's signed ledger event)
* ``enroll_reference_photos(workspace, subject, paths) -> EnrollmentReport``
* ``write_coverage_report(faceset, out_dir) -> CoverageReport``; ``coverage_gaps(records)``
"""

from likeness.faceset.enroll import EnrollmentReport, enroll_reference_photos
from likeness.faceset.extract import (
    ExtractionReport,
    ExtractOptions,
    ExtractProgress,
    SkippedInput,
    authorize_extraction,
    expand_inputs,
    extract_faceset,
    record_faceset,
)
from likeness.faceset.format import (
    FaceRecord,
    Faceset,
    FacesetManifest,
    load_faceset,
    verify_faceset,
)

__all__ = [
    "EnrollmentReport",
    "ExtractOptions",
    "ExtractProgress",
    "ExtractionReport",
    "FaceRecord",
    "Faceset",
    "FacesetManifest",
    "SkippedInput",
    "authorize_extraction",
    "enroll_reference_photos",
    "expand_inputs",
    "extract_faceset",
    "load_faceset",
    "record_faceset",
    "verify_faceset",
]
