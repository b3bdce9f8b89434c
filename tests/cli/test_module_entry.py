"""``python -m likeness`` and ``python -m likeness.cli`` run the same command line as the installed ``likeness`` script."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["likeness.cli", "likeness"])
def test_python_dash_m_runs_the_cli(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Consent-first synthetic media" in result.stdout and "render" in result.stdout
