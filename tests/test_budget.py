"""Money: the plan's estimate, the manifest's prices, and a budget that refuses an apply
before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import avatarflow
from avatarflow import pricing
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.errors import BudgetError

from .helpers import MANIFEST, course, run_cli

MONEY_LINE = "Estimated render: 3 job(s), "


@pytest.fixture(autouse=True)
def fast_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)


def service_dir(manifest: Path) -> Path:
    return manifest.parent / ".avatarflow" / "demo" / "emulator" / "service"


def estimate_line(out: str) -> str:
    """The plan's estimate: its render line and its cost line, joined."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Estimated render"))
    return lines[at] + " " + lines[at + 1]


def test_plan_shows_money_and_short_videos_in_seconds(tmp_path: Path) -> None:
    result = run_cli("plan", str(course(tmp_path)))
    line = estimate_line(result.out)
    # 3 videos of 5 words at 150 words a minute: 2 s each, 6 s at $0.50 a minute, plus
    # the characters spoken at $15 a million.
    chars = 3 * len("Intro. Hello from video a.")
    cost = 6 / 60 * 0.50 + chars / 1e6 * 15
    assert line == (
        f"{MONEY_LINE}{chars} characters, about 6 seconds of video. "
        f"Estimated cost: about ${cost:.2f} at the prices of {pricing.shipped().as_of}."
    )
    assert "0.0 minutes" not in result.out
    data = json.loads(run_cli("plan", "--json", str(course(tmp_path))).out)["estimate"]
    assert data["cost"] == round(cost, 4) and data["currency"] == "USD"


def test_the_manifest_overrides_the_price_table(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "videos:\n",
        "pricing: {currency: EUR, as_of: 2026-01-15, avatar_per_minute: 60,"
        " neural_per_million_characters: 0}\nvideos:\n",
    )
    line = estimate_line(run_cli("plan", str(course(tmp_path, text))).out)
    assert line.endswith("about €6.00 at the prices of 2026-01-15.")  # 6 billed seconds


def test_an_incremental_plan_keeps_the_manifest_prices(tmp_path: Path) -> None:
    six = "".join(f"  - id: v{i}\n    text: Hello from video {i}.\n" for i in range(6))
    text = MANIFEST.split("videos:\n")[0] + "pricing: {currency: EUR}\nvideos:\n" + six
    manifest = course(tmp_path, text)
    assert run_cli("apply", "--emulator", "--yes", str(manifest)).code == 0
    options = avatarflow.PlanOptions(emulator=True)
    avatarflow.plan(manifest, options)  # a full plan fills the request cache
    manifest.write_text(text.replace("video 3.", "video three."), encoding="utf-8")
    result = avatarflow.plan(manifest, options)
    assert result.rendered == 1  # only the edited video was built again
    assert result.prices is not None and result.prices.currency == "EUR"
    assert "€" in estimate_line(run_cli("plan", "--emulator", str(manifest)).out)


@pytest.mark.parametrize(
    ("args", "budget", "error"),
    [
        (
            ("--max-cost", "0.01"),
            "",
            "Error: the plan is estimated at $0.03, more than --max-cost allows ($0.01, "
            "prices as of ",
        ),
        (
            ("--max-renders", "1"),
            "",
            "Error: the plan renders 2 video(s), more than --max-renders allows (1); "
            "nothing was sent",
        ),
        (
            (),
            "budget: {max_cost: 0.02}\n",
            "Error: the plan is estimated at $0.03, more than the manifest's budget.max_cost "
            "allows ($0.02,",
        ),
        (
            (),
            "budget: {max_renders: 0}\n",
            "Error: the plan renders 2 video(s), more than the manifest's budget.max_renders",
        ),
    ],
)
def test_over_budget_apply_sends_nothing(
    tmp_path: Path, args: tuple[str, ...], budget: str, error: str
) -> None:
    manifest = course(tmp_path)
    first = run_cli("apply", str(manifest), "--emulator", "--yes", "--only", "a")
    assert first.code == 0, first.err
    requests = len(read_request_log(service_dir(manifest)))
    assert requests > 0
    records = sorted((manifest.parent / ".avatarflow").rglob("videos/*.json"))
    manifest.write_text(
        manifest.read_text("utf-8").replace("videos:\n", budget + "videos:\n"), "utf-8"
    )
    # Video a's render is paid; b and c are still to render: 2 x 2 s, about $0.03.
    result = run_cli("apply", str(manifest), "--emulator", "--yes", *args)
    assert result.code == 1
    assert result.err.startswith(error), result.err
    assert len(result.err.splitlines()) == 1
    assert len(read_request_log(service_dir(manifest))) == requests  # zero requests
    assert sorted((manifest.parent / ".avatarflow").rglob("videos/*.json")) == records


def test_apply_reports_what_was_billed(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err
    row = next(line for line in result.err.splitlines() if "cost billed" in line)
    assert "prices as of" in row and "$" in row
    assert any("forgotten" in line for line in result.err.splitlines())
    renders = manifest.parent / ".avatarflow" / "demo" / "emulator" / "renders"
    billed = [json.loads(p.read_text())["billing"] for p in sorted(renders.glob("*.json"))]
    seconds = sum(b["talkingAvatarDurationSeconds"] for b in billed)
    assert seconds > 0
    total = sum(pricing.billed_cost(b, pricing.shipped()) for b in billed)
    assert pricing.shipped().money(total) in row


def test_billed_cost_reads_both_api_surfaces() -> None:
    prices = pricing.shipped()
    ga = {"neuralCharacters": 1_000_000, "talkingAvatarDurationSeconds": 120}
    preview = {"neural": 1_000_000, "talkingAvatarDurationInSeconds": 120}
    expected = 2 * prices.avatar_per_minute + prices.neural_per_million_characters
    assert pricing.billed_cost(ga, prices) == pytest.approx(expected)
    assert pricing.billed_cost(preview, prices) == pytest.approx(expected)
    assert prices.money(0.004) == "< $0.01"


def test_the_library_refuses_over_budget_before_the_emulator_starts(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    with pytest.raises(BudgetError, match=r"renders 3 video\(s\), more than --max-renders"):
        avatarflow.apply(manifest, avatarflow.ApplyOptions(emulator=True, max_renders=2))
    assert read_request_log(service_dir(manifest)) == []
    assert not list((manifest.parent / ".avatarflow").rglob("videos/*.json"))
    done = avatarflow.apply(manifest, avatarflow.ApplyOptions(emulator=True, max_renders=3))
    assert done.ok and done.summary is not None and done.summary.counts["created"] == 3
