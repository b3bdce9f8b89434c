"""A workspace: folders, the registry database (migrated with Alembic), keys, outputs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.consent.anchor import (
    HEAD_TYPE,
    Anchor,
    AnchoredLedgerCheck,
    ledger_org_fingerprint,
    outside_workspace,
)
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.keys import (
    ORG_KEY_PINS,
    OrgKeyPins,
    fingerprint,
    load_private_key,
    public_raw,
    sign,
    write_missing_org_pins,
)
from likeness.consent.ledger import Ledger
from likeness.consent.marker_pins import MARKER_PINS, MarkerPins
from likeness.consent.policy import PolicyEngine
from likeness.consent.registry import Registry
from likeness.digests import leading_bytes
from likeness.errors import ConfigError, DatabaseRefused, RegistryError

MIGRATIONS = Path(__file__).parent / "migrations"


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # foreign keys + safe concurrent writers
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        _name_refused_writes(engine, sqlite_file(url) or url)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _name_refused_writes(engine: Engine, database: Path | str) -> None:
    @event.listens_for(engine, "handle_error")
    def _refused_write(context: ExceptionContext) -> None:
        # Every session's writes meet here: a file or folder the user may not write is one
        # line naming the database, not SQLAlchemy's traceback from wherever the commit was.
        reason = _file_refusal(context.original_exception)
        if reason is not None:
            raise DatabaseRefused(f"{database}: cannot write the database ({reason})") from None


#: SQLite's primary result codes for a database the system will not let it change: a read-only
#: file or folder (READONLY), an access refused (PERM), a full disk (FULL). A file it cannot open
#: at all is ``_opening``'s "cannot open the database".
_FILE_REFUSALS = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_FULL}


def _file_refusal(error: BaseException) -> str | None:
    """The driver's reason when ``error`` is SQLite refusing a change for the file's sake."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.OperationalError) or code is None or code & 0xFF not in _FILE_REFUSALS:
        return None
    return (str(error).strip().splitlines() or [str(getattr(error, "sqlite_errorname", code))])[0]


@contextlib.contextmanager
def _opening(url: str) -> Iterator[None]:
    """A database the workspace cannot open (a file it may not read, a server that refuses) is a
    ``ConfigError`` naming it (password hidden) and the driver's first line, not a traceback."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown reason"
        raise ConfigError(f"{shown_url(url)}: cannot open the database ({reason})") from None


def shown_url(url: str) -> str:
    """A database URL as messages and the terminal show it: the password as ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _read_only_sqlite(database: Path, *, wal_index_refused: bool) -> Engine:
    """An engine on an existing SQLite file that cannot change it (no pragmas; a write is a
    ``DatabaseRefused``), also where SQLite cannot open the WAL index (``_wal_index_refused``).

    ``mode=ro`` reads with the locks that keep a reader consistent while another process writes.
    A WAL database needs its ``-shm`` file for that, which SQLite cannot create in a read-only
    folder or mount. There, when no ``-wal`` file holds changes the database file lacks, the file
    is read as ``immutable`` (no ``-shm``, no locks): right while nobody writes it, as nobody can
    through a read-only mount; a snapshot is the copy to give an auditor, not a read-only view of
    a folder the service still writes. With such a ``-wal`` the file alone is not the database:
    ``ConfigError``, copy the workspace to a writable folder."""
    uri = database.resolve().as_uri()
    mode = "mode=ro"
    if wal_index_refused:
        wal = database.with_name(database.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise ConfigError(
                f"{database}: cannot read the database here: SQLite cannot open its -shm file (a "
                f"read-only folder or mount), and {wal.name} holds changes not yet in the database "
                "file; copy the workspace to a writable folder and give that as --home"
            )
        mode = "mode=ro&immutable=1"
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=30))
    _name_refused_writes(engine, database)
    return engine


def _wal_index_refused(database: Path) -> bool:
    """Whether SQLite reads ``database`` only without its WAL index: ``mode=ro`` cannot open it
    (SQLITE_CANTOPEN: the ``-shm`` file can be neither opened nor created) while the file itself
    reads. Any other failure is left to the engine, which names it."""
    uri = database.resolve().as_uri()
    try:
        _read_schema_version(f"{uri}?mode=ro")
        return False
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_CANTOPEN:
            return False
    try:
        _read_schema_version(f"{uri}?mode=ro&immutable=1")
    except sqlite3.Error:
        return False
    return True


def _read_schema_version(uri: str) -> None:
    # SQLite opens the file, and a WAL database's -shm, at the first read, not at connect.
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        connection.execute("PRAGMA schema_version").fetchone()


def enclosing_workspace(folder: Path) -> Path | None:
    """The workspace that ``folder`` lies inside (one of its parents holds a workspace's database
    and keys folder), or None: the mark of a command run from inside the workspace folder with
    the default ``--home`` (``./likeness-home``)."""
    for parent in folder.parents:
        if (parent / "keys").is_dir() and _is_sqlite_file(parent / "likeness.db"):
            return parent
    return None


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def _is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts as a SQLite database does: a stray empty
    ``likeness.db`` beside a ``keys`` folder (in /tmp, say) is no workspace, and must not stop
    ``init`` in every folder below it. Opened without blocking, so a FIFO is never waited on."""
    try:
        return leading_bytes(path, len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


@contextlib.contextmanager
def _init_lock(home: Path) -> Iterator[None]:
    """``flock`` on the home folder itself while the schema is made: two ``init`` at once would
    both create the first tables (SQLite runs DDL outside a transaction), and the later one stop
    with "table ... already exists"."""
    import fcntl  # POSIX, as the detectors lock

    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def _anchored_check(settings: Settings, ledger: Ledger, registry: Registry) -> AnchoredLedgerCheck | None:
    """The policy engine's check against the anchors in ``Settings.anchor_dirs`` (``None``
    without any). A folder inside the workspace proves nothing and is left out here; ``audit
    verify`` and ``audit anchor`` refuse it with a ConfigError."""
    folders = []
    for folder in settings.anchor_dirs:
        try:
            folders.append(outside_workspace(folder, settings.resolved_home))
        except ConfigError:
            continue
    if not folders:
        return None

    def org_public_key(org_id: str) -> str | None:  # heads made before heads carried their key
        try:
            return registry.get_org(org_id).public_key
        except RegistryError:
            return None

    return AnchoredLedgerCheck(folders, ledger, org_public_key=org_public_key)


@dataclass
class Workspace:
    settings: Settings
    engine: Engine
    registry: Registry
    ledger: Ledger
    policy: PolicyEngine

    @property
    def home(self) -> Path:
        return self.settings.resolved_home

    @property
    def keys_dir(self) -> Path:
        return self.settings.keys_dir

    @property
    def outputs_dir(self) -> Path:
        return self.settings.outputs_dir

    def session(self) -> Session:
        """A database session carrying what the workspace pins (``LedgerConsent`` needs it to
        count any organisation's key)."""
        return self.ledger.session()

    @classmethod
    def init(cls, settings: Settings) -> Workspace:
        """Create (or upgrade) the workspace: folders, database schema, key folder (0700)."""
        home = settings.resolved_home
        database = sqlite_file(settings.resolved_database_url)
        inside = enclosing_workspace(home)
        if inside is not None and not (database is not None and database.exists()):
            raise ConfigError(
                f"{home}: inside the workspace {inside}; a new workspace is not made inside another "
                f"(to use that one: --home {inside}, or set LIKENESS_HOME)"
            )
        for folder in (home, settings.keys_dir, settings.outputs_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise ConfigError(f"{folder}: exists and is not a folder; give --home a folder") from None
            except OSError as exc:
                raise ConfigError(f"{folder}: cannot create the workspace folder ({exc.strerror})") from None
        os.chmod(settings.keys_dir, 0o700)
        write_missing_org_pins(settings.keys_dir)  # (a workspace made before organisation key pins)
        engine = _engine(settings.resolved_database_url)
        with _init_lock(home), _opening(settings.resolved_database_url):
            migrate(engine)
        return cls._assemble(settings, engine)._references_sealed()

    @classmethod
    def open(cls, settings: Settings, *, read_only: bool = False) -> Workspace:
        """The workspace ``init`` made; refused (``ConfigError``) when there is none or its schema
        is old, and then nothing is created: connecting to a missing SQLite file would create
        it (and WAL mode its ``-wal`` and ``-shm``), so that file is checked first, read-only.

        ``read_only``: a SQLite database is opened so that nothing is written, which reads a
        workspace on a read-only mount or copy (``_read_only_sqlite``; a write is a
        ``DatabaseRefused``). Otherwise a database SQLite can read there but not open for
        writing is refused at once, before the command's work: ``DatabaseRefused``."""
        home = settings.resolved_home
        url = settings.resolved_database_url
        database = sqlite_file(url)
        if not home.is_dir() or (database is not None and not database.exists()):
            inside = None if home.exists() else enclosing_workspace(home)
            if inside is not None:
                raise ConfigError(
                    f"{home}: no workspace here, but this folder is inside the workspace {inside}: "
                    f"give --home {inside} (or set LIKENESS_HOME)"
                )
            raise ConfigError(f"{home}: no workspace here (create one with: likeness init)")
        wal_index_refused = database is not None and _wal_index_refused(database)
        probe = (
            _read_only_sqlite(database, wal_index_refused=wal_index_refused) if database is not None else _engine(url)
        )
        try:
            with _opening(url):
                current = schema_is_current(probe)
        finally:
            probe.dispose()  # an open reader would keep the -wal and -shm files after close()
        if not current:
            raise ConfigError(f"{url}: database schema is missing or old (run: likeness init)")
        if database is not None and read_only:
            return cls._assemble(settings, _read_only_sqlite(database, wal_index_refused=wal_index_refused))
        if wal_index_refused:
            raise DatabaseRefused(
                f"{database}: cannot write the database (SQLite cannot open or create its -shm file "
                "beside it: a read-only folder or mount; commands that only read still read it)"
            )
        return cls._assemble(settings, _engine(url))._references_sealed()

    def _references_sealed(self) -> Workspace:
        """This workspace, its ledger marked where reference events began to be sealed
        (``Registry.mark_reference_sealing``: once, by a process that reads an organisation's
        key). Every command that may write opens the workspace first, so the marker lands at the
        first one after an upgrade, before any ``subject photos attest`` can list what it bounds."""
        self.registry.mark_reference_sealing()
        return self

    @classmethod
    def _assemble(cls, settings: Settings, engine: Engine) -> Workspace:
        # every session carries the organisation keys and sealing markers the key folder pins
        pins = {ORG_KEY_PINS: OrgKeyPins(settings.keys_dir), MARKER_PINS: MarkerPins(settings.keys_dir)}
        session_factory = sessionmaker(engine, expire_on_commit=False, info=pins)
        ledger = Ledger(session_factory)
        registry = Registry(session_factory, ledger, settings.keys_dir)
        return cls(
            settings=settings,
            engine=engine,
            registry=registry,
            ledger=ledger,
            policy=PolicyEngine(session_factory, ledger, ledger_check=_anchored_check(settings, ledger, registry)),
        )

    def close(self) -> None:
        self.engine.dispose()

    # --- signed ledger head ----------------------------------------------------------------
    def signed_head(self, org: str | None = None) -> dict:
        """The ledger head (sequence number and hash) signed with the organisation's key, to be
        kept outside the workspace (``likeness audit anchor``) and compared later: it detects a
        truncated or rewritten tail. The head carries the public key that signed it, so it can be
        checked against the organisation's key on the ledger even if the database row changed."""
        organisation = self.registry.default_org(org or self.settings.org)
        key = load_private_key(self.registry.org_key_path(organisation.slug))
        public_hex = public_raw(key).hex()
        if fingerprint(bytes.fromhex(public_hex)) != ledger_org_fingerprint(self.ledger, organisation.id):
            raise ConfigError(
                f"{self.registry.org_key_path(organisation.slug)}: this key is not organisation "
                f"'{organisation.slug}''s key on the ledger; refusing to sign a ledger head with it"
            )
        seq, head_hash = self.ledger.head()
        body = {
            "type": HEAD_TYPE,
            "org_id": organisation.id,
            "org": organisation.slug,
            "seq": seq,
            "hash": head_hash,
            "at": utc_iso(now_utc()),
            "key_fingerprint": organisation.key_fingerprint,
            "public_key": public_hex,
        }
        return {**body, "signature": sign(key, canonical_bytes(body))}

    def check_head(self, head: dict) -> str | None:
        """``None`` if an exported head is authentic and still part of this ledger, else why not."""
        from likeness.consent.audit import check_head_file

        problems = check_head_file(self, Anchor("head", head))
        return "; ".join(p.message for p in problems) or None
