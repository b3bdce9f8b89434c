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

import math
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
    # A crafted clip can cost minutes of decoding: the decode loop asks whether the job was
    # cancelled between packets, so a cancel stops it within about a second.
    results = verify_many(
        context.workspace, [path], workers=1, report_dir=evidence_dir, interrupt=context.stop_if_cancelled
    )
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


#: The refinements a render job may ask for (``likeness render --mouth/--eyes/--thin-rims``;
#: ``RefineOptions`` fields of the same names); the rest of RenderOptions stays the library's default.
RENDER_FLAGS = ("mouth", "eyes", "thin_rims")


def render_flags(params: dict[str, Any]) -> dict[str, bool]:
    """A render job's ``RENDER_FLAGS`` as queued: JSON booleans, absent for no (jobs queued before
    these existed). The params come back from the database, which someone may have edited, so
    anything else fails the job with a ConfigError instead of a truthiness guess.

    >>> render_flags({"mouth": True})
    {'mouth': True, 'eyes': False, 'thin_rims': False}
    """
    flags = {name: params.get(name, False) for name in RENDER_FLAGS}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"render job parameter {name} {str(value)[:20]!r}: expected true or false")
    return flags


def run_render(context: JobContext) -> dict[str, Any]:
    from likeness.render import RefineOptions, RenderOptions, render_media

    params = context.job.params
    flags = render_flags(params)
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
    # A job taken over from a worker that died resumes from the render's last checkpoint: the same
    # target, model and output path make render_media continue as the same render job.
    options = RenderOptions(
        refine=RefineOptions(mouth=flags["mouth"], eyes=flags["eyes"], thin_rims=flags["thin_rims"]),
        checkpoint_every=workspace.settings.render_checkpoint_frames,
    )
    report = render_media(
        workspace,
        model_dir,
        target,
        out,
        use=str(params.get("use", "")),
        org=org.slug,
        options=options,
        progress=progress,
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
        "resumed_from_frame": report.resumed_from_frame,
        "faces_swapped": int(report.faces.get("swapped", 0)),
        "options": flags,
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


# --- studio: reference photos, extract, train, export -------------------------------------
# Each job resolves what it works on from the job's organisation (an extract job of that
# organisation, never a server path from the request) and asks the policy engine through the
# same library call as the CLI command of the same name; the service adds no way around it.


def studio_folder(workspace: Any, what: str, job_id: str) -> Path:
    """``HOME/service/<what>/<job>``: where a studio job writes (facesets, models)."""
    return Path(workspace.settings.service_dir) / what / job_id


def faceset_folder(workspace: Any, job_id: str) -> Path:
    return studio_folder(workspace, "facesets", job_id)


def model_folder(workspace: Any, job_id: str) -> Path:
    return studio_folder(workspace, "models", job_id)


def _org_slug(context: JobContext) -> str:
    return str(context.workspace.registry.get_org(context.job.org_id).slug)


def _earlier_job(context: JobContext, job_id: Any, kind: str) -> Any:
    """A job of ``kind`` of this job's organisation (another organisation's is not found)."""
    from likeness.service.errors import NotFound
    from likeness.service.jobs import JobQueue

    queue = JobQueue.for_workspace(context.workspace)
    try:
        job = queue.get(str(job_id), org_id=context.job.org_id)
    except NotFound:
        job = None
    if job is None or job.kind != kind:
        raise ConfigError(f"no {kind} job {job_id!r} in your organisation")
    return job


def run_references(context: JobContext) -> dict[str, Any]:
    """``likeness subject photos add``, after the consent an extraction of the subject needs:
    reference photos are what picks the subject's faces out of footage."""
    from likeness.errors import FaceError
    from likeness.faceset import authorize_extraction, enroll_reference_photos

    subject = str(context.job.params.get("subject", ""))
    context.report(0.05, "asking the consent policy")
    org = _org_slug(context)
    authorize_extraction(context.workspace, subject, org)
    photo = job_upload_path(context.workspace, context.job.params)
    context.report(0.2, "computing the identity embedding")
    report = enroll_reference_photos(context.workspace, subject, [photo], org=org)
    name = str(context.job.params.get("name") or photo.name)
    skipped = [reason for _path, reason in report.skipped]
    if not report.ok:
        raise FaceError(f"{name}: no usable reference photo ({'; '.join(skipped) or 'no face'})")
    return {
        "subject": report.subject_slug,
        "added": report.added,
        "already_enrolled": bool(report.already_enrolled),
        "skipped": skipped,
    }


REFERENCES = register_kind(JobKind("references", Permission.RENDER, run_references))


def run_extract(context: JobContext) -> dict[str, Any]:
    """``likeness extract``: the subject's release (a performer) or training grant, rechecked
    while it runs; a rerun into the same folder (a worker taking the job over) resumes."""
    from likeness.faceset import ExtractOptions, authorize_extraction, extract_faceset

    subject = str(context.job.params.get("subject", ""))
    options = ExtractOptions(dedup_hamming=_dedup(context.job.params.get("dedup", "3")))
    context.report(0.01, "asking the consent policy")
    authz = authorize_extraction(context.workspace, subject, _org_slug(context))
    footage = job_upload_path(context.workspace, context.job.params)
    out = faceset_folder(context.workspace, context.job.id)
    out.parent.mkdir(parents=True, exist_ok=True)

    def progress(event: Any) -> None:
        fraction = (event.frame_index + 1) / event.frame_total if event.frame_total else 0.5
        context.report(0.02 + 0.95 * min(1.0, fraction), f"{event.frames_read} frames · {event.faces_kept} faces")

    report = extract_faceset(context.workspace, authz, [footage], out, options=options, progress=progress)
    if not report.ok:
        from likeness.errors import FaceError

        raise FaceError(f"no usable face of {subject} found in {context.job.params.get('name')}; nothing written")
    return {
        "subject": report.subject_slug,
        "faces": report.faces_kept,
        "faces_seen": report.faces_seen,
        "frames_read": report.frames_read,
        "rejected": {k: v for k, v in report.rejected.items() if v},
        "faceset_sha256": report.faceset_sha256,
        "ledger_event_id": report.ledger_event_id,
        "resumed": report.resumed,
    }


def _dedup(text: Any) -> int | None:
    """``likeness extract --dedup``: bits of perceptual-hash distance (0-64); -1 keeps duplicates."""
    value = str(text).strip()
    if not value.lstrip("-").isdigit() or not -1 <= int(value) <= 64:
        raise ConfigError(f"dedup {value[:20]!r}: expected a whole number from -1 (keep duplicates) to 64")
    return None if int(value) < 0 else int(value)


EXTRACT = register_kind(JobKind("extract", Permission.RENDER, run_extract))

#: Training options a train job takes (the rest are the recipe's or TrainConfig's defaults).
TRAIN_OPTIONS = ("model", "resolution", "batch_size")
TRAIN_SETTINGS = ("checkpoint_every", "preview_every", "identity_metrics", "expression_metrics")
#: Files of a model folder that a train job's page shows (previews come from ``previews/``).
TRAIN_FILES = ("metrics.png", "metrics.csv", "preview_latest.png")


def run_train(context: JobContext) -> dict[str, Any]:
    """``likeness train`` on two facesets extracted by this organisation's extract jobs: the
    policy engine authorizes the source subject's training use and the performer's release from
    the facesets' ledger events. A job taken over after its worker died resumes from the last
    checkpoint (``likeness train --resume``)."""
    from likeness.train import (
        TrainConfig,
        cuda_available,
        recipe_options,
        recipe_stop,
        resolve_recipe,
        resume_training,
        train_from_facesets,
    )
    from likeness.train.checkpoint import CHECKPOINT_NAME

    params = context.job.params
    workspace = context.workspace
    source = faceset_folder(workspace, _earlier_job(context, params.get("source"), "extract").id)
    target = faceset_folder(workspace, _earlier_job(context, params.get("target"), "extract").id)
    out = model_folder(workspace, context.job.id)
    org = _org_slug(context)

    def progress(event: Any) -> None:
        total = event.total or params.get("iterations")
        fraction = event.iteration / total if total else 0.5
        losses = (event.loss_source, event.loss_target)
        logged = all(math.isfinite(loss) for loss in losses)  # not a number until the first logged step
        context.report(
            0.02 + 0.95 * min(1.0, fraction),
            f"iteration {event.iteration}/{total or '?'}"
            + (" · loss {:.3f} / {:.3f}".format(*losses) if logged else ""),
        )

    context.report(0.01, "asking the consent policy")
    if (out / CHECKPOINT_NAME).is_file():
        result = resume_training(workspace, out, org=org, progress=progress)
    else:
        choice = resolve_recipe(
            params.get("recipe"), resolution=params.get("resolution"), target_path=target, cuda=cuda_available()
        )
        given = {k: params.get(k) for k in ("iterations", "minutes")}
        stop = given if any(given.values()) else recipe_stop(choice.name)
        config = TrainConfig(
            **recipe_options(choice.name, **{k: params.get(k) for k in TRAIN_OPTIONS}),
            iterations=stop["iterations"],
            minutes=stop["minutes"],
            recipe=choice.to_dict(),
            **{k: params[k] for k in TRAIN_SETTINGS if params.get(k) is not None},
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        result = train_from_facesets(
            workspace,
            source,
            target,
            out,
            config,
            org=org,
            accept_gaps=bool(params.get("accept_gaps")),
            progress=progress,
        )
    return {
        "iterations": result.iterations,
        "stop_reason": result.stop_reason,
        "training_seconds": round(result.training_seconds, 1),
        "device": result.device,
        "batch_size": result.batch_size,
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str)) or v is None},
        "coverage_gaps": [gap.get("sentence") for gap in (result.coverage_check or {}).get("gaps", [])],
        "previews": train_previews(workspace, context.job.id),
    }


def train_previews(workspace: Any, job_id: str) -> list[str]:
    """The preview grids a train job's model folder holds, oldest first (file names)."""
    from likeness.train.config import PREVIEW_DIR

    folder = model_folder(workspace, job_id) / PREVIEW_DIR
    return sorted(p.name for p in folder.glob("preview_*.png")) if folder.is_dir() else []


def train_file(workspace: Any, job_id: str, name: str) -> Path | None:
    """A file of the train job's model folder that its page may show: the metrics plot and
    table, the latest preview, or a preview grid by name (nothing else: not the checkpoint)."""
    from likeness.train.config import PREVIEW_DIR

    folder = model_folder(workspace, job_id)
    if name in TRAIN_FILES:
        path = folder / name
    elif name in train_previews(workspace, job_id):
        path = folder / PREVIEW_DIR / name
    else:
        return None
    return path if path.is_file() else None


TRAIN = register_kind(JobKind("train", Permission.RENDER, run_train))


def run_export(context: JobContext) -> dict[str, Any]:
    """``likeness model export`` of a train job's model folder: the policy engine authorizes
    the subject and performer the checkpoint's ledger event names; the ``model.exported``
    event makes the model one this organisation can render with (``GET /models``)."""
    from likeness.train import export_from_folder

    trained = _earlier_job(context, context.job.params.get("model"), "train")
    context.report(0.05, "asking the consent policy")
    folder = model_folder(context.workspace, trained.id)
    result = export_from_folder(context.workspace, folder, org=_org_slug(context))
    context.report(0.95, "exported")
    model = next(
        m
        for m in exported_models(context.workspace, context.job.org_id)
        if m["_model_dir"] and Path(m["_model_dir"]).resolve() == folder.resolve()
    )
    return {
        "model": model["id"],
        "train_job": trained.id,
        "onnx_sha256": result.card.get("onnx_sha256"),
        "max_abs_difference": result.max_abs_difference,
        "subject": model["subject"],
        "performer": model["performer"],
    }


EXPORT = register_kind(JobKind("export", Permission.RENDER, run_export))
