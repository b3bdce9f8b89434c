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
    # two workers' lines interleaved: TFLite's prefix, another's glog line, then its message
    b"INFO: W0000 00:00:1796683447.102623     394 inference_feedback_manager.cc:114] Feedback manager ...",
    b"Created TensorFlow Lite XNNPACK delegate for CPU.",
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


def test_a_process_whose_children_hold_its_stderr_exits_without_waiting_for_them():
    """Spawned processes (a scan's workers, multiprocessing's resource tracker) hold the filter's
    pipe as their stderr; the filter waited at exit for them to close it, so a scan stopped by
    Ctrl-C (and every command that started such a process) spent the join's 2 s more before it
    exited. It now forwards what is in the pipe and ends."""
    import os
    import signal
    import time

    probe = (
        "import os, subprocess, sys, time\n"
        "from likeness.cli.native_logs import filter_native_stderr\n"
        "filter_native_stderr()\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)\n"
        "os.write(2, b'error: the last line before exit\\n')\n"
        "print(child.pid, time.monotonic(), flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    exited = time.monotonic()
    child, ended = done.stdout.split()
    os.kill(int(child), signal.SIGTERM)
    assert done.returncode == 0, done.stderr
    assert b"error: the last line before exit" in done.stderr.splitlines()
    assert exited - float(ended) < 1.0  # 2.0 s and more while it waited for the child
