"""The house's own rules: one name per stage on both sides, one photo lister, settings read
in one place and documented, old bundles' classifiers still readable."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from bearid.errors import BearIDError

DOCS = Path(__file__).parents[1] / "docs"


def test_every_stage_has_one_name_in_bearid_and_in_training():
    from bearid.training.config import STAGES

    assert list(STAGES) == ["face", "chip", "embed", "classify"]
    for name in STAGES:
        importlib.import_module(f"bearid.{name}")
        importlib.import_module(f"training.{name}")


def test_one_photo_lister_leaves_out_hidden_and_underscore_files_and_folders(tmp_path):
    from PIL import Image

    from bearid.label.store import photo_list
    from bearid.metadata import read_faces
    from bearid.score import photos_in
    from bearid.training.data import photo_samples

    for rel in (
        "loc/a_201901/bf_001/keep.jpg",
        "loc/a_201901/bf_001/.hidden.jpg",
        "loc/a_201901/bf_001/_skip.jpg",
        "_quarantine/corrupt/loc/x.jpg",
        ".bearid/thumbs/y.jpg",
        "loc/a_201901/notes.txt",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel, "JPEG") if rel.endswith(".jpg") else (tmp_path / rel).write_text(
            "x"
        )
    want = [tmp_path / "loc/a_201901/bf_001/keep.jpg"]
    assert photos_in(tmp_path)[1] == want  # bearid score
    assert [s.path for s in photo_samples([tmp_path])] == want  # bearid face detect
    ds = read_faces(photo_list(tmp_path, tmp_path / "label.xml"))  # bearid label
    assert [ds.path_of(i) for i in ds.images] == want


def test_settings_are_read_from_the_environment_and_a_bad_value_names_its_variable():
    from bearid.settings import Settings

    s = Settings.from_env({"BEARID_WORKERS": "3", "BENTOML_HOME": "/srv/bento", "BEARID_MAX_UPLOAD_MB": "2"})
    assert s.workers == 3 and s.store_home == Path("/srv/bento") and s.max_upload_bytes == 2 * 1024 * 1024
    assert Settings.from_env({"BEARID_STORE": "/srv/store", "BENTOML_HOME": "/srv/bento"}).store_home == Path(
        "/srv/store"
    )
    with pytest.raises(BearIDError, match="BEARID_WATCH_SECONDS='soon' is not a number"):
        Settings.from_env({"BEARID_WATCH_SECONDS": "soon"})


def test_every_setting_is_in_the_docs_table():
    from bearid.settings import documented

    page = (DOCS / "deployment.md").read_text()
    for name, _, _ in documented():
        assert f"| `{name}` |" in page, f"{name} is missing from the settings table in docs/deployment.md"


def test_no_environment_variable_is_read_outside_the_settings_module():
    root = Path(__file__).parents[1]
    readers = [
        p
        for d in ("bearid", "training", "exporters", "service")
        for p in (root / d).rglob("*.py")
        if "os.environ.get(" in p.read_text() or "os.environ[" in p.read_text() or "getenv(" in p.read_text()
    ]
    # torchrun's own variables (RANK, WORLD_SIZE, LOCAL_RANK) are read where DDP starts.
    assert sorted(p.relative_to(root).as_posix() for p in readers) == ["training/device.py"]


def test_a_classifier_pickled_under_its_old_module_name_still_loads(tmp_path):
    from bearid.classify import OpenSetClassifier, load_classifier

    clf = OpenSetClassifier(model=None, ids=["bf_001", "bf_002"], centroids=np.eye(2), threshold=0.5)
    old = pickle.dumps(clf, protocol=2).replace(b"cbearid.classify\n", b"cbearid.classifier\n")
    assert b"bearid.classifier" in old
    (tmp_path / "classifier.pkl").write_bytes(old)
    loaded = load_classifier(tmp_path / "classifier.pkl")
    assert isinstance(loaded, OpenSetClassifier) and loaded.ids == ["bf_001", "bf_002"]


def test_the_bench_scripts_import(monkeypatch):
    """`make bench` is not in `make test`; its scripts must at least follow the library."""
    bench = Path(__file__).parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    for script in sorted(bench.glob("*.py")):
        importlib.import_module(script.stem)


def test_every_shipped_config_reads_as_a_sweep():
    from bearid.training.config import read_sweep

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert any(p.name == "gpu.yaml" for p in configs)
    for path in configs:
        assert read_sweep(path).branches(), path


def test_the_fallback_verb_list_is_what_each_part_registers():
    """bearid.cli._VERBS names the verbs a part outside the core (training, exporters) brings,
    so that where the part cannot load its verbs still say which extra to install. It must be
    exactly what the part's `register` adds (commands and groups) to a fresh app."""
    from importlib.metadata import entry_points

    import typer

    from bearid.cli import _VERBS

    parts = {ep.name: ep for ep in entry_points(group="bearid.commands")}
    assert sorted(parts) == sorted(_VERBS), "every bearid.commands entry point has its verbs in bearid.cli._VERBS"
    for name, ep in parts.items():
        app = typer.Typer()
        app.callback()(lambda: None)  # a group, whatever the part adds
        ep.load()(app)
        registered = sorted(typer.main.get_command(app).commands)
        assert registered == sorted(_VERBS[name]), f"bearid.cli._VERBS[{name!r}] is not what {ep.value} adds"


def test_the_service_requirements_are_the_base_install_and_the_serve_extra():
    """service/requirements.txt is what the bento's image installs; the service runs the bearid
    code the bento carries, not an installed bearid. The rule: its requirements (read as the
    service reads them, bearid.serving.http.requirements: comments and blank lines dropped)
    are exactly pyproject.toml's `dependencies` plus its `[serve]` extra: the same packages
    (names compared canonicalised), each with the same version specifiers, extras and
    markers, each once; bearid itself is not among them."""
    import tomllib

    from packaging.requirements import Requirement  # pytest's own dependency
    from packaging.utils import canonicalize_name

    from bearid.serving.http import requirements

    root = Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def by_name(lines: list[str]) -> dict[str, tuple]:
        reqs = [Requirement(line) for line in lines]
        names = [canonicalize_name(r.name) for r in reqs]
        assert len(set(names)) == len(names), f"a package is listed twice: {sorted(names)}"
        return {n: (r.specifier, sorted(r.extras), str(r.marker or "")) for n, r in zip(names, reqs)}

    wanted = by_name(project["dependencies"] + project["optional-dependencies"]["serve"])
    image = by_name(requirements(root / "service" / "requirements.txt"))
    assert "bearid" not in image, "the bento carries bearid's code; its image must not install bearid"
    only = {"requirements.txt": sorted(image.keys() - wanted.keys()), "pyproject": sorted(wanted.keys() - image.keys())}
    assert not any(only.values()), f"listed on one side only: {only}"
    for name, pin in wanted.items():
        assert image[name] == pin, f"{name}: service/requirements.txt says {image[name]}, pyproject.toml {pin}"
