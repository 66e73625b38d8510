"""The one place that imports TensorFlow, tf_keras and tfmot, quietly.

TensorFlow writes C++ log lines to the process's stderr while it loads (CUDA probes on a
machine without a GPU, among them), before its own log level applies. They are kept out
of the output by default and shown with ``LOG_LEVEL=debug``; if the import fails, what it
wrote is shown with the error.
"""

import ctypes
import logging
import os
import sys
import tempfile
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI, BF16 or
# AMX. On an AVX2 machine (2 cores), with them the demo's build takes a quarter less CPU
# and the served pair's batches of 256 run 1.5 times as fast (docs/performance.md);
# TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

VERBOSE = os.environ.get("LOG_LEVEL", "").lower() in ("debug", "trace")


def _import_tensorflow():  # the tensorflow module
    if VERBOSE:
        import tensorflow

        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tensorflow.get_logger().setLevel(logging.ERROR)
    return tensorflow


tf = _import_tensorflow()
import tf_keras as keras  # noqa: E402 - after TensorFlow, with the Keras 2 switch set

__all__ = [
    "keras",
    "keep_freed_memory",
    "tf",
    "trace_as_written",
    "train_as_written",
    "without_autotuning",
]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """Let this process reuse the memory TensorFlow frees, instead of giving it back.

    TensorFlow on a CPU allocates each training step's tensors with malloc; glibc maps the
    large ones afresh and unmaps them when freed, so every step faults tens of MB of new
    pages in. Raising glibc's mmap and trim thresholds keeps them for the next step: on
    the repair's fine-tuning, 2 to 5 times fewer page faults and about 10% less time on 2
    cores. For training processes (the resident memory stays at its peak); no-op where
    glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's maximum for this threshold
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


def without_autotuning(dataset: "tf.data.Dataset") -> "tf.data.Dataset":
    """``dataset`` with tf.data's autotuning off, for training pipelines of fixed shape
    (one map call at a time, a fixed prefetch): there is nothing to tune, and Keras makes a
    new iterator every epoch, whose closing waits on the tuning thread when there is one."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def tfmot_sparsity():  # type: ignore[no-untyped-def]
    """Import ``tfmot.sparsity.keras`` lazily: it is slow and only fine-tuning needs it."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras


def trace_as_written(function):  # any callable, returned wrapped
    """``function`` marked for TensorFlow to trace as the Python it is, with autograph off.

    Autograph rewrites a traced function's source, and every Keras layer call inside it, to
    turn Python ``if`` and ``for`` on tensors into graph control flow. Keras' training step,
    the tfmot pruning wrapper, the forward passes and the augmentations here have none, so
    the rewrite changes nothing but costs CPU in every new process: on a tiny repair the
    first ``fit`` took 3.2 s with it and 1.7 s without.
    """
    return tf.autograph.experimental.do_not_convert(function)


def train_as_written(model) -> None:  # a keras.Model
    """Have ``model.fit`` trace the model class's training step with autograph off
    (:func:`trace_as_written`); calling it again on the same model changes nothing."""
    model.train_step = trace_as_written(types.MethodType(type(model).train_step, model))
