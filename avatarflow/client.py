"""Async client of the Azure AI Speech avatar batch synthesis REST API, both surfaces.

* GA (``2024-08-01``, same shape as ``2024-04-15-preview``): ``PUT/GET/DELETE
  /avatar/batchsyntheses/{id}?api-version=…``; the client chooses the job id.
* Preview (``3.1-preview1``): ``POST/GET/DELETE
  /api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar[/{id}]``; the server does.

One :class:`SpeechClient` holds one connection pool for a whole run. Jobs come back as
:class:`RemoteJob`, the same shape for both surfaces. Failures raise the exception tree
of :mod:`avatarflow.errors`, with three precise cases the runner acts on:
:class:`CreateOutcomeUnknown`, :class:`JobExistsError` and :class:`ResultUnavailableError`
(re-exported here). The retry rules live in :mod:`avatarflow.retry`.

No message raised or logged here carries a key, a token or a SAS signature: service
texts pass through :func:`avatarflow.secrets.redact`, URLs through
:func:`avatarflow.secrets.strip_query_secrets`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from .answers import (
    MAX_ANSWER_BYTES,
    MAX_LIST_PAGES,
    canonical_status,
    check_created,
    check_got,
    read_capped,
    readable_id,
    shown,
)
from .credentials import BearerTokenCredential, Credential, KeyCredential, entra_credential
from .errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    CreateOutcomeUnknown,
    DownloadError,
    JobExistsError,
    MediaCheckError,
    NotFoundError,
    ResultUnavailableError,
    ServerError,
    ServiceError,
    ThrottledError,
    TransportError,
    UntrustedAnswerError,
)
from .mediacheck import check_media
from .pacing import CreatePacer
from .retry import (
    RetryPolicy,
    is_retryable_create,
    is_retryable_read,
    never_sent,
    retry_after_from_headers,
    retrying,
)
from .secrets import redact, redact_logger, strip_query_secrets

__all__ = [
    "API_VERSIONS",
    "GA_API_VERSION",
    "PREVIEW_API_VERSION",
    "BearerTokenCredential",
    "CreateOutcomeUnknown",
    "Credential",
    "JobExistsError",
    "KeyCredential",
    "RemoteJob",
    "ResultUnavailableError",
    "RetryPolicy",
    "ServiceConfig",
    "SpeechClient",
    "entra_credential",
]

log = logging.getLogger("avatarflow.client")
redact_logger("httpx")  # it logs each request's full URL, result signatures included

GA_API_VERSION = "2024-08-01"
PREVIEW_API_VERSION = "3.1-preview1"
API_VERSIONS = (GA_API_VERSION, "2024-04-15-preview", PREVIEW_API_VERSION)

ENV_ENDPOINT = "AZURE_SPEECH_ENDPOINT"
ENV_REGION = "AZURE_SPEECH_REGION"
ENV_KEY = "AZURE_SPEECH_KEY"

_GA_ROOT = "/avatar/batchsyntheses"
_PREVIEW_ROOT = "/api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar"
_MAX_PAGE_SIZE = 100  # both surfaces cap a page at 100 jobs
_CHUNK = 1024 * 1024
_MAX_MESSAGE = 800
_TICKS_PER_MS = 10_000  # the preview reports durations in 100-ns ticks
_USER_AGENT = "avatarflow/0.1"

Surface = Literal["ga", "preview"]
ProgressCallback = Callable[[int, int | None], None]
"""Called as ``on_progress(bytes_written, total_bytes_or_None)`` after each chunk."""
UrlRefresh = Callable[[DownloadError], Awaitable[tuple[str, int | None] | None]]
"""Given why a download failed, a fresh result URL and expected size, or None to stop."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service is, how to authenticate, and how patient to be."""

    endpoint: str
    """Base URL without the API path, e.g. ``https://westeurope.api.cognitive.microsoft.com``."""
    credential: Credential = field(repr=False)
    api_version: str = GA_API_VERSION
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    """Also the longest silence tolerated inside a download."""
    max_connections: int = 32
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        _check_api_version(self.api_version)
        object.__setattr__(self, "endpoint", _check_endpoint(self.endpoint))

    @property
    def surface(self) -> Surface:
        return "preview" if self.api_version == PREVIEW_API_VERSION else "ga"

    @classmethod
    def from_env(
        cls,
        api_version: str = GA_API_VERSION,
        region: str | None = None,
        endpoint: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> ServiceConfig:
        """Configuration from explicit values, else ``AZURE_SPEECH_*`` variables.

        Explicit ``endpoint``/``region`` win over the environment; an endpoint wins over
        a region. Without ``AZURE_SPEECH_KEY`` a Microsoft Entra token is used.
        """
        env = os.environ if environ is None else environ
        _check_api_version(api_version)
        base = _resolve_endpoint(api_version, region, endpoint, env)
        key = env.get(ENV_KEY, "").strip()
        credential: Credential = KeyCredential(key) if key else entra_credential()
        return cls(
            endpoint=base,
            credential=credential,
            api_version=api_version,
            retry=retry or RetryPolicy(),
        )


def _check_api_version(api_version: str) -> None:
    if api_version not in API_VERSIONS:
        raise ConfigError(
            f"unsupported api version {api_version!r}; use one of {', '.join(API_VERSIONS)}"
        )


def _resolve_endpoint(
    api_version: str, region: str | None, endpoint: str | None, env: Mapping[str, str]
) -> str:
    if endpoint:
        return endpoint
    if region:
        return _regional_endpoint(api_version, region)
    if env.get(ENV_ENDPOINT, "").strip():
        return env[ENV_ENDPOINT].strip()
    if env.get(ENV_REGION, "").strip():
        return _regional_endpoint(api_version, env[ENV_REGION])
    raise ConfigError(
        f"no speech service configured: set {ENV_ENDPOINT} (a base URL) or "
        f"{ENV_REGION} (e.g. westeurope), and {ENV_KEY}"
    )


def _regional_endpoint(api_version: str, region: str) -> str:
    name = region.strip().lower().replace(" ", "")
    if not re.fullmatch(r"[a-z][a-z0-9]{1,39}", name):
        raise ConfigError(f"{region!r} is not an Azure region name (e.g. westeurope)")
    if api_version == PREVIEW_API_VERSION:
        return f"https://{name}.customvoice.api.speech.microsoft.com"
    return f"https://{name}.api.cognitive.microsoft.com"


def _check_endpoint(url: str) -> str:
    parts = urlsplit(url.strip())
    shown = redact(strip_query_secrets(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint {shown!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"endpoint {shown!r} must be a plain base URL (no user, query or #)")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        # A key sent over plain http to another machine would travel in clear text.
        raise ConfigError(f"endpoint {shown!r}: plain http is only allowed for loopback hosts")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what decides whether credentials may go there."""
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), parsed.port or default


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class RemoteJob:
    """One batch synthesis job as the service reports it, the same for both surfaces.

    ``status`` is the documented spelling of a documented status whatever the service's
    casing (``"failed"`` is ``Failed``); any other value is carried as the service spelt
    it, for the caller to wait out and then refuse. URLs are kept out of ``repr`` (they carry SAS
    signatures); ``raw`` is the full response object.
    """

    id: str
    status: str
    created: datetime | None = None
    last_action: datetime | None = None
    result_url: str | None = field(default=None, repr=False)
    summary_url: str | None = field(default=None, repr=False)
    size_in_bytes: int | None = None
    duration_ms: int | None = None
    billing: Mapping[str, Any] = field(default_factory=dict, hash=False)
    error_code: str | None = None
    error_message: str | None = None
    description: str | None = None
    custom_properties: Mapping[str, str] = field(default_factory=dict, hash=False)
    display_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)

    @property
    def is_final(self) -> bool:
        """Succeeded or Failed: the job will not change any more (until it expires)."""
        return self.status.casefold() in ("succeeded", "failed")

    @property
    def succeeded(self) -> bool:
        return self.status.casefold() == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status.casefold() == "failed"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RemoteJob:
        """Normalise a GA or preview job object; missing or odd fields become ``None``."""
        props = _mapping(data.get("properties"))
        outputs = _mapping(data.get("outputs"))
        error = _mapping(props.get("error")) or _mapping(data.get("error"))
        message = _text(error.get("message"))
        return cls(
            id=_text(data.get("id")) or "",
            status=canonical_status(data.get("status")) or _text(data.get("status")) or "Unknown",
            created=_timestamp(data.get("createdDateTime")),
            last_action=_timestamp(data.get("lastActionDateTime")),
            result_url=_text(outputs.get("result")),
            summary_url=_text(outputs.get("summary")),
            size_in_bytes=_integer(props.get("sizeInBytes", props.get("audioSize"))),
            duration_ms=_duration_ms(props),
            billing=dict(_mapping(props.get("billingDetails"))),
            error_code=_text(error.get("code")),
            error_message=redact(message) if message else None,
            description=_text(data.get("description")),
            custom_properties={
                str(k): str(v) for k, v in _mapping(data.get("customProperties")).items()
            },
            display_name=_text(data.get("displayName")),
            raw=dict(data),
        )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return str(value) if value is not None and value != "" else None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value) if isinstance(value, float | str) else math.nan
    except ValueError:
        return None
    return int(number) if math.isfinite(number) else None


def _timestamp(value: object) -> datetime | None:
    """GA writes 7 fractional digits and sometimes drops the ``Z``; both are UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_ISO_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


def _duration_ms(props: Mapping[str, Any]) -> int | None:
    millis = _integer(props.get("durationInMilliseconds"))
    if millis is not None:
        return millis
    ticks = _integer(props.get("durationInTicks"))
    if ticks is not None:
        return ticks // _TICKS_PER_MS
    match = _ISO_DURATION.match(str(props.get("duration") or ""))
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return round((hours * 3600 + minutes * 60 + seconds) * 1000)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class _Request:
    kind: str  # key of request_counts
    method: str
    url: str
    what: str  # names the operation in messages, e.g. "get job 'x'"
    job_id: str | None = None
    body: Mapping[str, Any] | None = None


class SpeechClient:
    """The REST client; use as ``async with SpeechClient(config) as client: ...``.

    ``request_counts`` counts HTTP requests by kind (create, get, list, delete,
    download), retries included: that is what the service sees and throttles.
    ``create_pacer`` spaces creates once the service has throttled one (see
    :mod:`avatarflow.pacing`); callers keep one create in flight at a time.
    ``transport`` replaces the network, for injecting faults in tests.
    """

    def __init__(
        self, config: ServiceConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.request_counts: Counter[str] = Counter()
        self.create_pacer = CreatePacer()
        self._origin = _origin(config.endpoint)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            limits=httpx.Limits(max_connections=config.max_connections),
            headers={"User-Agent": _USER_AGENT},
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- operations

    async def create(self, job_id: str, body: Mapping[str, Any]) -> RemoteJob:
        """Submit a job. GA: ``PUT`` under ``job_id``. Preview: ``POST``; the server picks
        the id (``job_id`` then only names the job in messages).

        Raises :class:`CreateOutcomeUnknown` when the job may exist without us knowing,
        and :class:`JobExistsError` when a GA job with this id already exists.
        """
        what = f"create job {job_id!r}"
        if self.config.surface == "ga":
            request = _Request("create", "PUT", self._job_url(job_id), what, job_id, body)
        else:
            request = _Request("create", "POST", self._collection_url(), what, None, body)
        response = await self._call(request, is_retryable_create)
        return self._created_job(request, response, body)

    async def get(self, job_id: str) -> RemoteJob:
        """The job's current state; :class:`NotFoundError` when deleted or expired."""
        request = _Request("get", "GET", self._job_url(job_id), f"get job {job_id!r}", job_id)
        response = await self._call(request, is_retryable_read)
        answer = _json_object(request, response)
        check_got(request.what, job_id, answer, response.status_code)
        return RemoteJob.from_api(answer)

    async def list_jobs(self, page_size: int = _MAX_PAGE_SIZE) -> AsyncIterator[RemoteJob]:
        """Every job of the resource, page by page, following the service's next links."""
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE_SIZE}")
        url: str | None = self._first_page_url(page_size)
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise ServerError("list jobs: the service sent a page link it had sent before")
            if len(seen) >= MAX_LIST_PAGES:
                # A fresh link on every page would otherwise be followed for ever.
                raise UntrustedAnswerError(
                    f"list jobs: the service still sent a next page link after "
                    f"{MAX_LIST_PAGES:,} pages"
                )
            seen.add(url)
            request = _Request("list", "GET", url, "list jobs")
            page = _json_object(request, await self._call(request, is_retryable_read))
            for item in _page_items(page):
                yield RemoteJob.from_api(item)
            url = self._next_page_url(page)

    async def delete(self, job_id: str, *, missing_ok: bool = True) -> bool:
        """Delete a job and its results. Returns False when it was already gone.

        A retried delete whose first attempt went through also ends here as "gone".
        """
        request = _Request(
            "delete", "DELETE", self._job_url(job_id), f"delete job {job_id!r}", job_id
        )
        try:
            await self._call(request, is_retryable_read)
        except NotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    async def download(
        self,
        url: str,
        dest: Path,
        expected_size: int | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        kind: str | None = None,
        refresh: UrlRefresh | None = None,
    ) -> tuple[int, str]:
        """Stream ``url`` into ``dest`` (a temp path the caller renames); return size, sha256.

        The one retry layer of a download, ``retry.max_attempts`` attempts in all: 429,
        5xx and dropped connections are tried again on the same URL; with ``refresh``
        (the job fetched again), any other failed download is tried again at once on the
        URL it gives, until it gives None. The file is fsynced before returning and
        removed on failure. Raises :class:`ResultUnavailableError` for an expired or
        deleted URL and :class:`DownloadError` for a short body, a size other than
        ``expected_size``, or, when ``kind`` (``mp4``, ``webm``) is given, a file that is
        not a complete video of that kind (see :mod:`avatarflow.mediacheck`).
        """
        what = f"download of {strip_query_secrets(url)}"
        _check_result_url(url, what)
        request = _Request("download", "GET", url, what)
        failed: list[DownloadError] = []  # the last attempt's, when it asks for a fresh URL

        def refreshable(exc: BaseException) -> bool:
            return refresh is not None and isinstance(exc, DownloadError) and bool(failed)

        def should_retry(exc: BaseException) -> bool:
            return refreshable(exc) or is_retryable_read(exc)

        try:
            async for attempt in retrying(self.config.retry, should_retry, what, refreshable):
                with attempt:
                    if failed and refresh is not None:
                        fresh = await refresh(failed[-1])
                        if fresh is None:
                            raise failed.pop()  # no other URL: this failure is final
                        url, expected_size = fresh
                        _check_result_url(url, what)
                        request = _Request("download", "GET", url, what)
                        failed.clear()
                    try:
                        return await self._download_once(
                            request, dest, expected_size, on_progress, kind
                        )
                    except DownloadError as exc:
                        failed.append(exc)
                        raise
        except DownloadError:
            _discard(dest)
            raise
        except httpx.RequestError as exc:
            _discard(dest)
            raise DownloadError(f"{what} failed: {_describe_transport(exc)}") from exc
        except ServiceError as exc:
            _discard(dest)
            raise DownloadError(f"{what} failed: {exc}") from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    # -- URLs

    def _collection_url(self, **query: str | int) -> str:
        root = _GA_ROOT if self.config.surface == "ga" else _PREVIEW_ROOT
        return self._with_query(self.config.endpoint + root, query)

    def _job_url(self, job_id: str) -> str:
        root = _GA_ROOT if self.config.surface == "ga" else _PREVIEW_ROOT
        return self._with_query(f"{self.config.endpoint}{root}/{quote(job_id, safe='')}", {})

    def _first_page_url(self, page_size: int) -> str:
        if self.config.surface == "ga":
            return self._collection_url(skip=0, maxpagesize=page_size)
        return self._collection_url(skip=0, top=page_size)

    def _with_query(self, url: str, query: Mapping[str, str | int]) -> str:
        params: dict[str, str | int] = {}
        if self.config.surface == "ga":
            params["api-version"] = self.config.api_version
        params.update(query)
        return f"{url}?{urlencode(params)}" if params else url

    def _next_page_url(self, page: Mapping[str, Any]) -> str | None:
        link = page.get("nextLink") or page.get("@nextLink")
        if not isinstance(link, str) or not link.strip():
            return None
        parts = urlsplit(urljoin(self.config.endpoint + "/", link.strip()))
        base = urlsplit(self.config.endpoint)
        if _origin(urlunsplit(parts)) != self._origin:
            # Credentials only ever go to the configured endpoint, so a link naming another
            # host (the regional name behind a custom domain, a proxy) is followed on the
            # endpoint instead: same path and query, our scheme and host.
            path = parts.path
            if base.path and not path.startswith(base.path + "/"):
                path = base.path + path
            parts = parts._replace(scheme=base.scheme, netloc=base.netloc, path=path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if self.config.surface == "ga" and not any(k == "api-version" for k, _ in query):
            query.append(("api-version", self.config.api_version))
        # Otherwise followed as given: parameter order and trailing slashes vary.
        return urlunsplit(parts._replace(query=urlencode(query)))

    # -- sending

    async def _call(
        self, request: _Request, should_retry: Callable[[BaseException], bool]
    ) -> httpx.Response:
        try:
            async for attempt in retrying(self.config.retry, should_retry, request.what):
                with attempt:
                    return await self._send(request)
        except httpx.RequestError as exc:  # transport failures, and the rare decoding error
            raise _transport_error(request, exc) from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _send(self, request: _Request) -> httpx.Response:
        headers = {"Accept": "application/json", **(await self.config.credential.auth_headers())}
        if request.kind == "create":
            await self.create_pacer.wait(self.config.retry.sleep)
        self.request_counts[request.kind] += 1
        # Streamed and capped: a proxy's (or a bug's) endless body is never read whole.
        async with self._http.stream(
            request.method,
            request.url,
            headers=headers,
            json=dict(request.body) if request.body is not None else None,
        ) as streamed:
            content = await read_capped(streamed, MAX_ANSWER_BYTES, request.what)
        response = _buffered(streamed, content)
        if request.kind == "create":
            retry_after = retry_after_from_headers(response.headers)
            self.create_pacer.observe(response.status_code, retry_after)
        log.debug("%s %s -> %d", request.method, request.url, response.status_code)
        if not response.is_success:
            raise _service_error(request, response)
        return response

    def _created_job(
        self, request: _Request, response: httpx.Response, sent: Mapping[str, Any]
    ) -> RemoteJob:
        data = _json_or_none(response)
        job = dict(data) if isinstance(data, Mapping) else {}
        check_created(request.what, sent, job, request.job_id, response.status_code)
        if request.job_id is None and job.get("id") and readable_id(job["id"]) is None:
            # The preview names its job in the answer; one that cannot name a job is as
            # good as none: the job is found by its content hash instead.
            raise CreateOutcomeUnknown(
                f"{request.what}: HTTP {response.status_code} with an unreadable job id "
                f"{shown(job['id'])}",
                job_id=None,
                status_code=response.status_code,
                request_id=_request_id(response),
            )
        if not job.get("id"):
            # Created, but the body did not say as what: GA knows its id; the preview may
            # name the new job in Location, else the caller has to find it by listing.
            job_id = request.job_id or _last_segment(response.headers.get("location"))
            if not job_id:
                raise CreateOutcomeUnknown(
                    f"{request.what}: HTTP {response.status_code} without a job id",
                    job_id=None,
                    status_code=response.status_code,
                    request_id=_request_id(response),
                )
            job["id"] = job_id
        job.setdefault("status", "NotStarted")
        return RemoteJob.from_api(job)

    # -- downloads

    async def _download_once(
        self,
        request: _Request,
        dest: Path,
        expected_size: int | None,
        on_progress: ProgressCallback | None,
        kind: str | None,
    ) -> tuple[int, str]:
        # Azure's result URLs carry their own SAS; the key goes only to our endpoint's
        # host (a local service may serve results itself).
        trusted = _origin(request.url) == self._origin
        headers = dict(await self.config.credential.auth_headers()) if trusted else {}
        headers["Accept-Encoding"] = "identity"  # sizes must be the file's bytes
        self.request_counts["download"] += 1
        async with self._http.stream(
            "GET", request.url, headers=headers, follow_redirects=not trusted
        ) as response:
            if not response.is_success:  # an error page is read only up to the cap
                content = await read_capped(response, MAX_ANSWER_BYTES, request.what)
                raise _download_error(request, _buffered(response, content))
            declared = _content_length(response)
            _check_size(request, declared, expected_size, "offers")
            _check_content_type(request, response, kind)
            size, digest = await _stream_to_file(response, dest, declared, on_progress)
        if declared is not None and size != declared:
            raise DownloadError(f"{request.what} was cut short: {size} of {declared} bytes")
        _check_size(request, size, expected_size, "delivered")
        if kind is not None:
            try:
                # A length the job reported, matched above, vouches for a whole file.
                await check_media(dest, kind, probe=expected_size is None)
            except MediaCheckError as exc:
                raise DownloadError(f"{request.what}: the file {exc}") from None
        return size, digest


# --------------------------------------------------------------------------- helpers


def _buffered(streamed: httpx.Response, content: bytes) -> httpx.Response:
    """A complete response of ``content`` (already decoded) in place of the stream."""
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() != "content-encoding"]
    return httpx.Response(
        streamed.status_code, headers=headers, content=content, request=streamed.request
    )


_NOT_MEDIA = ("text/", "application/json", "application/xml", "application/problem")


def _check_content_type(request: _Request, response: httpx.Response, kind: str | None) -> None:
    """A video answered as a web page or an error document is a proxy's, not the blob."""
    content_type = response.headers.get("content-type", "").strip().lower()
    if kind is not None and content_type.startswith(_NOT_MEDIA):
        raise DownloadError(
            f"{request.what}: HTTP {response.status_code} answered {content_type.split(';')[0]} "
            f"where a {kind} video was expected"
        )


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _json_object(request: _Request, response: httpx.Response) -> Mapping[str, Any]:
    data = _json_or_none(response)
    if not isinstance(data, Mapping):  # a proxy's page, say: an error for the video it is for
        raise UntrustedAnswerError(
            f"{request.what}: the response is not a JSON object",
            status_code=response.status_code,
            request_id=_request_id(response),
        )
    return data


def _page_items(page: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # GA says "value", the preview "values"; accept either on both.
    items = page.get("value", page.get("values"))
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _last_segment(url: str | None) -> str | None:
    if not url:
        return None
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or None


def _request_id(response: httpx.Response) -> str | None:
    for name in ("apim-request-id", "x-ms-request-id", "x-request-id", "request-id"):
        if response.headers.get(name):
            return response.headers[name]
    return None


_AUTH_HINT = (
    " (check AZURE_SPEECH_KEY, or the Entra role on the resource; keys only work in the "
    "region of their resource)"
)
_EXISTS = re.compile(r"already\s+exist|exists\s+already|already\s+(in\s+use|used|taken)", re.I)


def _service_error(request: _Request, response: httpx.Response) -> Exception:
    """The exception for an error status, quoting the service's code and message."""
    status = response.status_code
    code, message = _error_details(response)
    code = code or response.headers.get("x-ms-error-code")
    request_id = _request_id(response)
    text = f"{request.what} failed: {message or response.reason_phrase or 'no message'}"
    if request.kind == "create" and status >= 500:
        return CreateOutcomeUnknown(
            f"{text} — the job may or may not have been created",
            job_id=request.job_id,
            status_code=status,
            code=code,
            request_id=request_id,
        )
    if status == 429:
        retry_after = retry_after_from_headers(response.headers)
        return ThrottledError(
            text, retry_after=retry_after, status_code=status, code=code, request_id=request_id
        )
    if request.kind == "create" and request.job_id and _says_exists(status, code, message):
        return JobExistsError(
            text, job_id=request.job_id, status_code=status, code=code, request_id=request_id
        )
    cls = _ERROR_CLASSES.get(status, ServerError if status >= 500 else ServiceError)
    if cls is AuthError:
        text += _AUTH_HINT
    return cls(text, status_code=status, code=code, request_id=request_id)


_ERROR_CLASSES: dict[int, type[ServiceError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
}


def _says_exists(status: int, code: str | None, message: str) -> bool:
    # The service does not document a second PUT to a used id; 409 can only mean that,
    # a 400 only when its message says so.
    if status == 409:
        return True
    return status == 400 and bool(_EXISTS.search(message) or _EXISTS.search(code or ""))


def _error_details(response: httpx.Response) -> tuple[str | None, str]:
    """Code and redacted message from GA (``{"error": {...}}``), preview (flat) or
    ASP.NET ProblemDetails bodies; plain text when the body is not JSON."""
    data = _json_or_none(response)
    if not isinstance(data, Mapping):
        text = " ".join(response.text.split()) if response.content else ""
        return None, _clip(redact(text))
    error = _mapping(data.get("error")) or data
    code = _text(error.get("code"))
    parts = [str(error.get("message") or data.get("title") or "")]
    inner = _mapping(error.get("innererror") or error.get("innerError"))
    if inner.get("message") and inner.get("message") != parts[0]:
        parts.append(f"({inner.get('code') or 'inner'}: {inner['message']})")
    for detail in error.get("details") or []:
        if isinstance(detail, Mapping) and detail.get("message"):
            parts.append(f"[{detail.get('code') or 'detail'}: {detail['message']}]")
    for key, problems in _mapping(data.get("errors")).items():
        listed = problems if isinstance(problems, list) else [problems]
        parts.append(f"{key}: {' '.join(str(p) for p in listed)}")
    return code, _clip(redact(" ".join(p for p in parts if p)))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _transport_error(request: _Request, exc: httpx.RequestError) -> TransportError:
    detail = _describe_transport(exc)
    if request.kind == "create" and not never_sent(exc):
        return CreateOutcomeUnknown(
            f"{request.what}: the connection failed after the request was sent ({detail}) "
            "— the job may or may not have been created",
            job_id=request.job_id,
        )
    return TransportError(f"{request.what} failed: {detail}")


def _describe_transport(exc: httpx.RequestError) -> str:
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_result_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # With destinationContainerUrl the service reports a path in the caller's own
        # container, which this client cannot fetch.
        raise DownloadError(f"{what}: not an absolute http(s) URL")


def _download_error(request: _Request, response: httpx.Response) -> Exception:
    status = response.status_code
    code = response.headers.get("x-ms-error-code")
    answer = f"HTTP {status} {code}" if code else f"HTTP {status}"
    # Blob storage answers 403 to an expired signature and 404 once the job is deleted.
    if status == 403:
        return ResultUnavailableError(
            f"{request.what}: {answer} — the result URL has expired",
            reason="expired",
            status_code=status,
            code=code,
        )
    if status in (404, 410):
        return ResultUnavailableError(
            f"{request.what}: {answer} — the result is gone",
            reason="gone",
            status_code=status,
            code=code,
        )
    return _service_error(request, response)


def _content_length(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        return None  # the length then counts encoded bytes, not the file's
    return _integer(response.headers.get("content-length"))


def _check_size(request: _Request, size: int | None, expected: int | None, verb: str) -> None:
    if size is not None and expected is not None and size != expected:
        raise DownloadError(
            f"{request.what}: the server {verb} {size} bytes but the job reported {expected}"
        )


async def _stream_to_file(
    response: httpx.Response, dest: Path, total: int | None, on_progress: ProgressCallback | None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        async for chunk in response.aiter_bytes(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if on_progress is not None:
                on_progress(size, total)
        out.flush()
        # The caller renames the file into place next; without fsync a crash could
        # leave a renamed but empty or partial video behind.
        await asyncio.to_thread(os.fsync, out.fileno())
    return size, digest.hexdigest()


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove partial download %s", path)
