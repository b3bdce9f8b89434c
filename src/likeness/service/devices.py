"""Trusted devices: a browser that signed in as a user before keeps a sign-in limit of its own.

The sign-in limit counts attempts per user name (``login_limiter``: 5 in 5 minutes), so that
guesses spread over many addresses still meet it; but then anyone can keep a user locked out by
failing on purpose. After a successful sign-in the browser gets a cookie bound to the user name
and sealed with the service's ``devices`` key (OWASP's device cookies). An attempt that brings
it for the name it signs in as is counted against that device alone, so a lock-out strangers
cause does not reach the people who use the account, and a stolen cookie buys its thief the
same 5 guesses in 5 minutes, not a way in.

>>> key = bytes(32)
>>> cookie = device_cookie(key, "mina")
>>> trusted_device(key, "mina", cookie) == cookie.split(".")[0]
True
>>> trusted_device(key, "jun", cookie) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

DEVICE_COOKIE = "likeness_device"
DEVICE_DAYS = 180
#: Sent only with the sign-in form's post: no other request needs it.
DEVICE_COOKIE_PATH = "/login"


def device_cookie(key: bytes, username: str) -> str:
    """A new device cookie for ``username``: a random name for the device and its seal."""
    device = secrets.token_urlsafe(16)
    return f"{device}.{_seal(key, username, device)}"


def trusted_device(key: bytes | None, username: str, cookie: str | None) -> str | None:
    """The device's name when ``cookie`` was given at a sign-in as ``username`` (and sealed
    with ``key``), else None."""
    if key is None or not cookie or cookie.count(".") != 1:
        return None
    device, seal = cookie.split(".")
    if not device or len(cookie) > 200 or not hmac.compare_digest(seal, _seal(key, username, device)):
        return None
    return device


def _seal(key: bytes, username: str, device: str) -> str:
    return hmac.new(key, f"device\0{username}\0{device}".encode(), hashlib.sha256).hexdigest()
