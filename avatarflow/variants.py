"""Variants: ``variants:`` crossed with ``videos:``, like Terraform's ``for_each``.

A manifest may name dimensions (``locale``, ``avatar``…), each with named values that
carry settings merged over ``defaults``::

    variants:
      locale:
        en-US: {primary: true}
        de-DE: {voice: de-DE-SeraphinaMultilingualNeural, vars: {course: Git im Team}}

Every video is rendered once per combination of values (a video may keep to some values
with its own ``variants: {locale: [de-DE]}``). A combination's video id is the entry's id
followed by ``@value`` for each dimension (``02-commits@de-DE``), and its output lands in
a folder per value (``build/videos/de-DE/02-commits.mp4``). The ``primary`` value of a
dimension adds neither: adding a language to a course leaves the ids, outputs and renders
of the first one as they were. The dimension's name is a template variable holding the
value (``text_file: scripts/{{ locale }}/02.txt``).

Pure functions over plain data; :mod:`avatarflow.manifest` holds the models and locates
the errors.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

SEPARATOR = "@"
DIMENSION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# One value per dimension, in the manifest's order of dimensions.
Combination = tuple[tuple[str, str], ...]


def combinations(
    dimensions: Mapping[str, Sequence[str]], keep: Mapping[str, Sequence[str]] | None
) -> list[Combination]:
    """Every combination of values, restricted to ``keep`` where a video names some.
    One empty combination when there are no dimensions (a course without variants)."""
    if not dimensions:
        return [()]
    choices = [
        [(name, value) for value in values if not keep or name not in keep or value in keep[name]]
        for name, values in dimensions.items()
    ]
    return [tuple(combo) for combo in itertools.product(*choices)]


def video_id(base: str, combo: Combination, primary: Mapping[str, str]) -> str:
    """``02-commits@de-DE``: the entry's id plus each non-primary value."""
    return base + "".join(
        f"{SEPARATOR}{value}" for name, value in combo if primary.get(name) != value
    )


def output_stem(base: str, combo: Combination, primary: Mapping[str, str]) -> str:
    """``de-DE/02-commits``: a folder per non-primary value, then the entry's id."""
    folders = [value for name, value in combo if primary.get(name) != value]
    return "/".join([*folders, base])


def problem_with_name(kind: str, name: str) -> str | None:
    """Why a dimension or value name cannot be used, or ``None``."""
    if kind == "dimension" and not DIMENSION_RE.match(name):
        return (
            f"variant dimension {name!r} must be a template variable name "
            "(letters, digits and '_', not starting with a digit)"
        )
    if kind == "value" and not VALUE_RE.match(name):
        return (
            f"variant {name!r} may only use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return None
