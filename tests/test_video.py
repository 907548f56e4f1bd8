"""Video: synthetic clips, decoding what cameras write, the tracker against truth, and
`bearid video` end to end with the tiny bundle (its accuracy is low: structure is tested)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("av")

from bearid.metadata import read_chips, read_faces
from bearid.synth import WorldConfig
from bearid.video.decode import ClipError, frames, probe
from bearid.video.encode import write_clip
from bearid.video.identify import pool
from bearid.video.measure import score_clips
from bearid.video.synth import ClipConfig, plan_clips, read_truth, render_clip, write_videos
from bearid.video.track import Tracker, TrackerConfig

# The tiny bundle's world (tests/conftest.py), so the clips' bears are the bundle's.
WORLD = WorldConfig(bears=6, photos=70, seed=4, min_side=640, max_side=800)
CLIPS = ClipConfig(seconds=(1.2, 1.8), fps=(10, 12), face_side=(70.0, 120.0))


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Four clips of the tiny world's bears: one or two bears, and one clip with none."""
    root = tmp_path_factory.mktemp("clips")
    write_videos(WORLD, root, 4, CLIPS)
    return root


def marked(width: int, height: int, i: int = 0) -> Image.Image:
    """A frame with a white square in its top-left corner (which way up it is) and a bar
    that moves with i (which frame it is)."""
    img = Image.new("RGB", (width, height), (40, 60, 80))
    draw = ImageDraw.Draw(img)
    draw.rectangle((4, 4, 4 + width // 5, 4 + height // 5), fill=(255, 255, 255))
    draw.rectangle((width // 2 + 6 * i, height // 2, width // 2 + 6 * i + 8, height - 4), fill=(250, 30, 30))
    return img


def top_left_bright(img: Image.Image) -> bool:
    a = np.asarray(img.convert("L"), dtype=float)
    h, w = a.shape
    return a[: h // 6, : w // 6].mean() > 200 and a[-h // 6 :, -w // 6 :].mean() < 120


# -- synthetic clips ----------------------------------------------------------------------


def test_synthetic_clips_truth_and_determinism(clips, tmp_path):
    truth = read_truth(clips)
    kinds = [c["kind"] for c in truth["clips"]]
    assert "empty" in kinds and ("one" in kinds or "two" in kinds)
    assert {c["codec"] for c in truth["clips"]} == {"h264", "mpeg4"}
    for clip in truth["clips"]:
        assert len(clip["truth"]) == clip["frames"]
        faces = [face for f in clip["truth"] for face in f["faces"]]
        if clip["kind"] == "empty":
            assert not faces
            continue
        assert faces and {face["bear_id"] for face in faces} == {b["bear_id"] for b in clip["bears"]}
        assert all(set(face["landmarks"]) >= {"leye", "reye", "nose", "lear", "rear"} for face in faces)
        xs = [f["faces"][0]["box"][0] for f in clip["truth"] if f["faces"] and f["faces"][0]["track"] == 0]
        assert max(xs) - min(xs) > 20  # the bear walks
    again = tmp_path / "again"
    write_videos(WORLD, again, 4, CLIPS)
    assert read_truth(again) == truth
    for clip in truth["clips"]:
        assert sha(again / clip["file"]) == sha(clips / clip["file"]), clip["file"]
    other = plan_clips(__import__("bearid.synth.world", fromlist=["plan_world"]).plan_world(WORLD), 5, CLIPS)
    assert [p.walks for p in other[:4]] != [] and other[0].file == truth["clips"][0]["file"]


def test_synthetic_clips_decode_as_rendered(clips):
    """H.264 and MPEG-4: every frame decodes, upright, at its time, close to what was drawn."""
    truth = read_truth(clips)
    world = __import__("bearid.synth.world", fromlist=["plan_world"]).plan_world(WORLD)
    plans = plan_clips(world, 4, CLIPS)
    for clip, plan in zip(truth["clips"][:2], plans[:2]):
        info = probe(clips / clip["file"])
        assert info.codec == clip["codec"] and (info.width, info.height) == (clip["width"], clip["height"])
        decoded = list(frames(clips / clip["file"]))
        assert [f.index for f in decoded] == list(range(clip["frames"]))
        assert [round(f.time, 3) for f in decoded] == [round(f["time"], 3) for f in clip["truth"]]
        drawn = [np.asarray(img, dtype=float) for img, _ in render_clip(plan, WORLD.seed)]
        for f in decoded[:: max(1, len(decoded) // 3)]:
            assert np.abs(np.asarray(f.image, dtype=float) - drawn[f.index]).mean() < 8


def test_synth_verb_writes_videos(tmp_path):
    from typer.testing import CliRunner

    from bearid.cli import app

    result = CliRunner().invoke(app, ["synth", str(tmp_path / "w"), "--bears", "3", "--photos", "0", "--videos", "1"])
    assert result.exit_code == 0, result.output
    truth = read_truth(tmp_path / "w")
    assert len(truth["clips"]) == 1 and (tmp_path / "w" / truth["clips"][0]["file"]).stat().st_size > 1000


# -- decoding what cameras write ----------------------------------------------------------


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_variable_frame_rate_keeps_each_frames_time(tmp_path, codec):
    times = [0.0, 0.05, 0.1, 0.3, 0.35, 0.9, 1.0, 1.02]
    path = write_clip(tmp_path / "vfr.mp4", [marked(160, 120, i) for i in range(len(times))], 20, codec, times=times)
    decoded = list(frames(path))
    assert [round(f.time, 3) for f in decoded] == times
    bars = [int(np.argmax(np.asarray(f.image)[90, 80:, 0] > 200)) for f in decoded]
    assert bars == sorted(bars) and bars[-1] > bars[0]  # in order, each frame its own
    assert [round(f.time, 3) for f in frames(path, every=0.2)] == [0.0, 0.3, 0.9]  # sampled by time


@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_rotated_phone_clip_decodes_upright(tmp_path, rotation):
    shown = [marked(240, 160, i) for i in range(3)]
    path = write_clip(tmp_path / "phone.mp4", shown, 10, "h264", rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation and (info.width, info.height) == (240, 160)
    decoded = list(frames(path))
    assert all(f.image.size == (240, 160) and top_left_bright(f.image) for f in decoded)


def test_unrotated_marker_check_can_fail():
    """The upright check itself tells a turned frame from an upright one."""
    assert top_left_bright(marked(240, 160)) and not top_left_bright(marked(240, 160).rotate(90, expand=True))


@pytest.mark.parametrize("codec,pix_fmt", [("mpeg4", "yuv420p"), ("h264", "yuv444p")])
def test_odd_sized_clip(tmp_path, codec, pix_fmt):
    path = write_clip(tmp_path / "odd.mp4", [marked(321, 241, i) for i in range(4)], 10, codec, pix_fmt=pix_fmt)
    decoded = list(frames(path))
    assert len(decoded) == 4 and all(f.image.size == (321, 241) for f in decoded)


def test_interlaced_clip_is_deinterlaced(tmp_path):
    combed = np.zeros((120, 160, 3), np.uint8)
    combed[::2] = 220
    path = write_clip(tmp_path / "i.mp4", [Image.fromarray(combed)] * 3, 10, "h264", interlaced=True)
    decoded = list(frames(path))
    a = np.asarray(decoded[0].image, dtype=float)
    assert len(decoded) == 3 and np.abs(a[1:] - a[:-1]).mean() < 30  # the comb (220 between lines) is gone


def test_stride_seek_and_still_frames(clips, tmp_path):
    clip = clips / read_truth(clips)["clips"][1]["file"]
    every = list(frames(clip))
    assert [f.index for f in frames(clip, stride=3)] == [f.index for f in every][::3]
    late = list(frames(clip, start=0.5))
    assert late and late[0].time >= 0.5 - 1e-6 and late[-1].index == every[-1].index
    assert abs(late[0].index - round(0.5 * probe(clip).fps)) <= 1
    still = write_clip(tmp_path / "still.mp4", [marked(160, 120)] * 6 + [marked(160, 120, 9)], 10, "mpeg4")
    kept = list(frames(still, min_change=2.0))
    assert [f.index for f in kept] == [0, 6]  # the camera trap's still scene is skipped


def test_scene_cut_is_marked(tmp_path):
    dark, light = Image.new("RGB", (160, 120), (10, 10, 10)), Image.new("RGB", (160, 120), (240, 240, 240))
    path = write_clip(tmp_path / "cut.mp4", [dark, dark, light, light], 10, "h264")
    assert [f.cut for f in frames(path)] == [False, False, True, False]


def test_truncated_clip_yields_its_frames_up_to_the_cut(clips, tmp_path):
    clip = clips / read_truth(clips)["clips"][1]["file"]
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    problems: list[str] = []
    decoded = list(frames(cut, on_problem=problems.append))
    assert 0 < len(decoded) < len(list(frames(clip)))
    assert problems and "cut.mp4" in problems[0]
    assert clip.read_bytes() == data  # the original untouched


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_text("not a video at all\n" * 50), "not a video"),
        (lambda p: p.write_bytes(b""), "empty"),
        (
            lambda p: p.write_bytes(Path(p.parent / "good.mp4").read_bytes()[:1500]),
            "cannot be decoded|no frame|not a video",
        ),
    ],
    ids=["text", "empty", "header-only"],
)
def test_bad_clips_are_one_clear_error(tmp_path, make, message):
    import re

    write_clip(tmp_path / "good.mp4", [marked(160, 120, i) for i in range(5)], 10, "h264")
    bad = tmp_path / "bad.mp4"
    make(bad)
    with pytest.raises(ClipError, match=re.compile(message)) as err:
        list(frames(bad))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_zero_frames_and_huge_frames_are_refused(tmp_path):
    import av

    empty = tmp_path / "zero.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        container.start_encoding()  # the header, and no frame
    with pytest.raises(ClipError, match="no frames|no video stream"):
        probe(empty)
    big = write_clip(tmp_path / "big.mp4", [marked(640, 480)], 10, "mpeg4")
    with pytest.raises(ClipError, match="too many pixels"):
        probe(big, max_pixels=640 * 480 - 1)
    with pytest.raises(ClipError, match="too long"):
        probe(big, max_seconds=0.01)


# -- the tracker --------------------------------------------------------------------------


def truth_tracks(clip: dict, drop_every: int = 0, jitter: float = 0.0, seed: int = 0) -> list[dict]:
    """The truth's own faces fed through a Tracker (with frames dropped and boxes jittered,
    as a detector would), written as `bearid video` writes tracks."""
    rng = np.random.default_rng(seed)
    tracker = Tracker(TrackerConfig())
    for f in clip["truth"]:
        if drop_every and f["index"] % drop_every == 1:
            continue
        boxes = [tuple(np.array(face["box"], float) + rng.normal(0, jitter, 4)) for face in f["faces"]]
        tracker.update(f["index"], f["time"], boxes)
    return [{"boxes": [{"frame": o.frame, "box": list(o.box)} for o in t.observations]} for t in tracker.finish()]


def test_tracker_purity_and_fragmentation_against_truth(clips):
    truth = read_truth(clips)
    moving = [c for c in truth["clips"] if c["kind"] != "empty"]
    score = score_clips([(truth_tracks(c, drop_every=4, jitter=3.0), c) for c in moving])
    assert score.purity == 1.0 and score.fragmentation == 1.0 and score.false_tracks == 0
    assert score.tracks == score.truth_tracks == sum(len(c["bears"]) for c in moving)
    assert score.coverage > 0.7


def test_fragmentation_and_purity_measures_can_fail(clips):
    """A track broken in two and two tracks merged into one are both seen by the measures."""
    two = next(c for c in read_truth(clips)["clips"] if c["kind"] == "two")
    tracks = truth_tracks(two)
    broken = [{"boxes": t["boxes"][:5]} for t in tracks] + [{"boxes": t["boxes"][5:]} for t in tracks]
    assert score_clips([(broken, two)]).fragmentation == 2.0
    merged = [{"boxes": tracks[0]["boxes"][:5] + tracks[1]["boxes"][5:]}]
    assert score_clips([(merged, two)]).purity < 1.0


def test_tracker_follows_two_faces_through_a_gap():
    """Two faces moving apart, one hidden for 0.4 s (behind grass): two tracks, unbroken; a
    gap longer than max_gap starts a new one."""
    tracker = Tracker(TrackerConfig(max_gap=0.5))
    for i in range(20):
        t = i / 10
        boxes = [(100 + 15 * i, 50, 60, 60)]
        if not 8 <= i < 12:
            boxes.append((500 - 15 * i, 200, 70, 70))
        ids = tracker.update(i, t, boxes)
        assert ids[0] == 0 and (len(ids) == 1 or ids[1] == 1)
    assert tracker.update(30, 3.0, [(400, 50, 60, 60)]) == [2]
    assert [len(t.observations) for t in tracker.finish()] == [20, 16, 1]


def test_pool_is_the_mean_direction_at_the_mean_length():
    v = np.array([[3.0, 0.0], [0.0, 1.0]])
    p = pool(v)
    assert np.allclose(p / np.linalg.norm(p), [2**-0.5, 2**-0.5]) and np.isclose(np.linalg.norm(p), 2.0)


# -- bearid video, end to end -------------------------------------------------------------


def test_bearid_video_end_to_end(clips, bundle_dir, tmp_path):
    from typer.testing import CliRunner

    from bearid.cli import app

    truth = read_truth(clips)
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a clip")
    paths = [clips / c["file"] for c in truth["clips"]] + [bad]
    out = tmp_path / "out" / "tracks.jsonl"
    result = CliRunner().invoke(
        app, ["video", *map(str, paths), "--bundle", str(bundle_dir), "--out", str(out), "--chips"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_clip = {str(p): [line for line in lines if line["clip"] == str(p)] for p in paths}
    assert [line["status"] for line in by_clip[str(bad)]] == ["error"] and "not a video" in by_clip[str(bad)][0][
        "error"
    ]
    scored = []
    for clip, path in zip(truth["clips"], paths):
        found = [line for line in by_clip[str(path)] if line["status"] == "tracked"]
        if clip["kind"] == "empty":
            assert [line["status"] for line in by_clip[str(path)]] == ["no_bear"]
            continue
        assert found, clip["file"]
        scored.append((found, clip))
        for line in found:
            assert line["first"] <= line["last"] and line["frames"] == len(line["boxes"]) >= 2
            assert line["bear_id"] is None or line["bear_id"] in json.loads((bundle_dir / "ids.json").read_text())
            assert 1 <= len(line["chips"]) <= 5 and all((out.parent / c).is_file() for c in line["chips"])
            assert (out.parent / line["keyframe"]).is_file()
    score = score_clips(scored)
    # Each track follows one bear, and the bears are followed (the tiny detector is loose:
    # a false face or two may be tracked too, and some faces are missed).
    assert score.purity == 1.0 and score.fragmentation <= 1.5 and score.coverage >= 0.5
    keyframes = read_faces(out.parent / "tracks_keyframes.xml")
    assert keyframes.images and all(keyframes.path_of(image).is_file() for image in keyframes.images)
    assert sum(len(image.boxes) for image in keyframes.images) >= len(keyframes.images)
    chips = read_chips(out.parent / "tracks_chips.xml")
    assert len(chips.chips) == sum(len(line["chips"]) for line in lines if line["status"] == "tracked")
    assert all("#track=" in chip.source.file and chips.path_of(chip).is_file() for chip in chips.chips)
    assert "no bear" in result.output and "1 unreadable" in result.output

    nothing = CliRunner().invoke(
        app, ["video", str(bad), "--bundle", str(bundle_dir), "--out", str(tmp_path / "b.jsonl")]
    )
    assert nothing.exit_code == 2 and "not a video" in nothing.output


# -- what POST /identify_video answers and refuses ----------------------------------------


def test_video_task_refuses_over_its_limits(tmp_path):
    from bearid.video.task import VideoLimits, check_clip

    clip = write_clip(tmp_path / "c.mp4", [marked(320, 240, i) for i in range(10)], 10, "h264")
    assert check_clip(clip, VideoLimits()) is None
    refusals = {
        "too_large": check_clip(clip, VideoLimits(max_bytes=100)),
        "too_long": check_clip(clip, VideoLimits(max_seconds=0.5)),
        "too_many_pixels": check_clip(clip, VideoLimits(max_pixels=320 * 240 - 1)),
    }
    assert {code: (r.status, r.code) for code, r in refusals.items()} == {c: (413, c) for c in refusals}
    text = tmp_path / "t.mp4"
    text.write_text("hello")
    bad = check_clip(text, VideoLimits())
    assert (bad.status, bad.code) == (400, "bad_video") and str(tmp_path) not in bad.message
    (tmp_path / "e.mp4").write_bytes(b"")
    assert check_clip(tmp_path / "e.mp4", VideoLimits()).code == "empty"


def test_video_task_answer(clips, pipeline):
    from bearid.video.task import VideoIdentified, identify_upload

    truth = read_truth(clips)
    one = next(c for c in truth["clips"] if c["kind"] != "empty")
    answer = identify_upload(pipeline, clips / one["file"])
    assert isinstance(answer, VideoIdentified) and answer.status == "tracked" and answer.tracks
    assert answer.clip.width == one["width"] and answer.model.version == pipeline.version
    again = VideoIdentified.model_validate_json(answer.model_dump_json())
    assert again == answer and all(t.first <= t.last and len(t.boxes) == t.frames for t in again.tracks)
    empty = next(c for c in truth["clips"] if c["kind"] == "empty")
    none = identify_upload(pipeline, clips / empty["file"])
    assert none.status == "no_bear" and none.tracks == []


def test_a_start_past_the_clip_is_its_error(clips, pipeline):
    from bearid.errors import BearIDError
    from bearid.video.identify import VideoOptions, identify_clip

    clip = clips / read_truth(clips)["clips"][0]["file"]
    for triage in (True, False):
        answer = identify_clip(pipeline, clip, VideoOptions(start=60.0, triage=triage))
        assert answer.status == "error" and "no frame between 60 s and the end" in answer.error
    with pytest.raises(BearIDError, match="not after start"):
        identify_clip(pipeline, clip, VideoOptions(start=2.0, end=1.0))
