"""ONNX Runtime: how many threads a worker may use, the cap on every other thread pool in
it (BLAS, OpenMP), and a bundle's networks as sessions.

Each network becomes a plain callable (NumPy in, NumPy out), the `Network` the one
`Pipeline` runs, so nothing else in the service knows which runtime answers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from bearid.face import Network
from bearid.serving.bundle import Bundle
from bearid.settings import Settings


def cpu_share() -> int:
    """CPUs this process may use: the cgroup quota (a container's CPU limit) if set, else
    the CPUs it is allowed to run on."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)))


def ort_threads(workers: int = 1, settings: Settings | None = None) -> int:
    """ONNX Runtime intra-op threads per worker: BEARID_ORT_THREADS, else the CPU share
    divided among the workers (more threads than cores only thrash)."""
    chosen = (settings or Settings.from_env()).ort_threads
    if chosen:
        return max(1, chosen)
    return max(1, cpu_share() // max(1, workers))


# What OpenMP and the BLAS libraries read when they load: the number of threads of their pool.
POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


_cap: list[int] = []  # the cap of this process, once cap_thread_pools has set it
_capped = threading.local()


def cap_thread_pools(threads: int) -> list[dict]:
    """Cap every BLAS and OpenMP thread pool of this process at `threads` (a worker's ONNX
    Runtime threads), once at worker start-up; answers threadpoolctl's `threadpool_info()` after.

    Without it each library sizes its pool by the machine: numpy's and scipy's OpenBLAS and
    scikit-learn's libgomp take 2 threads each on 2 cores, in every worker. threadpoolctl caps
    the libraries loaded now: OpenBLAS for every thread, OpenMP for this thread only (its
    limit is per thread: `cap_this_thread` applies it on each thread that runs a network).
    The environment caps the libraries loaded later, and child processes, for every thread.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max(1, threads)
    os.environ.update(dict.fromkeys(POOL_VARS, str(threads)))
    threadpool_limits(limits=threads)
    _cap[:] = [threads]
    _capped.done = True
    return threadpool_info()


def cap_this_thread() -> None:
    """OpenMP's cap on the calling thread, once per thread, where `cap_thread_pools` set one
    (a request runs on one of the framework's threads, not the one that started the worker)."""
    if _cap and not getattr(_capped, "done", False):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=_cap[0], user_api="openmp")
        _capped.done = True


def ort_sessions(bundle: Bundle, threads: int | None = None, providers: list[str] | None = None) -> dict[str, Network]:
    """One ONNX Runtime session per network, CUDA first where the runtime has it; under
    "providers", the providers the sessions run on."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or ort_threads()
    options.inter_op_num_threads = 1
    # A pool's threads wait for work asleep, not spinning: spinning, a second thread burned
    # the CPU share the first needed on a busy or CPU-limited machine (2 threads gave 4.5
    # photos/s against 13 with 1 on 2 busy cores; docs/serving.md, "Threads and CPU shares").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    out: dict[str, Network] = {}
    for name in ("face", "landmarks", "embed"):
        if not bundle.path(f"{name}.onnx").is_file():  # an mmod bundle's landmarks are a NumPy model
            continue
        session = ort.InferenceSession(str(bundle.path(f"{name}.onnx")), options, providers=chosen)
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray, session=session, input_name=input_name) -> np.ndarray:
            cap_this_thread()
            return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        out[name] = run
    out["providers"] = session.get_providers()  # type: ignore[assignment]
    return out
