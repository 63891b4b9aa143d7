"""Benchmark of the team workflow (not a test): plan, pull and apply of a fresh checkout
whose videos come from the video store, at N videos; and the committed state per video.

For each store (``local``: the second checkout shares the first one's cache folder, as
two branches or two clones on one machine do; ``azurite``: the second checkout has an
empty cache and a team store in Azurite) it:

1. writes a synthetic catalogue (``synth.py``) with an output of ``--bytes`` random
   bytes and a render record per video, as ``apply`` leaves them;
2. times ``pull`` in that checkout, which puts every output into the store(s);
3. copies the checkout without its ``build/`` folder (what ``git clone`` gives) and times
   ``plan`` there (every video ``↓`` from a store), ``pull`` (every video copied out of
   the store, verified), then, with the outputs deleted again, ``apply --yes``.

No Speech request is made: there is no service at all (``AZURE_SPEECH_ENDPOINT`` points
at a closed port, so a request would fail the run).

    python benchmarks/bench_team.py --videos 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import synth
from measure import avatarflow, machine, run_measured, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.azurite import _find_binary, running


@contextlib.contextmanager
def team_store(kind: str) -> Iterator[tuple[str | None, dict[str, str]]]:
    """(container URL or None, environment) of the store under test."""
    if kind == "local":
        yield None, {}
        return
    binary = _find_binary()
    if binary is None:
        raise SystemExit("azurite is not installed (see tests/azurite.py)")
    with running(binary) as azurite:
        container = azurite.new_container("videos")
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        yield f"{azurite.blob_url}/{container}", env


def bench(root: Path, n: int, size: int, kind: str) -> list[object]:
    with team_store(kind) as (container, env):
        first = root / kind / "first"
        manifest = synth.generate(first, n)
        if container:
            text = manifest.read_text()
            manifest.write_text(text + f"service:\n  store: {{container_url: '{container}'}}\n")
        caches = root / kind / "cache-first"
        env = {**env, "AZURE_SPEECH_ENDPOINT": "http://127.0.0.1:9", "AZURE_SPEECH_KEY": "k"}
        first_env = {**env, "AVATARFLOW_CACHE_DIR": str(caches)}
        os.environ["AVATARFLOW_CACHE_DIR"] = str(caches)
        synth.record_rendered(manifest, output_bytes=size)
        store_in = run_measured(avatarflow("pull", str(manifest)), env=first_env)
        renders = list((first / ".avatarflow" / synth.NAME / "renders").glob("*.json"))
        state_bytes = sum(p.stat().st_size for p in renders)

        second = root / kind / "second"
        shutil.copytree(first, second, ignore=shutil.ignore_patterns("build", ".cache"))
        cache = caches if kind == "local" else root / kind / "cache-second"
        second_env = {**env, "AVATARFLOW_CACHE_DIR": str(cache)}
        clone = second / "course.yaml"
        plan = run_measured(avatarflow("plan", str(clone)), env=second_env)
        pull = run_measured(avatarflow("pull", str(clone)), env=second_env)
        shutil.rmtree(second / "build")
        apply = run_measured(avatarflow("apply", str(clone), "--yes"), env=second_env)
        codes = {store_in.returncode, plan.returncode, pull.returncode, apply.returncode}
        assert codes == {0}, codes
        return [
            kind,
            n,
            store_in.seconds,
            plan.seconds,
            pull.seconds,
            apply.seconds,
            max(plan.peak_rss_mb, pull.peak_rss_mb, apply.peak_rss_mb),
            round(state_bytes / n),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=64 * 1024, help="size of each output")
    parser.add_argument("--stores", default="local,azurite")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-team-") as folder:
        for kind in args.stores.split(","):
            rows.append(bench(Path(folder), args.videos, args.bytes, kind))
    print(machine())
    print(f"{args.videos} videos of {args.bytes:,} bytes each; seconds, one fresh process each")
    print(
        table(
            [
                "store",
                "videos",
                "store all (pull)",
                "plan, fresh checkout",
                "pull",
                "apply (fetch)",
                "peak RSS MiB",
                "state bytes/video",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
