"""The agency's service: API (``/api/v1``), console, users and roles, durable jobs.

``create_app(settings)`` builds the FastAPI app over the CLI's workspace; ``likeness serve``
runs it on Uvicorn and ``likeness worker`` runs its jobs (docs/service.md).
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any):
    from likeness.service.app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
