from __future__ import annotations

import pytest

from likeness.workspace import Workspace


@pytest.fixture
def two_agencies(workspace: Workspace) -> Workspace:
    """A workspace shared by two agencies, haneul and byeol, each with its own pinned key."""
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    workspace.registry.add_org("byeol", "Byeol Entertainment")
    return workspace
