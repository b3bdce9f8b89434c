"""The public verification page and ``POST /api/v1/public/verify``: no account, the CLI's
answer with names withheld as the rights holders chose, limits and bad input."""

from __future__ import annotations

import re
import stat
import threading
import time

import pytest
from sqlalchemy import text

from likeness.media import write_image
from likeness.media.synthetic import grace_hopper
from likeness.service.app import create_app
from likeness.service.public import public_upload_root
from likeness.verify.pipeline import verify_path
from tests.conftest import add_subject

from .public_media import allow_many_checks, enroll_mina, verdict_media

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
VERIFY = "/api/v1/public/verify"


def post(client, path, name=None):
    return client.post(VERIFY, files={"file": (name or path.name, path.read_bytes(), "application/octet-stream")})


def kept_uploads(world):
    root = public_upload_root(world.workspace)
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def test_the_page_is_public_and_the_dashboard_moved_to_console(service_world):
    client = service_world.client()
    page = client.get("/")
    assert page.status_code == 200 and "Is it real?" in page.text
    assert 'action="/api/v1/public/verify"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "media-src blob:" in csp and "unsafe-inline" not in csp
    korean = client.get("/", headers={"accept-language": "ko-KR"})
    assert "진짜일까?" in korean.text and "이 소속사의 아티스트" in korean.text
    # the console's dashboard is at /console, and signing in lands there
    assert client.get("/console", headers={"accept": "text/html"}, follow_redirects=False).status_code in (303, 401)
    service_world.login(client, "viewer")
    dashboard = client.get("/console")
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    assert client.get("/login").status_code == 200
    assert 'name="next" value="/console"' in client.get("/login").text


def test_every_verdict_is_the_clis_and_nothing_is_kept_or_recorded(service_world, tmp_path):
    media = verdict_media(service_world.consent, tmp_path / "media")
    allow_many_checks(service_world.app)
    client = service_world.client()
    ledger = service_world.workspace.ledger
    before = len(ledger.events("verification.completed"))
    expected = {
        "labelled": "authorized-synthetic",
        "reencoded": "authorized-synthetic",
        "still": "authorized-synthetic",
        "labelled_image": "authorized-synthetic",
        "tampered": "tampered",
        "unlabelled": "enrolled-artist-unlabelled",
        "stranger": "no-enrolled-artist",
        "no_face": "no-face",
        "corrupt": "error",
        "other_issuer": "synthetic-other-issuer",
    }
    for name, verdict in expected.items():
        response = post(client, media[name])
        assert response.status_code == 200, (name, response.text)
        answer = response.json()
        cli = verify_path(service_world.workspace, media[name], record=False)
        assert answer["schema"] == "likeness.verify/1.1"
        assert answer["verdict"] == cli.verdict.code == verdict, name
        assert answer["sha256"] == cli.sha256 and answer["path"] == media[name].name
        assert answer["verdict_rule"] == cli.verdict.rule
        if verdict == "authorized-synthetic":  # the card names the organisation, not its slug
            grant = answer["watermark"]["grant"] or answer["c2pa"]["consent"]
            assert grant["org_slug"] == "studio" and grant["org_name"] == "Studio Haneul", name
    assert len(ledger.events("verification.completed")) == before  # a public check is not on the ledger
    assert kept_uploads(service_world) == []  # and its file is gone

    # mina may not be named: not in the answer for her labelled render either (grant, ledger entry,
    # the manifest's consent assertion)
    authorized = post(client, media["labelled"])
    assert authorized.json()["watermark"]["ledger_entry"]["job_id"]
    assert service_world.workspace.registry.get_subject("mina").id not in authorized.text
    assert not re.search(r"\bmina\b", authorized.text, re.IGNORECASE)

    service_world.consent.revoke_grant()
    revoked = post(client, media["labelled"]).json()
    assert revoked["verdict"] == "synthetic-consent-revoked"
    assert revoked["watermark"]["grant"]["state"] == "revoked"


def test_an_artist_is_named_only_when_the_rights_holder_allowed_it(service_world, tmp_path):
    world = service_world.consent
    enroll_mina(world)
    from likeness.faceset import enroll_reference_photos

    registry = service_world.workspace.registry
    add_subject(registry, "yuna", "Yuna", public_name=True)
    assert registry.get_subject("yuna").public_name and not registry.get_subject("mina").public_name
    assert enroll_reference_photos(service_world.workspace, "yuna", [world.portrait_path("jun")]).added == 1
    client = service_world.client()

    named = post(client, write_image(tmp_path / "yuna.jpg", grace_hopper(), quality=90)).json()
    assert named["verdict"] == "enrolled-artist-unlabelled"
    assert named["faces"]["faces"][0]["match"]["name"] == "Yuna"
    assert named["faces"]["faces"][0]["match"]["slug"] == "yuna"

    def withheld_mina() -> None:
        answer = post(client, world.portrait_path("mina"))
        assert answer.json()["verdict"] == "enrolled-artist-unlabelled"
        match = answer.json()["faces"]["faces"][0]["match"]
        assert match["name"] is None and match["slug"] is None and match["subject_id"] is None
        assert not re.search(r"\bmina\b", answer.text, re.IGNORECASE)
        assert registry.get_subject("mina").id not in answer.text
        assert "an enrolled artist" in " ".join(answer.json()["verdict_evidence"])

    withheld_mina()
    # someone who edits the database cannot switch a name on: the ledger's subject.created says no
    with service_world.workspace.engine.begin() as connection:
        connection.execute(text("UPDATE subjects SET public_name = 1 WHERE slug = 'mina'"))
    assert registry.get_subject("mina").public_name
    withheld_mina()


def test_a_stranger_never_shows_the_nearest_artist(service_world, tmp_path):
    enroll_mina(service_world.consent)
    answer = post(service_world.client(), write_image(tmp_path / "s.jpg", grace_hopper(), quality=90)).json()
    assert answer["verdict"] == "no-enrolled-artist"
    assert answer["faces"]["faces"][0]["nearest"] is None  # who a stranger looks like is not said


def test_a_script_in_the_file_name_is_not_echoed(service_world, tmp_path):
    enroll_mina(service_world.consent)
    photo = write_image(tmp_path / "p.png", grace_hopper())
    answer = post(service_world.client(), photo, name='<script>alert("x")</script>.png')
    assert answer.status_code == 200
    assert "<" not in answer.json()["path"] and "script" in answer.json()["path"]


def test_limits_and_bad_input_are_problems_never_500(settings, workspace, tmp_path):
    from tests.service.conftest import build_service_world

    small = settings.model_copy(update={"public_max_image_bytes": 3000, "public_checks_per_minute": 3})
    world = build_service_world(small, workspace)
    world.app = create_app(small, workspace=workspace, accounts=world.accounts)
    client = world.client()
    big = write_image(tmp_path / "big.png", grace_hopper())
    too_big = post(client, big)
    assert too_big.status_code == 413 and too_big.json()["type"].endswith("upload-too-large")
    assert too_big.json()["detail"] == "big.png: an image larger than 3000 bytes is refused"  # trial 11: "a image"
    script = client.post(VERIFY, files={"file": ("a.jpg", b"#!/bin/sh\necho hi\n" * 4, "image/jpeg")})
    assert script.status_code == 415 and script.json()["type"].endswith("unsupported-media")
    no_file = client.post(VERIFY, files={"other": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(16))})
    assert no_file.status_code == 400 and no_file.headers["content-type"] == "application/problem+json"
    limited = client.post(VERIFY, files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(16))})
    assert limited.status_code == 429 and limited.json()["type"].endswith("rate-limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert kept_uploads(world) == []


def test_a_slow_analysis_ends_with_a_friendly_timeout(settings, workspace, tmp_path, monkeypatch):
    from tests.service.conftest import build_service_world

    quick = settings.model_copy(update={"public_verify_timeout_s": 0.5})
    world = build_service_world(quick, workspace)
    world.app = create_app(quick, workspace=workspace, accounts=world.accounts)
    checker = world.app.state.services.public_checker
    release = threading.Event()
    monkeypatch.setattr(checker, "_current", lambda: release.wait(10) and None)  # a verifier that hangs
    started = time.monotonic()
    answer = post(world.client(), write_image(tmp_path / "p.png", grace_hopper()))
    release.set()
    assert answer.status_code == 503 and answer.json()["type"].endswith("analysis-timeout")
    assert "took longer than 0.5 s" in answer.json()["detail"] and "cause" not in answer.json()  # not busy
    assert time.monotonic() - started < 5


def test_a_timed_out_analysis_frees_the_checker_for_the_next_visitor(settings, workspace, tmp_path, monkeypatch):
    """The verification of a clip that outlives the request stops at its next frame, so the
    checker's lock is free again at once instead of when the clip is done (the next visitor
    would otherwise wait for an answer nobody reads)."""
    from likeness.media.synthetic import astronaut, write_clip
    from likeness.verify.pipeline import Verifier
    from tests.service.conftest import build_service_world

    quick = settings.model_copy(update={"public_verify_timeout_s": 1.0})
    world = build_service_world(quick, workspace)
    world.app = create_app(quick, workspace=workspace, accounts=world.accounts)
    checker = world.app.state.services.public_checker
    clip = write_clip(tmp_path / "long.mp4", astronaut(), seconds=10.0, fps=2, size=(320, 180), with_audio=False)
    frames_analysed = []

    class SlowDetector:  # 0.5 s a frame: the 10 sampled frames would hold the checker 5 s
        def detect(self, rgb):
            frames_analysed.append(time.monotonic())
            time.sleep(0.5)
            return []

    monkeypatch.setattr(Verifier, "_detector", lambda self, media_type: SlowDetector())
    answer = post(world.client(), clip)
    answered = time.monotonic()
    assert answer.status_code == 503 and "took longer than 1 s" in answer.json()["detail"]
    assert checker._lock.acquire(timeout=1.5), "the timed-out analysis still holds the checker"
    freed = time.monotonic() - answered
    checker._lock.release()
    assert freed < 1.5
    time.sleep(0.6)
    assert 1 <= len(frames_analysed) < 5 and frames_analysed[-1] < answered + 0.6  # it stopped
    assert kept_uploads(world) == []


def served_cmap(client, url: str) -> dict[int, str]:
    import io

    from fontTools.ttLib import TTFont

    served = client.get(url)
    assert served.status_code == 200, url
    return TTFont(io.BytesIO(served.content)).getBestCmap()


def test_every_character_on_the_page_is_in_the_page_font(service_world):
    client = service_world.client(headers={"accept-language": "ko-KR"})
    # the Korean page holds every text the script shows (the verdicts, the problems); the
    # English one names the other language in Korean
    page = client.get("/").text + service_world.client().get("/").text
    shown = {ch for ch in page if not ch.isspace()}
    assert len({ch for ch in shown if "\uac00" <= ch <= "\ud7a3"}) > 200
    for name in ("NanumGothic.woff", "NanumGothicBold.woff"):
        cmap = served_cmap(client, f"/fonts/page/{name}")
        assert sorted(ch for ch in shown if ord(ch) not in cmap) == [], name
        assert len(cmap) < 2000  # a cut, not the 4.7 MB face
    # the console keeps the full face
    assert 'font-family: "NanumGothic"' in client.get("/static/console.css").text
    assert len(served_cmap(client, "/static/fonts/NanumGothic.ttf")) > 10_000


def test_the_page_font_sets_the_names_a_card_may_show_and_no_other(service_world):
    """A publicly named artist's Korean name and the organisation's name are in the page's font
    (the page never falls back to the 4.7 MB face); a name the rights holder withheld is not
    (its characters would hint at it)."""
    enroll_mina(service_world.consent)
    registry = service_world.workspace.registry
    add_subject(registry, "bwelt", "뷁똠", public_name=True)
    add_subject(registry, "hidden", "쀍쫅", public_name=False)
    cmap = served_cmap(service_world.client(), "/fonts/page/NanumGothic.woff")
    assert all(ord(ch) in cmap for ch in "뷁똠" + "Studio Haneul")
    assert not any(ord(ch) in cmap for ch in "쀍쫅")


def test_an_animated_gif_is_checked_like_any_picture(service_world, tmp_path):
    from PIL import Image

    from likeness.media.synthetic import animate_portrait, astronaut

    enroll_mina(service_world.consent)
    frames = [Image.fromarray(f) for f in animate_portrait(astronaut(), n_frames=6, size=(240, 240), seed=2)]
    gif = tmp_path / "reaction.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    answer = post(service_world.client(), gif).json()
    assert answer["verdict"] == verify_path(service_world.workspace, gif, record=False).verdict.code
    assert answer["verdict"] == "enrolled-artist-unlabelled" and answer["media_type"] in ("image", "video")


def test_a_link_stores_the_answer_only_when_asked_and_never_the_file(service_world, tmp_path):
    import json

    from sqlalchemy import select, update
    from sqlalchemy.orm import Session

    from likeness.media.synthetic import astronaut
    from likeness.service.tables import PublicResult

    enroll_mina(service_world.consent)
    engine = service_world.workspace.engine

    def rows():
        with Session(engine, expire_on_commit=False) as session:
            return list(session.scalars(select(PublicResult)))

    client = service_world.client()
    photo = write_image(tmp_path / "my holiday.jpg", astronaut(), quality=90)
    answer = post(client, photo).json()
    sha = answer["sha256"]
    assert rows() == []  # a check stores nothing
    assert client.get(f"/r/{sha}").status_code == 404
    made = client.post("/api/v1/public/links", data={"sha256": sha})
    assert made.status_code == 201 and made.json()["url"] == f"/r/{sha}"
    [row] = rows()
    stored = json.loads(row.result)
    assert stored["verdict"] == answer["verdict"] == "enrolled-artist-unlabelled" and stored["path"] is None
    assert "my holiday" not in row.result and "mina" not in row.result.lower()  # withheld as on the card
    assert row.verifier.startswith("likeness ") and row.expires_at > row.created_at
    page = client.get(f"/r/{sha}", headers={"accept-language": "ko-KR"})
    assert page.status_code == 200 and "data-shared" in page.text and "enrolled-artist-unlabelled" in page.text
    assert "my holiday" not in page.text and row.created_at[:10] in page.text
    # only an answer this server just gave can be shared: a made-up digest, or a bad one
    assert client.post("/api/v1/public/links", data={"sha256": "0" * 64}).status_code == 404
    assert client.post("/api/v1/public/links", data={"sha256": "../etc/passwd"}).status_code in (400, 422)
    assert client.get("/r/..%2Fsecret").status_code == 404
    # an expired link is gone, and so is the answer it kept
    with Session(engine) as session, session.begin():
        session.execute(update(PublicResult).values(expires_at="2000-01-01T00:00:00.000000Z"))
    assert client.get(f"/r/{sha}").status_code == 404 and [row.result for row in rows()] == [""]
    assert client.post("/api/v1/public/links", data={"sha256": sha}).status_code == 201  # shared again
    assert client.get(f"/r/{sha}").status_code == 200


def test_a_shared_answer_inserted_or_edited_in_the_database_is_not_shown(service_world, tmp_path):
    """Trial 11: a database editor inserted a ``public_results`` row (or edited one) calling a
    file "authorized-synthetic", and ``/r/<sha256>`` showed it on the agency's own domain. The
    stored answer is sealed with the service's key (``keys/service/links.key``)."""
    import json

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from likeness.service.accounts import utc_stamp
    from likeness.service.permalinks import VERIFIER
    from likeness.service.tables import PublicResult

    client = service_world.client()
    photo = write_image(tmp_path / "p.jpg", grace_hopper(), quality=90)
    sha = post(client, photo).json()["sha256"]
    assert client.post("/api/v1/public/links", data={"sha256": sha}).status_code == 201
    assert client.get(f"/r/{sha}").status_code == 200
    engine = service_world.workspace.engine
    with Session(engine) as session, session.begin():
        row = session.get(PublicResult, (sha, VERIFIER))
        edited = json.loads(row.result) | {"verdict": "authorized-synthetic"}
        session.execute(update(PublicResult).values(result=json.dumps(edited)))
    assert client.get(f"/r/{sha}").status_code == 404
    forged = "ab" * 32
    with Session(engine) as session, session.begin():
        session.add(
            PublicResult(
                sha256=forged,
                verifier=VERIFIER,
                result=json.dumps({"sha256": forged, "verdict": "authorized-synthetic", "_seal": "00" * 32}),
                created_at=utc_stamp(),
                expires_at="2999-01-01T00:00:00.000000Z",
            )
        )
    assert client.get(f"/r/{forged}").status_code == 404
    key = service_world.workspace.settings.keys_dir / "service" / "links.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_migration_0006_makes_the_links_table_as_the_model_declares_it(settings):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from likeness import workspace as workspace_module
    from likeness.consent.tables import Base
    from tests.portal.test_migration import _tables, _to

    settings.resolved_home.mkdir(parents=True)
    workspace = workspace_module.Workspace.init(settings)
    try:
        assert "public_results" in inspect(workspace.engine).get_table_names()
        with workspace.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert [d for d in differences if "public_results" in {getattr(x, "name", None) for x in _tables(d)}] == []
        _to(workspace.engine, "0005_portal", down=True)
        assert "public_results" not in inspect(workspace.engine).get_table_names()
    finally:
        workspace.close()


#: What a browser without JavaScript sends for the page's form with no file chosen.
EMPTY_FILE_FIELD = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    "language, message",
    [("en-GB", "Choose a photo or video to check first."), ("ko-KR", "먼저 확인할 사진이나 동영상을 골라 주세요.")],
)
def test_the_form_sent_with_no_file_and_no_script_answers_the_page_saying_so(service_world, language, message):
    client = service_world.client()
    headers = {"content-type": "multipart/form-data; boundary=b", "accept-language": language}
    page = client.post(VERIFY, content=EMPTY_FILE_FIELD, headers={**headers, "accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    alert = re.search(
        r'<section data-result tabindex="-1"[^>]*>\s*<p class="alert bad" role="alert">([^<]*)</p>', page.text
    )
    assert alert and alert.group(1) == message, page.text[-3000:]
    # A script or platform gets the problem, typed.
    problem = client.post(VERIFY, content=EMPTY_FILE_FIELD, headers=headers)
    assert problem.status_code == 400 and problem.json()["type"].endswith(":no-file"), problem.text
    assert kept_uploads(service_world) == []
