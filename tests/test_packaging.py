"""What ships: the client works with the base install alone; a bento built by `bearid bento`
carries its model and serves it with no store; the wheel installs one top-level package that
serves a bundle."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

import httpx
import yaml

from bearid.metadata import read_faces
from bearid.serving.localserver import LocalServer

REPO = Path(__file__).resolve().parents[1]


def bearid(*args, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_client_and_score_need_only_the_base_install():
    # Block the heavy packages: importing them would fail, as on a base install.
    code = (
        "import sys\n"
        "for m in ('torch', 'bentoml', 'onnxruntime', 'sklearn', 'dlib', 'bearid.training', 'bearid.exporters'):\n"
        "    sys.modules[m] = None\n"
        "import bearid.client, bearid.score, bearid.cli\n"
        "from bearid.client import BearIDClient\n"
        "BearIDClient('http://127.0.0.1:9').close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_package_folder_is_in_the_wheel():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"bearid": "bearid", **{k: v for k, v in setuptools["package-dir"].items()}}
    found = set()
    for name, folder in folders.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *parts)))
    assert found == set(setuptools["packages"]), found ^ set(setuptools["packages"])


def test_a_built_bento_carries_its_model_and_serves_it_with_no_store(bundle_dir, pipeline, splits, tmp_path):
    from bearid.serving import bundle as bundles

    home = {"BENTOML_HOME": str(tmp_path / "home")}
    bearid("promote", bundle_dir, "--force", env=home)
    archive = tmp_path / "bearid.bento"
    out = bearid("bento", "--workers", "2", "--export", archive, env=home)
    tag = out.split()[0]
    assert tag.startswith("bearid_service:") and archive.is_file(), out

    # What the bento records: the model it carries, and the workers it declares and runs.
    folder = tmp_path / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    info = yaml.safe_load((folder / "bento.yaml").read_text())
    version = bundles.verify(bundle_dir)["version"]
    [service] = info["services"]
    assert [m["tag"] for m in service["models"]] == [f"bearid:{version}"]
    assert (
        service["config"]["workers"] == 2 and {"name": "BEARID_WORKERS", "value": "2", "stage": "all"} in info["envs"]
    )
    assert (folder / "models" / "bearid" / version / "manifest.json").is_file()
    assert (folder / "src" / "service" / "service.py").is_file() and (
        folder / "src" / "bearid" / "serving" / "pipeline.py"
    ).is_file()
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*")]
    assert not any(f.startswith(("src/training/", "src/exporters/", "src/tests/")) for f in files)
    locked = (folder / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==" in locked and "onnxruntime==" in locked  # lock_python_packages

    # Served as a container serves it: from the bento's folder, a BentoML home of its own, no store.
    image = read_faces(splits / "test.xml").images[0]
    photo = read_faces(splits / "test.xml").path_of(image)
    env = {"BENTOML_HOME": str(tmp_path / "fresh"), "BEARID_STORE": ""}
    with LocalServer(env=env, target=str(folder), log=tmp_path / "server.log") as url:
        model = httpx.get(f"{url}/model", timeout=30).json()
        assert model["version"] == version and model["source"].startswith(str(folder / "models")), model
        with photo.open("rb") as f:
            answer = httpx.post(f"{url}/identify", files={"photo": f}, timeout=60).json()
    assert answer == pipeline.identify(photo).model_dump(mode="json")


def test_the_wheel_installs_one_package_that_serves_a_bundle(bundle_dir, pipeline, splits, tmp_path):
    """Built from the tracked source, installed with [serve] into a clean venv, run from a
    folder that is no checkout: `bearid serve --bundle` answers /identify as the pipeline does."""
    import zipfile

    from bearid.serving.localserver import free_port

    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if name.split("/")[0] in {"bearid", "training", "exporters", "service"} or "/" not in name:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    run = dict(capture_output=True, text=True, timeout=900)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, source], **run)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = tmp_path.glob("bearid-*.whl")
    top = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert top == {"bearid", wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info"}, top

    venv = tmp_path / "venv"
    done = subprocess.run([sys.executable, "-m", "venv", venv], **run)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([venv / "bin" / "pip", "install", "-q", f"{wheel}[serve]"], **run)
    assert done.returncode == 0, done.stderr[-3000:]

    port, log = free_port(), (tmp_path / "server.log").open("wb")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "BENTOML_HOME": str(tmp_path / "home")}
    argv = [venv / "bin" / "bearid", "serve", "--bundle", bundle_dir, "--port", str(port)]
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    truth = read_faces(splits / "test.xml")
    photo = truth.path_of(truth.images[0])
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        with photo.open("rb") as f:
            answer = httpx.post(f"{url}/identify", files={"photo": f}, timeout=60).json()
    finally:
        server.terminate()
        server.wait(30)
    assert answer == pipeline.identify(photo).model_dump(mode="json")
