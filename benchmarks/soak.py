"""Long soak (not a test): many seeds of faults and SIGKILLs; prints the figures.

Each seed generates a course of ``--videos`` tiny videos and applies it on the embedded
emulator under random faults and kills until done, then checks the money invariants of
``tests/soak.py`` (no job id created twice, every extra render explained by a failed
job, every video on disk with its recorded sha256, no temp files, nothing left to plan).

    python benchmarks/soak.py --seeds 20 --videos 200
    python benchmarks/soak.py --seed 17 --verbose      # replay one seed
    python benchmarks/soak.py --seeds 5 --pack         # packed jobs into Azurite

``--pack`` starts Azurite (``AVATARFLOW_AZURITE_BIN`` or ``azurite-blob`` on ``PATH``).

Exits 1 if any seed broke an invariant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.azurite import running
from tests.soak import Packing, SoakResult, describe, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="run only this seed")
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--api-version", default=None, help="e.g. 3.1-preview1")
    parser.add_argument(
        "--alternate", action="store_true", help="every other seed on the preview API"
    )
    parser.add_argument("--pack", action="store_true", help="pack 50 videos per job")
    parser.add_argument("--verbose", action="store_true", help="print every apply round")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        pack = None
        if args.pack:
            binary = os.environ.get("AVATARFLOW_AZURITE_BIN") or shutil.which("azurite-blob")
            if binary is None:
                parser.error("--pack needs azurite-blob (set AVATARFLOW_AZURITE_BIN)")
            server = stack.enter_context(running(binary))
            url, _, sas = server.container_sas_url(server.new_container("soak")).partition("?")
            pack = Packing(url, sas)
        return run_seeds(args, pack)


def run_seeds(args: argparse.Namespace, pack: Packing | None) -> int:
    seeds = (
        [args.seed]
        if args.seed is not None
        else list(range(args.first_seed, args.first_seed + args.seeds))
    )
    results: list[SoakResult] = []
    started = time.monotonic()
    for index, seed in enumerate(seeds):
        api = args.api_version
        if args.alternate and index % 2 and pack is None:  # packing needs the GA API
            api = "3.1-preview1"
        with tempfile.TemporaryDirectory(prefix=f"soak-{seed}-") as folder:
            result = soak(
                Path(folder), args.videos, seed, api_version=api, pack=pack, verbose=args.verbose
            )
        results.append(result)
        print(describe(result) + (f" [{api}]" if api else ""), flush=True)
        for problem in result.problems:
            print(f"  BROKEN: {problem}", flush=True)
    wall = time.monotonic() - started
    broken = [r.seed for r in results if not r.ok]
    print(
        f"\nseeds {len(results)}, videos {sum(r.videos for r in results)}, "
        f"applies {sum(r.rounds for r in results)}, kills {sum(r.kills for r in results)}, "
        f"creates {sum(r.creates for r in results)} "
        f"(after injected failures {sum(r.injected_failures for r in results)}), "
        f"duplicates {sum(r.duplicates for r in results)}, "
        f"unexplained renders {sum(r.unexplained for r in results)}, "
        f"broken seeds {broken or 'none'}, wall time {wall:.0f} s"
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
