"""A destination container outside packing (per-video ``destination_container_url``).

With a destination the service answers a relative ``outputs.result``; today such a video
is paid for and never downloaded. This test records that defect and passes once the
destination is service-level and downloaded through the packed path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_pack import apply, container, creates, packed_course, records

pytest_plugins = ["tests.azurite"]
__all__ = ["container"]


@pytest.mark.xfail(strict=True, reason="a relative outputs.result is never downloaded")
def test_a_video_with_its_own_destination_is_downloaded(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    url, sas = container
    manifest = packed_course(tmp_path, url, 1)
    text = manifest.read_text()
    for line in ("service:\n", "  pack: true\n", f"  destination_container_url: {url}\n"):
        text = text.replace(line, "")
    text = text.replace("  destination_path: courses/demo\n", "")
    text = text.replace(
        "  - id: v0001\n", f"  - id: v0001\n    destination_container_url: {url}?{sas}\n"
    )
    manifest.write_text(text)
    code, _, err = apply(manifest)
    assert len(creates(manifest)) == 1
    assert sas not in err
    assert code == 0, err
    assert records(manifest)["v0001"].output is not None
