"""Randomised soak in CI: a few seeds of 200+ videos under every fault and random kills.

The driver and its invariants live in :mod:`tests.soak`; ``benchmarks/soak.py`` runs
many more seeds. A failing seed replays exactly: ``python benchmarks/soak.py --seed N``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .soak import describe, soak


@pytest.mark.parametrize(("seed", "api_version"), [(1, None), (3, "3.1-preview1")])
def test_soak_pays_once_and_delivers_everything(
    tmp_path: Path, seed: int, api_version: str | None
) -> None:
    result = soak(tmp_path, 200, seed, api_version=api_version)
    print(describe(result))
    assert result.problems == []
    assert result.duplicates == 0 and result.unexplained == 0
    assert result.kills >= 1  # the seed did what it is here for
    assert result.creates == 200 + result.injected_failures
