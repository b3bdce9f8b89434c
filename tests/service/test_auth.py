"""Users, sessions, CSRF, API tokens, the login rate limit, and their ledger events."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from likeness.service.accounts import secret_sha256
from likeness.service.roles import Role
from likeness.service.tables import ApiToken, ServiceSession, ServiceUser

from .conftest import PASSWORD


def _events(world, event_type):
    return [e.payload for e in world.workspace.ledger.events(event_type)]


def test_passwords_are_argon2_hashes_and_secrets_are_stored_only_hashed(service_world):
    with service_world.workspace.engine.connect() as conn:
        hashes = conn.execute(select(ServiceUser.password_hash)).scalars().all()
        token_hashes = set(conn.execute(select(ApiToken.token_sha256)).scalars())
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
    for secret in service_world.tokens.values():
        assert secret_sha256(secret) in token_hashes and secret not in token_hashes


def test_console_login_sets_a_strict_httponly_cookie_and_goes_on_the_ledger(service_world):
    client = service_world.client()
    client.get("/login")
    csrf = client.cookies.get("likeness_login_csrf")
    response = client.post(
        "/login",
        data={"username": "legal", "password": PASSWORD, "csrf_token": csrf, "next": "/ledger"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/ledger"
    cookie = response.headers["set-cookie"].lower()
    assert "likeness_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http on loopback; see the https test
    secret = client.cookies.get("likeness_session")
    with service_world.workspace.engine.connect() as conn:
        assert conn.execute(select(ServiceSession.token_sha256)).scalars().all() == [secret_sha256(secret)]
    assert client.get("/api/v1/me").json()["username"] == "legal"
    assert _events(service_world, "service.login")[-1]["username"] == "legal"


def test_session_cookie_is_secure_over_https(service_world):
    client = service_world.client(base_url="https://testserver")
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": "viewer", "password": PASSWORD, "csrf_token": client.cookies.get("likeness_login_csrf")},
        follow_redirects=False,
    )
    assert "secure" in response.headers["set-cookie"].lower()


def test_login_without_the_form_s_csrf_token_is_refused(service_world):
    client = service_world.client()
    client.get("/login")
    response = client.post("/login", data={"username": "legal", "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403
    assert client.cookies.get("likeness_session") is None


def test_failed_logins_go_on_the_ledger_and_are_rate_limited(service_world):
    client = service_world.client()
    client.get("/login")
    csrf = client.cookies.get("likeness_login_csrf")
    for _ in range(5):
        bad = client.post("/login", data={"username": "legal", "password": "wrong password!", "csrf_token": csrf})
        assert bad.status_code == 401
    limited = client.post(
        "/login",
        data={"username": "legal", "password": PASSWORD, "csrf_token": csrf},
        headers={"accept": "application/json"},
    )
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.json()["type"].endswith("rate-limited")
    failed = _events(service_world, "service.login_failed")
    assert [f["reason"] for f in failed] == ["wrong_password"] * 5 + ["rate_limited"]
    # the limit holds for the address too: another user name from here waits as well
    other = client.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": csrf})
    assert other.status_code == 429
    # a flood of refused requests is one ledger event per window, not one per request
    for _ in range(20):
        assert client.post("/login", data={"username": "legal", "password": "x", "csrf_token": csrf}).status_code == 429
    failed = _events(service_world, "service.login_failed")
    assert [f["reason"] for f in failed] == ["wrong_password"] * 5 + ["rate_limited"]


def test_the_user_limit_holds_whatever_spaces_surround_the_name(service_world):
    """The limiter and the lookup see the same name: ' legal\t' from another address is still
    the locked 'legal'."""

    def attempt(host: str, username: str, password: str) -> int:
        client = service_world.client(client=(host, 50000))
        client.get("/login")
        csrf = client.cookies.get("likeness_login_csrf")
        return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf}).status_code

    for k in range(5):
        assert attempt(f"10.0.0.{k + 1}", "legal", "wrong password!") == 401
    assert attempt("10.0.1.1", " Legal ", "wrong password!") == 429
    assert attempt("10.0.1.2", "legal\t", PASSWORD) == 429


def test_a_stranger_who_locks_a_user_out_does_not_lock_out_the_browser_they_signed_in_from(service_world):
    """Five wrong passwords for 'legal' from anywhere kept the user locked out for five minutes,
    again and again (an attacker needs one request a minute). A browser that signed in as the
    user before brings its device cookie and keeps its own count; browsers without one, with a
    cookie sealed for another user or with a forged cookie are held to the user's lock."""

    def browser(host: str):
        client = service_world.client(client=(host, 50000))
        client.get("/login")
        return client

    def attempt(client, username: str, password: str) -> int:
        if client.cookies.get("likeness_login_csrf") is None:  # used by a sign-in: a new form
            client.get("/login")
        csrf = client.cookies.get("likeness_login_csrf")
        data = {"username": username, "password": password, "csrf_token": csrf}
        return client.post("/login", data=data, follow_redirects=False).status_code

    desk = browser("10.0.0.7")
    assert attempt(desk, "legal", PASSWORD) == 303  # an earlier working day
    assert desk.cookies.get("likeness_device") is not None
    other_desk = browser("10.0.0.8")
    assert attempt(other_desk, "viewer", PASSWORD) == 303  # a device trusted for 'viewer' only

    for k in range(5):
        assert attempt(browser(f"203.0.113.{k + 1}"), "legal", "wrong password!") == 401
    assert attempt(browser("203.0.113.9"), "legal", PASSWORD) == 429  # the lock holds for strangers
    assert attempt(other_desk, "legal", PASSWORD) == 429
    forged = browser("203.0.113.10")
    forged.cookies.set("likeness_device", desk.cookies.get("likeness_device").split(".")[0] + "." + "0" * 64)
    assert attempt(forged, "legal", PASSWORD) == 429

    assert attempt(desk, "legal", PASSWORD) == 303  # the user's own browser signs in
    # and its own count still stops guesses made with a stolen copy of its cookie
    for _ in range(5):
        assert attempt(desk, "legal", "wrong password!") == 401
    assert attempt(desk, "legal", PASSWORD) == 429


def test_a_service_key_others_may_read_is_refused(service_world):
    """The key that seals shared results (and trusted-device cookies) was used whatever its
    mode: made readable by a restored backup or a careless chmod, another local user could
    forge a verdict page. Refused as the C2PA keys are."""
    from likeness.service.errors import ServiceError
    from likeness.service.permalinks import share

    workspace = service_world.workspace
    answer = {"sha256": "ab" * 32, "verdict": "no-face"}
    share(workspace, answer, days=1)
    key = workspace.settings.keys_dir / "service" / "links.key"
    assert key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)
    with pytest.raises(ServiceError, match=r"links.key: the service's key may be read by others \(mode 0644\)"):
        share(workspace, answer, days=1)


@pytest.mark.parametrize("spoil", ["mode 0644", "a directory", "a FIFO", "31 bytes", "empty"])
def test_an_unusable_device_key_leaves_sign_in_to_the_user_and_address_limits(service_world, spoil, caplog):
    """A devices.key made readable by others was a 400 at every sign-in, naming the server's
    full path to whoever loaded the form; a directory in its place a 500, a FIFO held every
    sign-in for ever, and one of the wrong length turned device cookies off unsaid. Sign-in now
    goes on without trusting device cookies (the limits before them) and the log names the file."""
    import os

    key = service_world.workspace.settings.keys_dir / "service" / "devices.key"
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if spoil == "a directory":
        key.mkdir()
    elif spoil == "a FIFO":
        os.mkfifo(key, 0o600)
    else:
        key.write_bytes({"mode 0644": bytes(32), "31 bytes": bytes(31), "empty": b""}[spoil])
        key.chmod(0o644 if spoil == "mode 0644" else 0o600)

    client = service_world.client()
    client.get("/login")
    data = {"username": "legal", "password": PASSWORD, "csrf_token": client.cookies.get("likeness_login_csrf")}
    with caplog.at_level("ERROR", logger="likeness.service.console"):
        response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code == 303
    assert client.cookies.get("likeness_device") is None  # no cookie sealed with a key others may know
    assert "keys/service/devices.key: the service's key" in caplog.text
    assert str(key.parent.parent) not in caplog.text  # named from the keys folder


def test_a_service_key_that_cannot_be_used_is_a_503_naming_it_from_the_keys_folder(service_world):
    """links.key readable by others made the public page's share button a 400 "Bad request"
    (the visitor's fault) carrying the server's full path to the key."""
    from likeness.service.errors import ServiceKeyUnusable
    from likeness.service.permalinks import share

    key = service_world.workspace.settings.keys_dir / "service" / "links.key"
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key.write_bytes(bytes(32))
    key.chmod(0o640)
    with pytest.raises(ServiceKeyUnusable) as raised:
        share(service_world.workspace, {"sha256": "ab" * 32, "verdict": "no-face"}, days=1)
    assert raised.value.status == 503
    assert str(raised.value).startswith("keys/service/links.key: the service's key may be read by others (mode 0640)")


def test_a_failed_login_for_an_unknown_user_is_on_the_ledger(service_world):
    client = service_world.client()
    client.get("/login")
    client.post(
        "/login",
        data={"username": "nobody", "password": "x" * 12, "csrf_token": client.cookies.get("likeness_login_csrf")},
    )
    assert _events(service_world, "service.login_failed")[-1]["reason"] == "unknown_user"


def test_session_requests_that_change_things_need_the_csrf_token(service_world):
    client = service_world.client()
    csrf = service_world.login(client, "viewer")
    refused = client.post("/api/v1/tokens", json={"name": "laptop"})
    assert refused.status_code == 403 and refused.json()["type"].endswith("csrf-failed")
    wrong = client.post("/api/v1/tokens", json={"name": "laptop"}, headers={"x-csrf-token": "nope"})
    assert wrong.status_code == 403
    made = client.post("/api/v1/tokens", json={"name": "laptop"}, headers={"x-csrf-token": csrf})
    assert made.status_code == 201
    # the console's sign-out form carries it as a field
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_tokens_are_role_scoped_revocable_and_on_the_ledger(service_world):
    legal = service_world.token_client(Role.LEGAL)
    made = legal.post("/api/v1/tokens", json={"name": "read-only script", "role": "viewer"})
    assert made.status_code == 201
    secret, token_id = made.json()["token"], made.json()["id"]
    reader = service_world.client(headers={"Authorization": f"Bearer {secret}"})
    assert reader.get("/api/v1/me").json()["acting_role"] == "viewer"
    assert reader.post("/api/v1/verifications", files={"file": ("a.png", b"x")}).status_code == 403
    # no token with more than one's own role
    assert legal.post("/api/v1/tokens", json={"name": "x", "role": "admin"}).status_code == 403
    assert reader.post("/api/v1/tokens", json={"name": "x", "role": "legal"}).status_code == 403
    created = _events(service_world, "service.token_created")[-1]
    assert created["token_id"] == token_id and created["role"] == "viewer" and "token" not in created
    assert legal.delete(f"/api/v1/tokens/{token_id}").json()["revoked_at"]
    assert reader.get("/api/v1/me").status_code == 401
    assert _events(service_world, "service.token_revoked")[-1]["token_id"] == token_id
    # someone else's token is not found, even by id
    other = service_world.token_client(Role.STUDIO)
    studio_tokens = service_world.accounts.list_tokens(user=service_world.accounts.get_user("studio"))
    assert other.delete(f"/api/v1/tokens/{studio_tokens[0].id}").status_code == 200
    assert legal.delete(f"/api/v1/tokens/{studio_tokens[0].id}").status_code == 404


def test_an_unknown_bearer_token_is_refused_even_with_a_session(service_world):
    client = service_world.client()
    service_world.login(client, "viewer")
    client.headers["Authorization"] = "Bearer lk_not-a-token"
    assert client.get("/api/v1/me").status_code == 401


def test_admin_adds_users_and_changes_roles_on_the_ledger(service_world):
    admin = service_world.token_client(Role.ADMIN)
    added = admin.post(
        "/api/v1/users", json={"username": "jiwoo", "password": "long enough password", "role": "viewer"}
    )
    assert added.status_code == 201 and added.json()["org"] == "studio"
    assert (
        admin.post(
            "/api/v1/users", json={"username": "jiwoo", "password": "long enough password", "role": "viewer"}
        ).status_code
        == 409
    )
    assert admin.post("/api/v1/users", json={"username": "x", "password": "short", "role": "viewer"}).status_code == 422
    changed = admin.patch("/api/v1/users/jiwoo", json={"role": "legal"})
    assert changed.json()["role"] == "legal"
    event = _events(service_world, "service.role_changed")[-1]
    assert (event["username"], event["from"], event["to"], event["by"]) == ("jiwoo", "viewer", "legal", "admin")
    assert admin.patch("/api/v1/users/admin", json={"role": "viewer"}).status_code == 403  # not one's own
    assert {u["username"] for u in admin.get("/api/v1/users").json()} >= {"jiwoo", "admin", "legal"}


def test_a_deactivated_user_s_sessions_and_tokens_stop_at_once(service_world):
    browser = service_world.client()
    service_world.login(browser, "legal")
    legal = service_world.token_client(Role.LEGAL)
    admin = service_world.token_client(Role.ADMIN)
    assert admin.patch("/api/v1/users/legal", json={"active": False}).json()["active"] is False
    assert legal.get("/api/v1/me").status_code == 401 and browser.get("/api/v1/me").status_code == 401
    assert _events(service_world, "service.user_deactivated")[-1]["by"] == "admin"
    assert admin.patch("/api/v1/users/admin", json={"active": False}).status_code == 403
    assert admin.patch("/api/v1/users/legal", json={"active": True}).json()["active"] is True
    # Deactivation revoked them: reactivating the user does not bring old credentials back.
    assert legal.get("/api/v1/me").status_code == 401 and browser.get("/api/v1/me").status_code == 401
    service_world.login(browser, "legal")
    assert browser.get("/api/v1/me").status_code == 200


def test_a_token_outlives_no_role_change(service_world):
    """A legal token stops working when its user is made a viewer: it would hold more than the user."""
    legal = service_world.token_client(Role.LEGAL)
    assert legal.get("/api/v1/me").status_code == 200
    browser = service_world.client()
    service_world.login(browser, "legal")
    service_world.accounts.set_role("legal", Role.VIEWER)
    assert legal.get("/api/v1/me").status_code == 401
    # Giving the role back does not revive them: a role change revokes the user's tokens and sessions.
    service_world.accounts.set_role("legal", Role.LEGAL)
    assert legal.get("/api/v1/me").status_code == 401 and browser.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("username", ["../admin", "Admin", "a", "x" * 65, "한글"])
def test_user_names_are_checked(service_world, username):
    with pytest.raises(ValueError):
        service_world.accounts.add_user(username, PASSWORD, Role.VIEWER)


def test_a_ledger_position_beyond_any_sequence_number_is_a_problem_not_a_crash(service_world):
    viewer = service_world.token_client(Role.VIEWER)
    for path in ("/api/v1/ledger?after=99999999999999999999999", "/ledger?after=99999999999999999999999"):
        response = viewer.get(path, headers={"accept": "application/json"})
        assert response.status_code == 422, (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"


def test_parallel_password_guesses_get_no_more_tries_than_the_limit(service_world, monkeypatch):
    """Ten guesses sent at once: each used to pass the limit's check before any failure was
    counted (a check, then argon2, then the count), so all ten were tried; five are now."""
    import threading

    accounts = service_world.app.state.services.accounts
    genuine = accounts.authenticate
    tried, answered = [], []
    all_in = threading.Event()

    def slow_authenticate(*args, **kwargs):
        # hold every guess inside the password check until each request is in one or answered
        tried.append(1)
        all_in.wait(timeout=20)
        return genuine(*args, **kwargs)

    monkeypatch.setattr(accounts, "authenticate", slow_authenticate)

    def guess(k: int) -> None:
        client = service_world.client()
        client.get("/login")
        csrf = client.cookies.get("likeness_login_csrf")
        response = client.post("/login", data={"username": "legal", "password": f"guess {k}", "csrf_token": csrf})
        answered.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(k,)) for k in range(10)]
    for thread in threads:
        thread.start()
    while len(tried) + len(answered) < 10 and any(t.is_alive() for t in threads):
        threading.Event().wait(0.01)
    all_in.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(tried) == 5
    assert sorted(answered) == [401] * 5 + [429] * 5


def test_sign_ins_that_succeed_do_not_spend_their_address_s_limit(service_world):
    """Staff behind one address (an office's NAT) sign in more often than the limit's five
    tries: each sign-in is counted before its password is checked, and one that succeeds is
    given back; failed guesses from that address still meet the limit."""

    def attempt(password: str) -> int:
        client = service_world.client(client=("10.0.9.9", 50000))
        client.get("/login")
        csrf = client.cookies.get("likeness_login_csrf")
        data = {"username": "legal", "password": password, "csrf_token": csrf}
        return client.post("/login", data=data, follow_redirects=False).status_code

    assert [attempt(PASSWORD) for _ in range(6)] == [303] * 6
    assert [attempt("wrong password!") for _ in range(6)] == [401] * 5 + [429]
