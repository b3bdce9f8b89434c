"""Shared fixtures: a fresh workspace per test and a small consented world.

``consent_world``: organisation ``studio``; artist ``mina`` (a virtual idol owned by studio,
whose reference face is scikit-image's astronaut) with a grant to studio for all six uses;
performer ``jun`` (reference face: matplotlib's grace_hopper) with a release to studio.
Reference embeddings are not computed by default (it needs the face models); call
``consent_world.enroll_faces()`` or use the ``enrolled_world`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from likeness.config import Settings
from likeness.consent import USES, Authorization, ReleaseAuthorization
from likeness.consent.canonical import now_utc
from likeness.media.synthetic import astronaut as astronaut_rgb
from likeness.media.synthetic import grace_hopper as grace_hopper_rgb
from likeness.workspace import Workspace


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    ws = Workspace.init(settings)
    yield ws
    ws.close()


@dataclass
class ConsentWorld:
    workspace: Workspace
    tmp: Path
    org: str = "studio"
    artist: str = "mina"
    performer: str = "jun"
    grant_id: str = ""
    release_id: str = ""
    _enrolled: bool = field(default=False, repr=False)

    def authorize(self, use: str = "training") -> Authorization:
        return self.workspace.policy.authorize(self.artist, use, self.org)

    def authorize_release(self) -> ReleaseAuthorization:
        return self.workspace.policy.authorize_release(self.performer, self.org)

    def revoke_grant(self) -> None:
        self.workspace.registry.revoke_grant(self.grant_id, reason="test revocation")

    def revoke_release(self) -> None:
        self.workspace.registry.revoke_release(self.release_id, reason="test revocation")

    def portrait_path(self, who: str) -> Path:
        """A PNG of the subject's reference portrait inside the test's tmp folder."""
        import cv2

        rgb = astronaut_rgb() if who == self.artist else grace_hopper_rgb()
        path = self.tmp / f"{who}_reference.png"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return path

    def enroll_faces(self) -> None:
        """Store reference embeddings for mina (astronaut) and jun (grace_hopper)."""
        if self._enrolled:
            return
        from likeness.faceset import enroll_reference_photos

        for who in (self.artist, self.performer):
            report = enroll_reference_photos(self.workspace, who, [self.portrait_path(who)])
            assert report.added == 1, report
        self._enrolled = True


def build_consent_world(workspace: Workspace, tmp: Path) -> ConsentWorld:
    registry = workspace.registry
    registry.add_org("studio", "Studio Haneul")
    registry.add_subject("mina", "Mina", kind="virtual_idol", owner_org="studio")
    registry.add_subject("jun", "Jun", kind="performer")
    until = now_utc() + timedelta(days=30)
    grant_id = registry.issue_grant(
        "mina", "studio", USES, valid_until=until, purpose="test grant for all uses"
    )
    release_id = registry.issue_release("jun", "studio", valid_until=until, purpose="test release")
    return ConsentWorld(workspace=workspace, tmp=tmp, grant_id=grant_id, release_id=release_id)


@pytest.fixture
def consent_world(workspace: Workspace, tmp_path: Path) -> ConsentWorld:
    return build_consent_world(workspace, tmp_path)


@pytest.fixture
def enrolled_world(consent_world: ConsentWorld) -> ConsentWorld:
    consent_world.enroll_faces()
    return consent_world


@pytest.fixture
def astronaut() -> np.ndarray:
    return astronaut_rgb()


@pytest.fixture
def grace_hopper() -> np.ndarray:
    return grace_hopper_rgb()
