"""Several annotators per photo (#36): the consensus (median boxes and landmarks, an ID vote
weighted by measured accuracy), the reasons a face disagrees, and through the HTTP API with
accounts: blind tasks, gold photos mixed in unannounced and scored, the consensus in the
XML with the raw answers in the journal, the disagreement queue, and volunteers kept blind."""

from __future__ import annotations

import subprocess
import sys

import pytest
from starlette.testclient import TestClient
from test_labels_formats import make_archive

from bearid.cli.label import accounts_file
from bearid.label.accounts import Accounts
from bearid.label.app import Labeler, create_app
from bearid.label.auth import Auth
from bearid.label.consensus import Bounds, Skill, combine, consensus, iou, match, score, vote
from bearid.label.store import LabelStore
from bearid.metadata import read_faces

BASE = "http://label.test"
PASSWORD = "a long enough password"


def face(left, top, size, label="bf_001", shift=0):
    parts = {
        "leye": [left + size * 3 // 4 + shift, top + size * 2 // 5],
        "reye": [left + size // 4 + shift, top + size * 2 // 5],
        "nose": [left + size // 2, top + size * 3 // 4 + shift],
        "lear": [left + size * 9 // 10, top + size // 10],
        "rear": [left + size // 10, top + size // 10],
    }
    return {"left": left, "top": top, "width": size, "height": size, "label": label, "parts": parts, "attrs": {}}


# -- the consensus itself ------------------------------------------------------------------------
def test_the_median_box_and_landmarks_shrug_off_one_careless_answer():
    good, close, careless = face(100, 100, 80), face(102, 98, 80), face(130, 125, 60, shift=9)
    agreed = consensus({"a": [good], "b": [close], "c": [careless]})
    [box] = agreed.boxes
    # The median box (102, 100, 182, 180) overlaps the careless one 0.40: it is set aside, and the
    # two close ones averaged (the mean of all three would be 110.7, 107.7).
    assert (box["left"], box["top"]) == (101, 99)
    assert box["left"] + box["width"] == 181 and box["top"] + box["height"] == 179
    assert box["parts"]["nose"] == [141, 159]  # the careless nose (160, 179) is 26 px off the median: left out
    assert iou(box, good) > 0.9 > 0.5 > iou(careless, good)
    assert agreed.disputes == [[]]  # one careless answer outvoted: no disagreement
    scattered = consensus({"a": [good], "b": [face(125, 110, 80)], "c": [face(90, 130, 80)]})
    assert scattered.disputes[0][0].startswith("the majority's boxes overlap the median box only 0.5")


def test_the_id_vote_is_weighted_by_measured_accuracy_and_a_split_vote_disagrees():
    labels = {"a": "bf_001", "b": "bf_001", "c": "bf_002"}
    assert vote(labels, {})[0] == "bf_001"  # unmeasured: one vote each
    assert vote(labels, {"a": 0.3, "b": 0.3, "c": 0.95})[0] == "bf_002"  # two poor annotators lose to a good one
    box = face(100, 100, 80)
    _, reasons = combine({w: {**box, "label": lab} for w, lab in labels.items()}, {}, Bounds())
    assert reasons == []  # two of three: a majority over the 0.6 bound
    _, reasons = combine({w: {**box, "label": lab} for w, lab in labels.items()}, {}, Bounds(vote_below=0.7))
    assert reasons == ["the ID vote is split (67% for bf_001)"]
    even = {"a": "bf_001", "b": "bf_002", "c": None}
    # a measured at 90% (log-odds weight 2.2), b and c unmeasured (70%: 0.85 each): a leads, split.
    _, reasons = combine({w: {**box, "label": lab} for w, lab in even.items()}, {"a": Skill(0.9)}, Bounds())
    assert reasons == ["the ID vote is split (56% for bf_001)"]
    assert Skill(0.95).id_weight(8) > 3 * Skill(0.4).id_weight(8) > 0  # over 8 bears, even 40% beats chance


def test_faces_are_matched_by_iou_and_one_only_a_minority_drew_is_reported():
    a, b = face(10, 10, 50), face(200, 50, 60)
    answers = {"x": [a, b], "y": [b, a], "z": [{**a, "left": 12}]}
    faces = match(answers, 0.3)
    assert sorted(len(f) for f in faces) == [2, 3]
    agreed = consensus({"x": [a], "y": [a], "z": [a, b]})
    assert len(agreed.boxes) == 1 and agreed.unmatched == ["a face only 1 of 3 drew (z)"]
    assert not consensus({"x": [a], "y": [a], "z": [face(10, 10, 50, shift=6)]}).disputed  # one point off
    spread = consensus({"x": [a], "y": [face(10, 10, 50, shift=-6)], "z": [face(10, 10, 50, shift=6)]})
    assert spread.disputes == [["the majority's landmarks spread 0.052 chip units"]]


def test_a_gold_answer_is_scored_face_by_face():
    truth = [face(10, 10, 50), face(200, 50, 60, label="bf_002")]
    s = score([face(12, 10, 50, shift=3), face(400, 10, 20)], truth)
    assert s.ious[1] == 0 and 0.8 < s.ious[0] < 1 and s.extra == 1
    assert (s.ids_right, s.ids_asked) == (1, 2) and 0 < max(s.landmark_errors) < 0.1


# -- through the API -----------------------------------------------------------------------------
@pytest.fixture
def crowd_site(tmp_path):
    xml = make_archive(tmp_path / "archive")
    accounts = Accounts.open(accounts_file(xml))  # where `bearid accounts --xml` finds them
    for name, role in (("anna", "curator"), ("ada", "volunteer"), ("bob", "volunteer"), ("cal", "volunteer")):
        accounts.add(name, role, PASSWORD)
    store = LabelStore(xml)
    labeler = Labeler(store, redundancy=3, gold_every=3)
    auth = Auth(accounts)
    yield xml, store, labeler, auth
    store.close()


def client_of(labeler, auth, name: str) -> TestClient:
    client = TestClient(create_app(labeler, auth), base_url=BASE)
    page = client.get("/login")
    csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
    assert client.post("/login", data={"csrf": csrf, "name": name, "password": PASSWORD}, follow_redirects=False)
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf"]
    return client


def answer_of(truth: list[dict], careless: bool) -> list[dict]:
    """An answer close to the truth, or a careless one (boxes shifted, a wrong ID, a landmark off)."""
    out = []
    for b in truth:
        b = {**b, "parts": dict(b["parts"]), "attrs": {}}
        if careless:
            b.update(
                left=b["left"] + b["width"] // 3,
                top=b["top"] + b["height"] // 4,
                label="bf_002" if b["label"] != "bf_002" else "bf_001",
            )
            b["parts"] = {k: [x + 12, y - 9] for k, (x, y) in b["parts"].items()}
        else:
            b["left"] += 1
            b["parts"] = {k: [x + 1, y] for k, (x, y) in b["parts"].items()}
        out.append(b)
    return out


def test_three_blind_annotators_their_consensus_gold_and_the_disagreement_queue(crowd_site):
    xml, store, labeler, auth = crowd_site
    truth = {i: store.boxes(i) for i in range(len(store))}
    anna = client_of(labeler, auth, "anna")
    people = {name: client_of(labeler, auth, name) for name in ("ada", "bob", "cal")}
    ada = people["ada"]

    # Volunteers label blind: no photo's faces, journal, chips or figures; no direct edits; no gold marks.
    for path in ("/api/images/0", "/api/history", "/api/chips/0/0", "/api/match/0", "/api/annotators"):
        assert ada.get(path).status_code == 403, path
    assert ada.put("/api/images/0", json={"boxes": [], "version": 0}).status_code == 403
    assert ada.post("/api/gold", json={"index": 0}).status_code == 403
    assert anna.post("/api/gold", json={"index": 0}).json() == {"index": 0, "gold": True, "faces": 2}
    assert anna.post("/api/gold", json={"index": 3}).status_code == 400  # no faces: no truth

    handed: dict[str, list[int]] = {name: [] for name in people}
    for _ in range(4):  # three photos to label and one gold, for each of three annotators
        for name, client in people.items():
            got = client.get("/api/blind/next").json()
            if got["index"] is None:
                continue
            i = got["index"]
            assert set(got["task"]) == {"index", "photo", "width", "height"}  # gold or not, a task looks the same
            handed[name].append(i)
            boxes = answer_of(truth[i], careless=name == "cal")
            if name == "bob" and i == 2:
                boxes[0]["label"] = "bf_001"  # ada says Ünïcode bear, cal bf_002: a three-way split
            done = client.post(f"/api/blind/{i}", json={"boxes": boxes})
            assert done.status_code == 200, done.text
            assert done.json() == {"index": i, "answered": True}
    for name, photos in handed.items():
        assert sorted(photos) == [0, 1, 2, 3], (name, photos)  # every photo once, gold (0) among them
        assert photos.index(0) == 0  # the first task (measured before their answers count), not announced
    # Answering again, or a photo not handed out, is refused; so is an answer without the CSRF token.
    assert ada.post("/api/blind/1", json={"boxes": []}).status_code == 403
    stranger = TestClient(create_app(labeler, auth), base_url=BASE)
    assert stranger.get("/api/blind/next").status_code == 401
    ada.headers.pop("X-CSRF-Token")
    assert ada.post("/api/blind/1", json={"boxes": []}).status_code == 403

    # The XML holds the consensus: the two careful answers (left + 1), cal's boxes set aside and IDs outvoted.
    saved = read_faces(xml)
    assert [(b.left, b.label) for b in saved.images[1].boxes] == [(t["left"] + 1, t["label"]) for t in truth[1]]
    assert [b.left for b in saved.images[2].boxes] == [t["left"] + 1 for t in truth[2]]
    assert saved.images[0].boxes[0].left == truth[0][0]["left"]  # gold: its truth, untouched
    # Photo 3 has no face: three empty answers agree on nothing, nothing disputed.
    assert saved.images[3].boxes == []
    # The raw answers stay in the journal with who gave them; each consensus edit names its answers.
    answers = [e for e in store.entries() if e["kind"] == "answer"]
    assert sorted((e["volunteer"], e["gold"]) for e in answers if e["file"] == "bf_001/c.jpg") == [
        ("ada", False),
        ("bob", False),
        ("cal", False),
    ]
    made = [e for e in store.entries() if e["kind"] == "edit" and "consensus" in e]
    assert {e["file"] for e in made} == {"bf_002_cub/b.jpg", "bf_001/c.jpg", "x/d.jpg"}
    assert all(e["volunteer"] == "consensus" and e["consensus"]["answers"] == ["ada", "bob", "cal"] for e in made)

    # One careless answer outvoted is no disagreement; a three-way ID vote is: the curator's queue has it.
    queues = {q["name"]: q for q in anna.get("/api/info").json()["queues"]}
    assert queues["disagreement"]["todo"] == 1
    assert "disagreement" not in anna.get("/api/images/1").json()["reasons"]
    reasons = anna.get("/api/images/2").json()["reasons"]["disagreement"]
    assert reasons.startswith("face 1: the ID vote is split (46% for ")
    # The gold photo found the careless annotator.
    figures = {s["name"]: s for s in anna.get("/api/annotators").json()}
    assert figures["cal"]["box_iou"] < 0.6 < figures["ada"]["box_iou"]
    assert figures["cal"]["id_accuracy"] == 0 and figures["ada"]["id_accuracy"] == 1
    assert figures["cal"]["landmark_error"] > 5 * figures["ada"]["landmark_error"]
    assert figures["cal"]["id_weight"] < figures["ada"]["id_weight"]
    assert figures["cal"]["box_error"] > 5 * figures["ada"]["box_error"]
    listed = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "accounts", "list", "--xml", str(xml)],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    assert "gold 1: box IoU 0.98" in lines["ada"] and "ID accuracy 100%" in lines["ada"]
    assert "ID accuracy 0%" in lines["cal"] and "answers" not in lines["anna"]


def test_answers_survive_a_restart_and_accounts_list_shows_the_figures(crowd_site, tmp_path):
    xml, store, labeler, auth = crowd_site
    truth = store.boxes(1)
    anna = client_of(labeler, auth, "anna")
    anna.post("/api/gold", json={"index": 0})
    clients = {n: client_of(labeler, auth, n) for n in ("ada", "bob")}
    for client in clients.values():
        assert client.get("/api/blind/next").json()["index"] == 0  # gold first
        client.post("/api/blind/0", json={"boxes": answer_of(store.boxes(0), careless=False)})
        assert client.get("/api/blind/next").json()["index"] == 1
        client.post("/api/blind/1", json={"boxes": answer_of(truth, careless=False)})
    store.close()

    again = LabelStore(xml)  # a restart: the answers and the gold come back from the journal
    try:
        labeler2 = Labeler(again, redundancy=3, gold_every=3)
        assert set(labeler2.crowd.answers[1]) == {"ada", "bob"} and 0 in labeler2.crowd.gold
        cal = client_of(labeler2, auth, "cal")
        assert cal.get("/api/blind/next").json()["index"] == 0
        cal.post("/api/blind/0", json={"boxes": []})
        assert cal.get("/api/blind/next").json()["index"] == 1
        cal.post("/api/blind/1", json={"boxes": answer_of(truth, careless=False)})
        assert [b.left for b in read_faces(xml).images[1].boxes] == [t["left"] + 1 for t in truth]
    finally:
        again.close()


# -- in the browser ------------------------------------------------------------------------------
def test_a_volunteer_labels_blind_in_the_browser_and_a_curator_finds_the_disagreement(crowd_site):
    """A volunteer's page in Chromium, with --redundancy: it asks only for blind tasks (never a
    photo's faces), the volunteer draws a face, places its five landmarks and names it, and
    the answer is sent on moving on; the third answer settles the photo, whose split ID vote a
    curator then finds in the disagreement queue of the same page."""
    from playwright.sync_api import sync_playwright
    from test_label_browser import ARTIFACTS, CHROMIUM_FLAGS, chromium, serving

    xml, store, labeler, auth = crowd_site
    truth = store.boxes(1)
    anna = client_of(labeler, auth, "anna")
    anna.post("/api/gold", json={"index": 0})
    for name, label in (("ada", None), ("bob", "bf_001")):
        client = client_of(labeler, auth, name)
        for i in (0, 1):
            assert client.get("/api/blind/next").json()["index"] == i
            boxes = answer_of(store.boxes(i) if i == 0 else truth, careless=False)
            if i == 1 and label:
                boxes[0]["label"] = label
            assert client.post(f"/api/blind/{i}", json={"boxes": boxes}).status_code == 200
    face = truth[0]
    with serving(create_app(labeler, auth)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)

        def logged_in(name: str):
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url.removeprefix(url)))
            page.goto(f"{url}/login")
            page.fill("input[name=name]", name)
            page.fill("input[name=password]", PASSWORD)
            page.click("button")
            return page, asked

        cal, asked = logged_in("cal")
        cal.wait_for_selector("body[data-ready='0'][data-blind='true']")  # the gold photo first, unannounced
        assert cal.locator("#overlay rect").count() == 0  # its faces are not shown
        cal.keyboard.press("ArrowRight")  # sends an empty answer
        cal.wait_for_selector("body[data-ready='1'][data-answered='1']")
        assert cal.locator("#overlay rect").count() == 0

        def screen(x: float, y: float) -> tuple[float, float]:
            return tuple(
                cal.evaluate(
                    "([x, y]) => { const m = document.getElementById('canvas').getScreenCTM();"
                    " return [m.a * x + m.e, m.d * y + m.f]; }",
                    [x, y],
                )
            )

        cal.mouse.move(*screen(face["left"], face["top"]))
        cal.keyboard.down("Shift")
        cal.mouse.down()
        cal.mouse.move(*screen(face["left"] + face["width"], face["top"] + face["height"]), steps=6)
        cal.mouse.up()
        cal.keyboard.up("Shift")
        for n, name in enumerate(("leye", "reye", "nose", "lear", "rear"), start=1):
            cal.keyboard.press(str(n))
            cal.mouse.click(*screen(*face["parts"][name]))
        cal.fill("#label", "bf_002")
        cal.press("#label", "Enter")
        cal.keyboard.press("ArrowRight")
        cal.wait_for_selector("body[data-answered='2']")
        cal.screenshot(path=str(ARTIFACTS / "label-blind.png"))
        assert not [a for a in asked if a.startswith("/api/images/") and not a.endswith("/photo")]
        assert not [a for a in asked if a.startswith(("/api/history", "/api/chips", "/api/match"))]

        curator, _ = logged_in("anna")
        curator.wait_for_selector("body[data-ready]")
        curator.select_option("#queue", "disagreement")
        curator.wait_for_selector("body[data-ready='1']")
        assert "the ID vote is split" in curator.inner_text("#reasons")
        curator.screenshot(path=str(ARTIFACTS / "label-disagreement.png"))
        browser.close()

    [answer] = [e for e in store.entries() if e["kind"] == "answer" and e["volunteer"] == "cal" and not e["gold"]]
    [drawn] = answer["boxes"]
    assert drawn["label"] == "bf_002" and set(drawn["parts"]) == set(face["parts"])
    assert all(abs(drawn[k] - face[k]) <= 2 for k in ("left", "top", "width", "height"))
    assert all(abs(a - b) <= 2 for n in face["parts"] for a, b in zip(drawn["parts"][n], face["parts"][n]))
    settled = [e for e in store.entries() if e["kind"] == "edit" and "consensus" in e]
    assert [e["file"] for e in settled] == ["bf_002_cub/b.jpg"]


def test_a_blind_answer_is_checked_as_an_edit_is(crowd_site):
    """Markup, unknown bears, a box outside the photo, too many faces and the page's own
    attributes: refused or dropped, and nothing journalled for a refused answer."""
    xml, store, labeler, auth = crowd_site
    ada = client_of(labeler, auth, "ada")
    i = ada.get("/api/blind/next").json()["index"]
    good = answer_of(store.boxes(i), careless=False)[0]
    before = len(store.entries())
    for bad, code, message in (
        ({**good, "label": "<script>"}, 400, "without &"),
        ({**good, "label": "bf_999"}, 403, "not a bear of this XML"),
        ({**good, "left": 5000}, 400, "does not fit photo"),
    ):
        done = ada.post(f"/api/blind/{i}", json={"boxes": [bad]})
        assert done.status_code == code and message in done.json()["error"], done.text
    assert ada.post(f"/api/blind/{i}", json={"boxes": [good] * 65}).status_code == 400
    assert len(store.entries()) == before
    done = ada.post(f"/api/blind/{i}", json={"boxes": [{**good, "attrs": {"matched_by": "anna", "known": "true"}}]})
    assert done.status_code == 200
    [entry] = [e for e in store.entries() if e["kind"] == "answer"]
    assert entry["volunteer"] == "ada" and entry["boxes"][0]["attrs"] == {}
