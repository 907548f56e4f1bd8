"""What ships: the client works with the base install alone, and `bentoml build` packages
the service from bentofile.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_client_and_score_need_only_the_base_install():
    # Block the heavy packages: importing them would fail, as on a base install.
    code = (
        "import sys\n"
        "for m in ('torch', 'bentoml', 'onnxruntime', 'sklearn', 'dlib', 'training', 'exporters'):\n"
        "    sys.modules[m] = None\n"
        "import bearid.client, bearid.score, bearid.cli\n"
        "from bearid.client import BearIDClient\n"
        "BearIDClient('http://127.0.0.1:9').close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bentoml_build_packages_the_service(tmp_path):
    env = dict(os.environ, BENTOML_HOME=str(tmp_path), BENTOML_DO_NOT_TRACK="True")
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-o", "tag"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentos" / name / version
    assert name == "bearid_service" and bento.is_dir(), result.stdout
    files = {p.relative_to(bento).as_posix() for p in bento.rglob("*")}
    assert "src/service/service.py" in files and "src/bearid/pipeline.py" in files
    assert not any(f.startswith("src/training/") or f.startswith("src/tests/") for f in files)
