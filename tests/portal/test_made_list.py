"""The holder's one list (``/portal/made``): every model, preview and render made under any of
their grants, newest first, paged, read through each grant's ``uses_of_grant``; nothing made
under another holder's grant, and no authorization or refusal rows (those are per grant)."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from likeness.consent.holder_portal import MADE_EVENTS, HolderPortal
from likeness.service.portal import MADE_PAGE
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _ceremony, _csrf, _invite, _register, _request
from tests.service.conftest import build_service_world


@pytest.fixture
def signed(settings, workspace):
    """Haneul's holder signed in, with two grants signed by passkey."""
    world = build_service_world(settings, workspace)
    holder, authenticator = TestClient(world.app, base_url=ORIGIN), SoftAuthenticator()
    _register(holder, _invite(world), authenticator)
    csrf = _csrf(world, holder)
    grants = []
    for uses in (("music_video", "training"), ("fan_message",)):
        signed = _ceremony(holder, csrf, f"/portal/api/requests/{_request(world, uses)}/sign", authenticator)
        assert signed.status_code == 200, signed.text
        grants.append(signed.json()["grant_id"])
    return world, holder, grants


def _made(world, event_type: str, grant_id: str, use: str, mark: str) -> None:
    world.workspace.ledger.append(
        event_type, {"grant_id": grant_id, "use": use, "job_id": mark, "watermark_payload": mark}
    )


def test_everything_made_under_every_grant_newest_first(signed) -> None:
    world, holder, (music, fans) = signed
    _made(world, "model.trained", music, "training", "")
    _made(world, "preview.written", music, "training", "a1a1a1a1a1a1a1a1")
    _made(world, "render.completed", music, "music_video", "b2b2b2b2b2b2b2b2")
    _made(world, "render.completed", "f" * 32, "music_video", "dddddddddddddddd")  # someone else's grant
    _made(world, "render.completed", fans, "fan_message", "c3c3c3c3c3c3c3c3")
    home = holder.get("/portal").text
    assert 'href="/portal/made"' in home
    page = holder.get("/portal/made")
    assert page.status_code == 200, page.text[:400]
    kinds = [part.split('"', 1)[0] for part in page.text.split('data-made="')[1:]]
    assert kinds == ["render.completed", "render.completed", "preview.written", "model.trained"]
    text = page.text
    assert text.index("c3c3c3c3c3c3c3c3") < text.index("b2b2b2b2b2b2b2b2") < text.index("a1a1a1a1a1a1a1a1")
    assert "dddddddddddddddd" not in text and "authorization.issued" not in text
    assert f'href="/portal/grants/{fans}"' in text and f'href="/portal/grants/{music}"' in text
    assert "<img" not in text  # no file of these is kept: a plain line each, never a broken image
    assert "· fan messages" in text and "· music videos" in text  # each made thing's use, in words
    assert "4 in all" in text
    holder.cookies.set("likeness_lang", "ko")
    assert "내 얼굴로 만들어진 모든 것" in holder.get("/portal/made").text
    # the one list is each grant's list, never a second reading of the ledger
    portal = HolderPortal(world.workspace)
    per_grant = {e.seq for g in (music, fans) for e in portal.uses_of_grant(g) if e.event_type in MADE_EVENTS}
    holder_id = world.workspace.registry.get_holder("haneul-holder").id
    assert [e.seq for e in portal.made_for_holder(holder_id).events] == sorted(per_grant, reverse=True)


def test_thousands_are_paged(signed) -> None:
    world, holder, (music, _fans) = signed
    for n in range(MADE_PAGE + 3):
        _made(world, "render.completed", music, "music_video", f"{n:016x}")
    first = holder.get("/portal/made").text
    assert first.count("data-made=") == MADE_PAGE and f"{MADE_PAGE + 2:016x}" in first and f"{0:016x}" not in first
    assert 'href="/portal/made?page=2"' in first and "Page 1 of 2" in first
    second = holder.get("/portal/made", params={"page": 2}).text
    assert second.count("data-made=") == 3 and f"{0:016x}" in second and 'href="/portal/made?page=1"' in second
    assert holder.get("/portal/made", params={"page": 3}).text.count("data-made=") == 0


@pytest.mark.parametrize("asked", ["abc", "-1", "0", str(10**30), "9" * 5000, "", "1.5", "١"])
def test_a_page_number_that_is_no_page_leads_to_the_first_page(signed, asked) -> None:
    """A browser gets the portal's own page (page 1, in the holder's language), never JSON."""
    _world, holder, _grants = signed
    sent = holder.get("/portal/made", params={"page": asked}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/portal/made"
    korean = holder.get("/portal/made", params={"page": asked}, headers={"Accept-Language": "ko"})
    assert korean.status_code == 200 and "text/html" in korean.headers["content-type"]
    assert "내 얼굴로 만들어진 모든 것" in korean.text


def test_only_the_signed_in_holder_reads_it(signed) -> None:
    world = signed[0]
    anonymous = TestClient(world.app, base_url=ORIGIN).get("/portal/made", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
    staff = world.client(base_url=ORIGIN)
    world.login(staff, "admin")
    assert staff.get("/portal/made", follow_redirects=False).status_code in (303, 401)


def _kept_render(world, grant_id: str, name: str, job: str, colour: tuple[int, int, int]) -> tuple[int, Path]:
    """A render kept under outputs (``folder/name``) and its ``render.completed`` event with the
    file's hash: the event's seq and the file."""
    render = Path(world.workspace.outputs_dir) / name
    render.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(render)
    event = world.workspace.ledger.append(
        "render.completed",
        {
            "grant_id": grant_id,
            "use": "music_video",
            "job_id": job,
            "output_name": render.name,
            "output_sha256": hashlib.sha256(render.read_bytes()).hexdigest(),
        },
    )
    return event.seq, render


def test_a_render_is_hashed_once_however_often_its_thumbnail_is_shown(signed, monkeypatch) -> None:
    """Each thumbnail found its render by hashing the whole file, at every view of the page (50
    thumbnails a page: 2.6 s for 50 MB renders, each time). A file is now hashed once per version;
    one changed since is hashed again, and no longer shown (trial 26)."""
    from likeness import digests

    world, holder, (music, _fans) = signed
    seq, render = _kept_render(world, music, "mv-take-1.png", "j1", (200, 30, 30))
    hashed = []
    original = digests.sha256_stream
    monkeypatch.setattr(digests, "sha256_stream", lambda handle: hashed.append(Path(handle.name)) or original(handle))
    for _ in range(3):
        shown = holder.get(f"/portal/grants/{music}/renders/{seq}/thumb")
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert hashed == [render]
    Image.new("RGB", (64, 48), (30, 30, 200)).save(render)  # replaced by another picture
    os.utime(render, ns=(render.stat().st_atime_ns, render.stat().st_mtime_ns + 1_000_000))
    assert holder.get(f"/portal/grants/{music}/renders/{seq}/thumb").status_code == 404
    assert hashed == [render, render]


def _kept_preview(world, grant_id: str, job: str, name: str, *, seed: int) -> tuple[str, Path]:
    """A training preview as a service train job keeps it (``models/<job>/previews``), and its
    ``preview.written`` event with the file's hash; the event's seq and the file."""
    folder = Path(world.workspace.settings.service_dir) / "models" / job / "previews"
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    path = folder / name
    cv2.imwrite(str(path), pixels)
    event = world.workspace.ledger.append(
        "preview.written",
        {
            "grant_id": grant_id,
            "use": "training",
            "job_id": job * 2,
            "watermark_payload": f"{seed:016x}",
            "output_names": [name, "preview_latest.png"],
            "output_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
    )
    return str(event.seq), path


def test_a_kept_preview_has_a_thumbnail_and_the_rest_a_plain_line(signed) -> None:
    world, holder, (music, fans) = signed
    seq, _path = _kept_preview(world, music, "a" * 16, "preview_0000100.png", seed=1)
    _made(world, "preview.written", music, "training", "e5e5e5e5e5e5e5e5")  # written before previews kept a hash
    _kept_preview(world, music, "b" * 16, "preview_0000100.png", seed=2)  # same name, another job's file
    replaced_seq, replaced = _kept_preview(world, fans, "c" * 16, "preview_0000200.png", seed=3)
    replaced.write_bytes(b"not the preview the ledger names")
    page = holder.get("/portal/made").text
    figures = page.split('data-made="')[1:]
    thumbnail = f'src="/portal/grants/{music}/previews/{seq}/thumb" alt="Training preview"'
    assert thumbnail in page and page.count("<img") == 3  # each kept name; the hash is checked on fetch
    plain = [f for f in figures if "e5e5e5e5e5e5e5e5" in f]
    assert len(plain) == 1 and "<img" not in plain[0] and '<div class="made-kind">Preview</div>' in plain[0]
    got = holder.get(f"/portal/grants/{music}/previews/{seq}/thumb")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (96, 128)
    # a kept name whose bytes are not the ledger's: no thumbnail (the page's script shows a plain line)
    assert holder.get(f"/portal/grants/{fans}/previews/{replaced_seq}/thumb").status_code == 404
    # only under the holder's own grant, and only as the kind it is
    assert holder.get(f"/portal/grants/{'f' * 32}/previews/{seq}/thumb").status_code == 404
    assert holder.get(f"/portal/grants/{fans}/previews/{seq}/thumb").status_code == 404
    assert holder.get(f"/portal/grants/{music}/renders/{seq}/thumb").status_code == 404
    holder.cookies.set("likeness_lang", "ko")
    korean = holder.get("/portal/made").text
    assert 'alt="학습 미리보기"' in korean and '<div class="made-kind">미리보기</div>' in korean


def test_a_phone_videos_render_has_an_upright_portrait_thumbnail(signed) -> None:
    """A render of a phone video is stored landscape with a display rotation (the encoder keeps
    the source's); the thumbnail was its stored first frame, sideways. Now it is the picture a
    player shows: portrait, its top-left marker still top-left."""
    from likeness.media import VideoEncoder

    world, holder, (music, _fans) = signed
    upright = np.full((160, 96, 3), 40, np.uint8)
    upright[:40, :32] = (255, 255, 255)  # a marker in the picture's top-left, as a viewer sees it
    render = Path(world.workspace.outputs_dir) / "fancam-render.mp4"
    render.parent.mkdir(parents=True, exist_ok=True)
    # stored as a phone stores it: turned a quarter clockwise, with a 90-degree display rotation
    with VideoEncoder(render, width=160, height=96, fps=25, rotation=90) as encoder:
        for _ in range(3):
            encoder.write(np.ascontiguousarray(np.rot90(upright, k=-1)))
    event = world.workspace.ledger.append(
        "render.completed",
        {
            "grant_id": music,
            "use": "music_video",
            "job_id": "phone",
            "output_name": render.name,
            "output_sha256": hashlib.sha256(render.read_bytes()).hexdigest(),
        },
    )
    got = holder.get(f"/portal/grants/{music}/renders/{event.seq}/thumb")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    shown = np.asarray(Image.open(io.BytesIO(got.content)).convert("L"), dtype=np.float32)
    assert shown.shape == (160, 96)  # portrait, as the clip plays
    corners = {
        "top-left": shown[5:35, 5:27],
        "top-right": shown[5:35, -27:-5],
        "bottom-left": shown[-35:-5, 5:27],
        "bottom-right": shown[-35:-5, -27:-5],
    }
    brightest = max(corners, key=lambda corner: corners[corner].mean())
    assert brightest == "top-left" and corners["top-left"].mean() > 200, {k: v.mean() for k, v in corners.items()}


def test_a_grants_page_shows_a_render_whose_file_is_not_kept_as_a_plain_line(signed) -> None:
    """The grant's own page showed an image for every render, so a render whose file is not kept
    under outputs (``render --out`` elsewhere, as the README's tour does; a file moved away) was a
    broken image there, as it no longer is in ``/portal/made``. It now finds the files the same way."""
    world, holder, (music, _fans) = signed
    outputs = Path(world.workspace.outputs_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    kept = outputs / "mv-take-1.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(kept)
    for job, name in (("kept", kept.name), ("elsewhere", "mv-take-2.mp4")):
        world.workspace.ledger.append(
            "render.completed",
            {
                "grant_id": music,
                "use": "music_video",
                "job_id": job,
                "watermark_payload": job,
                "output_name": name,
                "output_sha256": hashlib.sha256(kept.read_bytes()).hexdigest(),
            },
        )
    (seq,) = [e.seq for e in world.workspace.ledger.find("render.completed", job_id="kept")]
    page = holder.get(f"/portal/grants/{music}")
    assert page.status_code == 200, page.text[:400]
    figures = page.text.split("<figure data-render>")[1:]
    assert len(figures) == 2 and page.text.count("<img") == 1
    assert f'src="/portal/grants/{music}/renders/{seq}/thumb" alt="Render" data-fallback="Render"' in figures[1]
    assert "<img" not in figures[0] and '<div class="made-kind">Render</div>' in figures[0]


def test_a_render_replaced_by_one_of_the_same_size_and_time_is_not_shown(signed) -> None:
    """The hash was kept per (size, modification time): an editor of the outputs folder who
    replaced a render by another picture of the same size and set its time back had the portal
    show their picture as the render the ledger names. The file's inode and change time, which
    no one can set back, now come into the key."""
    world, holder, (music, _fans) = signed
    seq, render = _kept_render(world, music, "mv-take-1.bmp", "j1", (200, 30, 30))
    assert holder.get(f"/portal/grants/{music}/renders/{seq}/thumb").status_code == 200
    before = render.stat()
    other = render.with_name("other.bmp")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(other)
    os.replace(other, render)
    os.utime(render, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert render.stat().st_size == before.st_size and render.stat().st_mtime_ns == before.st_mtime_ns
    assert holder.get(f"/portal/grants/{music}/renders/{seq}/thumb").status_code == 404


def test_a_page_of_thumbnails_walks_the_outputs_once(signed, monkeypatch) -> None:
    """Each thumbnail walked the whole outputs folder to find its file by name (65 ms a
    thumbnail for 2,000 service jobs; 50 thumbnails a page), and the page walked it once more.
    One walk now serves the page and its thumbnails; a render made after it is still found."""
    world, holder, (music, _fans) = signed
    outputs = Path(world.workspace.outputs_dir)
    for n in range(6):
        _kept_render(world, music, f"service/{n:032x}/take-{n}.render.png", f"j{n}", (40 * n, 30, 30))
    listed: list[str] = []
    original = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(os.fspath(path)) or original(path))
    page = holder.get("/portal/made").text
    thumbs = sorted(set(re.findall(r'src="(/portal/grants/[0-9a-f]+/renders/\d+/thumb)"', page)))
    assert len(thumbs) == 6
    for thumb in thumbs:
        assert holder.get(thumb).status_code == 200
    assert listed.count(str(outputs)) == 1
    _kept_render(world, music, f"service/{'f' * 32}/late.render.png", "late", (0, 200, 0))
    assert holder.get("/portal/made").text.count("/renders/") == 7


def _shown_colour(thumbnail: bytes) -> tuple[int, int, int]:
    rgb = np.asarray(Image.open(io.BytesIO(thumbnail)).convert("RGB"), dtype=np.int16)
    return tuple(int(v) for v in np.median(rgb.reshape(-1, 3), axis=0))


def _swap_before_reading(monkeypatch, swap) -> None:
    """Run ``swap()`` after the kept file's hash was checked, just before its thumbnail is read."""
    from likeness.service import portal

    original = portal._thumbnail

    def swapped_then_read(*args, **kwargs):
        swap()
        return original(*args, **kwargs)

    monkeypatch.setattr(portal, "_thumbnail", swapped_then_read)


def test_a_render_swapped_after_its_hash_was_checked_is_not_what_is_shown(signed, monkeypatch) -> None:
    """The thumbnail checked the kept file's hash by its path and then opened the path again to
    draw it: a render replaced in between (``os.replace``, as any editor of the outputs folder
    can) was shown as the render the ledger names. The file is now opened once, hashed and
    drawn through the same handle, which keeps the render that was checked; the replace changes
    that file's change time (it lost its name), so the thumbnail may also be refused, but the
    picture swapped in is never shown."""
    world, holder, (music, _fans) = signed
    seq, render = _kept_render(world, music, "mv-take-1.png", "j1", (200, 30, 30))
    other = render.with_name("other.png")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(other)
    _swap_before_reading(monkeypatch, lambda: os.replace(other, render))
    shown = holder.get(f"/portal/grants/{music}/renders/{seq}/thumb")
    if shown.status_code != 404:
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        red, green, blue = _shown_colour(shown.content)
        assert red > 150 and blue < 80, (red, green, blue)  # the checked render, not the one swapped in


def test_a_render_written_over_while_its_thumbnail_is_read_is_not_shown(signed, monkeypatch) -> None:
    """The same file written over in place (same inode) after the hash check: what the handle
    reads is then no longer the checked bytes, and the file's version (size, change time) says
    so after the read; the thumbnail is refused (404) instead of showing the new picture."""
    world, holder, (music, _fans) = signed
    seq, render = _kept_render(world, music, "mv-take-1.png", "j1", (200, 30, 30))
    replacement = io.BytesIO()
    Image.new("RGB", (80, 60), (30, 30, 200)).save(replacement, format="PNG")
    assert len(replacement.getvalue()) != render.stat().st_size
    _swap_before_reading(monkeypatch, lambda: render.write_bytes(replacement.getvalue()))
    assert holder.get(f"/portal/grants/{music}/renders/{seq}/thumb").status_code == 404


def test_a_video_render_s_thumbnail_is_its_first_frame(signed, tmp_path) -> None:
    from likeness.media.synthetic import grace_hopper, write_clip

    world, holder, (music, _fans) = signed
    outputs = Path(world.workspace.outputs_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    clip = write_clip(outputs / "mv-take-3.mp4", grace_hopper(), seconds=0.4, size=(192, 108), with_audio=False)
    event = world.workspace.ledger.append(
        "render.completed",
        {
            "grant_id": music,
            "use": "music_video",
            "job_id": "clip",
            "output_name": clip.name,
            "output_sha256": hashlib.sha256(clip.read_bytes()).hexdigest(),
        },
    )
    shown = holder.get(f"/portal/grants/{music}/renders/{event.seq}/thumb")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(shown.content)).size == (192, 108)
    assert np.asarray(Image.open(io.BytesIO(shown.content))).std() > 10  # a picture, not a blank
