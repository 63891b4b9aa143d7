"""Vars that use other vars: ``title: "Welcome to {{ course }}"`` rendered before use.

Like copier's templated defaults, a string var holding ``{{ … }}`` or ``{% … %}`` is
rendered with the other vars (in any order; one var may use another that uses a third),
so the braces are never spoken. A var naming an undefined variable, or vars that use
each other in a circle, are refused with the var's own location.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import jinja2.meta as jinja2_meta

from .errors import Location, TemplateBudgetError, TemplateError
from .suggest import did_you_mean
from .templatebudget import BudgetedEnvironment, render_bounded

# Bounded like every template: a var is user code too.
_ENV = BudgetedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def is_templated(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render_vars(
    values: dict[str, Any], extra: dict[str, Any], locate: Callable[[str], Location]
) -> dict[str, Any]:
    """``values`` with each templated string var rendered; ``extra`` (``video``…) may be
    used too. Unchanged (the same dict) when no var is templated."""
    pending = {k: v for k, v in values.items() if is_templated(v)}
    if not pending:
        return values
    done = {k: v for k, v in values.items() if k not in pending}
    needs: dict[str, set[str]] = {}
    for name, text in pending.items():
        try:
            needs[name] = set(jinja2_meta.find_undeclared_variables(_ENV.parse(text)))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error in var {name!r}: {exc.message}", locate(name)
            ) from None
    known = set(values) | set(extra)
    for name, wanted in needs.items():
        for missing in sorted(wanted - known):
            raise TemplateError(
                f"var {name!r} uses undefined variable {missing!r}"
                + did_you_mean(missing, known - {name}),
                locate(name),
            )
    while pending:
        ready = [n for n in pending if not (needs[n] & set(pending))]
        if not ready:
            circle = ", ".join(sorted(pending))
            first = sorted(pending)[0]
            raise TemplateError(f"vars {circle} use each other in a circle", locate(first))
        for name in ready:
            try:
                done[name] = render_bounded(_ENV.from_string(pending.pop(name)), {**extra, **done})
            except (jinja2.TemplateError, TemplateBudgetError) as exc:
                raise TemplateError(f"in var {name!r}: {exc.message}", locate(name)) from None
            except Exception as exc:  # a var is user code: any failure is the user's to fix
                raise TemplateError(
                    f"in var {name!r}: {type(exc).__name__}: {exc}", locate(name)
                ) from None
    return {k: done[k] for k in values}
