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
import select
import sys
import threading

#: absl/glog info and warning lines, and TFLite's two start-up notices. TFLite writes its
#: "INFO: " prefix and its message in two writes, so where several processes share the pipe
#: (a scan's workers) another's glog line can come between them: either half alone is noise too.
NATIVE_NOISE = re.compile(
    rb"^(?:(?:INFO|WARNING): )?"
    rb"(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|Created TensorFlow Lite XNNPACK delegate"
    rb"|All log messages before absl::InitializeLog\(\) is called)"
)


def is_native_noise(line: bytes) -> bool:
    return NATIVE_NOISE.match(line) is not None


def _forward(read_fd: int, out_fd: int, wake_fd: int) -> None:
    """Forward what comes on ``read_fd`` but the noise until a byte comes on ``wake_fd`` (the
    process is exiting) and nothing more is waiting in the pipe. Not until the pipe's end:
    processes started from this one (a scan's workers, multiprocessing's resource tracker) hold
    its write end as their stderr, and waiting for them to close it held every such command at
    its exit for the 2 s the join allows."""
    pending = b""
    exiting = False
    try:
        while True:
            watched = [read_fd] if exiting else [read_fd, wake_fd]
            ready, _, _ = select.select(watched, [], [], 0 if exiting else None)
            if read_fd in ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_native_noise(line))
                if kept:
                    os.write(out_fd, kept)
            elif wake_fd in ready:
                exiting = True
            else:  # exiting, and nothing more was written before
                break
    except (OSError, ValueError):
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
    sys.stderr = open(  # noqa: SIM115 - the process's stderr for the rest of its life
        original,
        "w",
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
        buffering=1,
        closefd=False,
    )
    wake_read, wake_write = os.pipe()
    thread = threading.Thread(
        target=_forward, args=(read_fd, original, wake_read), name="native-log-filter", daemon=True
    )
    thread.start()

    def _drain() -> None:
        # What this process wrote is in the pipe by now: the thread forwards it, then ends.
        try:
            sys.stderr.flush()
            os.dup2(original, 2)
            os.write(wake_write, b"x")
        except OSError:
            return
        thread.join(timeout=2.0)

    atexit.register(_drain)
    filter_native_stderr.installed = True  # type: ignore[attr-defined]
