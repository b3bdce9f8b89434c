"""The CLI shows the library's log records; neither configures the root logger."""

from __future__ import annotations

import logging

from likeness.cli import configure_logging


def test_cli_logging_is_the_library_loggers_not_the_roots() -> None:
    root = logging.getLogger()
    library = logging.getLogger("likeness")
    before = root.level, list(root.handlers), library.level, list(library.handlers)
    try:
        configure_logging()
        configure_logging()  # idempotent
        added = [h for h in library.handlers if h not in before[3]]
        assert len(added) == 1 and added[0].level == logging.WARNING
        assert (root.level, root.handlers) == (before[0], before[1])
    finally:
        for handler in [h for h in library.handlers if h not in before[3]]:
            library.removeHandler(handler)
        library.setLevel(before[2])
