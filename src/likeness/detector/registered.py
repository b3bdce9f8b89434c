"""An agency's own detectors in the workspace: registered per subject, used by verify only while
their files match the ledger.

``register_detector`` copies a detector's ONNX file and card into ``HOME/detectors/<subject-id>/``
and appends ``detector.registered`` (subject, model id, both files' sha256, the gates worked out
again from the card's evaluation). It refuses a detector whose evaluation does not pass every
gate (``likeness.detector.evaluation``), or was not made for that subject (``evaluate --subject``:
the gates measured on the units verify recognises as the subject, the only ones it scores). A later registration for the same subject replaces the
earlier one: verify uses the subject's latest event.

``unregister_detector`` withdraws a subject's detector: it appends ``detector.unregistered``
(subject, reason, who, the withdrawn registration's ledger number and sha256s) and replaces the
detector's files in the workspace with a withdrawal note (``withdrawn.json``). The subject's
latest event of either kind is the one in force, so a later ``register`` works again.

``WorkspaceDetectors.for_subject`` is verify's only way to a detector: it re-reads the subject's
latest event, checks that its ledger row is intact, that both files on disk hash to the sha256s
it names, that its evaluation was made for the subject and that the gates still hold, and answers the loaded model or the reason it is not used.

Why the files go on withdrawal: the ledger alone cannot show that a row at its tail was removed
(only anchors kept outside the workspace can), so a deleted or edited withdrawal row would
otherwise bring the registration before it back in silence. With the files gone and the note in
their place, such a registration is named and not used (``check_registered``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.detector.evaluation import GateFailed, evaluation_recorded, first_failed_gate, recheck_gates
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.durable import fsync_folder, write_atomic
from likeness.errors import ModelError

REGISTERED_EVENT = "detector.registered"
UNREGISTERED_EVENT = "detector.unregistered"
#: A subject's latest event of these is the one in force.
DETECTOR_EVENTS = (REGISTERED_EVENT, UNREGISTERED_EVENT)
DETECTORS_DIR = "detectors"
#: What stays in a subject's detector folder after a withdrawal, in place of its files.
WITHDRAWN_FILE = "withdrawn.json"


class NotRegistered(ModelError):
    """Unregister for a subject that has no detector in force (never registered, or withdrawn)."""


@dataclass(frozen=True)
class RegisteredDetector:
    """One subject's current detector as its ledger event names it."""

    subject_id: str
    subject_slug: str
    model: str
    onnx_sha256: str
    card_sha256: str
    ledger_seq: int
    registered_at: str
    folder: Path
    gates: tuple[dict[str, Any], ...]
    #: Why the event cannot be used as a registration (a field missing or of the wrong type: a row
    #: written by hand, the chain recomputed), or None.
    malformed: str | None = None


@dataclass(frozen=True)
class WithdrawnDetector:
    """A subject whose latest detector event is a withdrawal (``detector.unregistered``)."""

    subject_id: str
    subject_slug: str
    reason: str
    by: str | None
    ledger_seq: int
    withdrawn_at: str
    #: The registration it withdrew: its ledger number, model id and ONNX sha256.
    withdraws_seq: int | None
    model: str
    onnx_sha256: str

    def says(self) -> str:
        """Why verify does not use the subject's detector (in ``manipulation``'s reason)."""
        return f"its detector was withdrawn on {self.withdrawn_at} (ledger #{self.ledger_seq}): {self.reason}"


def detector_folder(home: Path, subject_id: str) -> Path:
    return Path(home) / DETECTORS_DIR / subject_id


def register_detector(workspace: Any, folder: Path, subject: str) -> RegisteredDetector:
    """Register the detector in ``folder`` (``detector.onnx`` + its evaluated card) for ``subject``.

    ``GateFailed`` names the first gate that fails (with its figure), ``subject`` when the
    evaluation was not made for ``subject`` (``evaluate_detector(subject=...)``); ``ModelError`` when the files
    do not match each other, the evaluation was of another ONNX file, or ONNX Runtime cannot load
    it. Until the ledger holds the new event the subject's earlier registration stays in place,
    untouched: the files are written to a new folder beside it and swapped in after the append.
    """
    from likeness.detector.score import read_detector_file, session_for

    folder = Path(folder)
    onnx_path, card_path = folder / MODEL_FILE, folder / CARD_FILE
    if not onnx_path.is_file() or not card_path.is_file():
        raise ModelError(f"{folder}: no detector here (expected {MODEL_FILE} and {CARD_FILE})")
    onnx_bytes, card_bytes = read_detector_file(onnx_path), read_detector_file(card_path)
    card = _parse_card(card_bytes, card_path)
    onnx_sha256 = hashlib.sha256(onnx_bytes).hexdigest()
    if card.get("sha256") != onnx_sha256:
        raise ModelError(f"{onnx_path}: sha256 does not match its card")
    record = workspace.registry.get_subject(subject)
    failed = first_failed_gate(card, subject_id=str(record.id), subject_slug=record.slug)
    if failed is not None:
        raise GateFailed(failed["gate"], f"{folder}: not registered: gate {failed['gate']} fails: {failed['says']}")
    evaluation: dict[str, Any] = card["evaluation"]
    if evaluation.get("onnx_sha256") != onnx_sha256:
        raise ModelError(f"{card_path}: its evaluation was of another ONNX file; evaluate this one")
    try:
        session_for(onnx_bytes)
    except ModelError as exc:
        raise ModelError(f"{onnx_path}: {exc}") from None
    if not evaluation_recorded(workspace.ledger, evaluation, str(record.id)):
        raise ModelError(
            f"{card_path}: its evaluation is not one this workspace's ledger recorded (edited or copied after "
            f"`detector evaluate`, or made in another workspace); evaluate it again with --subject {record.slug}"
        )
    destination = detector_folder(workspace.home, record.id)
    target = float(card["calibration"]["target_false_positive_rate"])
    with detectors_lock(workspace.home):
        try:
            staged = _stage(destination, {MODEL_FILE: onnx_bytes, CARD_FILE: card_bytes})
        except OSError as exc:
            raise ModelError(f"{destination}: cannot write the detector's files ({exc.strerror or exc})") from None
        previous = current_event(workspace, record.id)
        try:
            event = workspace.ledger.append(
                REGISTERED_EVENT,
                {
                    "subject_id": record.id,
                    "subject_slug": record.slug,
                    "model": str(card.get("model")),
                    "onnx_sha256": onnx_sha256,
                    "card_sha256": hashlib.sha256(card_bytes).hexdigest(),
                    "threshold_logit": float(card["calibration"]["threshold_logit"]),
                    "target_false_positive_rate": target,
                    "evaluated": evaluation.get("evaluated"),
                    # what "recognised as the subject" meant when the gates were measured
                    "evaluation_subject": evaluation.get("subject"),
                    "gates": recheck_gates(evaluation, target_fpr=target),
                    "replaces_seq": previous.seq
                    if previous is not None and previous.event_type == REGISTERED_EVENT
                    else None,
                },
            )
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        _swap_in(staged, destination)
    return _registered(event, workspace.home)


@contextmanager
def detectors_lock(home: Path) -> Iterator[None]:
    """Hold the workspace's detector lock (``flock`` on ``HOME/detectors`` itself, so no file is
    left there): a registration or a withdrawal reads the subject's latest event, appends its own
    and swaps its files in as one step. Interleaved, the folder could end up with the files of
    the event not in force (a withdrawn detector's files without the note; a new registration's
    folder holding a note)."""
    import fcntl  # POSIX; imported here so that verify, which imports this module, does not need it

    folder = Path(home) / DETECTORS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ModelError(f"{folder}: the workspace's detector folder cannot be used ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stage(destination: Path, files: dict[str, bytes]) -> Path:
    """A new private folder beside ``destination`` holding ``files`` (0644: not secrets), each
    created exclusively in it, so nothing planted in the workspace is followed or overwritten."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    for name, payload in files.items():
        write_atomic(staged / name, payload, mode=0o644, overwrite=False)
    os.chmod(staged, 0o755)
    return staged


def _swap_in(staged: Path, destination: Path) -> None:
    """Put the staged folder where the registration's files live (the old folder, a planted
    link included, moved aside and removed, never written through)."""
    if destination.is_symlink() or destination.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.replace(destination, aside / "folder")
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(staged, destination)
    fsync_folder(destination.parent)


def _parse_card(card_bytes: bytes, card_path: Path) -> dict[str, Any]:
    try:
        card = strict_json.loads(card_bytes)
        float(card["calibration"]["target_false_positive_rate"]), float(card["calibration"]["threshold_logit"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{card_path}: not a detector card ({type(exc).__name__}: {exc})") from None
    return card


def current_event(workspace: Any, subject_id: str) -> Any | None:
    """The subject's latest ``detector.registered`` or ``detector.unregistered`` event: the one
    in force (a registration replaces an earlier one; a withdrawal ends it until the next)."""
    events = workspace.ledger.find(DETECTOR_EVENTS, subject_id=subject_id)
    return events[-1] if events else None


def unregister_detector(workspace: Any, subject: str, reason: str, *, by: str | None = None) -> WithdrawnDetector:
    """Withdraw ``subject``'s registered detector: verify, ``detector list`` and ``audit verify``
    treat the subject as having none until it is registered again.

    Appends ``detector.unregistered`` (``by``: who asked, as the caller knows them), then puts a
    withdrawal note in place of the detector's files. ``NotRegistered`` when the subject has no
    detector in force; ``ModelError`` for an empty reason, or (after the append, which already
    withdrew it) when the files could not be removed.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise ModelError("unregister needs a reason (it goes on the ledger with the withdrawal)")
    record = workspace.registry.get_subject(subject)
    with detectors_lock(workspace.home):
        return _withdraw(workspace, record, reason, by)


def _withdraw(workspace: Any, record: Any, reason: str, by: str | None) -> WithdrawnDetector:
    previous = current_event(workspace, record.id)
    if previous is None or previous.event_type != REGISTERED_EVENT:
        already = "" if previous is None else f" (withdrawn already, ledger #{previous.seq})"
        raise NotRegistered(f"{record.slug} has no registered detector to unregister{already}")
    withdrawn = _registered(previous, workspace.home)
    event = workspace.ledger.append(
        UNREGISTERED_EVENT,
        {
            "subject_id": record.id,
            "subject_slug": record.slug,
            "reason": reason,
            "by": by,
            "withdraws_seq": previous.seq,
            # named apart from a registration's members, so this row edited into a
            # ``detector.registered`` one is malformed rather than a registration of these files
            "withdrawn_model": withdrawn.model,
            "withdrawn_onnx_sha256": withdrawn.onnx_sha256,
            "withdrawn_card_sha256": withdrawn.card_sha256,
        },
    )
    destination = detector_folder(workspace.home, record.id)
    note = {"subject_id": record.id, "withdrawn_seq": event.seq, "withdraws_seq": previous.seq, "reason": reason}
    try:
        _swap_in(_stage(destination, {WITHDRAWN_FILE: (json.dumps(note, indent=2) + "\n").encode()}), destination)
    except OSError as exc:
        raise ModelError(
            f"{record.slug}'s detector is withdrawn (ledger #{event.seq}) and verify no longer uses it, but its "
            f"files in {destination} could not be removed ({exc})"
        ) from None
    return _withdrawn(event)


def _withdrawn(event: Any) -> WithdrawnDetector:
    p = event.payload
    withdraws = p.get("withdraws_seq")
    return WithdrawnDetector(
        subject_id=str(p.get("subject_id")),
        subject_slug=str(p.get("subject_slug")),
        reason=str(p.get("reason")),
        by=p.get("by") if isinstance(p.get("by"), str) else None,
        ledger_seq=event.seq,
        withdrawn_at=event.created_at,
        withdraws_seq=withdraws if isinstance(withdraws, int) else None,
        model=str(p.get("withdrawn_model")),
        onnx_sha256=str(p.get("withdrawn_onnx_sha256")),
    )


#: The fields a usable ``detector.registered`` payload holds as strings.
REQUIRED_FIELDS = ("subject_id", "onnx_sha256", "card_sha256")


def _registered(event: Any, home: Path) -> RegisteredDetector:
    p = event.payload
    missing = [name for name in REQUIRED_FIELDS if not isinstance(p.get(name), str)]
    gates = p.get("gates") or ()
    if not isinstance(gates, list | tuple):
        missing.append("gates")
    return RegisteredDetector(
        subject_id=str(p.get("subject_id")),
        subject_slug=str(p.get("subject_slug")),
        model=str(p.get("model")),
        onnx_sha256=str(p.get("onnx_sha256")),
        card_sha256=str(p.get("card_sha256")),
        ledger_seq=event.seq,
        registered_at=event.created_at,
        folder=detector_folder(home, str(p.get("subject_id"))),
        gates=tuple(gates) if not missing else (),
        malformed=f"its detector's ledger event (#{event.seq}) is malformed ({', '.join(missing)} missing or "
        "not of its type): it was not written by detector register"
        if missing
        else None,
    )


def _latest_events(workspace: Any) -> list[Any]:
    """Each subject's latest detector event (registration or withdrawal), in ledger order."""
    latest: dict[str, Any] = {}
    for event in workspace.ledger.find(DETECTOR_EVENTS):
        latest[str(event.payload.get("subject_id"))] = event
    return sorted(latest.values(), key=lambda e: e.seq)


def registered_detectors(workspace: Any) -> list[RegisteredDetector]:
    """Every subject's current detector, in order of registration (withdrawn ones left out)."""
    return [_registered(e, workspace.home) for e in _latest_events(workspace) if e.event_type == REGISTERED_EVENT]


def withdrawn_detectors(workspace: Any) -> list[WithdrawnDetector]:
    """Every subject whose detector was withdrawn and not registered again, in ledger order."""
    return [_withdrawn(e) for e in _latest_events(workspace) if e.event_type == UNREGISTERED_EVENT]


def detectors_fingerprint(workspace: Any) -> str:
    """What verify's manipulation field depends on: each current registration and whether it is
    usable now, and each withdrawal (a scan re-verifies files when a detector is registered,
    replaced, withdrawn or edited)."""
    from likeness.verify.gallery import open_gallery

    registered = registered_detectors(workspace)
    gallery = open_gallery(workspace) if registered else None
    state: list[tuple[Any, ...]] = [
        (
            r.subject_id,
            r.ledger_seq,
            r.onnx_sha256,
            r.card_sha256,
            isinstance(check_registered(workspace, r, gallery), str),
        )
        for r in registered
    ]
    # a withdrawal changes the reason verify gives for the subject's faces
    state += [(w.subject_id, w.ledger_seq, "withdrawn") for w in withdrawn_detectors(workspace)]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


def any_registered(workspace: Any) -> bool:
    return bool(workspace.ledger.events(REGISTERED_EVENT, limit=1))


def ledger_row_problem(workspace: Any, registered: RegisteredDetector) -> str | None:
    if workspace.ledger.intact(registered.ledger_seq):
        return None
    return f"the ledger row of its registered detector (ledger #{registered.ledger_seq}) does not verify (edited)"


def check_registered(
    workspace: Any, registered: RegisteredDetector, gallery: Any = None
) -> tuple[bytes, dict[str, Any]] | str:
    """The ONNX bytes and card of a registration when everything still matches its ledger event
    and the subject is recognised against the references its evaluation was measured with;
    otherwise the reason it must not be used (said in verify's ``manipulation``).

    ``gallery``: the one verify recognises faces with (default: the workspace's, synced)."""
    from likeness.detector.score import read_detector_file

    where = f"registered detector (ledger #{registered.ledger_seq})"
    row_problem = ledger_row_problem(workspace, registered) or registered.malformed
    if row_problem:
        return row_problem
    withdrawn = withdrawal_note_problem(registered, where)
    if withdrawn:
        return withdrawn
    onnx_path, card_path = registered.folder / MODEL_FILE, registered.folder / CARD_FILE
    try:
        onnx_bytes, card_bytes = read_detector_file(onnx_path), read_detector_file(card_path)
    except ModelError as exc:
        return f"the files of its {where} cannot be read ({exc})"
    if hashlib.sha256(onnx_bytes).hexdigest() != registered.onnx_sha256:
        return f"the ONNX file of its {where} no longer matches the sha256 on the ledger"
    if hashlib.sha256(card_bytes).hexdigest() != registered.card_sha256:
        return f"the card of its {where} no longer matches the sha256 on the ledger"
    try:
        card = _parse_card(card_bytes, card_path)
        failed = first_failed_gate(card, subject_id=registered.subject_id, subject_slug=registered.subject_slug)
    except ModelError as exc:
        return f"its {where} has an unusable card: {exc}"
    if failed is not None:
        return f"its {where} fails gate {failed['gate']}: {failed['says']}"
    if gallery is None:
        from likeness.verify.gallery import open_gallery

        gallery = open_gallery(workspace)
    changed = references_problem(card["evaluation"]["subject"], registered, gallery)
    if changed is not None:
        return f"its {where}: {changed}"
    return onnx_bytes, card


def withdrawal_note_problem(registered: RegisteredDetector, where: str) -> str | None:
    """Why a registration in force must not be used because its folder holds a withdrawal note:
    the ledger row that withdrew it was deleted or edited (a registration made after a
    withdrawal swaps the note out), or None."""
    from likeness.detector.score import read_detector_file

    note = registered.folder / WITHDRAWN_FILE
    if not (note.exists() or note.is_symlink()):
        return None
    try:
        withdrawn_seq = strict_json.loads(read_detector_file(note)).get("withdrawn_seq")
    except (ModelError, ValueError, AttributeError):
        withdrawn_seq = None  # whatever the note says, its presence is what counts
    which = f"ledger #{withdrawn_seq}" if isinstance(withdrawn_seq, int) else "a ledger row"
    return (
        f"its {where} was withdrawn ({which}, as {WITHDRAWN_FILE} in its folder records), but the ledger no "
        "longer holds that withdrawal: the row was deleted or edited (run: likeness audit verify)"
    )


def references_problem(measured: dict[str, Any], registered: RegisteredDetector, gallery: Any) -> str | None:
    """Why faces are no longer recognised as the subject the way they were when the gates were
    measured (references added or removed since, hence other tracks and another threshold), or None.

    ``measured``: the evaluation's ``subject`` record (``ArtistGallery.subject_references``)."""
    now = gallery.subject_references(registered.subject_id)
    then_threshold, now_threshold = measured.get("threshold"), now["threshold"]
    # the threshold follows from the same references; summed in another row order after the
    # index is rebuilt it may differ in the last bits
    same = (
        now["references"] == measured.get("references")
        and now["references_sha256"] == measured.get("references_sha256")
        and isinstance(then_threshold, float)
        and isinstance(now_threshold, float)
        and abs(now_threshold - then_threshold) <= 1e-6
    )
    if same:
        return None
    return (
        f"{registered.subject_slug}'s references are not the ones its evaluation recognised them with "
        f"({measured.get('references')} then, {now['references']} now; threshold {_figure(then_threshold)} "
        f"then, {_figure(now_threshold)} now), so verify would score tracks the gates were not measured on; "
        f"evaluate it again with --subject {registered.subject_slug} and register it"
    )


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class WorkspaceDetectors:
    """Verify's view of the registered detectors: each subject's model, loaded once per
    registration, or the reason it is not used (re-checked at every lookup against the ledger)."""

    def __init__(self, workspace: Any, gallery: Any = None) -> None:
        """``gallery``: the one verify recognises faces with (default: the workspace's, synced
        at the first lookup); a registration is used only while it recognises the subject
        against the references its evaluation was measured with."""
        self.workspace = workspace
        self.gallery = gallery
        self._loaded: dict[tuple[str, int], Any] = {}
        # The files' stat (inode, size, mtime, ctime) when their bytes last matched the ledger:
        # while it is unchanged they are not hashed again (a write changes ctime, which no
        # user can set back).
        self._checked_stat: dict[tuple[str, int], tuple[int, ...] | None] = {}

    def close(self) -> None:
        """Drop the loaded models (their ONNX sessions); a later lookup loads and checks again."""
        self._loaded.clear()
        self._checked_stat.clear()

    def for_subject(self, subject_id: str) -> tuple[RegisteredDetector, Any] | str | None:
        """``(registration, DetectorModel)``; the reason (a string) when a registration exists
        but must not be used; ``None`` when none was ever registered for the subject."""
        from likeness.detector.score import DetectorModel, session_for

        event = current_event(self.workspace, subject_id)
        if event is None:
            return None
        if event.event_type == UNREGISTERED_EVENT:
            return withdrawal_says(self.workspace, _withdrawn(event))
        registered = _registered(event, self.workspace.home)
        key = (subject_id, registered.ledger_seq)
        stat = _files_stat(registered.folder)
        if key in self._loaded and stat is not None and self._checked_stat.get(key) == stat:
            return ledger_row_problem(self.workspace, registered) or (registered, self._loaded[key])
        if self.gallery is None:
            from likeness.verify.gallery import open_gallery

            self.gallery = open_gallery(self.workspace)
        checked = check_registered(self.workspace, registered, self.gallery)
        if isinstance(checked, str):
            self._checked_stat.pop(key, None)
            return checked
        self._checked_stat[key] = stat
        if key not in self._loaded:
            onnx_bytes, card = checked
            try:
                self._loaded[key] = DetectorModel(card, session_for(onnx_bytes))
            except ModelError as exc:
                return f"its registered detector (ledger #{registered.ledger_seq}) cannot be loaded: {exc}"
        return registered, self._loaded[key]


def withdrawal_says(workspace: Any, withdrawn: WithdrawnDetector) -> str:
    """Why verify does not use a withdrawn subject's detector; an edited withdrawal row is named
    too (it stays withdrawn either way: nothing registered after it)."""
    if workspace.ledger.intact(withdrawn.ledger_seq):
        return withdrawn.says()
    return f"{withdrawn.says()} (that ledger row does not verify: edited)"


def _files_stat(folder: Path) -> tuple[int, ...] | None:
    try:
        stats = [(folder / name).stat() for name in (MODEL_FILE, CARD_FILE)]
    except OSError:
        return None
    return tuple(v for st in stats for v in (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
