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
    │   │   └── DataDirBusyError       another emulator serves this data folder
    │   ├── StorageError               remote state or video store refused, missing or unreachable
    │   │   └── CorruptObjectError     a stored video does not match its name (size, sha256)
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
    ├── LocalResourceError             disk full, permission denied, read-only: names the path
    ├── TemplateBudgetError (internal) a template's work or output ran out of budget; the
    │                                  renderer words it as a TemplateError naming the video
    └── MediaCheckError (internal)     a file is not a complete video; the client words it
                                       as a DownloadError

    Terminated (a KeyboardInterrupt)   SIGTERM: stop as Ctrl-C does
    UnsuitableFile (internal)          not a small regular file; always reported as a
    ├── NotRegularFile                 ManifestError or TemplateError naming the file
    └── FileTooLarge

Any exception outside these is a crash (a bug): exit code 4 and a crash log
(:mod:`avatarflow.crashlog`). Not part of the tree, on purpose: private control-flow
signals that never leave their module (``fastpath.NeedsNodes``, ``incremental._Fallback``,
``render._TemplateRefused``, which Jinja's loader protocol needs as a ``TemplateNotFound``),
and the emulator's internal errors (``emulator.wire.ApiError`` and its kin): the emulator
stands in for the service, and what it says reaches avatarflow only as HTTP answers.

The CLI maps families to exit codes in one place (``avatarflow.cli``). Messages never
carry secrets: service messages pass through :func:`avatarflow.secrets.redact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack


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


class DataDirBusyError(ConfigError):
    """Another running emulator already serves this data folder."""


class CorruptObjectError(StorageError):
    """A stored object does not match its name (size or sha256)."""


class AnswerDetails(TypedDict, total=False):
    """What an error answer of the service said beside its message."""

    status_code: int | None
    code: str | None
    request_id: str | None


class _Answered:
    """An error that keeps the :class:`AnswerDetails` of an answer (None: not given)."""

    status_code: int | None
    code: str | None
    request_id: str | None

    def _keep(self, details: AnswerDetails) -> str:
        """Keep ``details``; returns the request-id suffix of the error's message."""
        self.status_code = details.get("status_code")
        self.code = details.get("code")
        self.request_id = details.get("request_id")
        return f" (request id {self.request_id})" if self.request_id else ""


class ServiceError(_Answered, AvatarflowError):
    """The service answered with an error status."""

    def __init__(self, message: str, **details: Unpack[AnswerDetails]) -> None:
        self.message = message
        suffix = self._keep(details)
        status = f"HTTP {self.status_code}" if self.status_code else "service error"
        parts = [status, self.code] if self.code else [status]
        super().__init__(" ".join(parts) + f": {message}{suffix}")


class AuthError(ServiceError):
    """401/403: the key or token was refused."""


class BadRequestError(ServiceError):
    """400: the service rejected the request."""


class JobExistsError(BadRequestError):
    """A GA create named an id that already exists: adopt that job instead."""

    def __init__(self, message: str, *, job_id: str, **details: Unpack[AnswerDetails]) -> None:
        self.job_id = job_id
        super().__init__(message, **details)


class NotFoundError(ServiceError):
    """404: no such job (deleted, expired, never created)."""


class ThrottledError(ServiceError):
    """429: too many requests."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **details: Unpack[AnswerDetails]
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **details)


class ServerError(ServiceError):
    """5xx: the service failed."""


class TransportError(AvatarflowError):
    """The connection failed, timed out or was dropped."""


class CreateOutcomeUnknown(_Answered, TransportError):
    """A create may or may not have made a job (5xx, timeout or drop after sending).

    Never retried blindly, because a second create would be paid twice. ``job_id`` is
    the id to look up (GA, where the client chose it); it is ``None`` on the preview
    surface, where the job must be found by listing.
    """

    def __init__(
        self, message: str, *, job_id: str | None, **details: Unpack[AnswerDetails]
    ) -> None:
        self.job_id = job_id
        super().__init__(message + self._keep(details))


class DownloadError(AvatarflowError):
    """A result could not be downloaded intact."""


class ResultUnavailableError(_Answered, DownloadError):
    """A result URL answered 403 (``reason="expired"``) or 404/410 (``reason="gone"``).

    Both mean the same file will not come back by retrying this URL: fetch the job
    again for a fresh URL, or re-submit if the job itself is gone.
    """

    def __init__(
        self, message: str, *, reason: Literal["expired", "gone"], **details: Unpack[AnswerDetails]
    ) -> None:
        self.reason = reason
        super().__init__(message + self._keep(details))

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


class TemplateBudgetError(AvatarflowError):
    """A template asked for more work or output than any video needs; ``message`` names
    what ran out (the renderer adds the template and the video)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class MediaCheckError(AvatarflowError):
    """The file is not a complete video of the expected kind; the message says why."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a cancelled CI job, a service manager): stop as Ctrl-C does, so
    every write in progress is finished or undone and no temp file stays behind."""


class UnsuitableFile(Exception):
    """The path names something that is not a small enough regular file."""


class NotRegularFile(UnsuitableFile):
    """A directory, FIFO, socket or device."""


class FileTooLarge(UnsuitableFile):
    """More bytes than the caller accepts."""
