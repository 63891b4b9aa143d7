"""The cycle collector's pause (:func:`avatarflow.fastpath.collector_paused`): what was
built in it leaves the young generation unscanned, garbage among it is still collected,
and a freeze of the program's own is left as it was."""

from __future__ import annotations

import gc
import weakref

from avatarflow.fastpath import collector_paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_what_was_built_leaves_the_young_generation() -> None:
    gc.collect()
    with collector_paused():
        built = [(i, str(i), [i]) for i in range(20_000)]
        assert not gc.isenabled()
        assert gc.get_count()[0] > 10_000  # counted, not collected, during the pause
    assert gc.isenabled()
    # Moved to the oldest generation as it stands, not promoted by a young scan.
    oldest = {id(found) for found in gc.get_objects(generation=2)}
    assert id(built[0][2]) in oldest and id(built[-1][2]) in oldest
    del built


def test_garbage_built_in_the_pause_is_still_collected() -> None:
    with collector_paused():
        node = _Node()
        gone = weakref.ref(node)
        del node
    assert gone() is not None  # a cycle: kept until a collection
    gc.collect()
    assert gone() is None


def test_a_freeze_of_the_program_s_own_is_kept() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            built = [[i] for i in range(1_000)]
        assert gc.get_freeze_count() == frozen  # not moved: that would undo its freeze
        del built
    finally:
        gc.unfreeze()


def test_a_nested_pause_leaves_the_collector_off_until_the_outer_one_ends() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
