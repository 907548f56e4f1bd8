"""Video benchmarks on synthetic clips of the bundle's own world, each against a baseline
measured in the same run:

- track-level BAKS/BAUS (each track named once from its pooled best chips) against the
  same tracks named chip by chip (each of the same best chips classified alone, the
  track's answer their majority);
- track purity, fragmentation and coverage against the clips' truth;
- frames/s of the whole path (decode, detect, track, chip, embed, classify) against
  decode-only throughput of the same clips.

python bench/bench_video.py [--bundle B --world W] [--clips 12] [--work build/bench/video]
(W: the synthetic world B was trained on; by default the training suite's, else a small
training run as the serving suite makes.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from common import Figure, Suite, describe_load, machine_load, write

from bearid.embed import network_input
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.synth import WorldConfig
from bearid.video.decode import count_frames
from bearid.video.identify import VideoOptions, identify_clip
from bearid.video.measure import score_clips
from bearid.video.output import track_line
from bearid.video.synth import read_truth, write_videos

CLIPS = 12


def _world_config(world: Path) -> WorldConfig:
    """The config a synthetic world was made with (its stamp), lists back to tuples."""
    made = json.loads((world / "_truth" / "synth.json").read_text())["config"]
    return WorldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in made.items()})


def _bundle_and_world(work: Path) -> tuple[Path, Path]:
    from bench_serving import _bundle

    bundle, _ = _bundle(work)
    trained = work.parent / "training" / "world"
    return bundle, trained if (trained / "_truth" / "synth.json").exists() else work / "world"


def _chip_by_chip(pipeline: Pipeline, answers) -> list[tuple[list[dict], dict]]:
    """The same tracks, each named by the majority of its chips' answers taken one by one."""
    out = []
    for answer, clip in answers:
        found = []
        for track in answer.tracks:
            rows = [b.chip.image for b in track.best]
            x = np.stack([network_input(c, pipeline.embed_size, pipeline.embed_norm) for c in rows])
            votes = Counter(p.bear_id for p in pipeline.classifier.predictions(pipeline.embed(x)))
            line = track_line(answer, track, [], None)
            line["bear_id"] = votes.most_common(1)[0][0]
            found.append(line)
        out.append((found, clip))
    return out


def run(work: Path, bundle: Path | None = None, world: Path | None = None, clips: int = CLIPS) -> Suite:
    suite = Suite("video")
    work.mkdir(parents=True, exist_ok=True)
    if bundle is None or world is None:
        bundle, world = _bundle_and_world(work)
    root = work / "clips"
    shutil.rmtree(root, ignore_errors=True)
    write_videos(_world_config(world), root, clips)
    truth = read_truth(root)
    pipeline = Pipeline.from_bundle(bundles.load(bundle), threads=1)
    load0 = machine_load()

    t0 = time.perf_counter()
    decoded = sum(count_frames(root / c["file"]) for c in truth["clips"])
    decode_s = time.perf_counter() - t0

    options = VideoOptions(triage=False)  # every frame of every clip: the whole path's rate
    t0 = time.perf_counter()
    answers = [(identify_clip(pipeline, root / c["file"], options), c) for c in truth["clips"]]
    whole_s = time.perf_counter() - t0
    searched = sum(a.frames_searched for a, _ in answers)

    t0 = time.perf_counter()
    triaged = [identify_clip(pipeline, root / c["file"], VideoOptions()) for c in truth["clips"]]
    triage_s = time.perf_counter() - t0
    load1 = machine_load()

    pooled = score_clips([([track_line(a, t, [], None) for t in a.tracks], c) for a, c in answers])
    single = score_clips(_chip_by_chip(pipeline, answers))
    note = describe_load(load0, load1) + f"; {clips} clips, {decoded} frames, bundle {bundle}"
    for name in ("baks", "baus"):
        value, base = getattr(pooled, name), getattr(single, name)
        if value is not None and base is not None:
            suite.add(
                Figure(
                    f"track {name.upper()}, pooled chips",
                    value,
                    "",
                    base,
                    "the same tracks, majority of per-chip answers",
                    value - base,
                    ">= 0 (difference)",
                    value >= base,
                    note="ratio is the difference: " + note,
                )
            )
    suite.add(Figure("track purity", pooled.purity, "", goal=">= 0.95", met=pooled.purity >= 0.95))
    suite.add(Figure("track fragmentation", pooled.fragmentation, "tracks per truth track", goal="<= 1.3"))
    suite.add(Figure("truth faces covered by a track", pooled.coverage, ""))
    suite.add(Figure("false tracks", float(pooled.false_tracks), "tracks"))
    whole, decode = searched / whole_s, decoded / decode_s
    suite.add(Figure("frames/s, whole path", whole, "frames/s", decode, "decode only", whole / decode, note=note))
    empty = sum(c["kind"] == "empty" for c in truth["clips"])
    skipped = sum(a.status == "no_bear" and c["kind"] == "empty" for a, c in zip(triaged, truth["clips"]))
    suite.add(
        Figure(
            "clips/s with triage",
            clips / triage_s,
            "clips/s",
            clips / whole_s,
            "every frame searched",
            whole_s / triage_s,
            note=f"{skipped} of {empty} clips with no bear skipped; "
            f"{sum(a.status == 'no_bear' and c['kind'] != 'empty' for a, c in zip(triaged, truth['clips']))}"
            " clips with a bear skipped wrongly",
        )
    )
    suite.tables["scores"] = [
        {"naming": "pooled", **{k: v for k, v in vars(pooled).items()}},
        {"naming": "per chip, majority", **{k: v for k, v in vars(single).items()}},
    ]
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="a bundle (with --world, the world it was trained on)")
    parser.add_argument("--world", type=Path, help="the synthetic world the bundle was trained on")
    parser.add_argument("--clips", type=int, default=CLIPS)
    parser.add_argument("--work", type=Path, default=Path("build/bench/video"))
    args = parser.parse_args()
    json_path, md_path = write(run(args.work, args.bundle, args.world, args.clips))
    print(f"wrote {json_path} and {md_path}")
    print(md_path.read_text())


if __name__ == "__main__":
    main()
