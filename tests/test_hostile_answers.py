"""A service that answers wrongly, through a real ``apply`` against the emulator's faults.

Each hostile answer (see :mod:`avatarflow.emulator.faults`) must end as an error for the
video it concerns, with the service's words in the message: nothing recorded as a
success, no second paid create in the emulator's request log, exit 3. Once the fault is
lifted, the next apply finishes with the right video, paid once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from avatarflow import client, runner
from avatarflow.emulator.requestlog import create_counts
from avatarflow.errors import MediaCheckError
from avatarflow.mediacheck import check_media
from avatarflow.retry import RetryPolicy
from avatarflow.state import StateRecord

from .helpers import (
    apply,
    assert_all_rendered,
    assert_paid_once_and_complete,
    data_dir,
    download_temp_files,
    emulate,
    example,
    faults_by_kind,
    open_course,
    synthesis_id,
    temp_files,
)

ONE = ("--only", "01-*")
# More than every download attempt of one apply: a fresh result URL fetched on the way
# may start the attempts again, and the faults are lifted by a new emulator anyway.
EVERY = 4 * RetryPolicy().max_attempts
GA = "2024-08-01"
PREVIEW = "3.1-preview1"


def record_of(manifest: Path, video_id: str = "01-welcome") -> StateRecord:
    return open_course(manifest, "emulator").load_state().records[video_id]


def output_of(manifest: Path, video_id: str = "01-welcome") -> Path:
    return manifest.parent / "build" / "videos-drafts" / f"{video_id}.mp4"


def first_apply(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    faults: str,
    *args: str,
    api_version: str = GA,
) -> tuple[Path, str]:
    """Apply video 01 once under ``faults``: it must fail without being recorded done."""
    manifest = example(tmp_path, api_version)
    emulate(monkeypatch, faults)
    code, out, err = apply(manifest, *ONE, *args)
    assert code == 3, out + err
    record = record_of(manifest)
    assert record.status != "downloaded" and record.output is None, record
    assert not output_of(manifest).exists()
    return manifest, out + err


def lifted_apply(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The next apply without faults finishes video 01, created exactly once."""
    emulate(monkeypatch, "")
    code, out, err = apply(manifest, *ONE)
    assert code == 0, out + err
    assert_all_rendered(manifest, ["01-welcome"])
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "01-welcome"): 1}
    return out + err


# -- creates answered wrongly ---------------------------------------------------------------


def test_a_create_answered_with_another_jobs_id_is_not_taken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out = first_apply(tmp_path, monkeypatch, "wrong_id=1")
    assert "UntrustedAnswer" in out and "answered for job id" in out, out
    record = record_of(manifest)
    assert record.status == "submitting"  # unknown outcome: adopted by its id next time
    assert record.remote_id == synthesis_id(manifest, "01-welcome")
    assert faults_by_kind(manifest)[("create", "wrong_id")] == 1
    assert re.search(r"jobs created \(paid creates\) +│ +1 │", out), out  # paid all the same
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


def test_a_create_answered_with_an_unreadable_id_is_adopted_by_our_id_not_paid_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out = first_apply(tmp_path, monkeypatch, "bad_id=1")
    assert "UntrustedAnswer" in out and "«?»" in out, out
    record = record_of(manifest)
    assert record.status == "submitting" and record.error is not None
    assert record.error.code == "UntrustedAnswer"  # not JobGone: the next plan pays nothing
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


def test_a_create_answered_with_an_existing_jobs_id_does_not_take_its_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = example(tmp_path)
    emulate(monkeypatch, "")
    assert apply(manifest, *ONE)[0] == 0
    first = output_of(manifest).read_bytes()
    emulate(monkeypatch, "wrong_id=1")
    code, out, err = apply(manifest, "--only", "02-*")
    assert code == 3, out + err
    assert f"answered for job id '{synthesis_id(manifest, '01-welcome')}'" in out + err
    assert record_of(manifest, "02-commits").status == "submitting"
    assert not output_of(manifest, "02-commits").exists()
    assert record_of(manifest).status == "downloaded" and output_of(manifest).read_bytes() == first
    emulate(monkeypatch, "")
    code, out, err = apply(manifest, "--only", "02-*")
    assert code == 0 and "adopted existing job" in out + err, out + err
    assert output_of(manifest, "02-commits").read_bytes() != first
    assert create_counts(data_dir(manifest)) == {
        synthesis_id(manifest, v): 1 for v in ("01-welcome", "02-commits")
    }


def test_a_preview_create_answered_with_an_unreadable_id_is_adopted_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The preview's server names its job: an answer that cannot name one is an unknown
    # outcome, settled at once by the content hash in the listing.
    manifest = example(tmp_path, PREVIEW)
    emulate(monkeypatch, "bad_id=1")
    code, out, err = apply(manifest, *ONE)
    assert code == 0, out + err
    assert "adopted existing job" in out + err
    assert_all_rendered(manifest, ["01-welcome"])
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "01-welcome"): 1}


def test_a_preview_create_answered_with_an_unknown_id_is_found_by_its_hash_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out = first_apply(tmp_path, monkeypatch, "wrong_id=1", api_version=PREVIEW)
    assert "which the service does not know" in out and "content hash" in out, out
    record = record_of(manifest)
    assert record.status == "submitting" and record.remote_id is None
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


# -- lookups and polls that never end ---------------------------------------------------------


def test_a_listing_with_a_fresh_next_link_on_every_page_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The preview's lost create is looked up by listing: the listing never ends. (The
    # bound is 1,000 pages; 50 here keep the emulator's request log short.)
    monkeypatch.setattr(client, "MAX_LIST_PAGES", 50)
    manifest, out = first_apply(
        tmp_path, monkeypatch, "lose_create=1,endless_list=100000", api_version=PREVIEW
    )
    assert "still sent a next page link after 50 pages" in out, out
    assert record_of(manifest).status == "submitting"
    assert faults_by_kind(manifest)[("list", "endless_list")] == 50
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


def test_a_lookup_answered_with_a_web_page_fails_that_video_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out = first_apply(
        tmp_path, monkeypatch, "lose_create=1,not_json=100%@list", api_version=PREVIEW
    )
    assert "UntrustedAnswer" in out and "list jobs: the response is not a JSON object" in out
    assert record_of(manifest).status == "submitting"
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


def test_timeout_is_honoured_by_a_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, out = first_apply(
        tmp_path,
        monkeypatch,
        "lose_create=1,endless_list=100000,throttle=100%@list,retry_after=0.2",
        "--timeout",
        "1",
        api_version=PREVIEW,
    )
    assert "looking up job" in out and "took more than 1 s" in out, out
    assert "timed out (resumable)" in out
    assert "adopted existing job" in lifted_apply(manifest, monkeypatch)


@pytest.mark.parametrize(
    ("faults", "words"),
    [
        ("huge_body=100%@get", "larger than the 8,388,608 bytes"),
        ("not_json=100%@get", "the response is not a JSON object"),
        ("status_as=*:Canceled", "'Canceled' (a status the API does not document)"),
    ],
    ids=["huge-body", "not-json", "unknown-status"],
)
def test_polls_that_never_give_a_usable_answer_end_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str, words: str
) -> None:
    manifest, out = first_apply(tmp_path, monkeypatch, faults, "--timeout", "2")
    assert words in out and "timed out (resumable)" in out, out
    assert record_of(manifest).status in ("submitted", "running")
    assert "adopted existing job" not in lifted_apply(manifest, monkeypatch)


def test_an_undocumented_status_is_refused_after_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "UNKNOWN_STATUS_TIMEOUT", 1.0)  # 300 s by default
    manifest, out = first_apply(tmp_path, monkeypatch, "status_as=*:Canceled")
    assert "UntrustedAnswer" in out and "has reported the status 'Canceled' for 1 s" in out, out
    assert "the API documents only NotStarted, Running, Succeeded, Failed" in out
    assert record_of(manifest).status in ("submitted", "running")
    assert "adopted existing job" not in lifted_apply(manifest, monkeypatch)


def test_a_lowercase_failed_status_keeps_the_services_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out = first_apply(
        tmp_path, monkeypatch, "fail=*01-*:InvalidSsml:Bad SSML here,status_as=*:lower"
    )
    record = record_of(manifest)
    assert record.status == "failed" and record.remote_status == "Failed"
    assert record.error is not None and record.error.code == "InvalidSsml"
    assert "Bad SSML here" in out


def test_a_lowercase_succeeded_status_is_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = example(tmp_path)
    emulate(monkeypatch, "status_as=*:lower")
    code, out, err = apply(manifest)
    assert code == 0, out + err
    assert_paid_once_and_complete(manifest)


# -- downloads that are not the video -------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "words"),
    [
        (f"html_download={EVERY},no_size=1", "answered text/html where a mp4 video was expected"),
        (f"short_body={EVERY},no_size=1", "is not a complete MP4 video"),
        (f"short_body={EVERY}", "but the job reported"),
    ],
    ids=["html-page", "short-body-lying-length", "short-body-with-size"],
)
def test_a_download_that_is_not_the_video_is_refused_and_fetched_again_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str, words: str
) -> None:
    manifest, out = first_apply(tmp_path, monkeypatch, faults)
    assert "DownloadFailed" in out and words in out, out
    assert record_of(manifest).status == "succeeded"  # paid, kept, downloaded next time
    assert download_temp_files(manifest) == []
    out = lifted_apply(manifest, monkeypatch)
    assert "saved build/videos-drafts/01-welcome.mp4" in out


# -- a full disk ----------------------------------------------------------------------------


@contextlib.contextmanager
def drafts_on_a_small_disk(tmp_path: Path, options: str) -> Iterator[tuple[Path, Path]]:
    """The example course with its drafts folder on a tmpfs mounted with ``options``
    (skips where none can be mounted): the manifest and that folder."""
    manifest = example(tmp_path)
    folder = manifest.parent / "build" / "videos-drafts"
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield manifest, folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root")
def test_a_full_disk_fails_the_downloads_that_do_not_fit_and_spares_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulate(monkeypatch, "")
    with drafts_on_a_small_disk(tmp_path, "size=400k") as (manifest, folder):
        code, out, err = apply(manifest)
        state = open_course(manifest, "emulator").load_state()
        full = [v for v, r in state.records.items() if r.status != "downloaded"]
        done = [v for v, r in state.records.items() if r.status == "downloaded"]
        assert code == 3, out + err
        assert full and done, out + err
        for video in full:
            line = f"build/videos-drafts/{video}.mp4: No space left on device"
            assert sum(line in text for text in (out + err).splitlines()) == 1, out + err
            assert state.records[video].status == "succeeded"
        assert temp_files(folder) == []
        assert "Internal error" not in out + err and "Traceback" not in out + err
    code, out, err = apply(manifest)
    assert code == 0, out + err
    assert_paid_once_and_complete(manifest)


# -- the container checks on their own --------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_the_media_check_refuses_pages_and_cut_files_and_accepts_whole_ones(
    tmp_path: Path, kind: str
) -> None:
    import asyncio

    import imageio_ffmpeg

    video = tmp_path / f"v.{kind}"
    codec = ["-c:v", "libx264"] if kind == "mp4" else ["-c:v", "libvpx-vp9"]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
         "testsrc=size=64x64:rate=25", "-t", "2", *codec, "-y", str(video)],
        check=True,
    )  # fmt: skip
    asyncio.run(check_media(video, kind))
    page = tmp_path / f"page.{kind}"
    page.write_bytes(b"<html><head><title>502 Bad Gateway</title></head></html>")
    with pytest.raises(MediaCheckError, match=r"is not an? (MP4|WebM) file .* it begins '<html>"):
        asyncio.run(check_media(page, kind))
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(MediaCheckError, match=f"is not a complete {kind.upper()} video"):
        asyncio.run(check_media(cut, kind))


def _top_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, length) of each top-level box of a whole MP4 file (32-bit lengths)."""
    boxes, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append((data[offset + 4 : offset + 8], offset, length))
        offset += length
    return boxes


def test_an_mp4_cut_anywhere_is_refused_even_between_two_samples(tmp_path: Path) -> None:
    # ffmpeg reads a file cut exactly between two samples without a word: the top-level
    # boxes, each of which must end within the file, tell it apart from a whole one.
    import asyncio

    import imageio_ffmpeg

    video = tmp_path / "v.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
         "testsrc=size=64x64:rate=25", "-t", "2", "-c:v", "libx264",
         "-movflags", "+faststart", "-y", str(video)],
        check=True,
    )  # fmt: skip
    data = video.read_bytes()
    boxes = {kind: (offset, length) for kind, offset, length in _top_boxes(data)}
    assert {b"ftyp", b"moov", b"mdat"} <= boxes.keys()
    moov_end = sum(boxes[b"moov"])
    mdat = boxes[b"mdat"][0]
    cuts = {
        "after the moov box": moov_end,
        "after the mdat header": mdat + 8,
        "half": len(data) // 2,
        "the last byte": len(data) - 1,
    }
    for name, size in cuts.items():
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(data[:size])
        with pytest.raises(MediaCheckError, match="is not a complete MP4 video") as caught:
            asyncio.run(check_media(cut, "mp4", probe=False))  # the boxes alone tell
        assert str(cut) not in str(caught.value), name
    # No moov at all: what a proxy's cut of a file written moov-last may look like.
    whole = tmp_path / "no-moov.mp4"
    ftyp = boxes[b"ftyp"]
    whole.write_bytes(data[ftyp[0] : sum(ftyp)] + data[mdat:])
    with pytest.raises(MediaCheckError, match="has no 'moov' box"):
        asyncio.run(check_media(whole, "mp4", probe=False))
    asyncio.run(check_media(video, "mp4", probe=False))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root")
def test_a_read_only_output_folder_is_one_line_per_video_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulate(monkeypatch, "")
    with drafts_on_a_small_disk(tmp_path, "ro,size=64k") as (manifest, _):
        code, out, err = apply(manifest, *ONE)
    assert code == 3, out + err
    line = "failed: LocalWriteFailed: build/videos-drafts/01-welcome.mp4: Read-only file system"
    assert line in out + err and "Traceback" not in out + err, out + err
    assert record_of(manifest).status == "succeeded"  # paid, kept, downloaded next time
    assert "adopted existing job" not in lifted_apply(manifest, monkeypatch)
