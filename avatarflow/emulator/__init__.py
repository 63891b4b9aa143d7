"""A local, Azure-compatible batch avatar synthesis service that renders real videos.

It speaks the GA ``2024-08-01`` and the ``3.1-preview1`` wire protocols (see ``server``),
validates requests like the service (``validation``), keeps jobs on disk so another
process can carry them on (``jobs``), renders draft videos with ffmpeg (``video``) and
injects faults on demand (``faults``, which documents the spec grammar).
"""

from avatarflow.emulator.config import CONFIG_ENV, FAULTS_ENV, EmulatorConfig
from avatarflow.emulator.faults import FailRule, Faults, Rate
from avatarflow.emulator.probe import MediaInfo, probe
from avatarflow.emulator.requestlog import RequestRecord, create_counts, read_request_log
from avatarflow.emulator.runtime import Emulator
from avatarflow.emulator.serve import serve
from avatarflow.errors import DataDirBusyError

__all__ = [
    "CONFIG_ENV",
    "FAULTS_ENV",
    "DataDirBusyError",
    "Emulator",
    "EmulatorConfig",
    "FailRule",
    "Faults",
    "MediaInfo",
    "Rate",
    "RequestRecord",
    "create_counts",
    "probe",
    "read_request_log",
    "serve",
]
