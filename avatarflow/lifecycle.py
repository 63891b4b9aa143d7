"""The statuses a video's record goes through; kept apart so the planner needs no pydantic."""

from __future__ import annotations

from typing import Literal

Status = Literal["submitting", "submitted", "running", "succeeded", "downloaded", "failed"]
# A job was (or may have been) created and its video is not on disk yet.
IN_FLIGHT: frozenset[str] = frozenset({"submitting", "submitted", "running", "succeeded"})
