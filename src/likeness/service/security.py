"""Security headers (a strict CSP), rate limits, and how a request proves who it is.

A request is authenticated by exactly one of:

- ``Authorization: Bearer lk_...``: an API token (scripts); its role is the token's;
- the ``likeness_session`` cookie (the console): HttpOnly, SameSite=Strict, Secure when the
  service is reached over HTTPS; a request that changes anything must also carry the
  session's CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from likeness.service.accounts import BrowserSession, User, same_secret
from likeness.service.errors import CsrfFailed, RateLimited
from likeness.service.roles import Role

SESSION_COOKIE = "likeness_session"
LOGIN_CSRF_COOKIE = "likeness_login_csrf"
LANG_COOKIE = "likeness_lang"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every response (HSTS over HTTPS), and
    ``Cache-Control: no-store`` to everything but the static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    # A route may set a CSP of its own (the evidence report's inline styles);
                    # it stays, and it still forbids every script.
                    if name == "content-security-policy" and name in headers:
                        continue
                    headers[name] = value
                if scope.get("scheme") == "https":
                    headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
                if not scope.get("path", "").startswith("/static/"):
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


#: Largest request body other than a multipart upload (JSON, forms): 1 MiB.
MAX_PLAIN_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body that is not ``multipart/form-data`` (whose file parts
    the upload code limits by type while streaming) may be at most ``MAX_PLAIN_BODY_BYTES``."""

    def __init__(self, app: ASGIApp, limit: int = MAX_PLAIN_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        from likeness.service.problems import problem

        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await problem(413, detail=f"request bodies are limited to {self.limit} bytes", instance=scope.get("path"))(
                scope, receive, send
            )
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            # Past the limit: answer 413 now and tell the app the client is gone, so it stops
            # reading (whatever it sends afterwards is dropped).
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await problem(
                        413, detail=f"request bodies are limited to {self.limit} bytes", instance=scope.get("path")
                    )(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded_send)


class UploadSlots:
    """Uploads in progress: at most ``per_client`` for one key (a client address, or a signed-in
    user: ``client`` names it in the refusal) and ``total`` in all. An upload holds its part file on disk until it ends, and the rate limit counts only
    starts: without this, ten 500 MiB uploads a minute from one address, each held open by a
    byte now and then, would fill the disk."""

    def __init__(self, per_client: int, total: int, *, client: str = "this address") -> None:
        self.per_client, self.total, self.client = per_client, total, client
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """One slot for ``key`` while the block runs; ``RateLimited`` when there is none."""
        with self._lock:
            if self._held.get(key, 0) >= self.per_client:
                raise RateLimited(
                    f"{self.per_client} upload{'s' if self.per_client > 1 else ''} from {self.client} "
                    f"{'are' if self.per_client > 1 else 'is'} still in progress; "
                    "send the next when one has finished",
                    retry_after_s=10,
                    members={"cause": "uploads-in-progress"},  # not "you checked many files"
                )
            if sum(self._held.values()) >= self.total:
                raise RateLimited(
                    "the service is receiving as many uploads as it takes; try again shortly",
                    retry_after_s=10,
                    members={"cause": "busy"},
                )
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]


class RateLimiter:
    """At most ``limit`` events per key within ``window_s`` seconds (a sliding window, kept in
    this process: one service process per workspace, see docs/service.md)."""

    def __init__(self, limit: int, window_s: float, *, clock=time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._events: dict[str, deque[float]] = {}
        # Per key, the oldest counted event when a refusal was last raised: a flood of refused
        # requests is one refusal per window, not one per request.
        self._refused: dict[str, float] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def take(self, *keys: str, what: str) -> float:
        """Count one event for every key, or raise ``RateLimited`` (counting nothing) when any
        key is at its limit. The check and the count are one step under the lock: requests that
        arrive together cannot all pass a check none of them has been counted in yet (password
        guesses sent at once, each passing before any is counted). Returns the event's time,
        for :meth:`give_back`."""
        now = self._clock()
        with self._lock:
            for key in keys:
                events = self._recent(key, now)
                if len(events) >= self.limit:
                    retry = int(events[0] + self.window_s - now) + 1
                    first = self._refused.get(key) != events[0]
                    self._refused[key] = events[0]
                    raise RateLimited(f"too many {what}; try again in {retry} s", retry_after_s=retry, first=first)
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._events) > 10_000:  # forget idle keys
                for key in [k for k, v in self._events.items() if not v]:
                    del self._events[key]
                    self._refused.pop(key, None)
        return now

    def give_back(self, key: str, at: float) -> None:
        """Uncount the event :meth:`take` counted for ``key`` at ``at`` (one that turned out
        not to count, such as a successful sign-in)."""
        with self._lock:
            events = self._events.get(key)
            if events is not None and at in events:
                events.remove(at)

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._events.pop(key, None)
                self._refused.pop(key, None)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user, the role in force (a token's own role), and how."""

    user: User
    role: Role
    via: str  # "session" | "token"
    session: BrowserSession | None = None
    token_id: str | None = None


def check_csrf(principal: Principal, supplied: str | None) -> None:
    """A session's unsafe request must carry its CSRF token; token requests need none (a
    browser never adds an Authorization header by itself)."""
    if principal.via != "session":
        return
    if not supplied or principal.session is None or not same_secret(supplied, principal.session.csrf_token):
        raise CsrfFailed("this request needs the session's CSRF token (reload the page and try again)")
