"""More promises kept (#35): settings checked once, choices listed, the right extra named,
refusals that leave nothing behind, boxes inside their photo."""

from __future__ import annotations

import pytest
from test_trust import bearid, refused

from bearid.errors import BearIDError
from bearid.settings import Settings

# -- settings: every variable typed and checked once -----------------------------------------


@pytest.mark.parametrize(
    "name, value, why",
    [
        ("BEARID_WORKERS", "abc", "is not a whole number"),
        ("BEARID_WORKERS", "0", "greater than or equal to 1"),
        ("BEARID_WATCH_SECONDS", "nan", "finite"),
        ("BEARID_DEVICE", "gpu", "device 'gpu': choose one of auto, cpu, cuda"),
        ("BEARID_MAX_UPLOAD_MB", "-1", "greater than or equal to 1"),
    ],
)
def test_a_bad_setting_is_one_error_naming_the_variable_and_the_value(monkeypatch, name, value, why):
    monkeypatch.setenv(name, value)
    with pytest.raises(BearIDError, match=f"{name}(='{value}'|: )") as caught:
        Settings.from_env()
    assert why in str(caught.value)


def test_settings_come_from_the_process_environment(monkeypatch):
    monkeypatch.setenv("BEARID_WORKERS", "3")
    monkeypatch.setenv("BEARID_STORE", "")  # empty: unset
    s = Settings.from_env()
    assert s.workers == 3 and s.store is None
    assert Settings.from_env({"BEARID_WORKERS": "5"}).workers == 5  # a given mapping, not the process's


def test_the_cli_refuses_a_bad_setting_before_any_verb():
    refused(bearid("validate", "nothing.xml", env={"BEARID_WORKERS": "abc"}), "BEARID_WORKERS", "'abc'")


# -- choices: listed by -h, refused by the parser ------------------------------------------------


def test_the_cli_choices_are_the_library_choices():
    from typing import get_args

    from bearid.cli import accounts
    from bearid.data.split import MODES
    from bearid.exporters import cli as exporters_cli
    from bearid.exporters.promotion import METRICS
    from bearid.label.accounts import ROLES
    from bearid.training.cli import runs as runs_cli
    from bearid.training.runs import MEASURES

    assert get_args(get_args(accounts.Role)[0]) == ROLES
    assert get_args(runs_cli.Measure) == MEASURES == get_args(exporters_cli.Measure)
    assert get_args(exporters_cli.Metric) == METRICS
    import inspect

    from bearid.cli.data import split_cmd

    by = inspect.signature(split_cmd, eval_str=True).parameters["by"].annotation
    assert get_args(get_args(by)[0]) == MODES


WIDE = {"COLUMNS": "250"}


@pytest.mark.parametrize(
    "args, choices",
    [
        (("runs", "show"), "open_set|top1|baks|baus|auroc"),
        (("export",), "open_set|top1|baks|baus|auroc"),
        (("promote",), "open_set|baks|baus|top1|face_recall"),
        (("accounts", "add"), "volunteer|curator"),
        (("data", "split"), "image|bear|time"),
    ],
)
def test_help_lists_the_choices(args, choices):
    done = bearid(*args, "-h", env=WIDE)
    assert done.returncode == 0 and choices in done.stdout, done.stdout


def test_a_choice_not_offered_is_exit_2_listing_the_choices(tmp_path):
    done = bearid("runs", tmp_path, "--by", "nope", env=WIDE)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'nope' is not one of 'open_set', 'top1', 'baks', 'baus', 'auroc'" in done.stderr, done.stderr


def test_promote_refuses_a_metric_it_cannot_compare_by(tmp_path):
    from bearid.exporters.promotion import promote

    with pytest.raises(BearIDError, match="--metric nope: choose one of open_set"):
        promote(tmp_path, [], None, metric="nope")


def test_shell_completion_is_offered():
    done = bearid("--help", env=WIDE)
    assert done.returncode == 0 and "--install-completion" in done.stdout


# -- a missing extra is named: the one that brings it --------------------------------------------


def _without(module: str, *argv: str):
    """`bearid ARGV` in a process where `module` cannot be imported."""
    import os
    import subprocess
    import sys

    code = f"import sys; sys.modules[{module!r}] = None; from bearid.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


@pytest.mark.parametrize("module", ["sklearn", "onnxruntime"])
def test_offline_scoring_without_the_runtimes_names_the_serve_extra(tmp_path, module):
    refused(_without(module, "score", tmp_path, "--bundle", tmp_path), module, "pip install 'bearid[serve]'")


def test_serve_without_bentoml_is_one_error_naming_the_serve_extra():
    refused(_without("bentoml", "serve"), "bentoml", "pip install 'bearid[serve]'")


# -- a refused command writes nothing ------------------------------------------------------------


def test_label_refused_on_a_photo_folder_writes_no_xml(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    refused(bearid("label", tmp_path, "--host", "0.0.0.0"), "--host 0.0.0.0", "no accounts")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.jpg"]
    flags = tmp_path / "report.json"
    flags.write_text("{not json")
    done = bearid("label", tmp_path, "--flags", flags)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.jpg", "report.json"]


def _empty_splits(folder):
    from bearid.metadata import Dataset, write_faces

    folder.mkdir()
    for name in ("train", "val", "test"):
        write_faces(Dataset([], base_dir=folder), folder / f"{name}.xml")
    return folder


def test_import_dlib_refused_leaves_no_results_tree(tmp_path):
    pytest.importorskip("torch")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"not a dlib network at all" * 10)
    splits, out = _empty_splits(tmp_path / "splits"), tmp_path / "results"
    done = bearid("import-dlib", "--face", junk, "--embed", junk, "--data", splits, "--out", out)
    refused(done, "junk.dat")
    assert not out.exists()
    done = bearid("import-dlib", "--face", junk, "--embed", junk, "--data", tmp_path / "nowhere", "--out", out)
    refused(done, "nowhere")
    assert not out.exists()


def test_import_dlib_refuses_an_embed_file_that_is_no_metric_resnet_before_writing(tmp_path):
    import importlib.util

    pytest.importorskip("torch")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        pytest.skip("dlib's human models (face_recognition_models) are not installed")
    from pathlib import Path

    models = Path(spec.submodule_search_locations[0]) / "models"
    mmod, shapes = models / "mmod_human_face_detector.dat", models / "shape_predictor_5_face_landmarks.dat"
    splits, out = _empty_splits(tmp_path / "splits"), tmp_path / "results"
    args = ("--face", mmod, "--landmarks", shapes, "--chips", "dlib_face", "--data", splits, "--out", out)
    refused(bearid("import-dlib", *args, "--embed", mmod, timeout=300), "not the metric ResNet")
    assert not out.exists()


# -- the label tool keeps boxes inside their photo -----------------------------------------------


def _tiny_label_app(tmp_path, sizes_in_xml: bool):
    from PIL import Image
    from starlette.testclient import TestClient

    from bearid.label.app import Labeler, create_app
    from bearid.label.store import LabelStore
    from bearid.metadata import Box, Dataset, ImageEntry, write_faces

    Image.new("RGB", (120, 80)).save(tmp_path / "a.jpg")
    size = (120, 80) if sizes_in_xml else (None, None)
    xml = tmp_path / "faces.xml"
    write_faces(Dataset([ImageEntry("a.jpg", [Box(10, 10, 30, 30)], *size)], base_dir=tmp_path), xml)
    store = LabelStore(xml)
    return TestClient(create_app(Labeler(store))), store


@pytest.mark.parametrize("sizes_in_xml", [True, False])
def test_a_box_larger_than_its_photo_is_refused_naming_the_box_and_the_size(tmp_path, sizes_in_xml):
    pytest.importorskip("starlette")
    client, store = _tiny_label_app(tmp_path, sizes_in_xml)
    try:

        def put(boxes):
            body = {"boxes": boxes, "version": store.versions[0], "volunteer": "anna"}
            return client.put("/api/images/0", json=body)

        wide = {"left": 0, "top": 0, "width": 500, "height": 40}
        answer = put([wide])
        assert answer.status_code == 400, answer.text
        assert "box 0 (0, 0, 500 x 40)" in answer.text and "120 x 80" in answer.text
        away = {"left": 300, "top": 10, "width": 20, "height": 20}
        assert put([away]).status_code == 400
        assert store.boxes(0)[0]["width"] == 30  # nothing saved
        edge = {"left": 100, "top": 60, "width": 40, "height": 40}  # a face cut by the frame
        assert put([edge]).status_code == 200
    finally:
        store.close()


# -- a pip user can build a bento ----------------------------------------------------------------


def test_the_bento_builds_from_the_checkout_and_from_an_installed_package(tmp_path):
    import json
    import tomllib
    from pathlib import Path

    from bearid.serving import bento

    root = Path(__file__).parents[1]
    assert root == bento.SOURCE and bento.is_checkout(root)
    assert tomllib.loads((root / "pyproject.toml").read_text())["tool"]["bentoml"]["build"] == bento.BUILD
    with bento.build_context(root) as source:
        assert source == root
    with bento.build_context(tmp_path) as source:  # no checkout here: laid out from the package
        assert source != tmp_path and json.loads((source / "bentofile.yaml").read_text()) == bento.BUILD
        for f in ("service/service.py", "service/requirements.txt", "bearid/__init__.py", "bearid/serving/bento.py"):
            assert (source / f).is_file(), f
        assert any((source / "bearid" / "label" / "static").iterdir())
        assert not any((source / "bearid" / part).exists() for part in ("training", "exporters", "service"))
        assert not list(source.rglob("__pycache__"))
    assert not source.exists()  # removed afterwards
