"""One BLAS thread for the offline walks that score one moment at a time.

``zmot evaluate``'s replay and the hybrid ranker's training moments each score the catalog for
one profile, the same small matrix-vector products the API computes per request; the API runs
them on one BLAS thread (``api/blas.py``). With numpy's default pool here too, every product
woke a second thread: on a 2-core machine that something else also uses, the walk of 20,000
items ran 5x slower (BENCHMARKS.md, "Offline at scale"). One thread computes each product's
elements with the same kernel, so the answers are the same.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context manager that keeps BLAS to one thread inside it (LightFM's own threads, set
    by its ``num_threads``, are not BLAS and keep theirs)."""
    return threadpool_limits(limits=1, user_api="blas")
