"""The kinds of job the worker runs. Each calls the same library function as the CLI command
of the same name, so the service adds no path around what the library checks.

- ``verify``: ``likeness.verify.scan.verify_many``, exactly as ``likeness verify --report``
  (ledger ``verification.completed`` event, resume state, evidence pack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from likeness.errors import ConfigError
from likeness.service.roles import Permission
from likeness.service.worker import JobContext, JobKind, register_kind


def uploads_root(workspace: Any) -> Path:
    return Path(workspace.settings.service_dir) / "uploads"


def _upload_path(workspace: Any, params: dict[str, Any]) -> Path:
    """The job's upload, which must lie inside the workspace's uploads folder."""
    root = uploads_root(workspace).resolve()
    path = (root / str(params.get("upload", ""))).resolve()
    if root not in path.parents or not path.is_file():
        raise ConfigError(f"job upload {params.get('upload')!r} is missing or outside the uploads folder")
    return path


def run_verify(context: JobContext) -> dict[str, Any]:
    from likeness.verify.scan import verify_many

    path = _upload_path(context.workspace, context.job.params)
    context.report(0.05, "verifying")
    evidence_dir = context.job_dir / "evidence"
    results = verify_many(context.workspace, [path], workers=1, report_dir=evidence_dir)
    result = results[0]
    context.report(0.95, "writing the evidence pack")
    from likeness.verify.report import evidence_paths

    pack = evidence_paths(result, evidence_dir)
    files = {kind: p.name for kind, p in (("json", pack.json), ("html", pack.html), ("zip", pack.zip)) if p.is_file()}
    verification = result.to_dict()
    verification["path"] = str(context.job.params.get("name") or path.name)  # not the server's folder
    return {"verification": verification, "evidence": files}


VERIFY = register_kind(JobKind("verify", Permission.VERIFY, run_verify))
