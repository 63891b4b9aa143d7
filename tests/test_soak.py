"""Randomised soak in CI: a few seeds of 120 videos under every fault and random kills.

The driver and its invariants live in :mod:`tests.soak`; ``benchmarks/soak.py`` runs
many more seeds. A failing seed replays its faults and kill points:
``python benchmarks/soak.py --seed N --verbose``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .azurite import Azurite
from .soak import Packing, SoakResult, describe, soak

pytest_plugins = ["tests.azurite"]

# Enough videos for several polls, packs and kills per run, few enough for the suite's
# ten minutes; ``benchmarks/soak.py`` runs larger catalogues and many more seeds.
VIDEOS = 120


def assert_paid_once_and_delivered(result: SoakResult) -> None:
    print(describe(result))
    assert result.problems == []
    assert result.duplicates == 0 and result.unexplained == 0
    assert result.kills >= 1  # the seed did what it is here for


@pytest.mark.parametrize(("seed", "api_version"), [(1, None), (3, "3.1-preview1")])
def test_soak_pays_once_and_delivers_everything(
    tmp_path: Path, seed: int, api_version: str | None
) -> None:
    result = soak(tmp_path, VIDEOS, seed, api_version=api_version)
    assert_paid_once_and_delivered(result)
    assert result.creates == VIDEOS + result.injected_failures  # one job per video


def test_soak_of_packed_videos_pays_once_per_pack(tmp_path: Path, azurite: Azurite) -> None:
    url, _, sas = azurite.container_sas_url(azurite.new_container("soak")).partition("?")
    result = soak(tmp_path, VIDEOS, 5, pack=Packing(url, sas, max_inputs=VIDEOS // 4))
    assert_paid_once_and_delivered(result)
    assert result.creates == 4 + result.injected_failures  # one job per quarter of them
