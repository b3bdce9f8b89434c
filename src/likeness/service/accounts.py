"""Users, browser sessions and API tokens, stored in the workspace database.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 defaults). Session cookies and API
tokens are 256-bit random secrets; the database keeps only their SHA-256, so a copy of the
database signs nobody in. Logins, failed logins, new users, role changes and token creation or
revocation go on the consent ledger (``service.*`` events).

Example::

    accounts = Accounts(workspace)
    accounts.add_user("jiwoo", "correct horse battery", Role.LEGAL)
    user = accounts.authenticate("jiwoo", "correct horse battery", client="127.0.0.1")
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from likeness.consent.tables import Organisation
from likeness.errors import RegistryError
from likeness.service.errors import Conflict, Forbidden, LoginFailed, NotFound
from likeness.service.roles import Role, parse_role, token_roles_for
from likeness.service.tables import ApiToken, ServiceSession, ServiceUser

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
MIN_PASSWORD_CHARS = 12
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "lk_"


def utc_stamp(when: datetime | None = None) -> str:
    """Fixed-width ISO-8601 UTC with microseconds (compares correctly as text)."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise ValueError(
            f"user name {username!r}: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    return password


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: Role
    org_id: str
    org_slug: str
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "org": self.org_slug,
            "active": self.active,
        }


@dataclass(frozen=True)
class BrowserSession:
    id: str
    user: User
    csrf_token: str
    expires_at: str


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    role: Role
    username: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "user": self.username,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


class Accounts:
    """The service's only reader and writer of users, sessions and tokens."""

    def __init__(
        self,
        workspace: Any,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.workspace = workspace
        self._sessions = sessionmaker(workspace.engine, expire_on_commit=False)
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        # Verified against when the user does not exist, so both answers take as long.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # --- users ---------------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        password: str,
        role: Role | str,
        *,
        org: str | None = None,
        display_name: str | None = None,
        actor: str | None = None,
    ) -> User:
        """Add a user to ``org`` (default: the workspace's only organisation)."""
        check_username(username)
        check_password(password)
        role = parse_role(role) if isinstance(role, str) else role
        organisation = self.workspace.registry.default_org(org or self.workspace.settings.org)
        now = utc_stamp(self._clock())
        row = ServiceUser(
            id=uuid.uuid4().hex,
            org_id=organisation.id,
            username=username,
            display_name=(display_name or username)[:200],
            password_hash=self._hasher.hash(password),
            role=role.value,
            active=True,
            created_at=now,
            updated_at=now,
        )
        with self._sessions() as session:
            if session.scalar(select(ServiceUser.id).where(ServiceUser.username == username)):
                raise Conflict(f"user {username!r} already exists")
            session.add(row)
            session.commit()
        self.workspace.ledger.append(
            "service.user_added",
            {
                "user_id": row.id,
                "username": username,
                "role": role.value,
                "org_id": organisation.id,
                "by": actor,
            },
        )
        return self._user(row, organisation.slug)

    def get_user(self, username: str) -> User:
        with self._sessions() as session:
            row = session.scalar(select(ServiceUser).where(ServiceUser.username == username))
            if row is None:
                raise NotFound(f"no user {username!r}")
            return self._user(row, self._org_slug(session, row.org_id))

    def list_users(self, org_id: str | None = None) -> list[User]:
        with self._sessions() as session:
            query = select(ServiceUser).order_by(ServiceUser.username)
            if org_id is not None:
                query = query.where(ServiceUser.org_id == org_id)
            return [self._user(row, self._org_slug(session, row.org_id)) for row in session.scalars(query)]

    def set_role(self, username: str, role: Role | str, *, actor: User | None = None) -> User:
        """Change a user's role (on the ledger). An actor may only change users of their own
        organisation, and not their own role (so the last admin cannot lock everyone out)."""
        role = parse_role(role) if isinstance(role, str) else role
        with self._sessions() as session:
            row = session.scalar(select(ServiceUser).where(ServiceUser.username == username))
            if row is None or (actor is not None and row.org_id != actor.org_id):
                raise NotFound(f"no user {username!r}")
            if actor is not None and row.id == actor.id:
                raise Forbidden("you cannot change your own role")
            previous = row.role
            row.role, row.updated_at = role.value, utc_stamp(self._clock())
            if previous != role.value:
                self._revoke_credentials(session, row.id)
            session.commit()
            user = self._user(row, self._org_slug(session, row.org_id))
        if previous != role.value:
            self.workspace.ledger.append(
                "service.role_changed",
                {
                    "user_id": user.id,
                    "username": username,
                    "from": previous,
                    "to": role.value,
                    "by": actor.username if actor else None,
                },
            )
        return user

    def _revoke_credentials(self, session: Session, user_id: str) -> None:
        """Revoke every live session and token of a user whose role or standing changed, so that
        undoing the change later does not bring old credentials back."""
        now = utc_stamp(self._clock())
        for table in (ServiceSession, ApiToken):
            session.execute(
                update(table).where(table.user_id == user_id, table.revoked_at.is_(None)).values(revoked_at=now)
            )

    def set_active(self, username: str, active: bool, *, actor: User | None = None) -> User:
        """Deactivate a user (their sessions and tokens stop working at once) or reactivate
        them; on the ledger. Not oneself."""
        with self._sessions() as session:
            row = session.scalar(select(ServiceUser).where(ServiceUser.username == username))
            if row is None or (actor is not None and row.org_id != actor.org_id):
                raise NotFound(f"no user {username!r}")
            if actor is not None and row.id == actor.id:
                raise Forbidden("you cannot deactivate yourself")
            changed = row.active != active
            row.active, row.updated_at = active, utc_stamp(self._clock())
            if not active:
                self._revoke_credentials(session, row.id)
            session.commit()
            user = self._user(row, self._org_slug(session, row.org_id))
        if changed:
            self.workspace.ledger.append(
                "service.user_reactivated" if active else "service.user_deactivated",
                {
                    "user_id": user.id,
                    "username": username,
                    "by": actor.username if actor else None,
                },
            )
        return user

    def authenticate(self, username: str, password: str, *, client: str | None = None) -> User:
        """The user, when the password is theirs and they are active; else ``LoginFailed``
        (the same message either way). Both outcomes go on the ledger."""
        with self._sessions() as session:
            row = session.scalar(select(ServiceUser).where(ServiceUser.username == username))
            org_slug = self._org_slug(session, row.org_id) if row is not None else None
        reason = None
        if row is None:
            self._password_matches(self._dummy_hash, password)
            reason = "unknown_user"
        elif not self._password_matches(row.password_hash, password):
            reason = "wrong_password"
        elif not row.active:
            reason = "inactive"
        if reason is not None:
            self.record_failed_login(username, reason, client=client)
            raise LoginFailed("wrong user name or password")
        assert row is not None  # no row always sets a reason above
        user = self._user(row, org_slug or "")
        self.workspace.ledger.append(
            "service.login",
            {
                "user_id": user.id,
                "username": user.username,
                "role": user.role.value,
                "client": client,
            },
        )
        return user

    def record_failed_login(self, username: str, reason: str, *, client: str | None = None) -> None:
        self.workspace.ledger.append(
            "service.login_failed",
            {
                "username": username[:64],
                "reason": reason,
                "client": client,
            },
        )

    def _password_matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # --- browser sessions ----------------------------------------------------------------
    def start_session(self, user: User) -> tuple[str, BrowserSession]:
        """A new session for ``user``: (the cookie's secret, the session)."""
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        row = ServiceSession(
            id=uuid.uuid4().hex,
            token_sha256=secret_sha256(secret),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=utc_stamp(now),
            expires_at=utc_stamp(now + SESSION_LIFETIME),
            revoked_at=None,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
        return secret, BrowserSession(row.id, user, row.csrf_token, row.expires_at)

    def session_for(self, secret: str) -> BrowserSession | None:
        """The live session whose cookie is ``secret`` (``None``: unknown, expired, ended, or
        its user deactivated)."""
        if not secret:
            return None
        with self._sessions() as session:
            row = session.scalar(select(ServiceSession).where(ServiceSession.token_sha256 == secret_sha256(secret)))
            if row is None or row.revoked_at is not None or row.expires_at <= utc_stamp(self._clock()):
                return None
            user_row = session.get(ServiceUser, row.user_id)
            if user_row is None or not user_row.active:
                return None
            user = self._user(user_row, self._org_slug(session, user_row.org_id))
        return BrowserSession(row.id, user, row.csrf_token, row.expires_at)

    def end_session(self, secret: str) -> None:
        with self._sessions() as session:
            row = session.scalar(select(ServiceSession).where(ServiceSession.token_sha256 == secret_sha256(secret)))
            if row is not None and row.revoked_at is None:
                row.revoked_at = utc_stamp(self._clock())
                session.commit()

    # --- API tokens ----------------------------------------------------------------------
    def create_token(
        self, user: User, name: str, role: Role | str | None = None, *, expires_in_days: int | None = None
    ) -> tuple[str, TokenInfo]:
        """A new bearer token for ``user``, scoped to ``role`` (their own, or ``viewer``).
        Returns (the secret, shown once; its record)."""
        role = user.role if role is None else (parse_role(role) if isinstance(role, str) else role)
        if role not in token_roles_for(user.role):
            raise Forbidden(
                f"a {user.role.value} may create tokens for the roles "
                f"{', '.join(sorted(r.value for r in token_roles_for(user.role)))} only"
            )
        name = name.strip()[:100] or "token"
        token_id = uuid.uuid4().hex
        secret = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
        now = self._clock()
        row = ApiToken(
            id=token_id,
            user_id=user.id,
            name=name,
            token_sha256=secret_sha256(secret),
            role=role.value,
            created_at=utc_stamp(now),
            expires_at=utc_stamp(now + timedelta(days=expires_in_days)) if expires_in_days else None,
            revoked_at=None,
            last_used_at=None,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
        self.workspace.ledger.append(
            "service.token_created",
            {
                "token_id": token_id,
                "user_id": user.id,
                "username": user.username,
                "role": role.value,
                "name": name,
                "expires_at": row.expires_at,
            },
        )
        return secret, self._token(row, user.username)

    def token_principal(self, secret: str) -> tuple[User, Role, str] | None:
        """(user, the token's role, token id) for a live token; ``None`` otherwise. A token
        whose role its user no longer may hand out (after a role change) is refused."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        now = utc_stamp(self._clock())
        with self._sessions() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == secret_sha256(secret)))
            if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
                return None
            user_row = session.get(ServiceUser, row.user_id)
            if user_row is None or not user_row.active:
                return None
            user = self._user(user_row, self._org_slug(session, user_row.org_id))
            role = Role(row.role)
            if role not in token_roles_for(user.role):
                return None
            row.last_used_at = now
            session.commit()
        return user, role, row.id

    def list_tokens(self, *, user: User | None = None, org_id: str | None = None) -> list[TokenInfo]:
        with self._sessions() as session:
            query = select(ApiToken, ServiceUser.username).join(ServiceUser, ServiceUser.id == ApiToken.user_id)
            if user is not None:
                query = query.where(ApiToken.user_id == user.id)
            if org_id is not None:
                query = query.where(ServiceUser.org_id == org_id)
            return [
                self._token(row, username) for row, username in session.execute(query.order_by(ApiToken.created_at))
            ]

    def revoke_token(self, token_id: str, *, actor: User, any_in_org: bool = False) -> TokenInfo:
        """Revoke a token: the actor's own, or (``any_in_org``, for admins) any token of their
        organisation. On the ledger."""
        with self._sessions() as session:
            found = session.execute(
                select(ApiToken, ServiceUser)
                .join(ServiceUser, ServiceUser.id == ApiToken.user_id)
                .where(ApiToken.id == token_id)
            ).first()
            if found is None:
                raise NotFound(f"no token {token_id}")
            row, owner = found
            if not (owner.id == actor.id or (any_in_org and owner.org_id == actor.org_id)):
                raise NotFound(f"no token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = utc_stamp(self._clock())
                session.commit()
                self.workspace.ledger.append(
                    "service.token_revoked",
                    {
                        "token_id": row.id,
                        "username": owner.username,
                        "by": actor.username,
                    },
                )
            return self._token(row, owner.username)

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def _org_slug(session: Session, org_id: str) -> str:
        org = session.get(Organisation, org_id)
        if org is None:
            raise RegistryError(f"organisation {org_id} is missing")
        return org.slug

    @staticmethod
    def _user(row: ServiceUser, org_slug: str) -> User:
        return User(row.id, row.username, row.display_name, Role(row.role), row.org_id, org_slug, row.active)

    @staticmethod
    def _token(row: ApiToken, username: str) -> TokenInfo:
        return TokenInfo(
            row.id, row.name, Role(row.role), username, row.created_at, row.expires_at, row.revoked_at, row.last_used_at
        )


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (CSRF tokens)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
