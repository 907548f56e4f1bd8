"""Trust: the best path is chosen on validation; bad configs are refused as they are read;
files are written for the people the umask says may read them; bad input is one line and
exit status 2, never a traceback or a silent no-op."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bearid.errors import BearIDError


def bearid(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def refused(done, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    message = done.stderr.strip()
    assert message.startswith("error:") and len(message.splitlines()) == 1, message
    for w in words:
        assert w in message, (w, message)


# -- the best path is chosen on validation ------------------------------------------------
def _tree(root: Path, classify: dict[str, dict]) -> None:
    """A results tree of finished stages with the given class-stage metrics (no training)."""
    from bearid.training.config import STAGES, as_dict
    from bearid.training.results import stage_dir, write_metrics

    face = stage_dir(root, STAGES["face"], as_dict(STAGES["face"].config()), "data").path
    chip = stage_dir(face, STAGES["chip"], as_dict(STAGES["chip"].config()), "face").path
    for d in (face, chip):
        write_metrics(d, {"val": {}, "test": {}})
    for i, (name, metrics) in enumerate(classify.items()):
        embed = stage_dir(chip, STAGES["embed"], as_dict(STAGES["embed"].config(seed=i)), "chip").path
        write_metrics(embed, {"val": {}, "test": {}})
        d = stage_dir(embed, STAGES["classify"], as_dict(STAGES["classify"].config()), name).path
        write_metrics(d, metrics)


def test_the_best_path_is_chosen_on_validation_never_on_test(tmp_path):
    from bearid.training.runs import runs

    _tree(
        tmp_path,
        {
            "test_best": {"val": {"baks": 0.70, "baus": 0.70}, "test": {"baks": 0.99, "baus": 0.99}},
            "val_best": {"val": {"baks": 0.90, "baus": 0.80}, "test": {"baks": 0.80, "baus": 0.70}},
            "no_val": {"test": {"baks": 1.0, "baus": 1.0}},
        },
    )
    r = runs(tmp_path, "open_set")
    assert r.best[2].name == "embed_config_02"  # the validation winner, though another has better test figures
    assert r.figures(r.best, "test")["open_set"] == pytest.approx(0.75)  # reported, not used to choose
    data = r.as_json()
    assert data["selected_on"] == "val" and len(data["paths"]) == 3
    assert [p["val"]["open_set"] for p in data["paths"]] == [pytest.approx(0.7), pytest.approx(0.85), None]
    assert runs(tmp_path, "baus").best[2].name == "embed_config_02"
    done = bearid("runs", tmp_path, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["best"][2].endswith("embed_config_02")


def test_paths_are_ranked_on_validation_photos_answered_end_to_end_where_they_were(tmp_path):
    """A path whose detector misses faces looks better on chips (chip-level BAKS and BAUS never
    see a missed face); answered end to end, its misses count as wrong, and it loses."""
    from bearid.training.pathnet import ANSWERED
    from bearid.training.runs import runs

    _tree(
        tmp_path,
        {
            "misses_faces": {"val": {"baks": 0.92, "baus": 0.92}, "threshold_note": "accepts 0.05 ..."},
            "finds_them": {"val": {"baks": 0.90, "baus": 0.90}, "threshold_note": "... target is not met: x"},
        },
    )  # fmt: skip
    paths = {p[2].name: p for p in runs(tmp_path).paths}
    answered = {"embed_config_01": (0.80, 0.81, 0.87), "embed_config_02": (0.98, 0.89, 0.90)}
    for embed, (recall, baks, baus) in answered.items():
        (paths[embed][-1] / ANSWERED).write_text(
            json.dumps({"val": {"face_recall": recall, "baks": baks, "baus": baus, "top1": 0.9}})
        )
    r = runs(tmp_path, "open_set")
    assert r.best[2].name == "embed_config_02"
    data = r.as_json()
    assert [p["val_chips"]["open_set"] for p in data["paths"]] == [pytest.approx(0.92), pytest.approx(0.90)]
    assert [p["val"]["face_recall"] for p in data["paths"]] == [0.80, 0.98]
    assert [p["open_set_target_met"] for p in data["paths"]] == [True, False]
    shown = bearid("runs", tmp_path, env={"COLUMNS": "400"})
    assert shown.returncode == 0 and "open-set target not met" in shown.stdout and "answered" in shown.stdout
    for path in paths.values():  # a tree made before: chip-level figures rank
        (path[-1] / ANSWERED).unlink()
    assert runs(tmp_path, "open_set").best[2].name == "embed_config_01"


def test_ties_are_broken_by_the_next_validation_figures_then_by_directory_names(tmp_path):
    from bearid.training.runs import runs

    same = {"baks": 0.9, "baus": 0.8}
    _tree(
        tmp_path,
        {
            "a": {"val": {**same, "auroc": 0.90}, "test": {}},
            "b": {"val": {**same, "auroc": 0.95}, "test": {}},
            "c": {"val": {**same, "auroc": 0.95}, "test": {}},
        },
    )
    assert runs(tmp_path, "open_set").best[2].name == "embed_config_02"  # higher AUROC, then the earlier name


def test_a_tree_where_no_path_has_a_validation_figure_has_no_best_path(tmp_path):
    from bearid.training.runs import runs

    _tree(tmp_path, {"only_test": {"test": {"baks": 1.0, "baus": 1.0}}})
    assert runs(tmp_path, "open_set").best is None
    done = bearid("export", "--results", tmp_path, "--out", tmp_path / "bundle")
    refused(done, "no path with an ONNX face backend and a validation open_set figure")


# -- configs are checked when they are read ------------------------------------------------
@pytest.mark.parametrize(
    "sweep, words",
    [
        ("face: {backend: foo}", ["face.backend", "'centernet', 'dlib' or 'mmod'", "'foo'"]),
        ("embed: {flip: perhaps}", ["embed.flip", "valid boolean"]),
        ("chip: {points: leye}", ["chip.points", "a list"]),
        ("chip: {points: [leye, chin]}", ["chip: points", "the default template places no chin"]),
        ("face: {steps: -5}", ["face.steps", "greater than or equal to 0"]),
        ("classify: {target_far: 2.0}", ["classify.target_far", "less than 1"]),
        ("chip: {size: 0}", ["chip.size", "greater than or equal to 16"]),
        ("embed: {stepz: 3}", ["embed.stepz", "unknown setting"]),
        ("embeds: {}", ["unknown: embeds"]),
    ],
)
def test_a_bad_config_is_refused_when_the_sweep_is_read(tmp_path, sweep, words):
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep + "\n")
    splits = tmp_path / "no-splits"  # never reached: the sweep is checked first
    refused(bearid("train", path, "--data", splits, "--results", tmp_path / "results"), str(path), *words)


def test_flip_no_in_a_sweep_reads_as_false(tmp_path):
    from bearid.training.config import read_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text('embed: {flip: "no"}\n')
    assert read_sweep(path).embed[0].flip is False


def test_set_is_checked_like_the_sweep_file(tmp_path):
    refused(bearid("train", "--set", "embed.steps=-1", "--data", tmp_path), "--set", "embed.steps")
    refused(bearid("train", "--set", "steps=10", "--data", tmp_path), "STAGE.KEY=VALUE")
    refused(bearid("embed", "train", tmp_path, "--out", tmp_path / "e", "--set", "loss=contrastive"), "embed.loss")
    refused(bearid("synth", tmp_path / "w", "--set", "blur_rate=2"), "blur_rate=2.0: a share")
    refused(bearid("synth", tmp_path / "w", "--bears", "-1"), "bears=-1")


def test_the_stage_key_changes_with_the_release_and_with_a_photo_changed_in_place(tmp_path, monkeypatch):
    from PIL import Image

    import bearid
    from bearid.metadata import Dataset, ImageEntry, write_faces
    from bearid.training.results import data_key

    Image.new("RGB", (16, 16)).save(tmp_path / "a.jpg")
    xml = tmp_path / "train.xml"
    write_faces(Dataset([ImageEntry("a.jpg")], base_dir=tmp_path), xml)
    key = data_key([xml])
    assert data_key([xml]) == key
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "a.jpg")  # same name, same XML, new pixels
    os.utime(tmp_path / "a.jpg", ns=(1, 1))
    assert data_key([xml]) != key
    key = data_key([xml])
    monkeypatch.setattr(bearid, "__version__", "99.0")
    assert data_key([xml]) != key


# -- files are written for their readers ----------------------------------------------------
@pytest.fixture(params=[0o022, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(root: Path) -> set[tuple[str, int]]:
    """(kind, mode) of everything under `root`, the store's own lock files aside."""
    out = set()
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        out.add(("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)))
    return out


def test_what_bearid_writes_has_the_mode_the_umask_gives(umask, tmp_path, bundle_dir):

    from bearid.data.ingest import ingest
    from bearid.fsio import atomic_write_text
    from bearid.label.store import LabelStore
    from bearid.synth import WorldConfig, synthesize

    want = {("file", 0o666 & ~umask), ("dir", 0o777 & ~umask)}
    world = tmp_path / "world"
    synthesize(WorldConfig(bears=3, photos=8, seed=2, min_side=320, max_side=400), world, messy=True)
    assert _modes(world) <= want, _modes(world) - want
    archive = tmp_path / "archive"
    archive.mkdir()
    ingest(
        world / "_drops" / next(p.name for p in (world / "_drops").iterdir()),
        archive,
        "brooks_falls",
        "hartley",
        "20190815",
        id_from=["filename:(bf_\\d{3})"],
    )
    assert _modes(archive) <= want, _modes(archive) - want
    # A fresh process: BentoML's model store is fixed per process, and the tests' own holds this bundle already.
    done = bearid("promote", bundle_dir, "--force", env={"BENTOML_HOME": str(tmp_path / "store")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "store" / "models" / "bearid").is_dir() and (tmp_path / "store" / "bearid").is_dir()
    assert _modes(tmp_path / "store") <= want, _modes(tmp_path / "store") - want
    xml = tmp_path / "label" / "faces.xml"
    atomic_write_text(xml, (world / "_truth" / "faces.xml").read_text().replace("file='", f"file='{world}/"))
    labels = LabelStore(xml)
    labels.update(0, [], labels.versions[0], "tester")
    labels.close()
    assert _modes(tmp_path / "label") <= want, _modes(tmp_path / "label") - want


def test_an_exported_bundle_has_the_mode_the_umask_gives(umask, trained, tmp_path):
    from bearid.exporters.export import export

    _, report = trained
    out = tmp_path / "bundle"
    export(report.branches[0][-1], out, parity_photos=1, log=lambda m: None)
    assert _modes(out) <= {("file", 0o666 & ~umask), ("dir", 0o777 & ~umask)}


# -- errors, not tracebacks; typos, not no-ops ------------------------------------------------
@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    from bearid.synth import WorldConfig, synthesize

    root = tmp_path_factory.mktemp("trust") / "world"
    synthesize(WorldConfig(bears=3, photos=10, seed=5, min_side=320, max_side=400), root)
    return root


def test_bad_outputs_and_bad_values_are_refused_in_one_line(small_world, tmp_path):
    a_file, a_folder = tmp_path / "file", tmp_path / "folder"
    a_file.write_text("x")
    a_folder.mkdir()
    refused(bearid("data", "stats", small_world, "--html", a_folder), "is a folder")
    refused(bearid("data", "split", small_world, "--out", a_file), "is a file, not a folder")
    refused(bearid("data", "clean", small_world, "--out", a_file), "is a file, not a folder")
    refused(bearid("data", "clean", small_world, "--apply", "--only", "bogus"), "--only bogus", "exact_duplicate")
    refused(bearid("data", "verify", small_world, "--sample", "200%"), "--sample 200%")
    refused(bearid("runs", "show", tmp_path / "nope"), "no such results tree")
    refused(bearid("face", "detect", a_folder, small_world, "--out", tmp_path / "f.xml"), "no config.yaml")
    refused(bearid("serve", "--bundle", tmp_path / "nope"), "not a bundle")


def test_a_damaged_champion_pointer_is_an_error_not_a_traceback(tmp_path):
    pointer = tmp_path / "bearid" / "champion.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_text('{"champion": "abc", "sta')
    for verb in ("models", "rollback"):
        refused(bearid(verb, env={"BEARID_STORE": str(tmp_path)}), str(pointer), "damaged")


def test_a_serving_worker_logs_a_damaged_pointer_once_and_keeps_its_model(tmp_path, bundle_dir, caplog):
    from conftest import model_store

    from bearid.serving.http import Champion

    store = model_store(tmp_path / "store")
    store.add(bundle_dir)
    from bearid.serving import bundle as bundles

    store.promote(bundles.verify(bundle_dir)["version"])
    champion = Champion(store=store)
    assert champion.pipeline is not None
    store.pointer.write_text("{not json")
    for _ in range(3):
        os.utime(store.pointer, ns=(os.stat(store.pointer).st_mtime_ns + 10**9,) * 2)
        assert champion.check() is False
    assert champion.pipeline is not None  # the model it had
    errors = [r for r in caplog.records if r.name == "bearid.service" and r.levelname in ("WARNING", "ERROR")]
    assert len(errors) == 1 and "damaged" in errors[0].getMessage() and not errors[0].exc_info


def test_face_detect_records_a_corrupt_photo_and_goes_on(trained, small_world, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    good = sorted(small_world.rglob("*.jpg"))[:2]
    for p in good:
        (photos / p.name).write_bytes(p.read_bytes())
    (photos / "broken.jpg").write_bytes(good[0].read_bytes()[:200])
    _, report = trained
    out = tmp_path / "faces.xml"
    done = bearid("face", "detect", report.branches[0][0], photos, "--out", out, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "broken.jpg" in done.stdout and "Traceback" not in done.stderr
    from bearid.metadata import read_faces

    assert sorted(Path(i.file).name for i in read_faces(out).images) == sorted(p.name for p in good)


def test_version_and_short_help():
    from bearid import __version__

    done = bearid("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"bearid {__version__}"
    assert bearid("-h").returncode == 0 and "Usage" in bearid("-h").stdout
    assert "Usage" in bearid("data", "-h").stdout


def test_a_verb_group_that_cannot_load_says_why(tmp_path):
    """A base install without the training extra: its verbs are there and say what is missing."""
    (tmp_path / "torch.py").write_text("raise ModuleNotFoundError('No module named torch', name='torch')\n")
    block = tmp_path / "block" / "sitecustomize.py"  # a training package that cannot load at all
    block.parent.mkdir()
    block.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bearid.training.cli':\n"
        "            raise ModuleNotFoundError('No module named torch', name='torch')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    env = {"PYTHONPATH": f"{block.parent}:{tmp_path}"}
    done = bearid("train", "--data", tmp_path, env=env, cwd=tmp_path)
    refused(done, "the training verbs could not be loaded", "bearid[train]")
    assert "Not available" in bearid("-h", env=env, cwd=tmp_path).stdout
    env = {"PYTHONPATH": str(tmp_path)}  # training loads, torch does not: the verb says so when run
    from bearid.metadata import Dataset, write_faces
    from bearid.training.stages import SPLITS

    for name in SPLITS:  # the inputs are checked first: give it readable splits
        write_faces(Dataset([], base_dir=tmp_path), tmp_path / f"{name}.xml")
    done = bearid("train", "--data", tmp_path, env=env, cwd=tmp_path)
    refused(done, "needs what is not installed", "bearid[train]")


def test_a_stopped_synth_is_resumed_by_running_it_again(tmp_path):
    from bearid.synth import TRUTH_DIR, WorldConfig, synthesize

    config = WorldConfig(bears=3, photos=8, seed=9, min_side=320, max_side=400)
    out = tmp_path / "world"
    synthesize(config, out)
    photo = sorted(out.rglob("*.jpg"))[0]
    photo.unlink()  # as if stopped part way: the stamp says begun, not finished
    stamp = out / TRUTH_DIR / "synth.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "finished": False}))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    with pytest.raises(BearIDError, match="begun with other settings"):
        synthesize(WorldConfig(bears=3, photos=8, seed=10, min_side=320, max_side=400), out)
    synthesize(config, out)
    assert photo.exists() and json.loads(stamp.read_text()).get("finished", True)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # photos already right are left alone


def test_runs_diff_shows_the_configs_that_differ_and_the_figures_side_by_side(tmp_path):
    from bearid.training.runs import path_diff

    _tree(
        tmp_path,
        {"a": {"val": {"baks": 0.7}, "test": {"baks": 0.6}}, "b": {"val": {"baks": 0.9}, "test": {"baks": 0.8}}},
    )
    a, b = sorted(tmp_path.glob("face_config_01/chip_config_01/embed_config_*/class_config_01"))
    diff = path_diff(a, b)
    assert diff.configs == [("embed", "seed", 0, 1)]  # the one key that differs, on the one stage
    assert ("classify", "test BAKS", 0.6, 0.8) in diff.figures
    done = bearid("runs", "diff", a, b)
    assert done.returncode == 0 and "seed" in done.stdout and "0.800" in done.stdout
    refused(bearid("runs", "diff", a, tmp_path / "nope"), "not a stage directory")
