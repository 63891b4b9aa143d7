"""What the service says about recorded jobs: which are gone, their statuses; deleting them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NotFoundError
from .lifecycle import IN_FLIGHT
from .payload import HASH_PROPERTY

if TYPE_CHECKING:
    from .build import Built
    from .service import Service
    from .state import State, StateRecord
    from .workspace import Workspace


async def gone_jobs(
    service: Service, workspace: Workspace, built: Built, state: State
) -> frozenset[str]:
    """Video ids whose remote job no longer exists (only asked when it matters)."""
    wanted, outputs = set(built.ids()), workspace.output_checker()

    def needs_refresh(record: StateRecord) -> bool:
        return record.status in IN_FLIGHT or (
            record.status == "downloaded" and outputs(record) != "ok"
        )

    # A "submitting" record is never gone: the runner adopts its job, or submits it under
    # the same id when the create never reached the service (no expiry to report).
    records = [
        r
        for r in state.records.values()
        if r.video_id in wanted and r.status != "submitting" and needs_refresh(r)
    ]
    if not records:
        return frozenset()
    gone: set[str] = set()
    async with service.client() as client:
        listed: dict[str | None, Any] | None = None
        exists: dict[str, bool] = {}  # the videos of one pack share one job: ask once
        for record in records:
            if record.remote_id:
                if record.remote_id not in exists:
                    try:
                        await client.get(record.remote_id)
                        exists[record.remote_id] = True
                    except NotFoundError:
                        exists[record.remote_id] = False
                if not exists[record.remote_id]:
                    gone.add(record.video_id)
                continue
            if listed is None:  # preview submit lost before the id was known
                listed = {
                    j.custom_properties.get(HASH_PROPERTY): j async for j in client.list_jobs()
                }
            if record.input_hash not in listed:
                gone.add(record.video_id)
    return frozenset(gone)


async def job_statuses(service: Service, state: State) -> dict[str, str]:
    result: dict[str, str] = {}
    by_job: dict[str, str] = {}  # the videos of one pack share one job: ask once
    async with service.client() as client:
        for record in state.records.values():
            if not record.remote_id:
                result[record.video_id] = "unknown id"
                continue
            if record.remote_id not in by_job:
                try:
                    by_job[record.remote_id] = (await client.get(record.remote_id)).status
                except NotFoundError:
                    by_job[record.remote_id] = "gone"
            result[record.video_id] = by_job[record.remote_id]
    return result


async def delete_jobs(service: Service, records: list[StateRecord]) -> None:
    async with service.client() as client:
        for record in records:
            if record.remote_id:
                await client.delete(record.remote_id)
