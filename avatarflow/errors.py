"""The one exception tree of avatarflow.

    AvatarflowError
    ├── UserError                      tell the user, exit 1
    │   ├── ManifestError              manifest file: YAML, schema, ids, text files
    │   ├── TemplateError              Jinja template or rendered SSML
    │   ├── RequestValidationError     request body breaks a documented service rule
    │   ├── StateError                 state file corrupt, newer format, other lineage
    │   │   ├── StalePlanError         state changed since the plan was made
    │   │   │   └── PlanChangedError       a job the plan relied on is gone: nothing paid
    │   │   └── ConcurrentWriteError   another writer changed the remote state (ETag mismatch)
    │   ├── LockError                  another process holds the state lock
    │   │   └── LockUnsupported        the platform has no file lock
    │   ├── ConfigError                credentials / endpoint / CLI usage
    │   ├── StorageError               remote state storage refused, missing or unreachable
    │   ├── SelectionError             --only/--exclude/--replace name unknown videos
    │   ├── BudgetError                the plan costs more than --max-cost/--max-renders/budget
    │   └── MediaError                 a local video cannot be read, joined or framed
    ├── ServiceError                   the speech service answered with an error
    │   ├── AuthError                  401 / 403
    │   ├── BadRequestError            400
    │   │   └── JobExistsError         a GA create named an existing id: adopt it
    │   ├── NotFoundError              404
    │   ├── ThrottledError             429 (carries retry_after)
    │   ├── ServerError                5xx
    │   └── UntrustedAnswerError       an answer that does not fit the request
    ├── TransportError                 the connection failed or dropped
    │   └── CreateOutcomeUnknown       a create may have made a job: look it up
    ├── DownloadError                  a result download was short, expired or gone
    │   └── ResultUnavailableError     a result URL expired (403) or is gone (404/410)
    ├── JobTimeoutError                a job did not finish within --timeout
    └── LocalResourceError             disk full, permission denied, read-only: names the path

    Terminated (a KeyboardInterrupt)   SIGTERM: stop as Ctrl-C does
    UnsuitableFile (internal)          not a small regular file; always reported as a
    ├── NotRegularFile                 ManifestError or TemplateError naming the file
    └── FileTooLarge

Any exception outside these is a crash (a bug): exit code 4 and a crash log
(:mod:`avatarflow.crashlog`).

The CLI maps families to exit codes in one place (``avatarflow.cli``). Messages never
carry secrets: service messages pass through :func:`avatarflow.secrets.redact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


class AvatarflowError(Exception):
    """Root of every error avatarflow raises on purpose."""


class UserError(AvatarflowError):
    """Something the user can fix; printed as one line, exit code 1."""


@dataclass(frozen=True)
class Location:
    """Where in which file a problem sits; ``file`` is relative to the manifest."""

    file: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
        if self.key:
            text += f": {self.key}"
        return text


class LocatedError(UserError):
    """A user error tied to a file, a line and a key path."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ManifestError(LocatedError, ValueError):
    """The manifest (or a file it names) is not valid."""


class TemplateError(LocatedError, ValueError):
    """A template failed to render, or rendered SSML that the service would reject."""


class RequestValidationError(LocatedError, ValueError):
    """The request body for a video breaks a rule the service enforces."""


class StateError(LocatedError):
    """The state file cannot be read or must not be written."""


class StalePlanError(StateError):
    """The state changed between plan and apply."""


class PlanChangedError(StalePlanError):
    """What the confirmed plan relied on is no longer so (a job deleted early): apply
    stopped before paying for the difference."""


class ConcurrentWriteError(StateError):
    """Another writer changed the remote state since it was read; nothing was overwritten."""


class LockError(UserError):
    """The state lock is held by another process."""


class LockUnsupported(LockError, OSError):
    """This platform has no file lock that avatarflow knows (neither flock nor msvcrt)."""


class ConfigError(UserError):
    """Missing or inconsistent configuration (credentials, endpoint, options)."""


class StorageError(UserError):
    """The storage holding a remote state refused a request, is missing or unreachable."""


class SelectionError(UserError):
    """A video selection names videos the manifest does not have."""


class BudgetError(UserError):
    """The plan would cost more, or render more videos, than the limits allow."""


class MediaError(UserError):
    """ffmpeg could not read, join or frame a local video (review, export)."""


class ServiceError(AvatarflowError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        parts = [f"HTTP {status_code}" if status_code else "service error"]
        if code:
            parts.append(code)
        text = " ".join(parts) + f": {message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)


class AuthError(ServiceError):
    """401/403: the key or token was refused."""


class BadRequestError(ServiceError):
    """400: the service rejected the request."""


class JobExistsError(BadRequestError):
    """A GA create named an id that already exists: adopt that job instead."""

    def __init__(self, message: str, *, job_id: str, **details: Any) -> None:
        self.job_id = job_id
        super().__init__(message, **details)


class NotFoundError(ServiceError):
    """404: no such job (deleted, expired, never created)."""


class ThrottledError(ServiceError):
    """429: too many requests."""

    def __init__(self, message: str, *, retry_after: float | None = None, **details: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **details)


class ServerError(ServiceError):
    """5xx: the service failed."""


class TransportError(AvatarflowError):
    """The connection failed, timed out or was dropped."""


class CreateOutcomeUnknown(TransportError):
    """A create may or may not have made a job (5xx, timeout or drop after sending).

    Never retried blindly, because a second create would be paid twice. ``job_id`` is
    the id to look up (GA, where the client chose it); it is ``None`` on the preview
    surface, where the job must be found by listing.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        super().__init__(message + (f" (request id {request_id})" if request_id else ""))


class DownloadError(AvatarflowError):
    """A result could not be downloaded intact."""


class ResultUnavailableError(DownloadError):
    """A result URL answered 403 (``reason="expired"``) or 404/410 (``reason="gone"``).

    Both mean the same file will not come back by retrying this URL: fetch the job
    again for a fresh URL, or re-submit if the job itself is gone.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: Literal["expired", "gone"],
        status_code: int,
        code: str | None = None,
    ) -> None:
        self.reason = reason
        self.status_code = status_code
        self.code = code
        super().__init__(message)

    @property
    def expired(self) -> bool:
        return self.reason == "expired"


class JobTimeoutError(AvatarflowError):
    """A job did not reach a final status in time."""


class UntrustedAnswerError(ServiceError):
    """The service answered, but not to what was asked: another job's id, a status
    outside the documented set, a body too large, a video that is not one.

    An error for that video only, never a recorded success nor a reason to pay again:
    its record keeps the state that lets the next apply adopt the job by id or hash.
    """


class LocalResourceError(AvatarflowError):
    """A local write was refused (no space, no permission, read-only file system).

    ``path`` is relative to the manifest; the rest of the run goes on.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a cancelled CI job, a service manager): stop as Ctrl-C does, so
    every write in progress is finished or undone and no temp file stays behind."""


class UnsuitableFile(Exception):
    """The path names something that is not a small enough regular file."""


class NotRegularFile(UnsuitableFile):
    """A directory, FIFO, socket or device."""


class FileTooLarge(UnsuitableFile):
    """More bytes than the caller accepts."""
