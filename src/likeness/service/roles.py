"""Roles and what each may do: the one table every route's permission is checked against.

An organisation's people have one role each (docs/service.md):

- ``admin``: users, API tokens, settings;
- ``studio``: extract, train, render;
- ``legal``: verify, cases, evidence;
- ``admin`` and ``legal`` may also ask rights holders for consent (portal invitations, grant
  requests); only the holder signs.
- ``viewer``: read only.

Every role reads (jobs, results, the ledger). The duties do not overlap on purpose: an admin
who also verifies media has a second account (or a ``legal`` token) for it, so the ledger says
which hat did what.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    STUDIO = "studio"
    LEGAL = "legal"
    VIEWER = "viewer"


class Permission(StrEnum):
    #: sign in to the console; read jobs, results and the ledger; manage one's own API tokens
    READ = "read"
    #: create and cancel verification jobs
    VERIFY = "verify"
    #: create and cancel extract, train, export and render jobs (consent still decides)
    RENDER = "render"
    #: add users, change roles, revoke anyone's token in the organisation
    MANAGE_USERS = "manage_users"
    #: invite a rights holder to the portal and draft grant requests for them to sign (only the
    #: holder signs: asking is all the organisation can do)
    REQUEST_CONSENT = "request_consent"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.READ, Permission.MANAGE_USERS, Permission.REQUEST_CONSENT}),
    Role.STUDIO: frozenset({Permission.READ, Permission.RENDER}),
    Role.LEGAL: frozenset({Permission.READ, Permission.VERIFY, Permission.REQUEST_CONSENT}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def allows(role: str | Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` (an unknown role holds nothing)."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def token_roles_for(role: str | Role) -> frozenset[Role]:
    """The roles a user may give their own API tokens: their own, or read-only."""
    return frozenset({Role(role), Role.VIEWER})


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValueError(f"unknown role {text!r}: one of {', '.join(r.value for r in Role)}") from None
