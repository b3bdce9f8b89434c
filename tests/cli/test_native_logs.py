"""The CLI drops MediaPipe/TFLite info and warning lines from stderr and keeps everything else."""

from __future__ import annotations

import subprocess
import sys

from likeness.cli.native_logs import is_native_noise

NOISE = [
    b"W0000 00:00:1795627204.512449    8488 inference_feedback_manager.cc:114] Feedback manager requires ...",
    b"I0000 00:00:1795627204.5 12 gl_context.cc:357] GL version: 3.2",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]
KEPT = [
    b"E0000 00:00:1795627204.512449    8488 calculator_graph.cc:887] INTERNAL: graph failed",
    b"error: not found: missing.jpg",
    b"WARNING: disk almost full",
    b"  W0000 indented is not a log line",
]


def test_only_native_info_and_warning_lines_count_as_noise():
    assert all(is_native_noise(line) for line in NOISE)
    assert not any(is_native_noise(line) for line in KEPT)


def test_filtered_process_forwards_python_output_and_native_errors():
    probe = (
        "import os, sys\n"
        "from likeness.cli.native_logs import filter_native_stderr\n"
        "filter_native_stderr()\n"
        f"os.write(2, b'\\n'.join({NOISE + KEPT!r}) + b'\\npartial')\n"
        "print('from python', file=sys.stderr)\n"
        "print('to stdout')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == b"to stdout\n"
    err = done.stderr.splitlines()
    assert b"from python" in err
    for line in KEPT:
        assert line in err
    assert b"partial" in err  # an unterminated last line is flushed at exit
    assert not any(is_native_noise(line) for line in err)
