"""The ONNX export's torchvision notices do not reach the terminal of a CLI user."""

from __future__ import annotations

import subprocess
import sys

import pytest

EXPORT = """
import sys
{setup}
from likeness.models import create_model
from likeness.train.export import _onnx_bytes

model = create_model("df_tiny", resolution=32).eval()
_onnx_bytes(model, 32)
print("exported", file=sys.stderr)
"""


def _export_stderr(setup: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", EXPORT.format(setup=setup)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
def test_export_under_the_cli_prints_no_torchvision_notices() -> None:
    stderr = _export_stderr("from likeness.cli import _quiet_third_party_logs\n_quiet_third_party_logs()")
    assert "exported" in stderr
    assert "torchvision" not in stderr, stderr
