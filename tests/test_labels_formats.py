"""`bearid labels export|import` (#36): every format round-trips an imglab XML with nothing
lost that it can hold, each checked against its own library (pycocotools) or its published
layout (CVAT for images 1.1, Label Studio tasks and labelling config, FiftyOne's dataset
format); an import is one journalled operation a curator undoes, and a photo edited since
the export is reported, never written over."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bearid.errors import BearIDError
from bearid.label.store import LabelStore
from bearid.labels import FORMATS, export_labels, import_labels, read_labels
from bearid.labels import labelstudio as ls
from bearid.labels.records import FACE, SKELETON, box_of
from bearid.metadata import Box, Dataset, ImageEntry, read_faces, write_faces

BEARID = [sys.executable, "-c", "from bearid.cli import main; main()"]
OUT = {"coco-keypoints": "faces.json", "cvat": "faces.cvat.xml", "labelstudio": "tasks.json", "fiftyone": "fo"}


def _parts(x: int, y: int, s: int) -> dict:
    return {
        "leye": (x + s * 3 // 4, y + s * 2 // 5),
        "reye": (x + s // 4, y + s * 2 // 5),
        "nose": (x + s // 2, y + s * 3 // 4),
        "lear": (x + s * 9 // 10, y + s // 10),
        "rear": (x + s // 10, y + s // 10),
    }


def make_archive(root: Path) -> Path:
    """Four photos in bear folders (one a cub's), faces with every kind of thing the XML holds:
    five landmarks and a head top, some missing, ignore and the other flags, scores and
    candidates, a cub flag that differs from the folder, a photo with no face, no sizes in
    the XML for one (read from the photo)."""
    photos = [
        ("bf_001/a.jpg", 320, 240),
        ("bf_002_cub/b.jpg", 300, 200),
        ("bf_001/c.jpg", 256, 256),
        ("x/d.jpg", 64, 48),
    ]
    for rel, w, h in photos:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 70, 50)).save(root / rel)
    a = [
        Box(
            10, 20, 100, 100, "bf_001", {**_parts(10, 20, 100), "head_top": (60, 15)}, attrs={"detection_score": "0.91"}
        ),
        Box(
            150,
            40,
            80,
            80,
            "bf_002",
            {k: v for k, v in _parts(150, 40, 80).items() if k != "rear"},
            occluded=True,
            attrs={"candidates": "bf_002:0.6100 bf_001:0.2000", "matched_by": "anna", "cub": "1"},
        ),
    ]
    b = [
        Box(40, 30, 90, 90, "bf_002_cub", _parts(40, 30, 90), truncated=True),
        Box(200, 100, 60, 60, ignore=True, attrs={"cub": "0"}),
    ]
    c = [Box(5, 5, 120, 120, "Ünïcode bear", _parts(5, 5, 120), difficult=True)]
    dataset = Dataset(
        [
            ImageEntry("bf_001/a.jpg", a, 320, 240),
            ImageEntry("bf_002_cub/b.jpg", b, 300, 200),
            ImageEntry("bf_001/c.jpg", c),
            ImageEntry("x/d.jpg", [], 64, 48),
        ],
        base_dir=root,
    )
    write_faces(dataset, root / "faces.xml")
    return root / "faces.xml"


@pytest.fixture
def xml(tmp_path) -> Path:
    return make_archive(tmp_path / "archive")


def boxes(xml: Path) -> list[list[Box]]:
    return [image.boxes for image in read_faces(xml).images]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_round_trips_the_xml_with_nothing_lost(xml, tmp_path, fmt):
    out = tmp_path / OUT[fmt]
    report = export_labels(xml, fmt, out)
    assert report.photos == 4 and report.faces == 5
    assert report.dropped == {}  # read back and compared face by face: nothing lost
    back = read_labels(out, fmt)
    assert [p.file for p in back.photos] == ["bf_001/a.jpg", "bf_002_cub/b.jpg", "bf_001/c.jpg", "x/d.jpg"]
    assert [[box_of(f, p.file) for f in p.faces] for p in back.photos] == boxes(xml)
    assert (back.photos[2].width, back.photos[2].height) == (256, 256)  # from the photo itself
    cub = back.photos[1].faces[0]
    assert cub.cub and cub.truncated and back.photos[0].faces[1].cub and not back.photos[1].faces[1].cub
    assert back.photos[0].faces[0].attrs["part.head_top"] == "60 15"
    before = xml.read_bytes()
    taken = import_labels(out, fmt, xml, "anna")
    assert taken.op is None and taken.unchanged == 4 and not taken.conflicts and xml.read_bytes() == before


def test_a_lossy_export_says_what_it_dropped(xml, tmp_path):
    """A change the format would not carry shows in the export's report (read back and
    compared): here a CVAT file whose bear_id attribute a tool left empty."""
    out = tmp_path / "f.cvat.xml"
    export_labels(xml, "cvat", out)
    back = read_labels(out, "cvat")
    back.photos[0].faces[0].bear_id = None
    from bearid.labels import cvat
    from bearid.labels.transfer import differences

    cvat.write(back, out)
    again = read_labels(out, "cvat").photos[0]
    assert differences(boxes(xml)[0], [box_of(f, again.file) for f in again.faces]) == {"bear IDs": 1}


def test_coco_keypoints_load_in_pycocotools_and_score_perfectly_against_themselves(xml, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "faces.json"
    export_labels(xml, "coco-keypoints", out)
    coco = COCO(str(out))
    [cat] = coco.loadCats(coco.getCatIds(catNms=[FACE]))
    assert cat["keypoints"] == list(SKELETON) and len(cat["skeleton"]) == 5
    assert all(1 <= i <= 5 for edge in cat["skeleton"] for i in edge)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 5 and sorted(a["num_keypoints"] for a in anns) == [0, 4, 5, 5, 5]
    [img] = coco.loadImgs([a["image_id"] for a in anns if a["attributes"]["bear_id"] == "bf_002"])
    assert img["file_name"] == "bf_001/a.jpg" and (img["width"], img["height"]) == (320, 240)
    # The faces as detections with keypoints, scored against themselves: every OKS and IoU is 1
    # (a keypoint result needs keypoints; a face without any is ignored as truth there too).
    for kind in ("keypoints", "bbox"):
        results = [{**a, "score": 1.0} for a in anns if a["num_keypoints"] or kind == "bbox"]
        ev = COCOeval(coco, coco.loadRes(results), kind)
        if kind == "keypoints":
            ev.params.kpt_oks_sigmas = np.full(5, 0.05)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_cvat_xml_follows_cvat_for_images_1_1(xml, tmp_path):
    out = tmp_path / "f.cvat.xml"
    export_labels(xml, "cvat", out)
    root = ET.parse(out).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    declared = {lab.findtext("name"): lab for lab in root.iterfind("meta/task/labels/label")}
    assert set(declared) == {FACE, *SKELETON}
    face_attrs = {a.findtext("name"): a for a in declared[FACE].iterfind("attributes/attribute")}
    for a in face_attrs.values():
        assert a.findtext("input_type") in ("text", "checkbox") and a.findtext("mutable") == "False"
    images = root.findall("image")
    assert [i.get("id") for i in images] == ["0", "1", "2", "3"]
    for image in images:
        assert set(image.attrib) == {"id", "name", "width", "height"}
        groups = set()
        for shape in image:
            assert shape.tag in ("box", "points") and shape.get("label") in declared
            assert shape.get("occluded") in ("0", "1") and shape.get("z_order") == "0"
            if shape.tag == "box":
                assert float(shape.get("xtl")) < float(shape.get("xbr")) and float(shape.get("ytl")) < float(
                    shape.get("ybr")
                )
                for a in shape.iterfind("attribute"):
                    assert a.get("name") in face_attrs
                    if face_attrs[a.get("name")].findtext("input_type") == "checkbox":
                        assert a.text in ("true", "false")
                groups.add(shape.get("group_id"))
            else:
                assert len(shape.get("points").split(";")) == 1 and shape.get("group_id") in groups


def test_label_studio_tasks_fit_their_labelling_config(xml, tmp_path):
    """Each result names a control of the config, of its type, with its labels; percentages
    stay in 0-100; per-region results share their region's id; landmarks point at it."""
    out = tmp_path / "tasks.json"
    report = export_labels(xml, "labelstudio", out)
    config = ET.fromstring(report.also[0].read_text())
    assert report.also[0].name == "tasks.label_config.xml"
    controls = {el.get("name"): el for el in config if el.get("toName")}
    kinds = {"RectangleLabels": "rectanglelabels", "KeyPointLabels": "keypointlabels", "TextArea": "textarea"}
    kinds["Choices"] = "choices"
    tasks = json.loads(out.read_text())
    assert len(tasks) == 4
    for task in tasks:
        assert task["data"]["image"] == ls.LOCAL_FILES + task["data"]["bearid_file"]
        [annotation] = task["annotations"]
        regions = {r["id"] for r in annotation["result"] if r["type"] == "rectanglelabels"}
        for r in annotation["result"]:
            if r["type"] == "relation":
                assert r["to_id"] in regions
                continue
            control = controls[r["from_name"]]
            assert r["to_name"] == control.get("toName") == "image" and kinds[control.tag] == r["type"]
            options = {c.get("value") for c in control}
            for key in ("rectanglelabels", "keypointlabels", "choices"):
                assert set(r["value"].get(key, [])) <= options
            assert all(0 <= r["value"][k] <= 100 for k in ("x", "y") if k in r["value"])
            if control.get("perRegion") == "true":
                assert r["id"] in regions
            if r["type"] == "keypointlabels":
                assert r["parentID"] in regions


def test_label_studio_landmarks_placed_by_hand_join_the_face_they_fall_in(xml, tmp_path):
    out = tmp_path / "tasks.json"
    export_labels(xml, "labelstudio", out)
    tasks = json.loads(out.read_text())
    result = tasks[0]["annotations"][0]["result"]
    for r in result:
        r.pop("parentID", None)
    tasks[0]["annotations"][0]["result"] = [r for r in result if r["type"] != "relation"]
    out.write_text(json.dumps(tasks))
    photo = read_labels(out, "labelstudio").photos[0]
    assert [box_of(f, photo.file) for f in photo.faces] == boxes(xml)[0]


def test_fiftyone_dataset_follows_its_documented_layout(xml, tmp_path):
    out = tmp_path / "fo"
    export_labels(xml, "fiftyone", out)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["media_type"] == "image" and metadata["default_skeleton"]["labels"] == list(SKELETON)
    samples = json.loads((out / "samples.json").read_text())["samples"]
    for s in samples:
        assert not Path(s["filepath"]).is_absolute() and s["metadata"]["_cls"] == "ImageMetadata"
        assert s["faces"]["_cls"] == "Detections" and s["landmarks"]["_cls"] == "Keypoints"
        for d, k in zip(s["faces"]["detections"], s["landmarks"]["keypoints"]):
            assert d["_cls"] == "Detection" and k["_cls"] == "Keypoint" and d["index"] == k["index"]
            assert all(0 <= v <= 1 for v in d["bounding_box"]) and len(k["points"]) == 5
            assert len(d["_id"]["$oid"]) == 24


# -- import: through the label store ------------------------------------------------------------
def test_an_import_is_one_undoable_operation_and_a_newer_edit_is_reported_not_overwritten(xml, tmp_path):
    out = tmp_path / "faces.json"
    export_labels(xml, "coco-keypoints", out)
    original = boxes(xml)
    # In the other tool: photo 0's first face moves, photo 1's ignored face gets a name.
    data = json.loads(out.read_text())
    data["annotations"][0]["bbox"][0] += 7
    data["annotations"][3]["attributes"].update(bear_id="bf_003", ignore=False)
    out.write_text(json.dumps(data))
    # Meanwhile in BearID: photo 1 is edited.
    store = LabelStore(xml)
    edited = store.boxes(1)
    edited[0]["label"] = "bf_009"
    store.update(1, edited, store.versions[1], "vic")
    after_edit = boxes(xml)

    report = import_labels(out, "coco-keypoints", store=store, who="anna")
    assert report.changed == ["bf_001/a.jpg"] and report.unchanged == 2
    assert report.conflicts == ["bf_002_cub/b.jpg: changed in the XML since the export; left as the XML has it"]
    now = boxes(xml)
    assert now[0][0].left == original[0][0].left + 7 and now[1] == after_edit[1]  # vic's edit stands
    [entry] = [e for e in store.history() if e.get("op", {}).get("kind") == "import"]
    assert entry["volunteer"] == "anna" and entry["op"]["id"] == report.op["id"]
    assert [op["kind"] for op in store.operations()] == ["import"]
    undone = store.undo(report.op["id"], "anna")
    assert undone["photos"] == 1 and boxes(xml) == after_edit
    store.close()


def test_a_file_that_lost_its_export_record_takes_base_or_replace(xml, tmp_path):
    """CVAT's own export of a task drops the bases: without --base (the file BearID wrote) or
    --replace, a photo that has faces is a conflict; an empty photo is simply filled."""
    out, edited = tmp_path / "ours.cvat.xml", tmp_path / "cvat_export.xml"
    export_labels(xml, "cvat", out)
    root = ET.parse(out).getroot()
    root.find("meta").remove(root.find("meta/bearid_bases"))
    root.find("image/box").set("xtl", "12.00")
    ET.SubElement(root.findall("image")[3], "box", label=FACE, xtl="1", ytl="2", xbr="30", ybr="40", occluded="0")
    ET.ElementTree(root).write(edited)
    report = import_labels(edited, "cvat", xml, "anna")
    assert report.changed == ["x/d.jpg"] and len(report.conflicts) == 1 and "--base" in report.conflicts[0]
    assert boxes(xml)[0][0].left == 10 and boxes(xml)[3][0].width == 29
    report = import_labels(edited, "cvat", xml, "anna", base=out)
    assert report.changed == ["bf_001/a.jpg"] and boxes(xml)[0][0].left == 12


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not a COCO JSON file"),
        ('{"images": [], "categories": [{"id": 1, "name": "cat"}]}', "no category named 'bear_face'"),
        ('{"images": [{"id": 1}], "categories": [{"id": 1, "name": "bear_face"}]}', "needs id, file_name"),
    ],
)
def test_bad_files_are_one_clear_error_and_change_nothing(xml, tmp_path, bad, message):
    path = tmp_path / "bad.json"
    path.write_text(bad)
    before = xml.read_bytes()
    with pytest.raises(BearIDError, match=message):
        import_labels(path, "coco-keypoints", xml, "anna")
    assert xml.read_bytes() == before


def test_a_label_xml_cannot_hold_is_refused_before_anything_is_written(xml, tmp_path):
    out = tmp_path / "faces.json"
    export_labels(xml, "coco-keypoints", out)
    data = json.loads(out.read_text())
    data["annotations"][0]["bbox"][0] += 3  # a good change, on another photo than the bad one
    data["annotations"][4]["attributes"]["bear_id"] = "<script>"
    out.write_text(json.dumps(data))
    before = xml.read_bytes()
    with pytest.raises(BearIDError, match="bf_001/c.jpg.*label"):
        import_labels(out, "coco-keypoints", xml, "anna")
    assert xml.read_bytes() == before


def test_the_cli_exports_imports_and_says_what_it_did(xml, tmp_path):
    out = tmp_path / "t.json"
    done = subprocess.run(
        [*BEARID, "labels", "export", str(xml), "--format", "labelstudio", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "4 photo(s), 5 face(s)" in done.stdout and "nothing lost" in done.stdout
    tasks = json.loads(out.read_text())
    tasks[3]["data"].pop("bearid_base")
    tasks[0]["annotations"][0]["result"][0]["value"]["x"] += 1.0
    out.write_text(json.dumps(tasks))
    cmd = [*BEARID, "labels", "import", str(out), "--format", "labelstudio", "--into", str(xml), "--curator", "anna"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 face(s) on 1 photo(s)" not in done.stdout and "2 face(s) on 1 photo(s) taken" in done.stdout
    assert "bearid ids undo" in done.stdout and "coordinates rounded" in done.stdout
    (tmp_path / "junk.json").write_text("[1, 2]")
    cmd = [*BEARID, "labels", "import", str(tmp_path / "junk.json"), "--format", "labelstudio", "--into", str(xml)]
    bad = subprocess.run([*cmd, "--curator", "anna"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_the_cli_lists_the_library_formats():
    from typing import get_args

    from bearid.cli.labels import Format

    assert list(get_args(get_args(Format)[0])) == list(FORMATS)


# -- a hostile file: every attack made, each refused with the XML untouched ---------------------
def _entities(doc: str) -> str:
    """`doc` behind a DOCTYPE that defines a billion-laughs entity (&lol9;: 10^9 "lol"s from
    a few hundred bytes) and an external one (&xxe;: /etc/passwd)."""
    laughs = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    root = doc.split(">", 1)[0].lstrip("<").split()[0]
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE {root} [<!ENTITY lol0 "lol">{laughs}'
        f'<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n{doc}'
    )


@pytest.mark.parametrize("entity", ["lol9", "xxe"])
def test_an_xml_with_entity_bombs_or_external_entities_is_refused_quickly(xml, tmp_path, entity):
    """A contributor's imglab XML and a CVAT file alike: the billion laughs are stopped by the
    parser's amplification limit, an external entity is never fetched (its text is not read
    into a label)."""
    import time

    from bearid.metadata import MetadataError

    drop = tmp_path / "drop.xml"
    drop.write_text(_entities(
        f'<dataset><images><image file="bf_001/a.jpg"><box top="1" left="1" width="5" height="5">'
        f"<label>&{entity};</label></box></image></images></dataset>"
    ))  # fmt: skip
    t0 = time.perf_counter()
    with pytest.raises(MetadataError, match="malformed XML"):
        read_faces(drop)
    assert time.perf_counter() - t0 < 5
    out = tmp_path / "faces.cvat.xml"
    export_labels(xml, "cvat", out)
    text = out.read_text().split("?>", 1)[-1].strip()
    text = text.replace(">bf_001<", f">&{entity};<", 1)
    assert f"&{entity};" in text
    out.write_text(_entities(text))
    before = xml.read_bytes()
    with pytest.raises(BearIDError, match="not a CVAT XML file"):
        import_labels(out, "cvat", xml, "anna")
    assert xml.read_bytes() == before


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("bear_id", "bf_001\x07\x1b[2J", "control character"),  # a terminal escape in a bear ID
        ("bear_id", "bf\ud800", "lone surrogate"),
        ("attribute", 'x="1" onload="alert(1)', "attribute name"),  # markup in an attribute's name
        ("attribute", "a\x00b", "attribute name"),
    ],
)
def test_a_coco_file_with_control_characters_or_markup_in_names_is_refused(xml, tmp_path, field, value, message):
    out = tmp_path / "faces.json"
    export_labels(xml, "coco-keypoints", out)
    data = json.loads(out.read_text())
    data["annotations"][0]["bbox"][0] += 3  # a good change beside the bad one: it is not written either
    if field == "bear_id":
        data["annotations"][1]["attributes"]["bear_id"] = value
    else:
        data["annotations"][1]["attributes"][value] = "1"
    out.write_text(json.dumps(data))
    before = xml.read_bytes()
    with pytest.raises(BearIDError, match=message):
        import_labels(out, "coco-keypoints", xml, "anna")
    assert xml.read_bytes() == before


def test_a_file_naming_photos_outside_the_archive_changes_nothing_there(xml, tmp_path):
    """A photo path that climbs out of the archive (or is absolute) matches no photo of the XML:
    it is listed as not in the XML, never read or written."""
    out = tmp_path / "faces.json"
    export_labels(xml, "coco-keypoints", out)
    data = json.loads(out.read_text())
    data["images"][0]["file_name"] = "../../../../etc/passwd"
    data["images"][1]["file_name"] = "/etc/shadow"
    out.write_text(json.dumps(data))
    before = xml.read_bytes()
    report = import_labels(out, "coco-keypoints", xml, "anna", replace=True)
    assert sorted(report.not_in_xml) == ["../../../../etc/passwd", "/etc/shadow"] and report.op is None
    assert xml.read_bytes() == before
