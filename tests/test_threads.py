"""The worker start-up cap on BLAS and OpenMP thread pools (#37, docs/serving.md "Threads and CPU shares").

Each check runs in a fresh interpreter, so the pools are the ones a worker has: numpy's and
scipy's OpenBLAS and scikit-learn's libgomp loaded before the cap (the service imports them),
and a request answered on another thread than the one that started the worker, through an
ONNX Runtime network of `ort_sessions` (an Identity graph: no trained model needed).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LIMIT = 1

CHILD = textwrap.dedent(
    """
    import json, sys, tempfile, threading
    from pathlib import Path
    import numpy, onnx, sklearn.linear_model  # loaded before the cap, as in a worker
    from onnx import TensorProto, helper
    from threadpoolctl import threadpool_info
    from bearid.serving import runtime

    before = threadpool_info()
    if sys.argv[1] == "cap":
        runtime.cap_thread_pools(int(sys.argv[2]))

    folder = Path(tempfile.mkdtemp())
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "same", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), folder / "embed.onnx")

    class Bundle:
        def path(self, name):
            return folder / name

    embed = runtime.ort_sessions(Bundle(), 1, ["CPUExecutionProvider"])["embed"]

    def pools():
        return [(p["internal_api"], p["filepath"], p["num_threads"]) for p in threadpool_info()]

    other = []

    def request():  # where a request runs: a network call, then what the classifier uses
        embed(numpy.ones((2, 3)))
        other.extend(pools())

    t = threading.Thread(target=request)
    t.start()
    t.join()
    print(json.dumps({"before": [(p["internal_api"], p["num_threads"]) for p in before],
                      "main": pools(), "other": other}))
    """
)


@pytest.fixture(scope="module")
def pools() -> dict[str, dict]:
    """The child's pools with the cap and without it (both children run at once)."""
    # More threads than the cap at load, on any machine: libgomp takes what it is told,
    # OpenBLAS at most one per core.
    env = dict(os.environ, OMP_NUM_THREADS="4", OPENBLAS_NUM_THREADS="4", MKL_NUM_THREADS="4")
    children = {
        mode: subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, str(LIMIT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("cap", "none")
    }
    out = {}
    for mode, child in children.items():
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr[-3000:]
        out[mode] = json.loads(stdout.strip().splitlines()[-1])
    return out


def _over(pools: list) -> list:
    return [p for p in pools if p[-1] > LIMIT]


def test_the_cap_limits_every_pool_in_every_thread(pools):
    capped = pools["cap"]
    # Real pools are checked: the two OpenBLAS builds and libgomp.
    kinds = [api for api, _ in capped["before"]]
    assert kinds.count("openblas") >= 2 and "openmp" in kinds, capped["before"]
    assert not _over(capped["main"]), capped["main"]
    assert not _over(capped["other"]), capped["other"]


def test_the_check_fails_without_the_cap(pools):
    free = pools["none"]
    assert _over(free["other"]), free["other"]  # libgomp's 4 threads at least
    assert _over(free["main"]), free["main"]
    if (os.cpu_count() or 1) > 1:
        assert any(api == "openblas" and n > LIMIT for api, n in free["before"]), free["before"]


def test_the_service_caps_before_it_loads_a_bundle():
    tree = ast.parse((Path(__file__).parents[1] / "service" / "service.py").read_text())
    [init] = [
        f
        for c in tree.body
        if isinstance(c, ast.ClassDef) and c.name == "BearID"
        for f in c.body
        if isinstance(f, ast.FunctionDef) and f.name == "__init__"
    ]
    calls = [ast.unparse(n.func) for n in ast.walk(init) if isinstance(n, ast.Call)]
    assert "cap_thread_pools" in calls and "serving.Champion" in calls, calls
    lines = {ast.unparse(n.func): n.lineno for n in ast.walk(init) if isinstance(n, ast.Call)}
    assert lines["cap_thread_pools"] < lines["serving.Champion"]  # before the bundle loads
