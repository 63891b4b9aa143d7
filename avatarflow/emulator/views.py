"""Job records as the service shows them, on the GA and on the preview surface.

Key order follows the service's examples. ``inputs`` and ``destinationContainerUrl`` are
never shown, nor ``internalId`` (Learn's examples have it, Microsoft's OpenAPI does not;
it names the output folder and ``summary.json``'s ``jobID`` only). Result URLs point at
the emulator's own blob route and carry a fresh SAS-like signature; for a job with
``destinationContainerUrl`` they are paths relative to that container, as on the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avatarflow.emulator.jobs import FINAL, NOT_STARTED, SUCCEEDED, JobRecord, blob_location
from avatarflow.emulator.narration import MIN_SECONDS
from avatarflow.emulator.signing import UrlSigner
from avatarflow.emulator.wire import (
    ga_created_time,
    ga_last_action_time,
    iso_duration,
    preview_time,
)

TICKS_PER_MS = 10_000
# The service's example shows lastActionDateTime two ticks after createdDateTime.
_CREATE_TICKS = 2e-7


@dataclass(frozen=True)
class UrlPolicy:
    base_url: str
    signer: UrlSigner
    account_hash: str
    expires_at: float


def outputs(record: JobRecord, urls: UrlPolicy) -> dict[str, str] | None:
    outcome = record.outcome
    if record.status not in FINAL or outcome is None:
        return None
    container, folder = blob_location(record, urls.account_hash)
    video = next((f for f in outcome.files if not f.endswith(".vtt")), None)
    names = {"result": video, "summary": "summary.json"}
    if record.request.destination is not None:
        return {key: f"{folder}/{name}" for key, name in names.items() if name}
    query = urls.signer.query(container, folder, urls.expires_at)
    prefix = f"{urls.base_url}/_blob/{container}/{folder}"
    return {key: f"{prefix}/{name}?{query}" for key, name in names.items() if name}


def _avatar_seconds(duration_ms: int) -> int:
    # The service's example bills 2520 ms as 2 seconds.
    return max(int(MIN_SECONDS), duration_ms // 1000)


def _ga_properties(record: JobRecord) -> dict[str, Any]:
    props: dict[str, Any] = {"timeToLiveInHours": record.request.ttl_echo}
    outcome = record.outcome
    if record.status in FINAL and outcome is not None:
        if outcome.succeeded:
            props["sizeInBytes"] = outcome.size
            props["durationInMilliseconds"] = outcome.duration_ms
        props["succeededCount"] = outcome.succeeded
        props["failedCount"] = outcome.failed
        billing: dict[str, int] = {}
        if outcome.characters or not outcome.custom_characters:
            billing["neuralCharacters"] = outcome.characters if outcome.succeeded else 0
        if outcome.custom_characters:
            billing["customNeuralCharacters"] = outcome.custom_characters
        if outcome.succeeded:
            billing["talkingAvatarDurationSeconds"] = _avatar_seconds(outcome.duration_ms)
        props["billingDetails"] = billing
        if outcome.error:
            props["error"] = dict(outcome.error)
    return props


def ga_job(record: JobRecord, urls: UrlPolicy) -> dict[str, Any]:
    request = record.request
    moved_on = record.status != NOT_STARTED
    last_action = record.last_action if moved_on else record.created_at + _CREATE_TICKS
    view: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "createdDateTime": ga_created_time(record.created_at),
        "lastActionDateTime": ga_last_action_time(last_action, moved_on=moved_on),
        "inputKind": request.input_kind,
        "customVoices": dict(request.custom_voices),
    }
    if request.description is not None:
        view["description"] = request.description
    view["properties"] = _ga_properties(record)
    if request.synthesis_config is not None:
        view["synthesisConfig"] = dict(request.synthesis_config)
    view["avatarConfig"] = dict(request.echo)
    links = outputs(record, urls)
    if links:
        view["outputs"] = links
    return view


def _preview_properties(record: JobRecord) -> dict[str, Any]:
    props = dict(record.request.echo)
    outcome = record.outcome
    if record.status in FINAL and outcome is not None:
        if outcome.succeeded:
            props["audioSize"] = outcome.size
            props["durationInTicks"] = outcome.duration_ms * TICKS_PER_MS
            props["duration"] = iso_duration(outcome.duration_ms / 1000)
        props["succeededAudioCount"] = outcome.succeeded
        props["failedAudioCount"] = outcome.failed
        props["billingDetails"] = {
            "customNeural": outcome.custom_characters,
            "neural": outcome.characters if outcome.succeeded else 0,
        }
        if outcome.error:
            props["error"] = dict(outcome.error)
    return props


def preview_job(record: JobRecord, urls: UrlPolicy) -> dict[str, Any]:
    request = record.request
    view: dict[str, Any] = {"id": record.id, "displayName": request.display_name}
    if request.description is not None:
        view["description"] = request.description
    view["textType"] = request.input_kind
    if request.synthesis_config is not None:
        view["synthesisConfig"] = dict(request.synthesis_config)
    view["customVoices"] = dict(request.custom_voices)
    if request.custom_properties is not None:
        view["customProperties"] = dict(request.custom_properties)
    view["properties"] = _preview_properties(record)
    links = outputs(record, urls)
    if links:
        view["outputs"] = links
    view["lastActionDateTime"] = preview_time(record.last_action)
    view["status"] = record.status
    view["createdDateTime"] = preview_time(record.created_at)
    return view


def job_view(record: JobRecord, urls: UrlPolicy) -> dict[str, Any]:
    return ga_job(record, urls) if record.surface == "ga" else preview_job(record, urls)


def is_success(record: JobRecord) -> bool:
    return record.status == SUCCEEDED
