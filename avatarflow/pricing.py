"""Money: the shipped price table, the manifest's override, estimates and the budget.

Azure bills an avatar job for its video's length (``talkingAvatarDurationSeconds``) at
the standard or custom avatar rate, plus the characters its voice speaks at the neural
or custom neural voice rate. The shipped table (``data/prices.json``) copies the public
pay-as-you-go list with its "as of" date; a manifest's ``pricing:`` block replaces any of
its figures (another currency, a negotiated rate). Estimates use the plan's characters
and minutes; billed figures come from the service's ``billingDetails``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import BudgetError

if TYPE_CHECKING:
    from .manifest import Manifest, Pricing
    from .payload import VideoRequest
    from .planner import Plan

WORDS_PER_MINUTE = 150  # the plan's estimate of speaking speed
_TAG_RE = re.compile(r"<[^>]+>")
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


@dataclass(frozen=True)
class Prices:
    source: str
    as_of: str
    currency: str
    avatar_per_minute: float
    custom_avatar_per_minute: float
    neural_per_million_characters: float
    custom_neural_per_million_characters: float

    def money(self, amount: float) -> str:
        return money(amount, self.currency)


def money(amount: float, currency: str) -> str:
    """``$0.42``; ``< $0.01`` for a fraction of a cent, never a misleading ``$0.00``."""
    symbol = _SYMBOLS.get(currency)

    def shown(value: float) -> str:
        return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"

    if 0 < amount < 0.01:
        return "< " + shown(0.01)
    return shown(amount)


@lru_cache(maxsize=1)
def shipped() -> Prices:
    raw = json.loads((Path(__file__).parent / "data" / "prices.json").read_text("utf-8"))
    return Prices(**{f.name: raw[f.name] for f in fields(Prices)})


def prices_for(model: Manifest | None) -> Prices:
    """The shipped table with the manifest's ``pricing`` figures in place."""
    base = shipped()
    override: Pricing | None = model.pricing if model is not None else None
    if override is None:
        return base
    given = override.model_dump(exclude_none=True)
    if given and "as_of" not in given:
        given["as_of"] = "the manifest"
    return replace(base, source="the manifest's pricing", **given)


@dataclass(frozen=True)
class Estimate:
    renders: int
    characters: int
    seconds: float
    cost: float


def _spoken(request: VideoRequest) -> tuple[int, int]:
    """(characters, words) of what the voice will say: SSML tags are not spoken."""
    spoken = _TAG_RE.sub(" ", request.rendered.content).split()
    return len(" ".join(spoken)), len(spoken)


def request_cost(request: VideoRequest, prices: Prices) -> tuple[int, float, float]:
    """(characters, seconds, cost) estimated for one render of ``request``."""
    chars, words = _spoken(request)
    seconds = words / WORDS_PER_MINUTE * 60
    fields_ = request.rendered.video.fields
    custom_avatar = bool(fields_.avatar and fields_.avatar.customized)
    custom_voice = bool(fields_.custom_voices) and (fields_.voice or "") in (
        fields_.custom_voices or {}
    )
    per_minute = prices.custom_avatar_per_minute if custom_avatar else prices.avatar_per_minute
    per_million = (
        prices.custom_neural_per_million_characters
        if custom_voice
        else prices.neural_per_million_characters
    )
    # The service bills whole seconds of video.
    billed_seconds = max(1, round(seconds))
    cost = billed_seconds / 60 * per_minute + chars / 1_000_000 * per_million
    return chars, seconds, cost


def estimate(requests: Iterable[VideoRequest], prices: Prices) -> Estimate:
    renders, chars, seconds, cost = 0, 0, 0.0, 0.0
    for request in requests:
        c, s, m = request_cost(request, prices)
        renders, chars, seconds, cost = renders + 1, chars + c, seconds + s, cost + m
    return Estimate(renders, chars, seconds, cost)


def plan_estimate(plan: Plan, prices: Prices) -> Estimate:
    """What the plan's paid renders are expected to cost."""
    return estimate((a.request for a in plan.paid() if a.request is not None), prices)


def duration(seconds: float) -> str:
    """``about 25 seconds``, ``about 3.5 minutes``: short videos are not "0.0 minutes"."""
    if seconds < 59.5:
        whole = max(1, round(seconds))
        return f"about {whole} second{'s' if whole != 1 else ''}"
    return f"about {seconds / 60:.1f} minutes"


def billed_cost(billing: Mapping[str, int], prices: Prices, custom_avatar: bool = False) -> float:
    """The list price of a job's ``billingDetails`` (GA keys, and the preview's)."""
    neural = billing.get("neuralCharacters", 0) + billing.get("neural", 0)
    custom = billing.get("customNeuralCharacters", 0) + billing.get("customNeural", 0)
    seconds = billing.get("talkingAvatarDurationSeconds", 0) + billing.get(
        "talkingAvatarDurationInSeconds", 0
    )
    per_minute = prices.custom_avatar_per_minute if custom_avatar else prices.avatar_per_minute
    return (
        seconds / 60 * per_minute
        + neural / 1_000_000 * prices.neural_per_million_characters
        + custom / 1_000_000 * prices.custom_neural_per_million_characters
    )


class Limits(Protocol):
    """What a run may cost at most (None: no limit): ``ApplyOptions`` or a ``Budget``."""

    @property
    def max_cost(self) -> float | None: ...

    @property
    def max_renders(self) -> int | None: ...


def check_budget(plan: Plan, prices: Prices, given: Limits, budget: Limits | None) -> None:
    """Refuse a plan over a limit before anything is sent: the ``given`` limits
    (``--max-cost``/``--max-renders``) first, else the manifest's ``budget``."""
    max_cost, max_renders = given.max_cost, given.max_renders
    cost_limit = max_cost if max_cost is not None else budget.max_cost if budget else None
    render_limit = (
        max_renders if max_renders is not None else budget.max_renders if budget else None
    )
    if cost_limit is None and render_limit is None:
        return
    found = plan_estimate(plan, prices)
    if render_limit is not None and found.renders > render_limit:
        origin = "--max-renders" if max_renders is not None else "the manifest's budget.max_renders"
        raise BudgetError(
            f"the plan renders {found.renders} video(s), more than {origin} allows "
            f"({render_limit}); nothing was sent"
        )
    if cost_limit is not None and found.cost > cost_limit:
        origin = "--max-cost" if max_cost is not None else "the manifest's budget.max_cost"
        raise BudgetError(
            f"the plan is estimated at {prices.money(found.cost)}, more than {origin} allows "
            f"({prices.money(cost_limit)}, prices as of {prices.as_of}); nothing was sent"
        )
