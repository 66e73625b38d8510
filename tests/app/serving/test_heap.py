"""app.heap: garbage goes first, then the survivors are frozen out of the collector's walks."""

import gc
import weakref

from app.serving import heap


class _Node:
    def __init__(self) -> None:
        self.partner: _Node | None = None


def test_settle_collects_cycles_made_before_it_and_freezes_the_rest() -> None:
    kept = _Node()
    cycle = _Node()
    cycle.partner = _Node()
    cycle.partner.partner = cycle  # only the cyclic collector can free this pair
    swapped_out = weakref.ref(cycle)
    del cycle
    try:
        heap.settle()
        assert swapped_out() is None, "a cycle that was garbage was frozen instead of freed"
        assert gc.get_freeze_count() > 0
        assert kept.partner is None  # live objects are untouched
        frozen = gc.get_freeze_count()
        heap.settle()  # settling again (after a swap) unfreezes, collects, refreezes
        assert abs(gc.get_freeze_count() - frozen) < frozen // 10 + 100
    finally:
        gc.unfreeze()
