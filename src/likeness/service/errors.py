"""Service errors: each one a problem type with an HTTP status (``likeness.service.problems``)."""

from __future__ import annotations

from likeness.errors import LikenessError


class ServiceError(LikenessError):
    """A request the service refuses. ``code`` is stable (the problem type's last segment);
    ``members`` are added to the problem's body: ``cause``, where one type has causes a visitor
    must be told apart (a HEIC photo among unreadable files, a busy checker among timeouts), is
    what the public page picks its sentence by."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, members: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.members = members or {}


class NotAuthenticated(ServiceError):
    status, code, title = 401, "not-authenticated", "Not signed in"


class LoginFailed(ServiceError):
    status, code, title = 401, "login-failed", "Wrong user name or password"


class Forbidden(ServiceError):
    status, code, title = 403, "forbidden", "Your role does not allow this"


class CsrfFailed(ServiceError):
    status, code, title = 403, "csrf-failed", "Missing or wrong CSRF token"


class NoFile(ServiceError):
    """An upload form sent without a file (a browser sends its empty file field as ``filename=""``)."""

    status, code, title = 400, "no-file", "No file chosen"


class NotFound(ServiceError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(ServiceError):
    status, code, title = 409, "conflict", "Conflict"


class AlreadyDecided(Conflict):
    """A holder's ceremony for a request already signed or declined, or a grant already revoked
    (another tab, the back button): the portal's page reloads to show the decision."""

    status, code, title = 409, "already-decided", "Already decided"


class UploadTooLarge(ServiceError):
    status, code, title = 413, "upload-too-large", "Upload too large"


class UploadTimedOut(ServiceError):
    status, code, title = 408, "upload-timeout", "The upload took too long"


class UnsupportedMedia(ServiceError):
    """Member ``cause`` ``heic``: an iPhone's photo, for which the public page says how to share
    it as JPEG."""

    status, code, title = 415, "unsupported-media", "Not an image or video this service reads"


class EmptyFile(ServiceError):
    """A zero-byte upload: a download or a phone's share that did not finish."""

    status, code, title = 400, "empty-file", "The file is empty"


class AnalysisTimedOut(ServiceError):
    """Member ``cause`` ``busy``: the file was never analysed, the checker being busy with
    other visitors' files (a shorter clip would not help)."""

    status, code, title = 503, "analysis-timeout", "The analysis took too long"


class ServiceKeyUnusable(ServiceError):
    """One of the service's own key files cannot be used (readable by others, not a regular
    file, the wrong length): the server's fault, never the client's. The message names the file
    under the workspace's keys folder, not the server's full path."""

    status, code, title = 503, "service-key-unusable", "The service cannot use one of its keys"


class RateLimited(ServiceError):
    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(
        self, message: str, *, retry_after_s: int, first: bool = True, members: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))}, members=members)
        self.retry_after_s = retry_after_s
        #: The first refusal of this key's current window (later ones are not worth recording).
        self.first = first


class InvalidField(ServiceError):
    """A form field whose value the route does not take (the JSON bodies' 422, for multipart)."""

    status, code, title = 422, "invalid-request", "Invalid request"
