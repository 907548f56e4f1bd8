"""What `bearid video` writes: tracks as JSON lines, each track's best chips as files, the
keyframes as photos with an imglab XML (the label tool opens it), and with `chips` the chips
XML the embed stage trains on (each chip's source is its clip and track).

OUT.jsonl                     a line per track (status "tracked"), or per clip with none
OUT_chips/<clip>/tNN_fFFFFF.jpg   each track's best chips
OUT_keyframes/<clip>_fFFFFF.jpg   the frame of each track's best chip
OUT_keyframes.xml             those frames, every tracked face on them (label: the track's bear)
OUT_chips.xml                 with `chips`: the chips as training data
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from bearid.fsio import atomic_write_bytes, atomic_write_text
from bearid.metadata import Box, Chip, ChipSet, ChipSource, Dataset, ImageEntry, write_chips, write_faces
from bearid.video.identify import ClipAnswer


@dataclass
class Written:
    """The files one run wrote."""

    tracks: Path
    keyframes_xml: Path | None = None
    chips_xml: Path | None = None
    chip_files: list[Path] = field(default_factory=list)
    keyframe_files: list[Path] = field(default_factory=list)


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _names(answers: list[ClipAnswer]) -> list[str]:
    """A folder name per clip: its stem, numbered when two clips share one."""
    seen: dict[str, int] = {}
    out = []
    for a in answers:
        stem = a.clip.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out


def track_line(answer: ClipAnswer, track, chips: list[str], keyframe: str | None) -> dict:
    info = answer.info
    return {
        "clip": str(answer.clip),
        "status": "tracked",
        "track": track.track,
        "first": track.first,
        "last": track.last,
        "frames": track.frames,
        "bear_id": track.bear_id,
        "known": track.known,
        "confidence": track.confidence,
        "familiarity": track.familiarity,
        "candidates": [{"bear_id": b, "score": s} for b, s in track.candidates],
        "boxes": track.boxes,
        "chips": chips,
        "keyframe": keyframe,
        "clip_size": [info.width, info.height] if info else None,
        "problems": answer.problems,
    }


def clip_line(answer: ClipAnswer) -> dict:
    """The line of a clip with no track: no bear (triage, or none followed), or its error."""
    status = answer.status if answer.status != "tracked" else "no_track"
    return {
        "clip": str(answer.clip),
        "status": status,
        "error": answer.error,
        "problems": answer.problems,
        "frames_searched": answer.frames_searched,
    }


def write_outputs(answers: list[ClipAnswer], out: Path, chips: bool = False) -> Written:
    """Write every clip's tracks (and chips, keyframes, XML) beside `out`, the JSON lines last."""
    out = Path(out)
    base = out.parent
    chip_root = base / f"{out.stem}_chips"
    key_root = base / f"{out.stem}_keyframes"
    written = Written(out)
    lines: list[dict] = []
    images: list[ImageEntry] = []
    chip_set = ChipSet(name="bearid video chips", comment="chips of tracked faces; source: clip#track", base_dir=base)
    for answer, name in zip(answers, _names(answers)):
        if not answer.tracks:
            lines.append(clip_line(answer))
            continue
        keyframes: dict[int, str] = {}
        for track in answer.tracks:
            files = []
            for b in track.best:
                path = chip_root / name / f"t{track.track:02d}_f{b.frame:05d}.jpg"
                atomic_write_bytes(path, _jpeg(b.chip.image))
                written.chip_files.append(path)
                files.append(path.relative_to(base).as_posix())
                if chips:
                    left, top, width, height = (round(v) for v in b.box)
                    chip_set.chips.append(
                        Chip(
                            file=files[-1],
                            label=track.bear_id,
                            parts={k: (round(x), round(y)) for k, (x, y) in b.chip.landmarks.items()},
                            source=ChipSource(
                                f"{answer.clip.as_posix()}#track={track.track}", left, top, width, height
                            ),
                            width=b.chip.image.width,
                            height=b.chip.image.height,
                            transform_features=["reye", "leye", "nose"],
                            resolution=int(width * height),
                        )
                    )
            if track.keyframe is not None and track.keyframe_index not in keyframes:
                index = track.keyframe_index
                path = key_root / f"{name}_f{index:05d}.jpg"
                atomic_write_bytes(path, _jpeg(track.keyframe))
                written.keyframe_files.append(path)
                keyframes[index] = path.relative_to(base).as_posix()  # type: ignore[index]
                images.append(_keyframe_entry(answer, index, keyframes[index], track.keyframe.size))  # type: ignore[arg-type]
            lines.append(track_line(answer, track, files, keyframes.get(track.keyframe_index)))  # type: ignore[arg-type]
    if images:
        written.keyframes_xml = base / f"{out.stem}_keyframes.xml"
        dataset = Dataset(images=images, name="bearid video keyframes", comment="tracked faces", base_dir=base)
        write_faces(dataset, written.keyframes_xml)
    if chips:
        written.chips_xml = base / f"{out.stem}_chips.xml"
        write_chips(chip_set, written.chips_xml)
    atomic_write_text(out, "".join(json.dumps(line) + "\n" for line in lines))
    return written


def _keyframe_entry(answer: ClipAnswer, index: int, file: str, size: tuple[int, int]) -> ImageEntry:
    """A keyframe with every kept track's face on it, labelled with the track's bear."""
    by_track = {t.track: t for t in answer.tracks}
    boxes = []
    for track_id, det in answer.faces_by_frame.get(index, []):
        track = by_track[track_id]
        boxes.append(
            Box(
                left=round(det.left),
                top=round(det.top),
                width=round(det.width),
                height=round(det.height),
                label=track.bear_id,
                parts={k: (round(x), round(y)) for k, (x, y) in det.landmarks.items()},
                attrs={"track": f"{answer.clip.name}#{track_id}"},
            )
        )
    return ImageEntry(file=file, boxes=boxes, width=size[0], height=size[1])
