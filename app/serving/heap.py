"""Keep Python's cyclic garbage collector off the long-lived heap.

TensorFlow, Keras and the loaded models leave about 400,000 long-lived Python objects.
Every full (generation-2) collection walks all of them: about 150 ms with the event loop
stopped, every 2 s or so under load here (measured with ``gc.callbacks``). Freezing the
survivors after each load (``gc.freeze``) leaves the collector only the requests' own
short-lived objects; unfreezing first lets the models swapped out since be collected.
"""

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle() -> float:
    """Collect what is garbage now, then freeze the rest; return the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    elapsed = time.perf_counter() - started
    log.info("heap settled: %d objects frozen in %.3f s", gc.get_freeze_count(), elapsed)
    return elapsed
