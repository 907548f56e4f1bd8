"""imglab faces XML and chips XML: lossless, dlib-compatible, clear about bad files."""

from __future__ import annotations

import os
from pathlib import Path

import dlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bearid.metadata import (
    LANDMARKS,
    Box,
    Chip,
    ChipSet,
    ChipSource,
    Dataset,
    ImageEntry,
    MetadataError,
    read_chips,
    read_faces,
    validate,
    write_chips,
    write_faces,
)

ALIAS = {"top": "head_top", "htop": "head_top"}


def dlib_view(path: Path) -> list[tuple]:
    """What dlib itself reads from a file: (file, [(rect, label, parts, flags)])."""
    meta = dlib.image_dataset_metadata.load_image_dataset_metadata(str(path))
    out = []
    for img in meta.images:
        boxes = []
        for b in img.boxes:
            r = b.rect
            parts = {ALIAS.get(k, k): (v.x, v.y) for k, v in b.parts.items()}
            flags = (b.difficult, b.truncated, b.occluded, b.ignore)
            boxes.append(((r.left(), r.top(), r.width(), r.height()), b.label, parts, flags))
        out.append((img.filename, boxes))
    return out


def our_view(dataset: Dataset) -> list[tuple]:
    return [
        (
            img.file,
            [
                (
                    (b.left, b.top, b.width, b.height),
                    b.label or "",
                    b.parts,
                    (b.difficult, b.truncated, b.occluded, b.ignore),
                )
                for b in img.boxes
            ],
        )
        for img in dataset.images
    ]


def test_gold_faces_fixture_reads_as_the_original_tools_wrote_it(gold_faces):
    data = read_faces(gold_faces)
    assert len(data.images) == 37
    assert sum(len(i.boxes) for i in data.images) == 37
    assert len(data.labels()) == 10
    assert sorted(len(i.boxes) for i in data.images).count(0) == 1  # one photo without a face
    assert max(len(i.boxes) for i in data.images) == 2  # one photo with two
    first = data.images[0].boxes[0]
    assert (first.left, first.top, first.width, first.height, first.label) == (554, 199, 237, 236, "bf_051")
    assert first.parts == {
        "lear": (744, 204),
        "leye": (717, 300),
        "nose": (659, 434),
        "rear": (619, 200),
        "reye": (632, 299),
        "head_top": (682, 178),
    }
    assert all(os.path.isabs(i.file) for i in data.images)
    assert validate(data) == []


def test_gold_faces_write_back_equivalently_for_us_and_for_dlib(gold_faces, tmp_path):
    data = read_faces(gold_faces)
    out = tmp_path / "gold.xml"
    write_faces(data, out)
    again = read_faces(out)
    assert our_view(again) == our_view(data)
    assert again.name == data.name and again.comment == data.comment
    # dlib reads the same faces from our file as from the original (head_top alias aside).
    assert dlib_view(out) == dlib_view(gold_faces) == our_view(data)
    # Absolute paths from other tools are kept exactly.
    assert [i.file for i in again.images] == [i.file for i in data.images]


def test_image_list_fixture_round_trips_byte_for_byte(image_list, tmp_path):
    data = read_faces(image_list)
    assert len(data.images) == 37 and not any(i.boxes for i in data.images)
    out = tmp_path / "list.xml"
    write_faces(data, out)
    assert out.read_bytes().rstrip() == image_list.read_bytes().rstrip()


def rich_dataset(base: Path) -> Dataset:
    full = {name: (10 + i, 20 + i) for i, name in enumerate(LANDMARKS)}
    return Dataset(
        name="flags & friends",
        comment="labels with <markup> and accents: Ot\u00eds",
        base_dir=base,
        images=[
            ImageEntry(
                "photos/a b/one.jpg",
                width=640,
                height=480,
                boxes=[
                    Box(5, 6, 100, 90, "bf_051", dict(full, head_top=(50, 1)), difficult=True),
                    Box(
                        300,
                        200,
                        40,
                        40,
                        "bf_1&2 <x>",
                        dict(full),
                        occluded=True,
                        truncated=True,
                        attrs={"detection_score": "0.75", "pose": "12"},
                    ),
                    Box(0, 0, 10, 10, None, {}, ignore=True),
                ],
            ),
            ImageEntry("photos/two.jpg"),
            ImageEntry("/abs/path/three.JPG", boxes=[Box(1, 2, 3, 4, "bf_003", dict(full))]),
        ],
    )


def test_bearid_files_load_in_dlib_with_the_same_boxes_labels_parts_and_flags(tmp_path):
    data = rich_dataset(tmp_path)
    out = tmp_path / "faces.xml"
    write_faces(data, out)
    assert dlib_view(out) == our_view(data)
    assert read_faces(out) == data


def test_relative_paths_are_rebased_and_absolute_paths_kept(tmp_path):
    data = rich_dataset(tmp_path / "root")
    out = tmp_path / "elsewhere" / "deep" / "faces.xml"
    write_faces(data, out)
    again = read_faces(out)
    assert again.images[0].file == "../../root/photos/a b/one.jpg"
    assert again.path_of(again.images[0]) == data.path_of(data.images[0])
    assert again.images[2].file == "/abs/path/three.JPG"


def test_non_ascii_text_is_written_as_utf8_which_dlib_reads(tmp_path):
    data = Dataset(base_dir=tmp_path, images=[ImageEntry("x.jpg", [Box(1, 2, 3, 4, "Ot\u00eds \u718a")])])
    out = tmp_path / "f.xml"
    write_faces(data, out)
    assert out.read_bytes().startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert read_faces(out) == data
    assert dlib_view(out)[0][1][0][1] == "Ot\u00eds \u718a"


def test_imglab_files_with_utf8_bytes_under_a_latin1_declaration_read_as_utf8(tmp_path):
    path = tmp_path / "imglab.xml"
    body = (
        "<?xml version='1.0' encoding='ISO-8859-1'?>\n"
        "<dataset><images><image file='\u00e9t\u00e9.jpg'/></images></dataset>"
    )
    path.write_bytes(body.encode("utf-8"))
    assert read_faces(path).images[0].file == "\u00e9t\u00e9.jpg"


def test_utf8_and_latin1_input(tmp_path):
    body = (
        "<dataset><name>n</name><images><image file='x.jpg'>"
        "<box top='1' left='2' width='3' height='4'><label>Ot\u00eds</label></box></image></images></dataset>"
    )
    utf8 = tmp_path / "utf8.xml"
    utf8.write_bytes(("<?xml version='1.0' encoding='UTF-8'?>\n" + body).encode("utf-8"))
    latin = tmp_path / "latin.xml"
    latin.write_bytes(("<?xml version='1.0' encoding='ISO-8859-1'?>\n" + body).encode("iso-8859-1"))
    assert read_faces(utf8).images[0].boxes[0].label == "Ot\u00eds"
    assert read_faces(latin).images[0].boxes[0].label == "Ot\u00eds"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("<dataset><images><image file='a.jpg'><box top='1'", "malformed XML"),
        ("<images/>", "root element is <images>"),
        (
            "<dataset><images><image file='a.jpg'><box top='x' left='0' "
            "width='1' height='1'/></image></images></dataset>",
            "top='x' is not an integer",
        ),
        (
            "<dataset><images><image file='a.jpg'><box left='0' width='1' height='1'/></image></images></dataset>",
            "missing its 'top'",
        ),
        (
            "<dataset><images><image><box top='0' left='0' width='1' height='1'/></image></images></dataset>",
            "missing its 'file'",
        ),
        (
            "<dataset><images><image file='a.jpg'><box top='0' left='0' width='1' height='1'><part "
            "name='nose' x='1' y='1'/><part name='nose' x='2' y='2'/></box></image></images></dataset>",
            "appears twice",
        ),
    ],
)
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(MetadataError) as err:
        read_faces(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    if "a.jpg" in text and "malformed" not in needle:
        assert "a.jpg" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(MetadataError, match="file not found"):
        read_faces(tmp_path / "nope.xml")


def test_validation_names_image_and_box_for_each_problem(tmp_path):
    full = {name: (1, 1) for name in LANDMARKS}
    data = Dataset(
        base_dir=tmp_path,
        images=[
            ImageEntry(
                "a.jpg",
                width=100,
                height=100,
                boxes=[
                    Box(0, 0, 10, 10, "bf_1", dict(full, chin=(1, 1))),
                    Box(0, 0, 10, 10, "bf_1", {k: v for k, v in full.items() if k != "rear"}),
                    Box(0, 0, -5, 10, "bf_1", dict(full)),
                    Box(0, 0, 10, 10, None, dict(full)),
                    Box(95, 95, 10, 10, "bf_1", dict(full)),
                ],
            ),
        ],
    )
    found = {(f.code, f.box) for f in validate(data, tmp_path / "x.xml")}
    assert found == {
        ("unknown_part", 0),
        ("missing_landmarks", 1),
        ("bad_box_size", 2),
        ("missing_label", 3),
        ("box_outside_image", 4),
    }
    assert all("a.jpg" in str(f) and "x.xml" in str(f) for f in validate(data, tmp_path / "x.xml"))


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch, gold_faces):
    out = tmp_path / "faces.xml"
    write_faces(read_faces(gold_faces), out)
    before = out.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_faces(rich_dataset(tmp_path), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["faces.xml"]  # no temp file left behind


def test_chips_xml_round_trip_and_rebase(tmp_path):
    chips = ChipSet(
        base_dir=tmp_path / "results",
        chips=[
            Chip(
                "chip_images/brooks_falls/bf_051/x_chip_0.jpg",
                "bf_051",
                {"leye": (94, 72), "reye": (56, 72), "nose": (75, 105)},
                ChipSource("../photos/x.jpg", 554, 199, 237, 236),
                150,
                150,
                ["reye", "leye", "nose"],
                55932,
            ),
            Chip("/abs/c.jpg"),
        ],
    )
    out = tmp_path / "results" / "chip_meta" / "chips.xml"
    write_chips(chips, out)
    again = read_chips(out)
    assert again.chips[0].file == "../chip_images/brooks_falls/bf_051/x_chip_0.jpg"
    assert again.path_of(again.chips[0]) == chips.path_of(chips.chips[0])
    assert again.source_path_of(again.chips[0]) == chips.source_path_of(chips.chips[0])
    assert again.chips[1] == chips.chips[1]
    first = again.chips[0]
    assert (first.label, first.parts, first.width, first.height, first.transform_features, first.resolution) == (
        "bf_051",
        {"leye": (94, 72), "reye": (56, 72), "nose": (75, 105)},
        150,
        150,
        ["reye", "leye", "nose"],
        55932,
    )


labels = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cs",)),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool),
)
coords = st.integers(-5000, 5000)
boxes = st.builds(
    Box,
    coords,
    coords,
    st.integers(0, 4000),
    st.integers(0, 4000),
    labels,
    st.dictionaries(st.sampled_from([*LANDMARKS, "head_top", "chin"]), st.tuples(coords, coords), max_size=7),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(boxes, max_size=3), max_size=4))
def test_any_dataset_round_trips_losslessly(tmp_path_factory, images):
    tmp = tmp_path_factory.mktemp("rt")
    data = Dataset(base_dir=tmp, images=[ImageEntry(f"img_{i}.jpg", b) for i, b in enumerate(images)])
    out = tmp / "f.xml"
    write_faces(data, out)
    assert read_faces(out) == data
