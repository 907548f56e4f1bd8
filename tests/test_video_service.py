"""POST /identify_video over HTTP: the real service (one LocalServer for the module), a
BentoML task (submit, poll the status, get the tracks), clips refused at submit with 4xx,
and the photo endpoint answering while a clip is being identified."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from bearid.synth import WorldConfig
from bearid.video.synth import ClipConfig, read_truth, write_videos

# The tiny bundle's world (tests/conftest.py, as tests/test_video.py), so the clips' bears are the bundle's.
WORLD = WorldConfig(bears=6, photos=70, seed=4, min_side=640, max_side=800)
CLIPS = ClipConfig(seconds=(1.2, 1.8), fps=(10, 12), face_side=(70.0, 120.0))


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    from conftest import model_store

    from bearid.exporters.promotion import promote
    from bearid.serving.localserver import LocalServer

    home = tmp_path_factory.mktemp("bentoml")
    store = model_store(home)
    promote(bundle_dir, [], store, force=True)
    env = dict(BEARID_STORE=str(home), BEARID_MAX_VIDEO_MB="1", BEARID_ORT_THREADS="1")
    with LocalServer(workers=1, env=env, log=home / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A synthetic clip with a bear in it."""
    root = tmp_path_factory.mktemp("clips")
    write_videos(WORLD, root, 3, CLIPS)
    with_bear = [c for c in read_truth(root)["clips"] if c["bears"]]
    assert with_bear
    return root / with_bear[0]["file"]


def submit(url: str, data: bytes, name: str = "clip.mp4", field: str = "clip") -> httpx.Response:
    return httpx.post(f"{url}/identify_video/submit", files={field: (name, data)}, timeout=60)


def wait(url: str, task_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = httpx.get(f"{url}/identify_video/status", params={"task_id": task_id}, timeout=30).json()
        if status["status"] not in ("pending", "in_progress"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} not done in {timeout} s")


def test_a_clip_submitted_polled_and_got_has_its_tracks(server, clip, pipeline):
    from bearid.video.task import identify_upload

    r = submit(server, clip.read_bytes())
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    assert wait(server, task_id)["status"] == "completed"
    got = httpx.get(f"{server}/identify_video/get", params={"task_id": task_id}, timeout=30)
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["status"] == "tracked" and answer["tracks"], answer
    assert answer["model"]["version"] == pipeline.version
    assert answer == identify_upload(pipeline, clip).model_dump(mode="json")  # what the code answers in process


def test_refused_clips_are_4xx_at_submit(server, clip, tmp_path):
    too_large = submit(server, b"\x00" * (2 * 1024 * 1024 + 10))
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large", too_large.text
    not_a_video = submit(server, b"this is not a video " * 50, name="x.mp4")
    assert not_a_video.status_code == 400 and not_a_video.json()["code"] == "bad_video", not_a_video.text
    empty = submit(server, b"")
    assert empty.status_code == 400 and empty.json()["code"] == "empty", empty.text
    wrong_field = submit(server, clip.read_bytes(), field="photo")
    assert wrong_field.status_code == 400 and "'clip'" in wrong_field.json()["error"]
    not_multipart = httpx.post(f"{server}/identify_video/submit", json={"clip": "x"}, timeout=30)
    assert not_multipart.status_code == 415


def test_the_photo_endpoint_answers_while_a_clip_task_runs(server, clip, splits):
    from bearid.metadata import read_faces

    truth = read_faces(splits / "test.xml")
    photo = truth.path_of(truth.images[0]).read_bytes()
    data = clip.read_bytes()
    ids = [submit(server, data).json()["task_id"] for _ in range(3)]  # one clip at a time: a queue
    answered: list[tuple[int, bool]] = []

    def photos() -> None:
        for _ in range(2):
            r = httpx.post(f"{server}/identify", files={"photo": ("p.jpg", photo)}, timeout=60)
            running = httpx.get(f"{server}/identify_video/status", params={"task_id": ids[-1]}, timeout=30).json()
            answered.append((r.status_code, running["status"] == "in_progress"))

    t = threading.Thread(target=photos)
    t.start()
    t.join(60)
    assert [s for s, _ in answered] == [200, 200]
    assert answered[0][1], "the clips were done before the photo was answered: no overlap to show"
    for task_id in ids:
        assert wait(server, task_id)["status"] == "completed"
