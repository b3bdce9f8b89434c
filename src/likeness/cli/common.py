"""Shared plumbing for CLI commands: settings from the root callback, one console, error mapping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.console import Console

from likeness.config import Settings
from likeness.errors import ConsentError, LikenessError

# soft_wrap: never break printed paths and ids across lines (tables still fit the terminal).
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def settings_from(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def open_workspace(ctx: typer.Context):  # -> Workspace (import kept lazy for fast --help)
    from likeness.workspace import Workspace

    return Workspace.open(settings_from(ctx))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn product errors into a one-line message and exit code 1 (2 for consent refusals)."""
    try:
        yield
    except ConsentError as exc:
        err_console.print(f"[bold red]refused[/] ({exc.reason}): {exc}")
        raise typer.Exit(1) from None
    except LikenessError as exc:
        fail(str(exc))
