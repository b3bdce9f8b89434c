"""Drop the face models' native info/warning log lines from the CLI's stderr.

MediaPipe's TFLite graphs log through absl straight to file descriptor 2 ("INFO: Created
TensorFlow Lite XNNPACK delegate", "W0000 ... inference_feedback_manager.cc:114] ...") and no
environment variable turns that off. For the CLI only, descriptor 2 becomes a pipe read by a
thread that forwards everything except those lines; Python's own ``sys.stderr`` (Rich progress,
error messages) writes to the original descriptor directly and never passes through the filter.
Native errors (``E``/``F`` lines) and any other output are forwarded unchanged.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

#: absl/glog info and warning lines, and TFLite's two start-up notices.
NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


def is_native_noise(line: bytes) -> bool:
    return NATIVE_NOISE.match(line) is not None


def _forward(read_fd: int, out_fd: int) -> None:
    pending = b""
    try:
        while chunk := os.read(read_fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_noise(line))
            if kept:
                os.write(out_fd, kept)
    except OSError:
        pass
    finally:
        if pending and not is_native_noise(pending):
            try:
                os.write(out_fd, pending)
            except OSError:
                pass
        os.close(read_fd)


def filter_native_stderr() -> None:
    """Install the filter for this process (idempotent; a no-op where descriptors can't be swapped)."""
    if getattr(filter_native_stderr, "installed", False):
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
    except (OSError, AttributeError, ValueError):
        return
    sys.stderr = open(
        original,
        "w",
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",  # noqa: SIM115
        errors="backslashreplace",
        buffering=1,
        closefd=False,
    )
    thread = threading.Thread(target=_forward, args=(read_fd, original), name="native-log-filter", daemon=True)
    thread.start()

    def _drain() -> None:
        # Closing our end of the pipe lets the thread see EOF once every writer is done.
        try:
            sys.stderr.flush()
            os.dup2(original, 2)
        except OSError:
            return
        thread.join(timeout=2.0)

    atexit.register(_drain)
    filter_native_stderr.installed = True  # type: ignore[attr-defined]
