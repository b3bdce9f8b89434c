"""``make demo`` leaves a workspace the console opens: the printed user signs in."""

from __future__ import annotations

import io

from rich.console import Console

from likeness.demo import console_login
from likeness.service.accounts import Accounts


def test_demo_prints_a_console_login_that_works(consent_world):
    out = io.StringIO()
    username, password = console_login(consent_world.workspace, Console(file=out, width=200))
    text = out.getvalue()
    assert "serve --with-worker" in text and username in text and password in text
    assert Accounts(consent_world.workspace).authenticate(username, password).role.value == "legal"
    again, _ = console_login(consent_world.workspace, Console(file=io.StringIO()))
    assert again != username
