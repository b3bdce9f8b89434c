"""The console's studio page: forms that start reference-photo, extract, train and export jobs.

Each form posts with the session's CSRF token and queues its job through the same code as the
API route of the same step (``accept_upload``, ``queue_training``, ``queue_export``); the job
asks the policy engine when it runs, so the page adds no path around consent. What the page
shows of consent beforehand (``studio_view``) only helps the user choose.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from likeness.service.api import (
    ExportIn,
    TrainingIn,
    accept_upload,
    queue_export,
    queue_training,
    visible_subjects,
)
from likeness.service.auth import guard, require
from likeness.service.consent_view import consent_overview
from likeness.service.forms import StrictJSONRoute, unknown_fields
from likeness.service.roles import Permission
from likeness.service.security import Principal, check_csrf
from likeness.service.studio_view import faceset_choices, model_choices, studio_subjects

RENDER = Permission.RENDER
router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
#: How many finished jobs the train and export forms offer (newest first).
PICK_LIMIT = 30
#: Training-form fields that are check boxes: ticked sends "on", unticked sends nothing.
TRAIN_FLAGS = {"skip_identity_metrics": "identity_metrics", "accept_gaps": "accept_gaps"}


def studio_context(services: Any, principal: Principal, picked: dict[str, str]) -> dict[str, Any]:
    from likeness.service.job_kinds import exported_models, model_folder, train_file
    from likeness.train.recipes import RECIPE_NOTES, recipe_stop

    org_id = principal.user.org_id
    subjects = studio_subjects(consent_overview(services.workspace, org_id, principal.user.org_slug))
    by_slug = {s["slug"]: s for s in subjects}
    queue = services.queue
    extracts = queue.list(org_id=org_id, kind="extract", state="succeeded", limit=200)
    facesets = {f["id"]: f for f in faceset_choices(extracts, by_slug)}
    trains = queue.list(org_id=org_id, kind="train", state="succeeded", limit=PICK_LIMIT)
    folders = {str(Path(m["_model_dir"]).resolve()): m["id"] for m in exported_models(services.workspace, org_id)}
    exported = {j.id: folders.get(str(model_folder(services.workspace, j.id).resolve())) for j in trains}
    models = model_choices(trains, facesets, {k: v for k, v in exported.items() if v})
    for model in models:
        model["preview"] = train_file(services.workspace, model["id"], "preview_latest.png") is not None
    choices = list(facesets.values())[:PICK_LIMIT]
    limits = services.limits
    return {
        "subjects": subjects,
        "sources": [f for f in choices if not f["performer"]],
        "targets": [f for f in choices if f["performer"]],
        "models": models,
        "recipes": [{"name": name, "note": note, "stop": recipe_stop(name)} for name, note in RECIPE_NOTES.items()],
        "default_stop": recipe_stop(None),
        "picked": picked,
        "image_mib": limits.image_bytes // (1024 * 1024),
        "video_mib": limits.video_bytes // (1024 * 1024),
    }


@router.get("/studio", **guard(RENDER))
def studio_page(
    request: Request,
    principal: Annotated[Principal, Depends(require(RENDER))],
    source: str = "",
    target: str = "",
    model: str = "",
) -> Response:
    from likeness.service.console import render

    picked = {"source": source[:32], "target": target[:32], "model": model[:32]}
    context = studio_context(request.app.state.services, principal, picked)
    return render(request, "studio.html", context, principal=principal)


async def _upload_for_subject(request: Request, kind: str) -> Response:
    principal = require(RENDER, csrf_from_header=False)(request)
    subjects = await run_in_threadpool(visible_subjects, request, principal)
    job = await accept_upload(
        request,
        principal,
        kind=kind,
        csrf_header=None,
        fields=("subject",),
        optional=("dedup",) if kind == "extract" else (),
        choices={"subject": subjects},
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post(
    "/studio/references",
    **guard(RENDER, csrf_from_header=False),
)
async def references_upload(request: Request) -> Response:
    """A reference photo of a subject: ``POST /api/v1/subjects/{slug}/references``'s job."""
    return await _upload_for_subject(request, "references")


@router.post(
    "/studio/extractions",
    **guard(RENDER, csrf_from_header=False),
)
async def extraction_upload(request: Request) -> Response:
    """Footage to extract a subject's faces from: ``POST /api/v1/extractions``'s job."""
    return await _upload_for_subject(request, "extract")


def training_fields(form: dict[str, str]) -> dict[str, Any]:
    """``TrainingIn`` fields from the training form: empty fields are not given (the recipe's
    or the default's value holds), check boxes become booleans.

    >>> training_fields({"source": "a", "iterations": "", "skip_identity_metrics": "on"})
    {'source': 'a', 'identity_metrics': False, 'expression_metrics': False}
    """
    fields: dict[str, Any] = {
        k: v.strip() for k, v in form.items() if v.strip() and k not in TRAIN_FLAGS and k != "csrf_token"
    }
    if fields.get("resolution", "").isdigit():  # a Literal of ints takes no string
        fields["resolution"] = int(fields["resolution"])
    if form.get("skip_identity_metrics"):  # the identity and expression scores cost most of a preview
        fields.update(identity_metrics=False, expression_metrics=False)
    if form.get("accept_gaps"):
        fields["accept_gaps"] = True
    return fields


async def _form(request: Request, principal: Principal, known: Collection[str]) -> dict[str, str]:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(principal, values.get("csrf_token"))
    unknown_fields(form.keys(), known)
    return values


#: The training form's fields: the API's body, with check boxes for what the API takes as booleans.
TRAINING_FORM = (*(name for name in TrainingIn.model_fields if name not in TRAIN_FLAGS.values()), *TRAIN_FLAGS)


def _valid(model: type[TrainingIn] | type[ExportIn], fields: dict[str, Any]) -> Any:
    """The form's fields as the API's body model, or the same 422 problem the API sends."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


@router.post(
    "/studio/trainings",
    **guard(RENDER, csrf_from_header=False),
)
async def training_form(request: Request) -> Response:
    principal = require(RENDER, csrf_from_header=False)(request)
    body = _valid(TrainingIn, training_fields(await _form(request, principal, TRAINING_FORM)))
    job = await run_in_threadpool(queue_training, request.app.state.services.queue, principal, body)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post(
    "/studio/exports",
    **guard(RENDER, csrf_from_header=False),
)
async def export_form(request: Request) -> Response:
    principal = require(RENDER, csrf_from_header=False)(request)
    form = await _form(request, principal, ExportIn.model_fields)
    body = _valid(ExportIn, {"model": form.get("model", "").strip()})
    job = await run_in_threadpool(queue_export, request.app.state.services.queue, principal, body)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
