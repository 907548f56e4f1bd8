"""Several annotators per photo, measured on a synthetic world whose truth is known (#36).

    python bench/bench_labels.py [--bears 8] [--photos 80] [--seed 36]

Four simulated annotators of different skill (noise on box edges and landmarks, a share of
wrong bear IDs, missed faces; one careless) label a world's photos blind through the label
tool's HTTP API (`bearid label --redundancy 3`, accounts, gold photos one in every five tasks),
as volunteers in a browser would. Every answer, and the consensus the tool writes into the XML,
is then scored against the world's truth: box IoU per true face (a missed face counts 0), the
landmark error in chip units, the ID accuracy. The table shows the consensus of three against
each annotator alone, and what the gold photos measured of each: the careless one must stand
out there, unannounced. Writes bench/results/labels.json and labels.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Figure, Suite, write
from starlette.testclient import TestClient

from bearid.cli.label import accounts_file
from bearid.label.accounts import Accounts
from bearid.label.app import Labeler, create_app
from bearid.label.auth import Auth
from bearid.label.boxes import box_to_json
from bearid.label.consensus import consensus, score
from bearid.label.store import LabelStore
from bearid.metadata import read_faces, write_faces
from bearid.synth import WorldConfig, synthesize

PASSWORD = "a bench password"
K, GOLD_EVERY, GOLD = 3, 5, 8


@dataclass(frozen=True)
class Annotator:
    name: str
    box_noise: float  # sd of each box edge, as a share of the face's size
    point_noise: float  # sd of each landmark, as a share of the face's size
    wrong_id: float  # share of faces given another bear's ID
    miss: float = 0.0  # share of faces not drawn at all


ANNOTATORS = (
    Annotator("careful", 0.03, 0.02, 0.04),
    Annotator("steady", 0.05, 0.03, 0.10),
    Annotator("hasty", 0.08, 0.05, 0.18, miss=0.03),
    Annotator("careless", 0.25, 0.15, 0.45, miss=0.15),
)


def answer(
    who: Annotator, truth: list[dict], bears: list[str], rng: random.Random, size: tuple[int, int]
) -> list[dict]:
    """What `who` draws on a photo whose faces are `truth`."""
    out = []
    w, h = size
    for t in truth:
        if rng.random() < who.miss:
            continue
        s = (t["width"] * t["height"]) ** 0.5
        edges = [t["left"], t["top"], t["left"] + t["width"], t["top"] + t["height"]]
        left, top, right, bottom = (e + rng.gauss(0, who.box_noise * s) for e in edges)
        left, top = min(max(0, left), w - 2), min(max(0, top), h - 2)
        right, bottom = min(max(right, left + 2), w), min(max(bottom, top + 2), h)  # a person stays in the photo
        label = t["label"]
        if label and rng.random() < who.wrong_id:
            label = rng.choice([b for b in bears if b != label])
        parts = {
            n: [x + rng.gauss(0, who.point_noise * s), y + rng.gauss(0, who.point_noise * s)]
            for n, (x, y) in t["parts"].items()
        }
        out.append(
            {
                "left": left,
                "top": top,
                "width": right - left,
                "height": bottom - top,
                "label": label,
                "parts": parts,
                "ignore": t["ignore"],
            }
        )
    return out


@dataclass
class Tally:
    ious: list[float]
    errors: list[float]
    right: int = 0
    asked: int = 0

    def add(self, found, truth_boxes) -> None:
        s = score(found, truth_boxes)
        self.ious += s.ious
        self.errors += s.landmark_errors
        self.right += s.ids_right
        self.asked += s.ids_asked

    def row(self, name: str) -> dict:
        return {
            "who": name,
            "faces": len(self.ious),
            "box IoU": round(sum(self.ious) / max(len(self.ious), 1), 4),
            "landmark error (chip)": round(sum(self.errors) / max(len(self.errors), 1), 4),
            "ID accuracy": round(self.right / max(self.asked, 1), 4),
        }


def client_of(app, name: str) -> TestClient:
    client = TestClient(app, base_url="http://label.bench")
    page = client.get("/login")
    csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
    client.post("/login", data={"csrf": csrf, "name": name, "password": PASSWORD}, follow_redirects=False)
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf"]
    return client


def run(bears: int, photos: int, seed: int, work: Path) -> Suite:
    world = work / "world"
    synthesize(WorldConfig(bears=bears, photos=photos, seed=seed, min_side=480, max_side=640), world, workers=0)
    truth_set = read_faces(world / "_truth" / "faces.xml")
    truth_set.images = [im for im in truth_set.images if im.boxes]
    truth = [[box_to_json(b) for b in im.boxes] for im in truth_set.images]  # photo n of the label XML's
    names = sorted({b["label"] for faces in truth for b in faces if b["label"]})
    rng = random.Random(seed)
    gold = set(rng.sample(range(len(truth_set.images)), GOLD))
    start = read_faces(world / "_truth" / "faces.xml")
    start.images = [im for im in start.images if im.boxes]
    for n, im in enumerate(start.images):
        if n not in gold:
            im.boxes = []  # to label from scratch; the gold photos keep their truth
    xml = work / "label" / "faces.xml"
    xml.parent.mkdir(parents=True)
    write_faces(start, xml)

    accounts = Accounts.open(accounts_file(xml))
    accounts.add("curator", "curator", PASSWORD)
    for a in ANNOTATORS:
        accounts.add(a.name, "volunteer", PASSWORD)
    store = LabelStore(xml)
    store.roster |= set(names)  # the archive's bears: the IDs annotators may give
    labeler = Labeler(store, redundancy=K, gold_every=GOLD_EVERY)
    app = create_app(labeler, Auth(accounts))
    curator = client_of(app, "curator")
    for i in sorted(gold):
        assert curator.post("/api/gold", json={"index": i}).status_code == 200
    clients = {a.name: client_of(app, a.name) for a in ANNOTATORS}
    t0, posted = time.perf_counter(), 0
    active = list(ANNOTATORS)
    while active:
        for a in list(active):
            got = clients[a.name].get("/api/blind/next").json()
            if got["index"] is None:
                active.remove(a)
                continue
            i, task = got["index"], got["task"]
            boxes = answer(a, truth[i], names, rng, (task["width"], task["height"]))
            done = clients[a.name].post(f"/api/blind/{i}", json={"boxes": boxes})
            assert done.status_code == 200, done.text
            posted += 1
    seconds = time.perf_counter() - t0

    # Score every answer and the consensus against the truth (gold photos aside: their truth was shown
    # to no one); each annotator beside the consensus of the very photos they were given.
    raw: dict[int, dict[str, list[dict]]] = {}
    for e in store.entries():
        if e["kind"] == "answer" and not e["gold"]:
            raw.setdefault(store.index[e["file"]], {})[e["volunteer"]] = e["boxes"]
    saved = read_faces(xml).images
    made = {n: [box_to_json(b) for b in saved[n].boxes] for n in raw}
    agreed, unweighted = Tally([], []), Tally([], [])
    pairs = {a.name: (Tally([], []), Tally([], [])) for a in ANNOTATORS}  # (the annotator, the consensus)
    for n, answers in raw.items():
        agreed.add(made[n], truth[n])
        unweighted.add(consensus(answers, classes=len(names)).boxes, truth[n])
        for who, boxes in answers.items():
            pairs[who][0].add(boxes, truth[n])
            pairs[who][1].add(made[n], truth[n])
    disputed = sum(bool(labeler.reason("disagreement", n)) for n in raw)
    why = [labeler.reason("disagreement", n) or "" for n in raw]
    kinds = {
        "boxes (majority IoU under 0.7)": "boxes overlap",
        "landmarks (majority spread over 0.05 chip)": "landmarks spread",
        "a split ID vote": "vote is split",
        "a face only some drew": "drew",
    }
    reasons = [{"reason": k, "photos": sum(v in w for w in why)} for k, v in kinds.items()]
    measured = {s["name"]: s for s in curator.get("/api/annotators").json()}
    store.close()

    suite = Suite("labels")
    suite.tables["every photo labelled (not gold), against the synthetic truth"] = [
        agreed.row(f"consensus of {K}, weighted by gold"),
        unweighted.row(f"consensus of {K}, unweighted (priors only)"),
    ]
    rows = []
    for a in ANNOTATORS:
        alone, together = (t.row("") for t in pairs[a.name])
        rows.append(
            {
                "annotator": a.name,
                "faces": alone["faces"],
                "box IoU alone": alone["box IoU"],
                "consensus": together["box IoU"],
                "landmark error alone (chip)": alone["landmark error (chip)"],
                "consensus ": together["landmark error (chip)"],
                "ID accuracy alone": alone["ID accuracy"],
                "consensus  ": together["ID accuracy"],
            }
        )
    suite.tables["each annotator alone and the consensus, on the photos that annotator labelled"] = rows
    suite.tables["why photos went to the disagreement queue (a photo may have several reasons)"] = reasons
    suite.tables["what the gold photos measured, unannounced (bearid accounts list)"] = [
        {
            "annotator": a.name,
            "answers": measured[a.name]["answers"],
            "gold answered": measured[a.name]["gold"],
            "box IoU": round(measured[a.name]["box_iou"], 4),
            "box error": round(measured[a.name]["box_error"], 4),
            "landmark error (chip)": round(measured[a.name]["landmark_error"], 4),
            "ID accuracy": round(measured[a.name]["id_accuracy"], 4),
            "ID weight": round(measured[a.name]["id_weight"], 4),
            "simulated": f"box sd {a.box_noise}, points sd {a.point_noise}, wrong IDs {a.wrong_id}, missed {a.miss}",
        }
        for a in ANNOTATORS
    ]
    beaten = {
        "box IoU": all(r["consensus"] > r["box IoU alone"] for r in rows),
        "landmark error": all(r["consensus "] < r["landmark error alone (chip)"] for r in rows),
        "ID accuracy": all(r["consensus  "] >= r["ID accuracy alone"] for r in rows),
    }
    best = max(rows, key=lambda r: r["box IoU alone"])
    for what, met in beaten.items():
        suite.add(
            Figure(
                f"consensus of {K} beats every annotator alone on their own photos: {what}",
                float(met),
                "",
                goal="1",
                met=met,
                note=f"the best annotator ({best['annotator']}): box IoU {best['box IoU alone']} alone, "
                f"{best['consensus']} by consensus; landmark error {best['landmark error alone (chip)']} and "
                f"{best['consensus ']}; ID accuracy {best['ID accuracy alone']} and {best['consensus  ']}",
            )
        )
    worst = min(measured.values(), key=lambda s: s["box_iou"])
    lowest = min(measured.values(), key=lambda s: s["id_weight"])
    suite.add(
        Figure(
            "the careless annotator found by gold (lowest gold box IoU and ID weight)",
            float(worst["name"] == lowest["name"] == "careless"),
            "",
            goal="1",
            met=worst["name"] == lowest["name"] == "careless",
            note=f"lowest gold box IoU: {worst['name']} ({worst['box_iou']:.3f}); "
            f"lowest ID weight: {lowest['name']} ({lowest['id_weight']:.3f})",
        )
    )
    suite.add(
        Figure(
            "photos sent to the disagreement queue",
            disputed,
            "photos",
            note=f"of {len(truth_set.images) - GOLD} labelled by {K} each; "
            f"{posted} answers posted through the API in {seconds:.1f} s",
        )
    )
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bears", type=int, default=8)
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--seed", type=int, default=36)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-labels-"))
    try:
        suite = run(args.bears, args.photos, args.seed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for path in write(suite):
        print(path)


if __name__ == "__main__":
    main()
