"""``python -m likeness.cli`` runs the same command line as the installed ``likeness`` script."""

from __future__ import annotations

import subprocess
import sys


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "likeness.cli", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Consent-first synthetic media" in result.stdout and "render" in result.stdout
