"""PostgreSQL least privilege: what the application's role may do to each table.

Two roles share the database. The **owner** role owns the schema: it runs the migrations
(``likeness init``), so it can alter tables and drop triggers, and it is used for nothing else.
The **application** role runs the CLI, service and workers: it may read every table and add rows,
but not change or remove them, truncate a table, or touch a trigger (only a table's owner can
alter or drop its triggers, and nothing here makes it an owner). The append-only triggers stay
as a second line for the owner.

Run the SQL from ``app_role_sql`` as the owner after every migration (it is idempotent): a table
a new migration adds gets no privileges until it is listed in ``TABLE_PRIVILEGES``, so the
application fails loudly rather than holding more than it needs.

Example::

    print(app_role_sql("likeness_app"))   # likeness db app-role-sql likeness_app | psql ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable

APPEND = ("SELECT", "INSERT")

# table -> privileges of the application role. Consent records, facesets, models and renders
# are facts: they are added, never changed; a revocation is a new row, not an edit.
TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "alembic_version": ("SELECT",),
    "organisations": APPEND,
    "rights_holders": APPEND,
    "subjects": APPEND,
    "reference_embeddings": APPEND,
    "grants": APPEND,
    "grant_revocations": APPEND,
    "releases": APPEND,
    "release_revocations": APPEND,
    "authorizations": APPEND,
    "render_consumptions": APPEND,
    "ledger": APPEND,
    "ledger_watermark_index": APPEND,
}

#: The service's own rows change (a role, a revoked token or session, a job's state and lease);
#: they are operational state, not evidence: what is evidence about them (logins, role changes,
#: tokens, verifications) is on the ledger. UPDATE only, never DELETE.
#: ``public_results``: a shared public answer is erased in place when it expires.
SERVICE_STATE_TABLES = ("service_users", "service_sessions", "service_api_tokens", "jobs", "public_results")
TABLE_PRIVILEGES.update({table: ("SELECT", "INSERT", "UPDATE") for table in SERVICE_STATE_TABLES})
#: The rights-holder portal's operational rows (a passkey's counter, an invitation used, a
#: request decided, a session or ceremony ended); the evidence is on the ledger.
PORTAL_STATE_TABLES = (
    "holder_passkeys",
    "holder_invitations",
    "grant_requests",
    "holder_sessions",
    "passkey_challenges",
)
TABLE_PRIVILEGES.update({table: ("SELECT", "INSERT", "UPDATE") for table in PORTAL_STATE_TABLES})

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_role_name(role: str) -> str:
    """A plain lower-case PostgreSQL role name (so it needs no quoting rules beyond ``"..."``)."""
    if not _ROLE.fullmatch(role):
        raise ValueError(
            f"role name {role!r}: use lower-case letters, digits and '_' (at most 63, not starting with a digit)"
        )
    return role


def unlisted_tables(tables: Iterable[str]) -> list[str]:
    """Tables of a migrated schema that ``TABLE_PRIVILEGES`` does not decide about."""
    return sorted(set(tables) - set(TABLE_PRIVILEGES))


def app_role_sql(role: str, *, schema: str = "public") -> str:
    """The statements that give ``role`` exactly ``TABLE_PRIVILEGES`` in ``schema``.

    Everything is revoked first, so running it again after a migration or after someone
    granted more brings the role back to this list.
    """
    app = f'"{check_role_name(role)}"'
    space = f'"{check_role_name(schema)}"'
    lines = [
        f"-- Least privilege for the application role {role}; run as the schema owner after each migration.",
        "BEGIN;",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {space} FROM {app};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {space} FROM {app};",
        f"REVOKE CREATE ON SCHEMA {space} FROM PUBLIC;",
        f"REVOKE CREATE ON SCHEMA {space} FROM {app};",
        f"GRANT USAGE ON SCHEMA {space} TO {app};",
    ]
    for table, privileges in TABLE_PRIVILEGES.items():
        lines.append(f'GRANT {", ".join(privileges)} ON TABLE {space}."{table}" TO {app};')
    # nextval for the integer keys of append-only tables; setval would need UPDATE.
    lines.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {space} TO {app};")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"
