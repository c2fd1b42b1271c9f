"""One BLAS thread per serving process: the one place that knows how.

A serving process gets its parallelism from concurrent requests, not from threads inside one
small matrix-vector product: with default threading two processes on two cores served ~8x fewer
requests (design notes).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from threadpoolctl import threadpool_limits

BLAS_ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def single_thread_env() -> dict[str, str]:
    """The variables that start every BLAS/OpenMP pool with one thread (for child processes)."""
    return dict.fromkeys(BLAS_ENV_VARS, "1")


def pin_blas_threads() -> Callable[[], None]:
    """Limit BLAS/OpenMP to one thread in this process; returns a function that undoes it.

    The variables are set first so that a BLAS loaded after this never starts its pool;
    threadpoolctl then resizes one that is already loaded.
    """
    saved = {var: os.environ.get(var) for var in BLAS_ENV_VARS}
    os.environ.update(single_thread_env())
    import numpy  # noqa: F401  (loads BLAS now, so threadpoolctl sees it)

    limiter = threadpool_limits(limits=1)

    def restore() -> None:
        limiter.restore_original_limits()
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value

    return restore
