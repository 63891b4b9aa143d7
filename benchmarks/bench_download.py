"""Benchmark of result downloads (not a test): peak memory against the video's size.

Serves a video of ``--sizes`` MB over loopback and downloads it with
``SpeechClient.download`` in a fresh process, as ``apply`` does (streamed to a temp
file, hashed on the way, fsynced). The child's peak RSS is compared with the same child
that only imports the client: a streamed download costs the same memory at any size.

    python benchmarks/bench_download.py --sizes 10,100,500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from measure import machine, run_measured, table

CHUNK = bytes(range(256)) * 4096  # 1 MiB

CHILD = """
import asyncio, sys
from pathlib import Path
from avatarflow.client import ServiceConfig, SpeechClient
from avatarflow.credentials import KeyCredential

async def main(url: str, dest: str, size: int) -> None:
    config = ServiceConfig(endpoint=url.rsplit("/", 1)[0], credential=KeyCredential("bench"))
    async with SpeechClient(config) as client:
        if size:
            got, _ = await client.download(url, Path(dest), expected_size=size)
            assert got == size, got

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        megabytes = int(self.path.rsplit("/", 1)[-1].removesuffix(".mp4"))
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(megabytes * len(CHUNK)))
        self.end_headers()
        for _ in range(megabytes):
            self.wfile.write(CHUNK)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500", help="video sizes in MiB")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/videos"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        dest = f"{scratch}/video.mp4"
        idle = run_measured([sys.executable, "-c", CHILD, f"{base}/0.mp4", dest, "0"])
        for megabytes in (int(s) for s in args.sizes.split(",")):
            size = megabytes * len(CHUNK)
            run = run_measured(
                [sys.executable, "-c", CHILD, f"{base}/{megabytes}.mp4", dest, str(size)]
            )
            assert run.returncode == 0, "download failed"
            rows.append(
                [
                    megabytes,
                    run.seconds,
                    round(megabytes / run.seconds),
                    round(run.peak_rss_mb, 1),
                    round(run.peak_rss_mb - idle.peak_rss_mb, 1),
                ]
            )
    server.shutdown()
    print(f"download ({machine()}); the client alone peaks at {idle.peak_rss_mb:.1f} MiB")
    print(table(["video MiB", "wall s", "MiB/s", "peak RSS MiB", "over idle MiB"], rows))


if __name__ == "__main__":
    main()
