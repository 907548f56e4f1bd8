"""Serving benchmarks, each against a baseline measured in the same run:

- serving efficiency: photos/s and p50/p99 latency through the HTTP service (BentoML,
  concurrency 1, 4, 16, 32) vs the same `Pipeline` called in-process on the same photos, with
  the cores the load generator itself used (it shares the machine with the service);
- where one request's time goes: BentoML's round trip, the upload and guard, the pipeline;
- what batching the networks would gain (per-item cost at batch 1, 4, 16);
- decode: full decode + shrink vs draft-mode decode of 12 MP JPEGs for the detector input;
- stage costs: per-photo ms for decode, detect, chip, embed, classify;
- batch scoring: `bearid score` photos/s against the local service vs in-process.

The bundle comes from the training suite's results when they exist (`make bench` runs that
suite first), else from a small training run of `configs/demo.yaml`.
"""

from __future__ import annotations

import functools
import io
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import Figure, Suite, split_world
from PIL import Image

from bearid.client import BearIDClient
from bearid.imageio import load_photo
from bearid.metadata import read_faces
from bearid.score import score
from bearid.serving import bundle as bundles
from bearid.serving.localserver import LocalServer
from bearid.serving.pipeline import Pipeline
from bearid.serving.runtime import cpu_share
from bearid.synth import WorldConfig

PHOTOS = 48
WORKERS = 2
CONCURRENCY = (1, 4, 16, 32)
REQUESTS = 128


def _bundle(work: Path) -> tuple[Path, list[Path]]:
    """A bundle and the test photos of the world it was trained on."""
    from bearid.exporters.export import export
    from bearid.training.config import read_sweep
    from bearid.training.runs import runs
    from bearid.training.train import train

    results, splits = work.parent / "training" / "results", work.parent / "training" / "splits"
    if not (results.exists() and runs(results, "open_set").best):
        splits, results = split_world(WorldConfig(bears=12, photos=300, seed=5), work), work / "results"
        train(read_sweep(Path(__file__).parents[1] / "configs" / "demo.yaml"), splits, results, log=print)
    best = [p for p in runs(results, "open_set").paths if "face_config_01" in str(p[0])][0]
    out = work / "bundle"
    shutil.rmtree(out, ignore_errors=True)
    export(best[-1], out, parity_photos=4, log=print)
    test = read_faces(splits / "test.xml")
    return out, [test.path_of(i) for i in test.images][:PHOTOS]


def _latencies(call, items, concurrency: int, cpu: list | None = None) -> tuple[float, list[float]]:
    """(photos/s, per-request seconds) running `call` over `items` with `concurrency` threads;
    `cpu` gets the cores this process used meanwhile (the load generator's own share)."""
    times: list[float] = []

    def timed(item):
        t0 = time.perf_counter()
        call(item)
        times.append(time.perf_counter() - t0)

    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(timed, items))
    wall = time.perf_counter() - t0
    if cpu is not None:
        cpu.append((time.process_time() - c0) / wall)
    return len(items) / wall, times


def _batch_gain(b: bundles.Bundle) -> list[dict]:
    """Each network's cost per item at batch 1, 4 and 16: what adaptive batching of concurrent
    requests' network calls could save at most (the detector at its finest input, a 4:3 photo;
    the embedder and the landmark refiner on chips)."""
    import numpy as np

    from bearid.serving.runtime import ort_sessions

    nets = ort_sessions(b, 1)
    side, crop = (
        (max(b.detector_spec.input_sides), b.detector_spec.crop_size) if b.detector_kind == "centernet" else (768, 0)
    )
    chip = b.embed_input_size
    shapes = {"face": (3, side * 3 // 4, side), "embed": (3, chip, chip), "landmarks": (3, crop, crop)}
    rows = []
    for name, shape in shapes.items():
        if name not in nets:
            continue
        row: dict = {"network": f"{name} {shape[1]}x{shape[2]}"}
        for n in (1, 4, 16):
            x = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
            nets[name](x)  # warm up this shape
            run = functools.partial(nets[name], x)
            row[f"batch {n}"] = round(1000 * min(_time(run) for _ in range(3)) / n, 2)
        rows.append(row)
    return rows


def _profile(url: str, data: list[bytes], in_p50: float, http_times: list[float]) -> list[dict]:
    """One request's time at concurrency 1, taken apart by asking the service for less and less:
    the same photos answered; the same bytes refused by the upload guard before any decode
    (a wrong field name); a bodyless GET (/livez). The differences are the pipeline in a
    worker, the upload and the guard, and BentoML's own round trip."""
    import httpx

    def p50(call, n: int = 40) -> float:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    with httpx.Client(timeout=60) as c:
        live = p50(lambda i: c.get(f"{url}/livez"))
        guard = p50(lambda i: c.post(f"{url}/identify", files={"not_photo": data[i % len(data)]}))
    whole = 1000 * _pct(http_times, 50)
    return [
        {"part": "whole request (POST /identify, the photos)", "ms": round(whole, 1)},
        {"part": "in-process Pipeline.identify, 1 thread", "ms": round(1000 * in_p50, 1)},
        {"part": "HTTP round trip, BentoML routing (GET /livez)", "ms": round(live, 1)},
        {"part": "... + the upload and the guard's refusal (POST, wrong field)", "ms": round(guard, 1)},
        {"part": "left: the pipeline in a worker + multipart parsing + answer", "ms": round(whole - guard, 1)},
    ]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def _twelve_mp(photo: Path) -> bytes:
    img = load_photo(photo).image.resize((4000, 3000), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def run(work: Path) -> Suite:
    suite = Suite("serving")
    work.mkdir(parents=True, exist_ok=True)
    bundle_dir, photos = _bundle(work)
    # Every variant answers the same REQUESTS photos (the test photos, over again): with a few
    # dozen, a run at concurrency 16 is two waves and its rate mostly the last request's tail.
    data = [p.read_bytes() for p in photos]
    data = (data * (REQUESTS // len(data) + 1))[:REQUESTS]
    b = bundles.load(bundle_dir)

    # Stage costs and the in-process baselines: one pipeline with the worker's ORT threads
    # (1) for latency; for throughput the better of one call at a time with all the CPU
    # share's threads and one call per core at once.
    stages: dict[str, list[float]] = defaultdict(list)
    inproc = Pipeline.from_bundle(b, threads=1, on_stage=lambda s, t: stages[s].append(t))
    wide = Pipeline.from_bundle(b, threads=cpu_share())
    for d in data[:4]:
        inproc.identify(d)  # warm up
        wide.identify(d)
    stages.clear()
    one_rate, in_times = _latencies(inproc.identify, data, 1)
    in_p50 = _pct(in_times, 50)
    stage_ms = {s: 1000 * sum(v) / len(data) for s, v in stages.items()}
    variants = {
        "1 call at a time, 1 thread": one_rate,
        f"1 call at a time, {cpu_share()} threads": _latencies(wide.identify, data, 1)[0],
        f"{cpu_share()} calls at once, 1 thread each": _latencies(inproc.identify, data, cpu_share())[0],
    }
    best_name, in_rate = max(variants.items(), key=lambda kv: kv[1])
    suite.tables["stage costs (in-process, 1 ORT thread, ms per photo)"] = [
        {"stage": s, "ms per photo": round(ms, 1)} for s, ms in stage_ms.items()
    ]
    suite.tables["what batching the networks gains (in-process, 1 ORT thread, ms per item)"] = _batch_gain(b)

    # The HTTP service on the same photos: BentoML workers sharing the same cores.
    rows = []
    home = Path(tempfile.mkdtemp(prefix="bearid-bench-"))
    try:
        with (
            LocalServer(
                workers=WORKERS,
                env={"BEARID_BUNDLE": str(bundle_dir), "BENTOML_HOME": str(home)},
                log=home / "server.log",
            ) as url,
            BearIDClient(url) as client,
        ):
            for d in data[:4]:
                client.identify(d)
            http = {}
            for c in CONCURRENCY:
                cores: list[float] = []
                rate, times = _latencies(client.identify, data, c, cores)
                http[c] = (rate, times)
                rows.append(
                    {
                        "concurrency": c,
                        "photos/s": round(rate, 2),
                        "ratio": round(rate / in_rate, 3),
                        "p50 ms": round(1000 * _pct(times, 50), 1),
                        "p99 ms": round(1000 * _pct(times, 99), 1),
                        "client cores": round(cores[0], 2),
                    }
                )
            suite.tables["where one request's time goes (concurrency 1, ms, p50)"] = _profile(
                url, data, in_p50, http[1][1]
            )
            t0 = time.perf_counter()
            scored = score(_folder(work, photos), client, work / "score" / "results.jsonl", concurrency=8)
            score_rate = scored.scored / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    rows[:0] = [
        {
            "concurrency": f"in-process: {name}",
            "photos/s": round(rate, 2),
            "ratio": 1.0 if rate == in_rate else round(rate / in_rate, 3),
            "p50 ms": round(1000 * in_p50, 1) if rate == one_rate else "",
            "p99 ms": "",
            "client cores": "",
        }
        for name, rate in variants.items()
    ]
    suite.tables[f"HTTP service ({WORKERS} workers) vs in-process, {len(data)} photos"] = rows
    rate16 = http[16][0]
    suite.add(
        Figure(
            "serving throughput at concurrency 16",
            rate16,
            "photos/s",
            baseline=in_rate,
            baseline_name=f"in-process, {best_name}",
            ratio=rate16 / in_rate,
            goal=">= 0.9",
            met=rate16 / in_rate >= 0.9,
        )
    )
    added = 1000 * (_pct(http[1][1], 50) - in_p50)
    suite.add(
        Figure(
            "added p50 latency at concurrency 1",
            added,
            "ms",
            baseline=1000 * in_p50,
            baseline_name="in-process p50, 1 thread (as a worker)",
            goal="< 10 ms",
            met=added < 10,
        )
    )
    suite.add(
        Figure(
            "bearid score throughput",
            score_rate,
            "photos/s",
            baseline=in_rate,
            baseline_name=f"in-process, {best_name}",
            ratio=score_rate / in_rate,
            note=f"{scored.scored} photos, concurrency 8, {WORKERS} workers",
        )
    )

    # Decode: a 12 MP JPEG for the detector's finest input (768 px).
    big = _twelve_mp(photos[0])
    side = max(b.detector_spec.input_sides)
    full = min(_time(lambda: load_photo(big).image.resize((side, side * 3 // 4), Image.BILINEAR)) for _ in range(3))
    draft = min(_time(lambda: load_photo(big, max_side=side)) for _ in range(3))
    suite.add(
        Figure(
            "draft decode of a 12 MP JPEG for detection",
            1000 * draft,
            "ms",
            baseline=1000 * full,
            baseline_name="full decode + shrink",
            ratio=full / draft,
            goal=">= 4x",
            met=full / draft >= 4,
        )
    )
    whole = min(_time(lambda: inproc.identify(big)) for _ in range(2))
    suite.add(
        Figure(
            "identify one 12 MP photo",
            1000 * whole,
            "ms",
            note=f"decoded at {inproc.refine_side} px for detection and landmarks, chips at the resolution they need",
        )
    )
    return suite


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _folder(work: Path, photos: list[Path]) -> Path:
    """The bench photos gathered in one folder (what a researcher points `bearid score` at)."""
    folder = work / "photos"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, p in enumerate(photos):
        shutil.copy(p, folder / f"{i:03d}_{p.name}")
    shutil.rmtree(work / "score", ignore_errors=True)
    return folder
