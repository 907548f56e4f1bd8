"""`make bench`: run the benchmark suites, write bench/results/<suite>.json and .md.

python bench/run.py [--only data] [--work build/bench]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_data
import bench_dlib
import bench_gpu
import bench_labels
import bench_loading
import bench_serving
import bench_training
import bench_video
from common import write

SUITES = {
    "data": bench_data.run,
    "training": bench_training.run,
    "training_wide": bench_training.run_wide,
    "training_seeds": bench_training.run_seeds,
    "loading": bench_loading.run,
    "serving": bench_serving.run,
    "dlib": bench_dlib.run,
    "transfer": bench_dlib.run_transfer,
    "long_tail": bench_dlib.run_long_tail,
    "mmod_retrain": bench_dlib.run_mmod_retrain,
    "video": bench_video.run,
    "labels": lambda work: bench_labels.run(8, 80, 36, work),  # several annotators, consensus, gold
    "gpu": bench_gpu.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(SUITES), help="run only these suites")
    parser.add_argument("--work", type=Path, default=Path("build/bench"), help="scratch directory for generated data")
    args = parser.parse_args()
    for name in args.only or list(SUITES):  # serving reuses the training suite's results
        print(f"[{name}]", flush=True)
        json_path, md_path = write(SUITES[name](args.work / name))
        print(f"wrote {json_path} and {md_path}")
        print(md_path.read_text())


if __name__ == "__main__":
    main()
