"""The kinds of job the worker runs. Each calls the same library function as the CLI command
of the same name, so the service adds no path around what the library checks.

- ``verify``: ``likeness.verify.scan.verify_many``, exactly as ``likeness verify --report``
  (ledger ``verification.completed`` event, resume state, evidence pack).
- ``render``: ``likeness.render.render_media``, exactly as ``likeness render``: the policy
  engine authorizes the model's subject for the use and the performer's release, for the job's
  organisation (never one the caller names), and every output is labelled by the writer. The
  model is one the organisation exported (its ``model.exported`` event on the ledger), never a
  path from the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from likeness.errors import ConfigError
from likeness.service.roles import Permission
from likeness.service.worker import JobContext, JobKind, register_kind


def uploads_root(workspace: Any) -> Path:
    return Path(workspace.settings.service_dir) / "uploads"


def job_upload_path(workspace: Any, params: dict[str, Any]) -> Path:
    """The job's upload, which must lie inside the workspace's uploads folder (the job's
    parameters live in the database, which an attacker may edit)."""
    root = uploads_root(workspace).resolve()
    path = (root / str(params.get("upload", ""))).resolve()
    if root not in path.parents or not path.is_file():
        raise ConfigError(f"job upload {params.get('upload')!r} is missing or outside the uploads folder")
    return path


def run_verify(context: JobContext) -> dict[str, Any]:
    from likeness.verify.scan import verify_many

    path = job_upload_path(context.workspace, context.job.params)
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


# --- render ------------------------------------------------------------------------------

#: Output file suffix by the target's sniffed container (render writes .mp4 for video).
_RENDER_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}


def exported_models(workspace: Any, org_id: str) -> list[dict[str, Any]]:
    """The organisation's exported models, newest first, from their ``model.exported`` events."""
    models = []
    for event in reversed(workspace.ledger.find("model.exported", org_id=org_id)):
        payload = event.payload
        models.append(
            {
                "id": event.event_id,
                "subject": payload.get("subject_slug"),
                "performer": payload.get("performer_slug"),
                "architecture": payload.get("architecture"),
                "resolution": payload.get("resolution"),
                "exported_at": event.created_at,
                "_model_dir": payload.get("model_dir"),
            }
        )
    return models


def model_dir_for(workspace: Any, org_id: str, model_id: str) -> Path:
    from likeness.service.errors import NotFound

    for model in exported_models(workspace, org_id):
        if model["id"] == model_id and model["_model_dir"]:
            return Path(model["_model_dir"])
    raise NotFound(f"no model {model_id!r} exported by your organisation")


def render_output_folder(workspace: Any, job_id: str) -> Path:
    return Path(workspace.settings.outputs_dir) / "service" / job_id


def run_render(context: JobContext) -> dict[str, Any]:
    from likeness.render import render_media

    params = context.job.params
    workspace = context.workspace
    org = workspace.registry.get_org(context.job.org_id)  # the job's organisation, not the request's
    model_dir = model_dir_for(workspace, org.id, str(params.get("model", "")))
    target = job_upload_path(workspace, params)
    suffix = ".mp4" if params.get("media_type") == "video" else _RENDER_SUFFIX.get(str(params.get("container")), ".png")
    out_dir = render_output_folder(workspace, context.job.id)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{target.stem}.render{suffix}"

    def progress(done: int, total: int | None) -> None:
        fraction = (done / total) if total else 0.5
        context.report(0.05 + 0.9 * fraction, f"{done}/{total or '?'} frames")

    context.report(0.02, "asking the consent policy")
    report = render_media(
        workspace, model_dir, target, out, use=str(params.get("use", "")), org=org.slug, progress=progress
    )
    outputs = []
    for output in report.outputs:
        path = Path(output["path"])
        outputs.append(
            {
                "name": path.name,
                "sha256": output.get("sha256") or _sha256(path),
                "job_id": output.get("job_id"),
                "watermark_payload": output.get("watermark_payload"),
            }
        )
    return {
        "render_job_id": report.job_id,
        "subject": report.subject_slug,
        "performer": report.performer_slug,
        "use": report.use,
        "frames_rendered": report.frames_rendered,
        "frames_total": report.frames_total,
        "faces_swapped": int(report.faces.get("swapped", 0)),
        "outputs": outputs,
        "report": {
            "json": Path(report.report_json).name if report.report_json else None,
            "html": Path(report.report_html).name if report.report_html else None,
        },
    }


def _sha256(path: Path) -> str:
    from likeness.digests import sha256_file

    return sha256_file(path)


RENDER = register_kind(JobKind("render", Permission.RENDER, run_render))
