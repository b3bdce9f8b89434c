"""Settings: the only reader of environment variables and config files.

Built once at the edge (CLI, service, tests) and passed down. Environment variables use the
``LIKENESS_`` prefix, e.g. ``LIKENESS_HOME=/data/likeness``.
There is deliberately no setting that weakens consent checks or provenance labelling.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIKENESS_", extra="forbid")

    home: Path = Field(default=Path("likeness-home"), description="workspace folder")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite at HOME/likeness.db"
    )
    org: str | None = Field(default=None, description="default organisation (grantee) slug")
    workers: int = Field(default=2, ge=1, le=64, description="process pool size for scans")

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'likeness.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.resolved_home / "keys"

    @property
    def outputs_dir(self) -> Path:
        return self.resolved_home / "outputs"
