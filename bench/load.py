"""A bounded load run against a local BearID service (loopback only).

    python bench/load.py --bundle BUNDLE --photos DIR [--duration 300] [--concurrency 4]
    python bench/load.py --url http://127.0.0.1:3000 --photos DIR ...

With --bundle it starts the service itself (2 workers) and also reports the worker
processes' resident memory at the start and the end. Reports requests, errors by status
(goal: zero 5xx), p50/p99 latency; writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx


@dataclass
class LoadReport:
    seconds: float
    concurrency: int
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    transport_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_start_mib: dict = field(default_factory=dict)
    rss_end_mib: dict = field(default_factory=dict)
    rss_timeline_mib: list = field(default_factory=list)  # [seconds, total worker RSS]

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def as_json(self) -> dict:
        d = asdict(self)
        d["statuses"] = {str(k): v for k, v in self.statuses.items()}
        d["server_errors"] = self.server_errors
        return d


def load_run(url: str, photos: list[bytes], seconds: float, concurrency: int) -> LoadReport:
    """Keep `concurrency` requests in flight for `seconds`, cycling through `photos`."""
    report = LoadReport(seconds, concurrency)
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def worker(k: int) -> None:
        i = k
        with httpx.Client(timeout=60) as http:
            while time.time() < deadline:
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{url}/identify", files={"photo": ("p.jpg", photos[i % len(photos)])})
                    status: int | None = r.status_code
                except httpx.TransportError:
                    status = None
                took = time.perf_counter() - t0
                with lock:
                    report.requests += 1
                    if status is None:
                        report.transport_errors += 1
                    else:
                        report.statuses[status] += 1
                        latencies.append(took)
                i += concurrency

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if latencies:
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
        report.p50_ms, report.p99_ms = round(1000 * q[49], 1), round(1000 * q[98], 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos to send (cycled)")
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    from bearid.score import photos_in

    photos = [p.read_bytes() for p in photos_in(args.photos)[1][:64]]
    if args.bundle:
        import tempfile

        from bearid.serving.localserver import LocalServer

        home = Path(tempfile.mkdtemp(prefix="bearid-load-"))
        server = LocalServer(
            workers=2,
            env={"BEARID_BUNDLE": str(args.bundle.resolve()), "BENTOML_HOME": str(home)},
            log=home / "server.log",
        )
        with server as url:
            with httpx.Client(timeout=60) as http:  # warm up: every photo once (ORT sizes its buffers per shape)
                for photo in photos:
                    http.post(f"{url}/identify", files={"photo": ("p.jpg", photo)})
            start = server.pid_rss()
            timeline: list = []
            stop = threading.Event()

            def sample() -> None:
                t0 = time.time()
                while not stop.wait(10):
                    timeline.append([round(time.time() - t0), round(sum(server.pid_rss().values()) / 2**20, 1)])

            sampler = threading.Thread(target=sample)
            sampler.start()
            report = load_run(url, photos, args.duration, args.concurrency)
            stop.set()
            sampler.join()
            end = server.pid_rss()
        report.rss_timeline_mib = timeline
        report.rss_start_mib = {str(k): round(v / 2**20, 1) for k, v in start.items()}
        report.rss_end_mib = {str(k): round(v / 2**20, 1) for k, v in end.items()}
    else:
        report = load_run(args.url, photos, args.duration, args.concurrency)
    out = Path(__file__).parent / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_json(), indent=1))
    print(json.dumps(report.as_json(), indent=1))


if __name__ == "__main__":
    main()
