"""Faceset-level entry points: authorize, train, resume and export from folders (what the CLI calls).

The source faceset's subject needs a ``training`` grant to the organisation; the target faceset's
performer needs a release to it. Both come from the policy engine; nothing here can skip them.
Whose faces a faceset holds, and whose model a checkpoint is, come from their signed ledger
events (``faceset.created``, ``model.checkpointed``), never from the editable manifest or
checkpoint: a relabelled artefact is refused (``artefact_altered``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.durable import write_atomic
from likeness.errors import ConsentError, ModelError
from likeness.train.checkpoint import (
    CHECKPOINT_NAME,
    discard_unstarted_run,
    load_bound_checkpoint,
)
from likeness.train.export import ExportResult, export_model
from likeness.train.loop import (
    TrainConfig,
    TrainProgress,
    TrainResult,
    faceset_consent,
    train_swap_model,
)
from likeness.train.recipes import (
    RecipeChoice,
    canonical_recipe,
    check_recipe_device,
    choose_recipe,
)
from likeness.train.samples import faceset_samples

FACESETS_NAME = "facesets.json"
#: The coverage gate's result for this run (what was missing, whether severe gaps were accepted).
COVERAGE_CHECK_NAME = "coverage_check.json"


def _grantee(workspace: Any, org: str | None) -> str:
    preferred = org or getattr(getattr(workspace, "settings", None), "org", None)
    return workspace.registry.default_org(preferred).slug


def authorize_training(workspace: Any, source: Any, target: Any, *, org: str | None) -> tuple[Any, Any]:
    """(training Authorization of the source subject, ReleaseAuthorization of the target performer),
    for the subjects the facesets' signed ledger events name (``ConsentError`` when a manifest does
    not match its event)."""
    grantee = _grantee(workspace, org)
    source_event = faceset_consent(workspace, faceset_samples(source))
    target_event = faceset_consent(workspace, faceset_samples(target))
    # Facesets on disk always have their event (faceset_consent raises otherwise); None is in-memory faces.
    assert source_event is not None and target_event is not None
    if target_event["release_id"] is None:
        raise ConsentError(
            "no_release", f"{target.path}: the target faceset was not extracted under a performer release"
        )
    authz = workspace.policy.authorize(source_event["subject_id"], "training", grantee)
    release_authz = workspace.policy.authorize_release(target_event["subject_id"], grantee)
    return authz, release_authz


def performer_face_sizes(target_path: str | Path) -> list[float]:
    """Every face's ``face_size`` (source pixels: the longer side of its landmark box, as extraction
    recorded it in the faceset index) in the faceset at ``target_path``."""
    from likeness.faceset import load_faceset

    return [float(record.face_size) for record in load_faceset(target_path)]


def cuda_available() -> bool:
    """Whether training on ``device="auto"`` would run on a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_recipe(
    recipe: str | None, *, resolution: int | None, target_path: str | Path | None, cuda: bool
) -> RecipeChoice:
    """The recipe a new run starts from, and why.

    A ``recipe`` given wins, then a ``resolution`` given (no recipe: the options as given);
    with neither, the choice follows the performer's (target faceset's) face sizes
    (:func:`likeness.train.recipes.choose_recipe`). A recipe that needs a CUDA device is refused
    on a machine without one (``RecipeUnavailable``), whether given or chosen.
    """
    if recipe is not None:
        canonical = canonical_recipe(recipe)
        choice = RecipeChoice(recipe, f"recipe {recipe!r} given" + (f" ({canonical})" if canonical != recipe else ""))
    elif resolution is not None:
        return RecipeChoice(None, f"--res {resolution} given without a recipe: the options as given")
    elif target_path is None:
        return RecipeChoice(None, "no performer faceset to measure: the options as given")
    else:
        choice = choose_recipe(performer_face_sizes(target_path), cuda=cuda)
    assert choice.name is not None
    check_recipe_device(choice.name, cuda=cuda)
    return choice


def train_from_facesets(
    workspace: Any,
    source_path: str | Path,
    target_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    org: str | None = None,
    accept_gaps: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Load both facesets, authorize, check coverage, remember their paths in ``out_dir`` and train.

    Coverage gate (after consent): the performer's (target) faces are compared with the source's
    (:func:`likeness.faceset.report.coverage_check`); severe gaps refuse the run
    (``CoverageRefused``, naming each with figures) unless ``accept_gaps``. The result, gaps and
    whether they were accepted, is written to ``coverage_check.json`` and kept in the checkpoint,
    from which export copies it into the model card.
    """
    from likeness.faceset import load_faceset
    from likeness.faceset.report import coverage_check

    config.validate()  # a bad option fails before any faceset is read
    source, target = load_faceset(source_path), load_faceset(target_path)
    authz, release_authz = authorize_training(workspace, source, target, org=org)
    out = Path(out_dir)
    if (out / CHECKPOINT_NAME).exists():
        raise ModelError(f"{out}: already holds a checkpoint; use --resume {out}")
    checked = coverage_check(list(target), list(source), accept_gaps=accept_gaps)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"source": str(Path(source_path).resolve()), "target": str(Path(target_path).resolve())}
    write_atomic(out / FACESETS_NAME, (json.dumps(paths, indent=2) + "\n").encode())
    write_atomic(out / COVERAGE_CHECK_NAME, (json.dumps(checked, indent=2) + "\n").encode())
    try:
        return train_swap_model(
            authz,
            release_authz,
            faceset_samples(source),
            faceset_samples(target),
            out,
            config,
            workspace=workspace,
            progress=progress,
            coverage_check=checked,
        )
    except BaseException:
        discard_unstarted_run(out, created=created, files=(FACESETS_NAME, COVERAGE_CHECK_NAME))
        raise


def _faceset_paths(model_dir: Path) -> tuple[str, str]:
    """(source, target) faceset paths of the run in ``model_dir``, from its ``facesets.json``."""
    try:
        paths = strict_json.loads((model_dir / FACESETS_NAME).read_text(encoding="utf-8"))
        return str(paths["source"]), str(paths["target"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{model_dir / FACESETS_NAME}: cannot tell which facesets this run used ({exc})") from None


def resume_training(
    workspace: Any,
    model_dir: str | Path,
    *,
    iterations: int | None = None,
    minutes: float | None = None,
    threads: int | None = None,
    org: str | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Continue the run in ``model_dir`` from its last checkpoint (consent checked again).

    ``iterations``/``minutes`` replace the saved stopping rule; ``threads`` the saved CPU thread count.
    """
    from likeness.faceset import load_faceset

    out = Path(model_dir)
    source_path, target_path = _faceset_paths(out)
    source, target = load_faceset(source_path), load_faceset(target_path)
    authz, release_authz = authorize_training(workspace, source, target, org=org)
    override = None
    if iterations is not None or minutes is not None or threads is not None:
        override = TrainConfig(iterations=iterations, minutes=minutes, threads=threads)
    return train_swap_model(
        authz,
        release_authz,
        faceset_samples(source),
        faceset_samples(target),
        out,
        override,
        workspace=workspace,
        resume=True,
        progress=progress,
    )


def _performer_faceset(model_dir: Path, target_sha256: str) -> Any:
    """The target faceset this run trained on, when ``facesets.json`` still leads to it unchanged."""
    from likeness.errors import FacesetError
    from likeness.faceset import load_faceset

    try:
        faceset = load_faceset(_faceset_paths(model_dir)[1])
    except (ModelError, FacesetError, OSError):
        return None
    return faceset_samples(faceset) if faceset.faceset_sha256 == target_sha256 else None


def export_from_folder(
    workspace: Any, model_dir: str | Path, *, out_dir: str | Path | None = None, org: str | None = None
) -> ExportResult:
    """Authorize (training use of the model's subject, the performer's release) and export
    ``model_dir`` to ONNX + a signed card.

    Subject and performer are the ones the checkpoint's ``model.checkpointed`` event records.
    When the performer's faceset the run trained on is still where ``facesets.json`` says and
    unchanged, an int8 copy is calibrated on it and checked (``export_model(performer_faces=)``).
    """
    model_dir = Path(model_dir)
    _state, consent = load_bound_checkpoint(workspace, model_dir / CHECKPOINT_NAME)
    grantee = _grantee(workspace, org)
    authz = workspace.policy.authorize(consent["subject_id"], "training", grantee)
    release_authz = workspace.policy.authorize_release(consent["performer_id"], grantee)
    performer = _performer_faceset(model_dir, consent["target_faceset_sha256"])
    return export_model(workspace, authz, release_authz, model_dir, out_dir=out_dir, performer_faces=performer)
