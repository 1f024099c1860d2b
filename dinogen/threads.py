"""How many threads BLAS may use: set before NumPy is imported, so this module imports no NumPy."""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_THREADS = 1  # BLAS threads unless --threads, $DINOGEN_THREADS or the environment chose


def set_blas_threads(threads: int | None) -> None:
    """Choose the BLAS thread count before NumPy is imported.

    On products this small, a second BLAS thread mostly waits: measured on two
    cores it made whole training steps up to 3x slower when the other core was
    busy. So the default is one thread, unless the environment already chose.
    """
    for variable in BLAS_THREAD_VARIABLES:
        if threads is not None:
            os.environ[variable] = str(threads)
        else:
            os.environ.setdefault(variable, str(DEFAULT_THREADS))
