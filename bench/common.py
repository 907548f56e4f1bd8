"""Shared bench plumbing: machine facts, timing, and writing JSON + a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def split_world(config, work: Path) -> Path:
    """A synthetic world (`config`, a bearid.synth.WorldConfig) made in `work/world` and split
    by image with its ground truth into `work/splits`, which is returned."""
    from bearid.data.split import SplitConfig, split
    from bearid.metadata import read_faces
    from bearid.synth import TRUTH_DIR, made_with, synthesize

    world, splits = work / "world", work / "splits"
    if (world / TRUTH_DIR).is_dir() and not made_with(world, config):
        shutil.rmtree(world)  # an earlier run's world, made with other settings
    synthesize(config, world, workers=0)
    split(world, splits, SplitConfig(by="image"), read_faces(world / "_truth/faces.xml"))
    return splits


def intervals(class_dir: Path, split: str = "test") -> dict[str, tuple[float, float] | None]:
    """95% bootstrap intervals over bears (bearid.metrics.bootstrap_by_bear) of a class stage's
    BAKS and BAUS on `split`, from its per-chip predictions (class_meta/<split>.json): a test
    split of a dozen bears cannot carry two decimals, and these say how many it can."""
    from bearid.metrics import bootstrap_by_bear

    rows = json.loads((class_dir / "class_meta" / f"{split}.json").read_text())
    ids = set(json.loads((class_dir / "classifier" / "ids.json").read_text()))
    known = [r for r in rows if r["truth"] in ids]
    unknown = [r for r in rows if r["truth"] and r["truth"] not in ids] + _holdout_half(class_dir, split, ids)
    return {
        "BAKS 95%": bootstrap_by_bear([r["truth"] for r in known], [r["bear_id"] == r["truth"] for r in known])
        if known
        else None,
        "BAUS 95%": bootstrap_by_bear([r["truth"] for r in unknown], [not r["known"] for r in unknown])
        if unknown
        else None,
    }


def _holdout_half(class_dir: Path, split: str, ids: set[str]) -> list[dict]:
    """The predictions of the held-out bears' chips the class stage measured `split`'s open set
    on (training/stages.py: run_classify gives validation one half of them by bear, test the
    other), halved by the same function."""
    from bearid.training.embed.embeddings import load_embeddings

    holdout, rows = class_dir.parent / "embeddings" / "holdout.npz", class_dir / "class_meta" / "holdout.json"
    if split not in ("val", "test") or not holdout.is_file() or not rows.is_file():
        return []
    halves = load_embeddings(holdout).split_known(ids)[1].halves_by_bear()
    mine = set(halves[0 if split == "val" else 1].paths)
    return [r for r in json.loads(rows.read_text()) if r["chip"] in mine]


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None  # the same-run baseline, same unit
    baseline_name: str = ""
    ratio: float | None = None  # value / baseline (or as stated in `note`)
    goal: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Suite:
    name: str
    figures: list[Figure] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(
            f"  {figure.name}: {figure.value:.3g} {figure.unit}"
            + (f" (ratio {figure.ratio:.3g}, goal {figure.goal})" if figure.ratio is not None else ""),
            flush=True,
        )
        return figure


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = None
    try:
        gpu = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "gpu": gpu,
        "python": platform.python_version(),
        "system": platform.platform(),
        "device": "cuda" if gpu else "cpu",
    }


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's (state, CPU seconds so far), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            out[int(stat.parent.name)] = (fields[0], (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            pass
    return out


def machine_load(seconds: float = 1.0) -> dict:
    """What else is running: the load average (1, 5, 15 min), the other processes running
    (state R) now, and those that used more than 5% of a core over the next `seconds`, with
    the cores they used together (this process and its children left out)."""
    me = os.getpid()
    mine = {me}
    try:
        mine |= {int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()}
    except (OSError, ValueError):
        pass
    t0, before = time.perf_counter(), _cpu_seconds()
    time.sleep(seconds)
    wall, after = time.perf_counter() - t0, _cpu_seconds()
    used = {pid: (after[pid][1] - cpu) / wall for pid, (_, cpu) in before.items() if pid in after and pid not in mine}
    busy = [u for u in used.values() if u > 0.05]
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "running": sum(1 for pid, (state, _) in before.items() if state == "R" and pid not in mine),
        "using_cpu": len(busy),
        "their_cores": round(sum(busy), 2),
    }


def describe_load(start: dict, end: dict) -> str:
    """The load a suite ran under, for a Figure's note."""

    def avg(m: dict) -> str:
        return "/".join(f"{x:.2f}" for x in m["load_average"])

    return (
        f"load average (1/5/15 min) {avg(start)} before the suite and {avg(end)} after it, on "
        f"{os.cpu_count()} cores; at the start {start['using_cpu']} other processes were using CPU "
        f"({start['their_cores']:.2f} cores together over 1 s; {start['running']} running), at the end "
        f"{end['using_cpu']} ({end['their_cores']:.2f} cores)"
    )


def best_of(fn: Callable[[], object], repeat: int = 2) -> float:
    """The fastest of `repeat` runs, in seconds (the first also warms caches)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write(suite: Suite) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "suite": suite.name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "figures": [asdict(f) for f in suite.figures],
        "tables": suite.tables,
    }
    json_path = RESULTS / f"{suite.name}.json"
    json_path.write_text(json.dumps(data, indent=1))
    lines = [
        f"# {suite.name} benchmarks",
        "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, "
        f"{data['machine']['memory_gib']} GiB, device {data['machine']['device']}; {data['when']}.",
        "",
        "| figure | value | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in suite.figures:
        base = f"{f.baseline:.3g} {f.unit} ({f.baseline_name})" if f.baseline is not None else ""
        ratio = f"{f.ratio:.3g}" if f.ratio is not None else ""
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.name} | {f.value:.3g} {f.unit} | {base} | {ratio} | {f.goal} | {met} |")
    notes = [f"- {f.name}: {f.note}" for f in suite.figures if f.note]
    if notes:
        lines += ["", *notes]
    for title, rows in suite.tables.items():
        if rows:
            lines += ["", f"## {title}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
    md_path = RESULTS / f"{suite.name}.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
