"""Settings: the only reader of environment variables and config files.

Built once at the edge (CLI, service, tests) and passed down. Environment variables use the
``LIKENESS_`` prefix, e.g. ``LIKENESS_HOME=/data/likeness``; a list of folders is written like
``PATH`` (``LIKENESS_ANCHOR_DIRS=/mnt/audit:/srv/receipts``) or as a JSON list.
There is deliberately no setting that weakens consent checks or provenance labelling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from likeness import strict_json
from likeness.errors import ConfigError


def resolve_user_path(path: Path, hint: str) -> Path:
    """``path`` expanded and resolved; a ``ConfigError`` naming it, with ``hint``, when it is a
    symbolic link loop (which Python 3.11's ``resolve`` raises as a ``RuntimeError``)."""
    try:
        return path.expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"
        raise ConfigError(f"{path}: {reason}; {hint}") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIKENESS_", extra="forbid")

    home: Path = Field(default=Path("likeness-home"), description="workspace folder")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; defaults to SQLite at HOME/likeness.db")
    org: str | None = Field(default=None, description="default organisation (grantee) slug")
    workers: int = Field(default=2, ge=1, le=64, description="process pool size for scans")
    anchor_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders outside the workspace (another disk) where 'audit anchor' keeps signed "
        "ledger heads and 'audit verify' looks for the latest one",
    )

    # --- video decoding: per-file limits (likeness.media.video.budget), everywhere frames are read
    video_max_duration_s: float = Field(
        default=4 * 3600.0, gt=0, description="a video declaring a longer duration is refused before decoding (s)"
    )
    video_max_frames: int = Field(
        default=4 * 3600 * 60,
        ge=1,
        description="a video declaring (or holding) more frames is refused; 4 hours at 60 fps by default",
    )
    video_min_frame_bytes: int = Field(
        default=48,
        ge=0,
        description="beyond 10 minutes at 60 fps, a video must hold at least this many bytes per declared frame "
        "(a crafted file packs thousands of frames of a few bytes each); 0 turns the check off",
    )
    video_sample_max_frames: int = Field(
        default=40_000,
        ge=1,
        description="frames the decoder may produce while sampling one video (verification, scans), reference "
        "frames included; a 10-minute 60 fps clip with a single keyframe needs 36,000",
    )
    video_sample_max_decode_s: float = Field(
        default=180.0, gt=0, description="seconds of decoding sampling one video may take"
    )

    # --- the service (likeness serve / likeness worker) ----------------------------------
    upload_max_image_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="largest image upload the service accepts (bytes)"
    )
    upload_max_video_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024, ge=1, description="largest video upload the service accepts (bytes)"
    )
    public_max_image_bytes: int = Field(
        default=30 * 1024 * 1024, ge=1, description="largest image the public verification page accepts (bytes)"
    )
    public_max_video_bytes: int = Field(
        default=500 * 1024 * 1024, ge=1, description="largest video the public verification page accepts (bytes)"
    )
    public_verify_timeout_s: float = Field(
        default=60.0, gt=0, description="the public page gives up on an analysis after this long (a friendly message)"
    )
    public_link_days: int = Field(
        default=30, ge=1, le=365, description="a shared public result (/r/<sha256>) is kept this many days"
    )
    public_checks_per_minute: int = Field(
        default=10, ge=1, description="public verifications one client (IP address) may start per minute"
    )
    public_checks_waiting: int = Field(
        default=8,
        ge=0,
        description="public checks that may wait for the checker (it runs one at a time) before the next is told it is busy",
    )
    public_uploads_per_client: int = Field(
        default=2, ge=1, description="public uploads (checks and reports) one client (IP address) may send at once"
    )
    public_uploads_at_once: int = Field(
        default=16, ge=1, description="public uploads (checks and reports) in progress at once, all clients together"
    )
    uploads_per_user: int = Field(
        default=4, ge=1, description="uploads one signed-in user (or service key) may send at once"
    )
    uploads_at_once: int = Field(
        default=32, ge=1, description="uploads by signed-in users in progress at once, all users together"
    )
    upload_idle_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="an upload by a signed-in user that sends no byte for this long is dropped (408)",
    )
    upload_min_bytes_per_s: float = Field(
        default=32 * 1024,
        gt=0,
        description="an upload by a signed-in user bringing fewer bytes a second than this, averaged over "
        "upload_rate_window_s once that much time has passed, is dropped (408)",
    )
    upload_rate_window_s: float = Field(
        default=120.0, gt=0, description="the window upload_min_bytes_per_s is averaged over (seconds)"
    )
    public_upload_timeout_s: float = Field(
        default=600.0, gt=0, description="a public upload not received whole within this long is dropped (408)"
    )
    public_upload_min_bytes_per_s: float = Field(
        default=8 * 1024,
        gt=0,
        description="a public upload bringing fewer bytes a second than this, averaged over "
        "public_upload_rate_window_s once that much time has passed, is dropped (408)",
    )
    public_upload_rate_window_s: float = Field(
        default=30.0, gt=0, description="the window public_upload_min_bytes_per_s is averaged over (seconds)"
    )
    public_report_bytes_per_day: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=1,
        description="bytes of reported files (public reports) the service keeps per rolling 24 hours, all reporters together",
    )
    public_report_keep_days: int = Field(
        default=90,
        ge=0,
        le=3650,
        description="a reported file is deleted this many days after its case was closed with no action",
    )
    jobs_per_org: int = Field(
        default=2, ge=1, le=256, description="jobs of one organisation that run at the same time, across all workers"
    )
    job_lease_s: float = Field(
        default=30.0, gt=0, description="a running job whose worker sent no heartbeat for this long is taken over"
    )
    portal_origin: str = Field(
        default="http://localhost:8000",
        description="the rights-holder portal's web origin, exactly as the browser shows it (passkeys are bound "
        "to it; https in production, http only for localhost)",
    )
    portal_rp_id: str | None = Field(
        default=None, description="the passkeys' relying-party id (a host name); default: the origin's host"
    )
    render_checkpoint_frames: int = Field(
        default=250, ge=1, description="frames between a render job's checkpoints (a taken-over job resumes there)"
    )

    @field_validator("anchor_dirs", mode="before")
    @classmethod
    def _split_folder_list(cls, value: Any) -> Any:
        """``/a:/b`` (os.pathsep, like PATH) or a JSON list, as it comes from the environment."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return strict_json.loads(text)
        return [part for part in text.split(os.pathsep) if part.strip()]

    @property
    def resolved_home(self) -> Path:
        return resolve_user_path(self.home, "give --home a folder")

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

    @property
    def service_dir(self) -> Path:
        """The service's uploads and job folders (inside the workspace)."""
        return self.resolved_home / "service"
