"""The public verification page ("진짜일까? Is it real?") and its JSON twin, for fans and platforms.

No account: ``GET /`` is the page, ``POST /api/v1/public/verify`` (multipart field ``file``)
answers with the ``likeness.verify/1`` object that ``likeness verify --json`` prints. The page
calls that endpoint (one way): a 10 s 1080p clip is verified within a request
(benchmarks/public_verify.py), so a job queue would only add polling.

What a visitor sends is not kept: the file is streamed to a private folder (type sniffed,
size limited, ``likeness.service.uploads``), verified in this process by one shared
``Verifier`` and deleted, and the check is not written on the ledger (a report to the agency
is). The answer is the CLI's, with what the public may not see withheld
(:func:`public_result`): the name of a subject whose rights holder did not allow public
naming, the nearest non-matching artist, and the server's folders.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from likeness import strict_json
from likeness.errors import VerificationTimedOut
from likeness.service.api import UPLOAD_BODY
from likeness.service.auth import public
from likeness.service.errors import AnalysisTimedOut, InvalidField, NoFile, NotFound
from likeness.service.forms import StrictJSONRoute, unknown_fields
from likeness.service.security import CSP, RateLimiter, UploadSlots
from likeness.service.uploads import (
    StoredUpload,
    TransferFloor,
    UploadLimits,
    new_upload_folder,
    receive_upload,
)
from likeness.service.verdicts import GRANT_STATE_HEADLINES, LABEL_ONLY_HEADLINES, VERDICT_HEADLINES

router = APIRouter(route_class=StrictJSONRoute)
#: What the card says for a subject whose rights holder did not allow public naming.
UNNAMED_ARTIST = "an artist this agency represents"
#: Subject fields of the JSON that are withheld (set to null) for such a subject.
_SUBJECT_FIELDS = ("slug", "name", "subject_slug", "subject_id")
#: Members always withheld: who a stranger looks most like, and the agency's own file name of a
#: render (``mina_debut.mp4`` names the artist where the word match cannot see it).
_WITHHELD = ("nearest", "output_name")
#: The page draws the visitor's own file (a video from a blob: URL) to show the analysed
#: frames and faces, so nothing of the upload is sent back; everything else is the service's CSP.
PAGE_CSP = CSP.replace("img-src 'self' data:", "img-src 'self' data: blob:") + "; media-src blob:"
#: How many recent checks the checker remembers (their results, never the files), so that a
#: report of a file just checked is routed without verifying it again.
RECENT_RESULTS = 64
#: A check refused for the checker's queue, never analysed: the page says "try again in a
#: minute", not the timeout's "try a shorter clip".
BUSY = {"cause": "busy"}
#: What a busy refusal tells a client to wait: the page's sentence says "in a minute".
BUSY_RETRY_AFTER = {"Retry-After": "60"}


def public_upload_root(workspace: Any) -> Path:
    return Path(workspace.settings.service_dir) / "public"


class PublicChecker:
    """One ``Verifier`` for the page, built on first use and kept (its detector and embedder
    are the slow part to load); its gallery is synced again when the ledger moved (a subject
    or reference may have been added). One check at a time: the verifier is not re-entrant and
    the machine's cores are already shared by its own helper threads."""

    def __init__(self, workspace: Any, *, max_waiting: int = 8) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        # A check waits for the verifier in one of the server's worker threads, which the
        # console and the API share: unbounded, a crowd of checks stalled every staff request.
        self._max_waiting = max_waiting
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._verifier: Any = None
        self._ledger_head: tuple[int, str] | None = None
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._answers_lock = threading.Lock()  # not the verifier's: that one is held for seconds

    def verify(self, path: Path, *, wait_s: float) -> Any:
        """The ``VerificationResult`` for ``path`` within ``wait_s`` seconds: ``AnalysisTimedOut``
        when another check held the verifier that long, ``VerificationTimedOut`` when the
        analysis itself ran past it; at once when ``public_checks_waiting`` checks already wait.
        The video decoder asks between packets whether time is up, and the analysis checks it at
        each stage, so the verifier is free again a frame or a stage after the deadline: a
        request that gave up must not keep the next visitor waiting (a crafted clip can cost
        minutes of decoding)."""
        deadline = time.monotonic() + max(0.0, wait_s)
        if not self._lock.acquire(blocking=False):
            with self._waiting_lock:
                if self._waiting >= self._max_waiting:
                    raise AnalysisTimedOut(
                        f"the checker is busy: {self._waiting} other files are waiting for it; try again in a minute",
                        members=BUSY,
                        headers=BUSY_RETRY_AFTER,
                    )
                self._waiting += 1
            try:
                acquired = self._lock.acquire(timeout=max(0.0, wait_s))
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
            if not acquired:
                raise AnalysisTimedOut(
                    "the checker is busy with other files; try again in a minute",
                    members=BUSY,
                    headers=BUSY_RETRY_AFTER,
                )

        def out_of_time() -> None:
            if time.monotonic() > deadline:
                raise VerificationTimedOut("the verification passed its deadline")

        try:
            result, _media = self._current().verify(path, interrupt=out_of_time, deadline=deadline)
            _remember(self._recent, result.sha256, result)
            return result
        finally:
            self._lock.release()

    def recall(self, sha256: str) -> Any:
        """The result of a recent check of the file with this digest, or None."""
        return self._recent.get(sha256)

    def remember_answer(self, answer: dict[str, Any]) -> None:
        """Keep the public answer given for a file (a visitor may share it: ``permalinks``)."""
        with self._answers_lock:
            _remember(self._answers, answer["sha256"], answer)

    def answer(self, sha256: str) -> dict[str, Any] | None:
        return self._answers.get(sha256)

    def _current(self) -> Any:
        from likeness.verify.gallery import open_gallery
        from likeness.verify.pipeline import Verifier

        head = self.workspace.ledger.head()
        if self._verifier is None:
            self._verifier = Verifier(self.workspace)
        elif head != self._ledger_head:
            self._verifier.gallery = open_gallery(self.workspace)
        self._ledger_head = head
        return self._verifier

    def close(self) -> None:
        with self._lock:
            if self._verifier is not None:
                self._verifier.close()
                self._verifier = None


def _remember(recent: OrderedDict[str, Any], key: str, value: Any) -> None:
    recent[key] = value
    recent.move_to_end(key)
    while len(recent) > RECENT_RESULTS:
        recent.popitem(last=False)


def named_publicly(workspace: Any, subject_id: str) -> bool:
    """The rights holder allowed public naming: the subject's row says so, and so does its
    ``subject.created`` ledger event, whose row still hashes and links into the chain (a
    database editor cannot switch a name on, even with the ledger's triggers dropped), and the
    row's name is the one that event recorded (where it records one: a renamed row is not named),
    and the event is its enrolling organisation's (``LedgerConsent.subject_seal_problem``: one a
    database editor appended after subject events were sealed names nobody)."""
    from likeness.consent.integrity import LedgerConsent
    from likeness.errors import RegistryError

    try:
        record = workspace.registry.get_subject(subject_id)
    except RegistryError:
        return False
    if not record.public_name:
        return False
    created = workspace.ledger.find("subject.created", subject_id=subject_id)
    if not created or created[0].payload.get("public_name") is not True:
        return False
    if "name" in created[0].payload and created[0].payload["name"] != record.name:
        return False  # the row's name was edited: the card would name someone else
    with workspace.session() as session:
        if LedgerConsent(session).subject_seal_problem(created[0]) is not None:
            return False
    return bool(workspace.ledger.intact(created[0].seq))


def public_result(verification: dict[str, Any], workspace: Any, *, name: str, folder: Path) -> dict[str, Any]:
    """The ``likeness.verify/1`` object as the public may see it: ``path`` is the sanitised file
    name; ``nearest`` (who a stranger looks most like) and a render's ``output_name`` (the
    agency's file name) are dropped; a subject that may not be named has its slug, name and id
    set to null and is "an enrolled artist" in the evidence sentences; the upload's folder
    never appears."""
    subjects = _keyed_by_registry(workspace, _subjects_in(verification))
    hidden: dict[str, str] = {}
    for subject_id, words in subjects.items():
        if not named_publicly(workspace, subject_id):
            for word in words | {subject_id}:
                hidden[word] = "an enrolled artist"
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(hidden, key=len, reverse=True)) + r")\b")
    folder_text = str(folder)

    def clean(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: (None if k in _WITHHELD else clean(v, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            if key in _SUBJECT_FIELDS and value in hidden:
                return None
            value = value.replace(folder_text + "/", "").replace(folder_text, "")
            return pattern.sub(lambda m: hidden[m.group(1)], value) if hidden else value
        return value

    cleaned = clean(verification)
    cleaned["path"] = name
    for grant in ((cleaned.get("watermark") or {}).get("grant"), (cleaned.get("c2pa") or {}).get("consent")):
        if grant:
            grant["org_name"] = org_name(workspace, grant.get("org_id") or grant.get("org_slug"))
    return cleaned


def org_name(workspace: Any, slug_or_id: str | None) -> str | None:
    """The display name of an organisation this registry knows (the card names it, not its slug)."""
    from likeness.errors import RegistryError

    if not slug_or_id:
        return None
    try:
        return str(workspace.registry.get_org(slug_or_id).name)
    except RegistryError:
        return None


def _subjects_in(verification: dict[str, Any]) -> dict[str, set[str]]:
    """subject id -> the slugs and names the result carries for it (faces, grants, renders);
    words that come with no subject id are under ``""``."""
    found: dict[str, set[str]] = {}

    def note(subject_id: Any, *words: Any) -> None:
        # words without an id (a file's claim may name none) go under "" for the registry to key
        key = subject_id if isinstance(subject_id, str) else ""
        found.setdefault(key, set()).update(w for w in words if isinstance(w, str) and w)

    for face in (verification.get("faces") or {}).get("faces") or ():
        for role in ("match", "performer", "nearest"):
            match = face.get(role) or {}
            note(match.get("subject_id"), match.get("slug"), match.get("name"))
    watermark = verification.get("watermark") or {}
    c2pa = verification.get("c2pa") or {}
    for grant in (watermark.get("grant"), c2pa.get("consent")):
        if grant:
            note(grant.get("subject_id"), grant.get("subject_slug"))
    render = watermark.get("ledger_entry") or {}
    note(render.get("subject_id"))
    return found


def _keyed_by_registry(workspace: Any, subjects: dict[str, set[str]]) -> dict[str, set[str]]:
    """``subjects`` plus each slug under the id the registry knows it by: a file's own consent
    claim may carry no subject id, or another artist's, beside the registry's slug for the grant,
    so a word is withheld by whose it is, not by what the file says."""
    from likeness.errors import RegistryError

    keyed = {subject_id: set(words) for subject_id, words in subjects.items() if subject_id}
    for word in set().union(*subjects.values()) if subjects else ():
        try:
            keyed.setdefault(workspace.registry.get_subject(word).id, set()).add(word)
        except RegistryError:
            continue  # a display name, or a slug this registry does not know
    return keyed


async def check_upload(request: Request) -> dict[str, Any]:
    """Stream the visitor's file in, verify it within the timeout, delete it, and return the
    public result."""
    services = request.app.state.services
    settings = services.settings
    folder, upload = await receive_public_upload(request, public_upload_root(services.workspace))
    deadline = time.monotonic() + settings.public_verify_timeout_s

    def verify_then_forget() -> Any:
        try:
            return services.public_checker.verify(upload.path, wait_s=deadline - time.monotonic())
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        result = await asyncio.wait_for(
            run_in_threadpool(verify_then_forget), timeout=max(0.1, deadline - time.monotonic())
        )
    except (TimeoutError, VerificationTimedOut):
        raise AnalysisTimedOut(
            f"the analysis took longer than {settings.public_verify_timeout_s:g} s; "
            "try a shorter clip or a still from it"
        ) from None
    verification = result.to_dict()
    answer = public_result(verification, services.workspace, name=upload.original_name, folder=folder)
    services.public_checker.remember_answer(answer)
    return answer


async def receive_public_upload(
    request: Request, root: Path, fields: tuple[str, ...] = ()
) -> tuple[Path, StoredUpload]:
    """A visitor's file streamed into a new folder under ``root``, within the per-address rate
    limit and the public size limits; text ``fields`` the form may send besides the file (any
    other is refused, ``forms.unknown_fields``)."""
    services = request.app.state.services
    client = request.client.host if request.client else "unknown"
    services.public_limiter.take(f"ip:{client}", what="checks")
    folder = new_upload_folder(root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    length = request.headers.get("content-length")
    with services.public_uploads.hold(f"ip:{client}"):
        upload = await receive_upload(
            request.headers.get("content-type"),
            request.stream(),
            folder,
            public_limits(services.settings),
            declared_length=int(length) if length and length.isdigit() else None,
            before_file=lambda sent: unknown_fields(sent, fields),
            timeout_s=services.settings.public_upload_timeout_s,
            # 16 slots held by slow drips from 16 addresses would shut the page for the deadline
            floor=TransferFloor(
                bytes_per_s=services.settings.public_upload_min_bytes_per_s,
                window_s=services.settings.public_upload_rate_window_s,
                started=time.monotonic(),
            ),
        )
    try:  # a field sent after the file is read only now
        unknown_fields(upload.fields, fields)
    except InvalidField:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, upload


def public_limits(settings: Any) -> UploadLimits:
    return UploadLimits(settings.public_max_image_bytes, settings.public_max_video_bytes)


@router.post(
    "/api/v1/public/verify",
    openapi_extra={"x-permission": "public", **UPLOAD_BODY},
    responses={200: {"description": "the likeness.verify/1 object, names withheld as the rights holders chose"}},
)
async def public_verify(request: Request) -> Response:
    """Verify an image or video without an account: the ``likeness.verify/1`` object."""
    try:
        return JSONResponse(await check_upload(request))
    except NoFile:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        # The page's form posted without its script (no JavaScript): the page again, saying so.
        return render_public_page(request, problem="no-file", status_code=400)


@router.post(
    "/api/v1/public/reports",
    status_code=201,
    openapi_extra={"x-permission": "public", **UPLOAD_BODY},
    responses={201: {"description": "the case opened: {case_id, state}"}},
)
async def public_report(request: Request) -> JSONResponse:
    """Report a file to the agency (form fields ``contact`` and ``note``, both optional, before
    ``file``): its upload is kept and verified with an evidence pack, and legal sees the case."""
    from likeness.digests import sha256_file
    from likeness.service.cases import check_report_quota, file_report, report_response
    from likeness.service.job_kinds import uploads_root

    services = request.app.state.services
    # full for today: refused before any byte is kept (a database read: off the event loop)
    await run_in_threadpool(check_report_quota, services, 0)
    folder, upload = await receive_public_upload(request, uploads_root(services.workspace), ("contact", "note"))
    params = {
        "upload": f"{folder.name}/{upload.path.name}",
        "name": upload.original_name,
        "media_type": upload.media_type,
        "container": upload.container,
        "size_bytes": upload.size_bytes,
        "sha256": await run_in_threadpool(sha256_file, upload.path),
    }
    job = await run_in_threadpool(
        file_report,
        services,
        folder,
        params,
        contact=upload.fields.get("contact", ""),
        note=upload.fields.get("note", ""),
        verification=lambda: reported_verification(services, upload.path),
    )
    return report_response(job)


def reported_verification(services: Any, path: Path) -> dict[str, Any] | None:
    """What the verifier knows of a reported file, to route the report: the visitor's check of
    it a moment ago, else a check now; None when the checker stays busy (the report then goes
    to the default organisation rather than fail)."""
    from likeness.digests import sha256_file

    checker = services.public_checker
    result = checker.recall(sha256_file(path))
    if result is None:
        try:
            result = checker.verify(path, wait_s=services.settings.public_verify_timeout_s)
        except (AnalysisTimedOut, VerificationTimedOut):
            return None
    return dict(result.to_dict())


@router.get("/", include_in_schema=False, **public())
def public_page(request: Request) -> Response:
    return render_public_page(request)


def render_public_page(
    request: Request, shared_result: Any = None, *, problem: str | None = None, status_code: int = 200
) -> Response:
    """The page; with ``shared_result`` (a ``PublicResult`` row, from ``/r/<sha256>``) it opens
    on that result's card; with ``problem`` (a ``data-problem`` name) on that problem's alert."""
    from likeness.service.console import render

    services = request.app.state.services
    settings = services.settings
    response = render(
        request,
        "public.html",
        {
            "image_mib": settings.public_max_image_bytes // (1024 * 1024),
            "video_mib": settings.public_max_video_bytes // (1024 * 1024),
            "timeout_s": int(settings.public_verify_timeout_s),
            "slots": slots,
            "verdict_headlines": VERDICT_HEADLINES,
            "label_only_headlines": LABEL_ONLY_HEADLINES,
            "grant_state_headlines": GRANT_STATE_HEADLINES,
            "link_days": settings.public_link_days,
            "shared": strict_json.loads(shared_result.result) if shared_result else None,
            "shared_on": shared_result.created_at[:10] if shared_result else "",
            "font_cut": page_cut_text(page_names(services)),
            "problem": problem,
        },
    )
    response.status_code = status_code
    response.headers["content-security-policy"] = PAGE_CSP
    return response


#: The page's own cut of NanumGothic (regular and bold): a phone should not fetch 9 MB of fonts.
PAGE_FONTS = ("NanumGothic.woff", "NanumGothicBold.woff")


@router.get("/fonts/page/{name}", include_in_schema=False, **public())
def page_font(name: str, request: Request) -> Response:
    """NanumGothic cut down to every character the page can show: the Korean catalogue, the
    page's English, and the names a verdict card may carry (organisations, and artists whose
    rights holder allowed public naming). Tens of KB; only a name the page cannot know in
    advance (the visitor's file, another issuer's signer) that holds Hangul outside the cut
    brings in the app's full face, for that name."""
    if name not in PAGE_FONTS:
        raise NotFound(f"no font {name!r}")
    names = page_names(request.app.state.services)
    return Response(
        page_font_bytes(name, names), media_type="font/woff", headers={"Cache-Control": "public, max-age=3600"}
    )


def page_names(services: Any) -> str:
    """The characters of every name a verdict card may show, sorted (the font cache's key).
    Worked out again only when the ledger moved (a new organisation or subject is on it): every
    page load asks, and each subject's naming is a ledger read. Kept on ``services``, so it lives
    and dies with its workspace (an ``id(workspace)`` is reused once that workspace is collected)."""
    workspace = services.workspace
    head = workspace.ledger.head()
    known = services.page_names_at
    if known is not None and known[0] == head:
        return str(known[1])
    registry = workspace.registry
    names = [org.name for org in registry.list_orgs()]
    names += [subject.name for subject in registry.list_subjects() if named_publicly(workspace, subject.id)]
    characters = "".join(sorted(set("".join(names))))
    services.page_names_at = (head, characters)
    return characters


@lru_cache(maxsize=8)
def page_cut_text(names: str) -> str:
    """Every character the page's cut of NanumGothic sets, sorted: the page's script names the
    full face only on a name holding one outside it."""
    import string

    from likeness.service.i18n import catalogue

    # + the language switch, which base.html writes in its own language
    text = "".join(catalogue("ko").values()) + string.printable + "·“”‘’…–—× 한국어" + names
    return "".join(sorted({ch for ch in text if not ch.isspace()} | {" "}))


@lru_cache(maxsize=8)
def page_font_bytes(name: str, names: str) -> bytes:
    from likeness.provenance.visible_label import label_font_path
    from likeness.report_font import font_subset

    return font_subset(label_font_path().parent / name.replace(".woff", ".ttf"), page_cut_text(names))


def slots(text: str) -> Markup:
    """A translated sentence with each ``{name}`` made an empty ``<span data-slot="name">`` that
    the page's script fills with text (the sentence itself is escaped).

    >>> str(slots("made by {org} <today>"))
    'made by <span data-slot="org"></span> &lt;today&gt;'
    """
    return Markup(re.sub(r"\{(\w+)\}", r'<span data-slot="\1"></span>', str(escape(text))))


def install_public(app: FastAPI) -> None:
    services = app.state.services
    services.public_checker = PublicChecker(services.workspace, max_waiting=services.settings.public_checks_waiting)
    services.public_limiter = RateLimiter(services.settings.public_checks_per_minute, 60.0)
    services.public_uploads = UploadSlots(
        services.settings.public_uploads_per_client, services.settings.public_uploads_at_once
    )
    from likeness.service.cases import router as cases_router
    from likeness.service.permalinks import router as links_router

    app.include_router(router)
    app.include_router(cases_router)
    app.include_router(links_router)
