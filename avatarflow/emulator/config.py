"""Settings of one emulator instance.

The defaults suit the embedded emulator and the test suite: jobs start at once, videos
are rendered at a small draft size (320x180; photo avatars become a 180x180 square) so
that a clip of a few seconds encodes in well under a second on a laptop. The service
renders 1920x1080 (photo avatars 512x512); pass ``width``/``height`` to get that size.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarflow.emulator.faults import Faults

CONFIG_ENV = "AVATARFLOW_EMULATOR_CONFIG"
FAULTS_ENV = "AVATARFLOW_EMULATOR_FAULTS"


# A flat field list, alike in shape to faults.Faults: intended (two settings records).
@dataclass
class EmulatorConfig:
    """How the emulator behaves; every field can also come from ``AVATARFLOW_EMULATOR_CONFIG``."""

    queue_seconds: float = 0.0
    """Time a job stays ``NotStarted`` after its creation."""
    min_run_seconds: float = 0.0
    """Minimum time in ``Running``; the real render time counts towards it."""
    width: int = 320
    height: int = 180
    """Draft frame size of video avatars (the service renders 1920x1080)."""
    fps: int = 25
    ttl_seconds_per_hour: float = 3600.0
    """Real seconds per hour of ``timeToLiveInHours`` (tests shrink it)."""
    url_ttl_seconds: float = 86400.0
    """Lifetime of the signature of a result URL."""
    creates_per_minute: int | None = None
    """Create throttle (the service documents 2 per minute); ``None`` turns it off."""
    time_scale: float = 1.0
    """Divides the throttle period: 60 makes "per minute" mean "per second"."""
    max_active_jobs: int = 200
    """Jobs in ``NotStarted``/``Running`` beyond which a create answers 400."""
    key: str | None = field(default=None, repr=False)
    """``None``: any non-empty key or bearer token is accepted; else this exact key."""
    render_workers: int = 2
    """Background render threads (each runs one ffmpeg at a time)."""
    speech: bool = True
    """Narrate with espeak-ng when it is installed; ``False`` always uses a tone."""
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError("width and height must be at least 16 pixels")
        if self.render_workers < 1:
            raise ValueError("render_workers must be at least 1")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EmulatorConfig:
        """Build a config from plain values (JSON); ``faults`` may be a spec string."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown emulator config field(s): {', '.join(unknown)}")
        kwargs = dict(values)
        faults = kwargs.get("faults")
        if isinstance(faults, str):
            kwargs["faults"] = Faults.parse(faults)
        elif faults is not None and not isinstance(faults, Faults):
            raise ValueError("faults must be a fault spec string")
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
        """Read ``AVATARFLOW_EMULATOR_CONFIG`` (JSON object) and ``AVATARFLOW_EMULATOR_FAULTS``.

        The faults variable wins over a ``faults`` entry inside the JSON.
        """
        env = os.environ if environ is None else environ
        raw = env.get(CONFIG_ENV, "").strip()
        values: dict[str, Any] = {}
        if raw:
            loaded = json.loads(raw)
            if not isinstance(loaded, dict):
                raise ValueError(f"{CONFIG_ENV} must hold a JSON object")
            values = loaded
        config = cls.from_mapping(values)
        spec = env.get(FAULTS_ENV, "").strip()
        if spec:
            config.faults = Faults.parse(spec)
        return config
