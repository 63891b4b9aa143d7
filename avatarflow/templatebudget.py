"""A work and output budget for templates: a bomb stops in seconds, not in gigabytes.

Jinja's sandbox keeps templates from the file system and bounds ``range()``; it does not
bound what a template builds or how long it loops. ``{{ "x" * 10**9 }}`` asks for a
gigabyte, two nested ``range(100000)`` loops for ten billion rounds. Per render of one
video this module bounds:

* values built by ``*``, ``**``, ``+`` and ``%``, and those stored in a ``namespace``
  (the only way a loop can grow a value round after round): ``MAX_VALUE`` characters or
  items, ``MAX_POWER_BITS`` bits;
* the rounds of all ``{% for %}`` loops together (``MAX_ROUNDS``) and the calls of
  functions, macros and methods (``MAX_CALLS``);
* the text rendered (``MAX_OUTPUT`` characters, twice the most a request carries).

Loops are counted by the ``_LoopBudget`` extension, which rewrites ``for x in ITER`` to
``for x in (ITER)|_loop_budget`` in the token stream, so every loop is counted whatever it
iterates over. Past a budget, :class:`TemplateBudgetError` names what ran out.
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any

import jinja2
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

from .errors import TemplateBudgetError

__all__ = [
    "MAX_CALLS",
    "MAX_OUTPUT",
    "MAX_ROUNDS",
    "MAX_VALUE",
    "BudgetedEnvironment",
    "render_bounded",
]

MAX_OUTPUT = 1_000_000
MAX_VALUE = 1_000_000
MAX_POWER_BITS = 65_536
MAX_ROUNDS = 1_000_000
MAX_CALLS = 100_000
_LOOP_FILTER = "_loop_budget"
_OPEN = frozenset({"lparen", "lbracket", "lbrace"})
_CLOSE = frozenset({"rparen", "rbracket", "rbrace"})
# A printf width or precision of 7+ digits, or one taken from the arguments ("*").
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(?:\*|\d{7,})|%[-+ #0]*\d*\.(?:\*|\d{7,})")


class _Budget:
    __slots__ = ("calls", "rounds")

    def __init__(self) -> None:
        self.rounds = MAX_ROUNDS
        self.calls = MAX_CALLS


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def _spend_round() -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.rounds -= 1
    if budget.rounds < 0:
        raise TemplateBudgetError(
            f"the template's loops ran more than {MAX_ROUNDS:,} rounds (nested loops?)"
        )


class _CountedLoop:
    """An iterable whose every round is paid for; ``len()`` as the wrapped one's."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            _spend_round()
            yield item

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError: LoopContext copes


def _loop_budget(items: Any) -> Any:
    if isinstance(items, jinja2.Undefined):
        return items  # Jinja words the error for an undefined iterable
    return _CountedLoop(items)


class _LoopBudget(Extension):
    """``for TARGET in ITER`` → ``for TARGET in (ITER)|_loop_budget`` (token stream)."""

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        state = "idle"  # idle → block (after "{%") → target (after "for") → iter
        depth = 0
        for token in stream:
            if state == "iter":
                ends = token.type == "block_end" or (
                    token.type == "name" and token.value in ("if", "recursive")
                )
                if depth == 0 and ends:
                    yield Token(token.lineno, "rparen", ")")
                    yield Token(token.lineno, "pipe", "|")
                    yield Token(token.lineno, "name", _LOOP_FILTER)
                    state = "idle"
                elif token.type in _OPEN:
                    depth += 1
                elif token.type in _CLOSE:
                    depth -= 1
                yield token
                continue
            if state == "block":
                state = "target" if token.type == "name" and token.value == "for" else "idle"
            elif state == "target" and token.type == "name" and token.value == "in":
                yield token
                yield Token(token.lineno, "lparen", "(")
                state, depth = "iter", 0
                continue
            if token.type == "block_begin":
                state = "block"
            yield token


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _too_big(what: str) -> TemplateBudgetError:
    return TemplateBudgetError(f"{what} would be larger than {MAX_VALUE:,} characters or items")


class _BudgetedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past the value budget."""

    def __setitem__(self, name: str, value: Any) -> None:
        size = _size(value)
        if size is not None and size > MAX_VALUE:
            raise _too_big(f"namespace value {name!r}")
        super().__setitem__(name, value)


class BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox with the budgets of this module."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        extensions = [*options.pop("extensions", ()), _LoopBudget]
        super().__init__(extensions=extensions, **options)
        self.filters[_LOOP_FILTER] = _loop_budget
        for name, check in _BOUNDED_FILTERS.items():
            self.filters[name] = _bounded_filter(name, check)
        self.globals["namespace"] = _BudgetedNamespace

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.calls -= 1
            if budget.calls < 0:
                raise TemplateBudgetError(
                    f"the template made more than {MAX_CALLS:,} calls (runaway recursion?)"
                )
        _check_call(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        number = isinstance(left, int | float) and isinstance(right, int) and abs(left) > 1
        if number and right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise TemplateBudgetError(
                f"{left!r} ** {right!r} would have more than {MAX_POWER_BITS:,} bits"
            )
    elif operator == "*":
        for sequence, count in ((left, right), (right, left)):
            size = _size(sequence)
            if size is not None and isinstance(count, int) and size * count > MAX_VALUE:
                raise _too_big(f"{count:,} times a value of length {size:,}")
        integers = isinstance(left, int) and isinstance(right, int)
        if integers and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
            raise TemplateBudgetError(f"a product of more than {MAX_POWER_BITS:,} bits")
    elif operator == "+":
        first, second = _size(left), _size(right)
        if first is not None and second is not None and first + second > MAX_VALUE:
            raise _too_big("joining two values")
    elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
        raise TemplateBudgetError("a % format with a width of a million or more")


# str methods whose result size an argument sets: name -> the argument's index.
_WIDTH_METHODS = {"center": 0, "ljust": 0, "rjust": 0, "zfill": 0}


def _check_call(obj: Any, args: tuple[Any, ...]) -> None:
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    index = _WIDTH_METHODS.get(name)
    width = args[index] if index is not None and len(args) > index else None
    if isinstance(width, int) and width > MAX_VALUE:
        raise _too_big(f"str.{name}({width:,})")
    grows = 0
    if name == "replace" and len(args) >= 2:
        grows = owner.count(str(args[0])) * len(str(args[1]))
    elif name == "expandtabs" and args and isinstance(args[0], int):
        grows = owner.count("\t") * args[0]
    if grows > MAX_VALUE:
        raise _too_big(f"str.{name}")


def _bounded_filter(name: str, check: Any) -> Any:
    """A built-in filter that refuses arguments building values past the budget."""
    original = jinja2.filters.FILTERS[name]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    wrapper.__name__ = original.__name__
    for attr in ("jinja_pass_arg",):
        if hasattr(original, attr):
            setattr(wrapper, attr, getattr(original, attr))
    return wrapper


def _check_width(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    if isinstance(width, int) and width > MAX_VALUE:
        raise _too_big(f"a width of {width:,}")


def _check_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(value)
    if isinstance(width, int) and (text.count("\n") + 1) * width > MAX_VALUE:
        raise _too_big(f"indenting by {width:,}")
    if isinstance(width, str) and (text.count("\n") + 1) * len(width) > MAX_VALUE:
        raise _too_big("indenting")


def _check_replace(
    eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None, **kwargs: Any
) -> None:
    if (str(value).count(str(old)) + 1) * len(str(new)) > MAX_VALUE:
        raise _too_big("replace")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str) and _WIDE_FORMAT.search(value):
        raise TemplateBudgetError("a format with a width of a million or more")


def _check_join(
    eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None, **kwargs: Any
) -> None:
    if isinstance(value, Sized) and len(value) * len(str(d)) > MAX_VALUE:
        raise _too_big("join")


_BOUNDED_FILTERS: Mapping[str, Any] = {
    "center": _check_width,
    "indent": _check_indent,
    "replace": _check_replace,
    "format": _check_format,
    "join": _check_join,
}


def render_bounded(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """``template.render(context)`` within the budgets of this module."""
    token = _BUDGET.set(_Budget())
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateBudgetError(
                    f"the template's output passed {MAX_OUTPUT:,} characters "
                    "(a request carries at most 500 KB)"
                )
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _BUDGET.reset(token)
