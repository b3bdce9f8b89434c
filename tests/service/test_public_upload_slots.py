"""Public uploads are bounded while they arrive (trial 11): the rate limit counts starts, so
before, ten 500 MiB uploads a minute from one address, each kept open by a byte now and then,
held their part files on disk for as long as the client liked (measured against `likeness
serve`: 10 of 12 slow uploads from one address stayed open with their files, 201 MB after 20
MiB each; nothing ended them)."""

from __future__ import annotations

import asyncio

import pytest

from likeness.media import write_image
from likeness.media.synthetic import grace_hopper
from likeness.service.app import create_app
from likeness.service.errors import RateLimited, UploadTimedOut
from likeness.service.security import UploadSlots
from likeness.service.uploads import TransferFloor, UploadLimits, receive_upload

VERIFY = "/api/v1/public/verify"
BOUNDARY = "b0undary"
JPEG_PART = (
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    + b"\xff\xd8\xff\xe0"
    + bytes(60)
)


def _photo_form(tmp_path) -> bytes:
    """A multipart body holding one JPEG photo in the field ``file``."""
    photo = write_image(tmp_path / "p.jpg", grace_hopper(), quality=90).read_bytes()
    return JPEG_PART[: JPEG_PART.index(b"\xff\xd8")] + photo + f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_head(route: str, body: bytes, *headers: str) -> bytes:
    """The head of a raw HTTP/1.1 POST of the multipart ``body`` to ``route``."""
    lines = [f"POST {route} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    lines += [f"Content-Type: multipart/form-data; boundary={BOUNDARY}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(connection) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_an_upload_that_stops_sending_is_dropped_with_its_part_file(tmp_path):
    async def drip():
        yield JPEG_PART
        await asyncio.sleep(3600)  # a client that sends nothing more, and does not leave
        yield b""

    folder = tmp_path / "upload"

    async def receive():
        return await receive_upload(
            f"multipart/form-data; boundary={BOUNDARY}",
            drip(),
            folder,
            UploadLimits(10**6, 10**6),
            timeout_s=0.2,
        )

    with pytest.raises(UploadTimedOut, match="not received whole within 0.2 s"):
        asyncio.run(receive())
    assert not folder.exists()


def test_an_upload_idle_longer_than_allowed_is_dropped_while_a_slow_one_goes_on(tmp_path):
    """Signed-in users' uploads have no deadline or rate (footage comes slowly over a studio's
    link), so a client that stopped sending held its connection and part file for ever. Now
    one that sends nothing for ``idle_s`` is dropped; one that keeps sending, however slowly,
    is not."""
    photo = write_image(tmp_path / "p.jpg", grace_hopper(), quality=90).read_bytes()
    body = JPEG_PART[: JPEG_PART.index(b"\xff\xd8")] + photo + f"\r\n--{BOUNDARY}--\r\n".encode()

    async def slow(pause_after: int | None):
        for start in range(0, len(body), len(body) // 8 + 1):
            yield body[start : start + len(body) // 8 + 1]
            await asyncio.sleep(3600 if start == pause_after else 0.05)

    def receive(chunks, folder):
        return asyncio.run(
            receive_upload(
                f"multipart/form-data; boundary={BOUNDARY}", chunks, folder, UploadLimits(10**7, 10**7), idle_s=0.3
            )
        )

    with pytest.raises(UploadTimedOut, match="no byte of the upload came for 0.3 s"):
        receive(slow(pause_after=0), tmp_path / "stopped")
    assert not (tmp_path / "stopped").exists()
    stored = receive(slow(pause_after=None), tmp_path / "slow")  # 8 chunks, 0.05 s apart: 0.4 s in all
    assert stored.size_bytes == len(photo)


def test_a_signed_in_upload_that_stops_sending_is_dropped_by_a_real_server(settings, workspace, tmp_path):
    """The API's verification upload (console, references and extraction uploads take the same
    path) with ``upload_idle_timeout_s`` 1 s: a client that sends the form's first bytes and
    then nothing gets 408 naming the wait. Before, it was never answered (the client gives up
    after 30 s)."""
    import socket

    from likeness.service.roles import Role
    from tests.browser import free_port, serving
    from tests.service.conftest import build_service_world

    idle = settings.model_copy(update={"upload_idle_timeout_s": 1.0})
    world = build_service_world(idle, workspace)
    app = create_app(idle, workspace=workspace, accounts=world.accounts)
    head = (
        f"POST /api/v1/verifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {world.tokens[Role.LEGAL]}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    port = free_port()
    with serving(app, port), socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + JPEG_PART)
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"no byte of the upload came for 1 s" in answer, answer[-400:]


def test_a_signed_in_upload_slower_than_the_floor_is_dropped_by_a_real_server(settings, workspace, tmp_path):
    """Signed-in uploads had only the idle timeout: a client sending a byte just inside every
    ``upload_idle_timeout_s`` held its connection and part file for ever. They now have a floor
    as public uploads do, far lower by default (footage over a studio's slow link). A real client
    sends the form's first bytes, then 10 bytes every 0.1 s (100 B/s) for 1.5 s and then nothing,
    under a floor of 1000 B/s over 2 s and an idle timeout of 60 s: 408 naming the floor, its
    part file gone; the same file sent at once is queued (202). Before, the drip was answered
    only when it went idle for 60 s (the client here gives up after 20 s)."""
    import socket
    import time

    from likeness.service.job_kinds import uploads_root
    from likeness.service.roles import Role
    from tests.browser import free_port, serving
    from tests.service.conftest import build_service_world

    slow = settings.model_copy(
        update={"upload_min_bytes_per_s": 1000, "upload_rate_window_s": 2.0, "upload_idle_timeout_s": 60}
    )
    world = build_service_world(slow, workspace)
    app = create_app(slow, workspace=workspace, accounts=world.accounts)
    body = _photo_form(tmp_path)
    head = _post_head("/api/v1/verifications", body, f"Authorization: Bearer {world.tokens[Role.LEGAL]}")
    port = free_port()
    with serving(app, port):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            connection.sendall(head + body[:200])
            for start in range(200, 200 + 150, 10):  # 1.5 s of drip inside the first window, then silence
                connection.sendall(body[start : start + 10])
                time.sleep(0.1)
            dropped = _answer(connection)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            connection.sendall(head + body)
            queued = _answer(connection)
    assert dropped.startswith(b"HTTP/1.1 408"), dropped[:300]
    assert b"slower than 0.976562 KiB/s over 2 s" in dropped, dropped[-400:]
    assert queued.startswith(b"HTTP/1.1 202"), queued[:300]
    folders = [f for f in uploads_root(workspace).iterdir() if f.is_dir()]
    assert len(folders) == 1 and len(list(folders[0].iterdir())) == 1  # the queued upload's alone


def test_uploads_in_progress_are_bounded_per_address_and_in_all():
    slots = UploadSlots(per_client=2, total=3)
    with slots.hold("ip:a"), slots.hold("ip:a"):
        with pytest.raises(RateLimited, match="2 uploads from this address are still in progress"):
            with slots.hold("ip:a"):
                pass
        with slots.hold("ip:b"):
            with pytest.raises(RateLimited, match="as many uploads as it takes") as full:
                with slots.hold("ip:c"):
                    pass
            assert full.value.members == {"cause": "busy"}
    with slots.hold("ip:a"), slots.hold("ip:a"), slots.hold("ip:c"):  # all given back
        pass


def test_the_public_page_refuses_an_upload_beyond_the_addresses_slots(settings, workspace, tmp_path):
    from tests.service.conftest import build_service_world

    one = settings.model_copy(update={"public_uploads_per_client": 1})
    world = build_service_world(one, workspace)
    world.app = create_app(one, workspace=workspace, accounts=world.accounts)
    client = world.client()
    photo = write_image(tmp_path / "p.jpg", grace_hopper(), quality=90)
    with world.app.state.services.public_uploads.hold("ip:testclient"):  # an upload still arriving
        refused = client.post(VERIFY, files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert refused.status_code == 429 and refused.json()["type"].endswith("rate-limited"), refused.text
    assert "still in progress" in refused.json()["detail"] and refused.headers["retry-after"] == "10"
    # not "you checked many files": the page picks its own sentence by the cause
    assert refused.json()["cause"] == "uploads-in-progress"
    assert client.post(VERIFY, files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}).status_code == 200


def test_checks_beyond_those_allowed_to_wait_are_told_at_once(workspace, tmp_path):
    """Trial 11: each check waits for the one verifier in a server worker thread, which the
    console and the API share; 80 checks from 80 addresses (one every 0.1 s) kept a staff
    ``GET /api/v1/jobs`` waiting 55.7 s. Now ``public_checks_waiting`` may wait; the next is
    answered busy without waiting."""
    import threading
    import time

    from likeness.service.errors import AnalysisTimedOut
    from likeness.service.public import PublicChecker

    checker = PublicChecker(workspace, max_waiting=1)
    checker._lock.acquire()  # a check in progress
    waited: list[AnalysisTimedOut] = []
    try:

        def wait_out() -> None:
            with pytest.raises(AnalysisTimedOut) as refused:
                checker.verify(tmp_path, wait_s=5)
            waited.append(refused.value)

        waiting = threading.Thread(target=wait_out)
        waiting.start()
        for _ in range(500):
            if checker._waiting == 1:
                break
            time.sleep(0.01)
        with pytest.raises(AnalysisTimedOut, match="1 other files are waiting for it") as busy:
            checker.verify(tmp_path, wait_s=60)
        waiting.join()
    finally:
        checker._lock.release()
    assert checker._waiting == 0
    # Both were never analysed: the page must not tell the fan to try a shorter clip.
    assert busy.value.members == {"cause": "busy"} and [e.members for e in waited] == [{"cause": "busy"}]
    # a 503 says when to come back, as the page's "try again in a minute" does
    assert busy.value.headers == {"Retry-After": "60"} and [e.headers for e in waited] == [{"Retry-After": "60"}]


def test_the_transfer_floor_is_a_sliding_window_a_first_burst_buys_no_drip():
    # the rule on a made-up clock: 100 B/s over every 10 s, once the first 10 s have passed
    floor = TransferFloor(bytes_per_s=100, window_s=10, started=0.0)
    assert floor.deadline() == 10.0  # nothing sent: refused when the first window ends
    for second in range(1, 60):  # 150 B/s for a minute: never due
        floor.received(float(second), 150)
        assert floor.deadline() > second
    floor.received(60.0, 10**6)  # a burst of 10,000 s worth of the floor ...
    assert floor.deadline() == 70.0  # ... holds only while it is in the window
    for second in range(61, 70):  # then a drip, 10 B/s
        floor.received(float(second), 10)
    assert floor.deadline() == 70.0
    with pytest.raises(ValueError):
        TransferFloor(bytes_per_s=0, window_s=10, started=0.0)


def test_a_public_upload_slower_than_the_floor_is_dropped_by_a_real_server(settings, workspace, tmp_path):
    """16 addresses each dripping 2 uploads held every public upload slot until the 600 s
    deadline (trial 11 left it). A real client over a socket sends the form's first bytes, then
    10 bytes every 0.1 s (100 B/s) for 1.5 s and then nothing, under a floor of 1000 B/s over
    2 s: answered 408 naming the floor, its part file gone; the same file sent at once is
    checked (200). Before, the drip was answered only at the upload deadline (set to 60 s here;
    the client gives up after 30 s).

    The drip stops inside the floor's first window so that the server's answer is not raced:
    a server that closes while the client's bytes still arrive resets the connection, and the
    client's kernel then drops the 408 it had not read yet (a reset, not the answer, one run in
    three on a quiet machine)."""
    import socket
    import time

    from likeness.service.public import public_upload_root
    from tests.browser import free_port, serving
    from tests.service.conftest import build_service_world

    slow = settings.model_copy(
        update={
            "public_upload_min_bytes_per_s": 1000,
            "public_upload_rate_window_s": 2.0,
            "public_upload_timeout_s": 60,
        }
    )
    world = build_service_world(slow, workspace)
    app = create_app(slow, workspace=workspace, accounts=world.accounts)
    body = _photo_form(tmp_path)
    head = _post_head(VERIFY, body)
    port = free_port()
    with serving(app, port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + body[:200])
            given_up = time.monotonic() + 30
            for start in range(200, len(body), 10):
                if start >= 200 + 150:  # 1.5 s of drip, then silence until the answer
                    break
                try:
                    connection.sendall(body[start : start + 10])
                except OSError:  # the server answered and closed: the rest is not read
                    break
                connection.settimeout(0.1)
                try:
                    if connection.recv(1, socket.MSG_PEEK):
                        break
                except TimeoutError:
                    pass
                assert time.monotonic() < given_up, "the drip was never refused"
            connection.settimeout(30)
            dropped = _answer(connection)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + body)
            checked = _answer(connection)
    assert dropped.startswith(b"HTTP/1.1 408"), dropped[:300]
    assert b"slower than 0.976562 KiB/s over 2 s" in dropped, dropped[-400:]
    assert checked.startswith(b"HTTP/1.1 200"), checked[:300]
    uploads = public_upload_root(workspace)
    assert not uploads.exists() or not any(uploads.iterdir()), list(uploads.iterdir())
