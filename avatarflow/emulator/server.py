"""HTTP routes of the emulator: both API surfaces and the blob downloads.

GA (``api-version`` required: 2024-08-01, 2024-04-15-preview or 2024-04-01-preview)::

    PUT    /avatar/batchsyntheses/{id}       201 + Operation-Id, Operation-Location
    GET    /avatar/batchsyntheses/{id}       200
    DELETE /avatar/batchsyntheses/{id}       204 (400 while NotStarted/Running)
    GET    /avatar/batchsyntheses[/]         200 {"value": [...], "nextLink"} skip, maxpagesize
    GET    /avatar/operations/{operationId}  200 {"id", "status"}

Preview ``3.1-preview1``::

    POST   /api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar        201
    GET    .../talkingavatar[/]   200 {"values": [...], "@nextLink"} skip, top (<= 100)
    GET    .../talkingavatar/{id} 200;  DELETE .../talkingavatar/{id} 204

Blobs (what ``outputs.result``/``outputs.summary`` point at; no API key, a signature)::

    GET|HEAD /_blob/{container}/{folder}/{file}?sv&se&sr&sp&sig

Every answer carries ``apim-request-id``; errors carry ``x-ms-error-code`` and the body
shape of their surface. A body over 500 KiB is answered 400 ``BadRequest`` (the service
documents the limit, not the status; 400 keeps the error code inside the documented
enum). Requests are checked in this order: injected request fault, authentication,
api-version, create throttle, route-specific validation.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from avatarflow.emulator.config import EmulatorConfig
from avatarflow.emulator.faults import FaultInjector
from avatarflow.emulator.jobs import ACTIVE, JobRecord, JobStore, blob_location
from avatarflow.emulator.requestlog import RequestLog, RequestRecord
from avatarflow.emulator.signing import UrlSigner
from avatarflow.emulator.throttle import CreateThrottle, retry_after_header
from avatarflow.emulator.validation import ID_RE, body_hash, check_id, validate
from avatarflow.emulator.views import UrlPolicy, job_view
from avatarflow.emulator.wire import ApiError, bad_request, not_found
from avatarflow.emulator.worker import Worker
from avatarflow.secrets import redact

log = logging.getLogger(__name__)

GA_ROOT = "/avatar/batchsyntheses"
GA_OPERATIONS = "/avatar/operations"
PREVIEW_ROOT = "/api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar"
BLOB_ROOT = "/_blob"
VOICES_LIST = "/cognitiveservices/voices/list"
GA_API_VERSIONS = ("2024-08-01", "2024-04-15-preview", "2024-04-01-preview")
MAX_BODY_BYTES = 500 * 1024
DISCARD_LIMIT_BYTES = 16 * 1024 * 1024
MAX_PAGE = 100
BLOB_CHUNK = 64 * 1024


@dataclass
class Route:
    kind: str
    """create, get, list, delete, operation, download, summary or other."""
    surface: str
    """ga, preview or blob."""
    job_id: str | None = None
    blob: tuple[str, str, str] | None = None
    """(container, folder, file) of a blob route."""


def _segments(path: str, root: str) -> list[str] | None:
    if path != root and not path.startswith(root + "/"):
        return None
    return [unquote(s) for s in path[len(root) :].split("/") if s]


def classify(method: str, path: str) -> Route:
    """The route of a request; ``kind="other"`` for anything the service does not serve."""
    if path == VOICES_LIST and method == "GET":  # the text to speech host's voice list
        return Route("voices", "tts")
    for root, surface in ((GA_ROOT, "ga"), (PREVIEW_ROOT, "preview")):
        parts = _segments(path, root)
        if parts is None:
            continue
        if not parts:
            create = surface == "preview" and method == "POST"
            return Route("create" if create else "list" if method == "GET" else "other", surface)
        if len(parts) == 1:
            kinds = {"GET": "get", "DELETE": "delete", "PUT": "create" if surface == "ga" else ""}
            return Route(kinds.get(method) or "other", surface, parts[0])
        return Route("other", surface)
    parts = _segments(path, GA_OPERATIONS)
    if parts is not None:
        kind = "operation" if len(parts) == 1 and method == "GET" else "other"
        return Route(kind, "ga", parts[0] if parts else None)
    parts = _segments(path, BLOB_ROOT)
    if parts is not None and len(parts) >= 3 and method in ("GET", "HEAD"):
        container, folder, name = parts[0], "/".join(parts[1:-1]), parts[-1]
        kind = "summary" if name == "summary.json" else "download"
        return Route(kind, "blob", folder.rsplit("/", 1)[-1], (container, folder, name))
    return Route("other", "blob" if path.startswith(BLOB_ROOT) else "ga")


@dataclass
class Services:
    """What request handlers work with; owned by :class:`~avatarflow.emulator.Emulator`."""

    config: EmulatorConfig
    store: JobStore
    worker: Worker
    signer: UrlSigner
    requests: RequestLog
    blobs: Path
    injector: FaultInjector
    throttle: CreateThrottle


class Dropped(Exception):
    """Close the connection without an answer (an injected fault)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "avatarflow-emulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end after this many seconds
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        # The request line of a blob download carries its signature.
        log.debug("%s %s", self.address_string(), redact(format % args))

    # -- plumbing --------------------------------------------------------------------
    @property
    def svc(self) -> Services:
        return self.server.services

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.route = classify(self.command, parts.path)
        self._logged = False
        self.entry: dict[str, Any] = {
            "fault": None,
            "created": False,
            "name": None,
            "job_id": self.route.job_id,
            "status": 0,
        }
        try:
            try:
                self._consume_body()
                self._dispatch()
            except Dropped:
                self._drop()
            except ApiError as error:
                self._send_error(error)  # the client may have gone meanwhile
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("emulator request failed: %s %s", self.command, parts.path)
            self._send_error(ApiError(500, "InternalServerError", "Unexpected emulator error."))
        finally:
            self._log_request()

    # -- entry points: every method goes through one handler --------------------------
    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

    def _log_request(self) -> None:
        """Log this request once: just before its answer leaves when it has one, so that
        a client holding an answer finds its request in the log even if this process is
        killed the next moment; after the handling otherwise (drops, broken pipes)."""
        if self._logged:
            return
        self._logged = True
        self.svc.requests.append(
            RequestRecord(
                time=time.time(),
                method=self.command,
                kind=self.route.kind,
                surface=self.route.surface,
                path=urlsplit(self.path).path,
                status=self.entry["status"],
                job_id=self.entry["job_id"],
                name=self.entry["name"],
                created=self.entry["created"],
                fault=self.entry["fault"],
            )
        )

    def _drop(self) -> None:
        self.close_connection = True
        if not self._logged:
            self.entry["status"] = 0
        self._log_request()  # before the client can see the drop and look the job up
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _base_url(self) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.entry["status"] = status
        self._log_request()
        self.send_response(status)
        self.send_header("apim-request-id", str(uuid.uuid4()))
        if body or status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        fault = self.svc.injector.answer_fault(self.route.kind) if status == 200 else None
        if fault is not None:
            self.entry["fault"] = fault
            if fault == "huge_body":
                return self._send_huge(data)
            return self._send(200, _BAD_GATEWAY, content_type="text/html")
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), headers)

    def _send_huge(self, data: Any) -> None:
        """A valid JSON object padded to ``huge_body_bytes``, without a length: read to the
        end of the connection, unless the client stops reading first."""
        size = self.svc.injector.faults.huge_body_bytes
        self.entry["status"] = 200
        self._log_request()
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        head = json.dumps(data).encode()[:-1] + b', "padding": "'
        self.wfile.write(head)
        chunk = b"x" * BLOB_CHUNK
        sent = len(head)
        try:
            while sent < size:
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.write(b'"}')
        except OSError:  # the client stopped reading: what a capped client does
            pass

    def _send_error(self, error: ApiError) -> None:
        if isinstance(error, _BlobError):
            self._send(
                error.status, error.xml(), {"x-ms-error-code": error.code}, "application/xml"
            )
            return
        surface = "preview" if self.route.surface == "preview" else "ga"
        headers = {"x-ms-error-code": error.wire_code(surface), **error.headers}
        self._send_json(error.status, error.body(surface), headers)

    def _consume_body(self) -> None:
        """Read the whole request body first, so that an early answer (an error, a fault)
        never leaves unread bytes in a keep-alive connection."""
        try:
            self.body_length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.body_length = 0
            self.close_connection = True
        if self.headers.get("Transfer-Encoding") or self.body_length > DISCARD_LIMIT_BYTES:
            self.raw_body = b""
            self.close_connection = True
        else:
            self.raw_body = self.rfile.read(self.body_length) if self.body_length > 0 else b""

    def _read_body(self) -> bytes:
        if self.body_length > MAX_BODY_BYTES:
            raise bad_request(
                f"The request body has {self.body_length} bytes; at most {MAX_BODY_BYTES} are "
                "allowed."
            )
        return self.raw_body

    # -- checks ----------------------------------------------------------------------
    def _inject_request_fault(self) -> None:
        if self.route.kind == "other":
            return
        fault = self.svc.injector.request_fault(self.route.kind)
        if fault is None:
            return
        self.entry["fault"] = fault
        if fault == "drop":
            raise Dropped()
        faults = self.svc.injector.faults
        if fault == "throttle":
            raise ApiError(
                429,
                "TooManyRequests",
                "Too many requests (injected fault).",
                headers=_retry_headers(faults.retry_after),
            )
        status = faults.error_status
        code = "ServiceUnavailable" if status == 503 else "InternalServerError"
        raise ApiError(status, code, "The service failed (injected fault).")

    def _authenticate(self) -> None:
        key = (self.headers.get("Ocp-Apim-Subscription-Key") or "").strip()
        auth = (self.headers.get("Authorization") or "").strip()
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        expected = self.svc.config.key
        if expected is None:
            ok = bool(key or token)
        else:
            ok = any(hmac.compare_digest(v.encode(), expected.encode()) for v in (key, token) if v)
        if not ok:
            raise ApiError(
                401,
                "Unauthorized",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource.",
            )

    def _api_version(self) -> str:
        versions = self.query.get("api-version") or [""]
        version = versions[0]
        if not version:
            raise bad_request("The api-version query parameter is required.")
        if version not in GA_API_VERSIONS:
            raise bad_request(
                f"The api-version '{version}' is not supported; use one of "
                f"{', '.join(GA_API_VERSIONS)}."
            )
        return version

    def _throttle_create(self) -> None:
        wait = self.svc.throttle.admit()
        if wait is not None:
            self.entry["fault"] = "create_throttle"
            raise ApiError(
                429,
                "TooManyRequests",
                "Too many requests: the create limit of this resource is reached.",
                headers=_retry_headers(wait),
            )

    # -- dispatch --------------------------------------------------------------------
    def _dispatch(self) -> None:
        self._inject_request_fault()
        route = self.route
        if route.surface == "blob":
            return self._blob()
        self._authenticate()
        if route.kind == "other":
            raise ApiError(404, "NotFound", "The requested resource was not found.")
        if route.kind == "voices":
            from ..voices import shipped, to_service_list

            return self._send_json(200, to_service_list(shipped()))
        version = self._api_version() if route.surface == "ga" else None
        if route.kind == "create":
            self._throttle_create()
            return self._create(version)
        if route.kind == "list":
            return self._list(version)
        if route.kind == "operation":
            return self._operation()
        record = self._find(route.job_id or "")
        if route.kind == "delete":
            return self._delete(record)
        self._send_json(200, self._view(record))

    def _url_policy(self) -> UrlPolicy:
        expires = time.time() + self.svc.config.url_ttl_seconds
        return UrlPolicy(self._base_url(), self.svc.signer, self.svc.worker.account_hash, expires)

    def _view(self, record: JobRecord, urls: UrlPolicy | None = None) -> dict[str, Any]:
        urls = urls or self._url_policy()
        if (
            record.outcome is not None
            and record.status not in ACTIVE
            and (self.svc.injector.expire_urls())
        ):
            self.entry["fault"] = "expire_urls"
            urls = UrlPolicy(urls.base_url, urls.signer, urls.account_hash, time.time() - 1)
        view = job_view(record, urls)
        faults = self.svc.injector.faults
        view["status"] = faults.status_for(record.name, view["status"])
        if faults.no_size:
            for key in ("sizeInBytes", "audioSize"):
                view.get("properties", {}).pop(key, None)
        return view

    def _find(self, job_id: str) -> JobRecord:
        record = self.svc.store.get(self.route.surface, job_id)
        fresh = self.svc.worker.refresh(record) if record is not None else None
        if fresh is None:
            raise not_found(f"The batch synthesis '{job_id}' cannot be found.")
        self.entry["name"] = fresh.name
        return fresh

    def _create(self, version: str | None) -> None:
        surface = self.route.surface
        operation_id = (self.headers.get("Operation-Id") or "").strip() or None
        if surface == "ga":
            check_id(self.route.job_id or "")
            if operation_id is not None and not ID_RE.match(operation_id):
                raise bad_request("The Operation-Id header is invalid.")
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise bad_request("The request body is not valid JSON.") from None
        digest = body_hash(raw)
        request = validate(surface, body)
        job_id = self.route.job_id if surface == "ga" else str(uuid.uuid4())
        name = job_id if surface == "ga" else request.display_name
        assert job_id is not None and name is not None
        self.entry.update(job_id=job_id, name=name)
        store = self.svc.store
        with store.lock:
            self._check_conflicts(surface, job_id, operation_id, digest)
            if store.active_count() >= self.svc.config.max_active_jobs:
                raise bad_request(
                    f"There are already {self.svc.config.max_active_jobs} jobs that have not "
                    "finished; wait for some to finish before creating more."
                )
            record = JobRecord(
                surface=surface,
                id=job_id,
                name=name,
                internal_id=str(uuid.uuid4()),
                created_at=time.time(),
                request=request,
                body_sha256=digest,
                operation_id=(operation_id or str(uuid.uuid4())) if surface == "ga" else None,
            )
            if request.destination is not None:
                assert isinstance(body, dict)  # validated above
                # Before the job exists for the worker: it needs the SAS to deliver.
                self.svc.worker.destinations.put(
                    record.key, body["properties"]["destinationContainerUrl"]
                )
            store.add(record)
        self.entry["created"] = True
        self.svc.worker.wake()
        if self.svc.injector.lose_create(name):
            self.entry["fault"] = "lose_create"
            raise Dropped()
        view = self._view(record)
        if self.svc.injector.take("wrong_id"):
            self.entry["fault"] = "wrong_id"
            others = [r.id for r in store.newest_first(surface) if r.id != record.id]
            view["id"] = others[0] if others else str(uuid.uuid4())
        elif self.svc.injector.take("bad_id"):
            self.entry["fault"] = "bad_id"
            view["id"] = "\u00ab?\u00bb/../"
        self._send_json(201, view, self._create_headers(record, version))

    def _check_conflicts(
        self, surface: str, job_id: str, operation_id: str | None, digest: str
    ) -> None:
        store = self.svc.store
        if operation_id is not None:
            earlier = store.by_operation(operation_id)
            if earlier is not None and earlier.body_sha256 != digest:
                raise bad_request(
                    f"The Operation-Id '{operation_id}' was already used with a different "
                    "request body."
                )
        existing = store.get(surface, job_id)
        if existing is not None and self.svc.worker.refresh(existing) is not None:
            raise bad_request(
                f"A batch synthesis with id '{job_id}' already exists; the id must be unique "
                "within the resource."
            )

    def _create_headers(self, record: JobRecord, version: str | None) -> dict[str, str]:
        base = self._base_url()
        if record.surface == "preview":
            return {"Location": f"{base}{PREVIEW_ROOT}/{record.id}"}
        operation = record.operation_id or ""
        return {
            "Operation-Id": operation,
            "Operation-Location": f"{base}{GA_OPERATIONS}/{operation}?api-version={version}",
        }

    def _int_param(self, name: str, default: int) -> int:
        raw = (self.query.get(name) or [""])[0]
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise bad_request(f"The query parameter '{name}' must be an integer.") from None

    def _list(self, version: str | None) -> None:
        surface = self.route.surface
        skip = self._int_param("skip", 0)
        size_name = "maxpagesize" if surface == "ga" else "top"
        size = self._int_param(size_name, MAX_PAGE)
        if skip < 0:
            raise bad_request("The query parameter 'skip' must not be negative.")
        if size < 1 or (surface == "preview" and size > MAX_PAGE):
            raise bad_request(
                f"The query parameter '{size_name}' must be between 1 and {MAX_PAGE}."
            )
        size = min(size, MAX_PAGE)  # GA: maxpagesize is a wish, capped by the service
        with self.svc.store.lock:
            jobs = [
                r
                for r in self.svc.store.newest_first(surface)
                if self.svc.worker.refresh(r) is not None
            ]
        page = jobs[skip : skip + size]
        more = skip + size < len(jobs)
        if self.svc.injector.take("endless_list"):
            self.entry["fault"] = "endless_list"
            page, more = [], True
        urls = self._url_policy()
        items = [self._view(r, urls) for r in page]
        base = self._base_url()
        if surface == "ga":
            body: dict[str, Any] = {"value": items}
            if more:
                body["nextLink"] = (
                    f"{base}{GA_ROOT}/?api-version={version}&skip={skip + size}&maxpagesize={size}"
                )
        else:
            body = {"values": items}
            if more:
                body["@nextLink"] = f"{base}{PREVIEW_ROOT}?skip={skip + size}&top={size}"
        self._send_json(200, body)

    def _operation(self) -> None:
        operation_id = self.route.job_id or ""
        record = self.svc.store.by_operation(operation_id)
        fresh = self.svc.worker.refresh(record) if record is not None else None
        if fresh is None:
            raise not_found(f"The operation '{operation_id}' cannot be found.")
        self.entry.update(job_id=fresh.id, name=fresh.name)
        self._send_json(200, {"id": operation_id, "status": fresh.status})

    def _delete(self, record: JobRecord) -> None:
        if record.status in ACTIVE:
            raise bad_request(
                f"The batch synthesis '{record.id}' is {record.status}; only Succeeded or "
                "Failed jobs can be deleted."
            )
        self.svc.worker.delete(record)
        self._send(204, b"")

    # -- blobs -----------------------------------------------------------------------
    def _blob(self) -> None:
        if self.route.blob is None:
            raise _blob_error(
                400,
                "InvalidUri",
                "The requested URI does not represent any resource on the server.",
            )
        container, folder, name = self.route.blob
        owner = self._blob_owner(container, folder)
        if owner is not None:
            self.entry["name"] = owner.name
        expiry = (self.query.get("se") or [""])[0]
        sig = (self.query.get("sig") or [""])[0]
        reason = self.svc.signer.check(container, folder, expiry, sig, time.time())
        if reason is not None and not self._destination_signature(container, folder, sig):
            raise _blob_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of "
                f"Authorization header is formed correctly including the signature. {reason}",
            )
        root = self.svc.blobs.resolve()
        path = (root / container / folder / name).resolve()
        if not path.is_relative_to(root) or not path.is_file() or name.startswith("."):
            raise _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        self._stream_file(path)

    def _blob_owner(self, container: str, folder: str) -> JobRecord | None:
        """The job whose outputs live in ``container/folder``, if it still exists."""
        job_id = folder.rsplit("/", 1)[-1]
        for surface in ("ga", "preview"):
            record = self.svc.store.get(surface, job_id)
            if record is not None and blob_location(record, self.svc.worker.account_hash) == (
                container,
                folder,
            ):
                return record
        return None

    def _destination_signature(self, container: str, folder: str, sig: str) -> bool:
        """A download with the SAS of a job's ``destinationContainerUrl`` is accepted."""
        record = self._blob_owner(container, folder)
        destination = record.request.destination if record else None
        if not sig or destination is None or destination.sig_sha256 is None:
            return False
        digest = hashlib.sha256(sig.encode()).hexdigest()
        return hmac.compare_digest(destination.sig_sha256, digest)

    def _stream_file(self, path: Path) -> None:
        size = path.stat().st_size
        if self.command == "GET" and self.route.kind == "download":
            if self.svc.injector.take("html_download"):
                self.entry["fault"] = "html_download"
                return self._send(200, _BAD_GATEWAY, content_type="text/html")
            if self.svc.injector.take("short_body"):
                self.entry["fault"] = "short_body"
                return self._send(200, path.read_bytes()[: size // 2], content_type="video/mp4")
        truncate = self.command == "GET" and self.svc.injector.truncate_download()
        content_type = {
            "json": "application/json",
            "mp4": "video/mp4",
            "webm": "video/webm",
            "vtt": "text/vtt",
        }.get(path.suffix.lstrip("."), "application/octet-stream")
        self.entry["status"] = 200
        if truncate:
            self.entry["fault"] = "truncate"
        self._log_request()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.send_header("x-ms-blob-type", "BlockBlob")
        self.send_header("apim-request-id", str(uuid.uuid4()))
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = size // 2 if truncate else size
        with path.open("rb") as handle:
            sent = 0
            while sent < limit:
                chunk = handle.read(min(BLOB_CHUNK, limit - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        if truncate:
            self.wfile.flush()
            self._drop()


# What a proxy in front of a failing backend answers, status 200 included.
_BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


def _retry_headers(seconds: float) -> dict[str, str]:
    return {
        "Retry-After": retry_after_header(seconds),
        "retry-after-ms": str(max(1, round(seconds * 1000))),
    }


class _BlobError(ApiError):
    """Blob storage answers in XML, like Azure Storage."""

    def xml(self) -> bytes:
        message = escape(f"{self.message}\nRequestId:{uuid.uuid4()}\nTime:{time.time():.0f}")
        return (
            '<?xml version="1.0" encoding="utf-8"?><Error>'
            f"<Code>{escape(self.code)}</Code><Message>{message}</Message></Error>"
        ).encode()


def _blob_error(status: int, code: str, message: str) -> ApiError:
    return _BlobError(status, code, message)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server that can cut its open connections when it stops."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 512  # the listen backlog: hundreds of pollers connect at once

    def __init__(self, address: tuple[str, int], services: Services) -> None:
        self.services = services
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (killed, interrupted) is no emulator error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they can end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
