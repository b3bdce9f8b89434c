"""likeness.verify: verdicts for media found anywhere, with the evidence behind them.

``verify_path`` checks one file (C2PA manifest, invisible watermark traced on the ledger, artist
recognition against the enrolled gallery) and applies the decision table in
``likeness.verify.verdict``; ``verify_many`` scans files and folders in parallel, resumes, and
writes evidence packs. The JSON schema is documented in ``docs/verify.md``.
"""

from likeness.verify.result import MANIPULATION_NOT_ANALYSED, SCHEMA_VERSION, VerificationResult
from likeness.verify.verdict import VERDICTS, decide

__all__ = [
    "MANIPULATION_NOT_ANALYSED",
    "SCHEMA_VERSION",
    "VERDICTS",
    "VerificationResult",
    "decide",
    "verify_many",
    "verify_path",
]


def __getattr__(name: str):
    # The pipeline pulls in codecs and face models; import it only when asked for.
    if name == "verify_path":
        from likeness.verify.pipeline import verify_path

        return verify_path
    if name == "verify_many":
        from likeness.verify.scan import verify_many

        return verify_many
    raise AttributeError(f"module 'likeness.verify' has no attribute {name!r}")
