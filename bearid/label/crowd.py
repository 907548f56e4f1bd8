"""Several annotators per photo (`bearid label --redundancy K`): blind answers, gold photos,
the consensus written to the XML, and the curator's disagreement queue.

Each photo is handed to K annotators, one at a time each, who label it blind: the task shows
the photo and nothing of its faces, and with redundancy a volunteer's account sees no
photo's faces or history at all (the plain editor, chips and match review are the curators').
Every answer is a journal entry with who gave it (`kind: answer`). When K have answered,
bearid.label.consensus makes one set of boxes of them, weighted by each annotator's
measured ID accuracy, and that is the photo's edit (by `consensus`, its entry naming the
answers it used): the XML that training reads holds the consensus, the raw answers stay in
the journal. A photo where they disagree also goes to the `disagreement` queue.

Gold photos are ones a curator marked as known truth (their boxes then). One is an annotator's
first task and then one in every `gold_every`, each looking like any other; the answer is scored
against the truth (box IoU, landmark error in chip units, ID right or wrong), and those
figures are the annotator's: they weight the ID vote and show in `bearid accounts list`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bearid.errors import BearIDError
from bearid.label.boxes import box_from_json, box_to_json
from bearid.label.consensus import PRIOR, PRIOR_BOX, PRIOR_POINT, Bounds, Skill, consensus, score
from bearid.label.queues import QueueContext
from bearid.label.store import Forbidden, LabelStore, check_volunteer

CONSENSUS = "consensus"  # who the journal says made a consensus edit
MAX_FACES = 64  # faces in one answer: more is not a photo of bears, and would only fill the journal


@dataclass
class AnnotatorStats:
    """What gold photos measured of one annotator."""

    name: str
    answers: int = 0
    gold: int = 0
    ious: list[float] = field(default_factory=list)
    box_errors: list[float] = field(default_factory=list)
    landmark_errors: list[float] = field(default_factory=list)
    ids_right: int = 0
    ids_asked: int = 0
    missed: int = 0
    extra: int = 0

    @property
    def box_iou(self) -> float | None:
        return sum(self.ious) / len(self.ious) if self.ious else None

    @property
    def box_error(self) -> float | None:
        return sum(self.box_errors) / len(self.box_errors) if self.box_errors else None

    @property
    def landmark_error(self) -> float | None:
        return sum(self.landmark_errors) / len(self.landmark_errors) if self.landmark_errors else None

    @property
    def id_accuracy(self) -> float | None:
        return self.ids_right / self.ids_asked if self.ids_asked else None

    def skill(self) -> Skill:
        """What the consensus weighs this annotator by: the gold figures, each pulled toward
        its prior while little is measured (as if two answers at the prior were counted too)."""
        return Skill(
            (self.ids_right + 2 * PRIOR) / (self.ids_asked + 2),
            (sum(self.box_errors) + 2 * PRIOR_BOX) / (len(self.box_errors) + 2),
            (sum(self.landmark_errors) + 2 * PRIOR_POINT) / (len(self.landmark_errors) + 2),
        )

    def summary(self, classes: int = 2) -> dict:
        return {
            "name": self.name,
            "answers": self.answers,
            "gold": self.gold,
            "box_iou": self.box_iou,
            "box_error": self.box_error,
            "landmark_error": self.landmark_error,
            "id_accuracy": self.id_accuracy,
            "id_weight": self.skill().id_weight(classes),
        }


def stats_of(entries: list[dict]) -> dict[str, AnnotatorStats]:
    """Each annotator's figures from a journal: answers on gold photos scored against the
    truth the curator marked (as it was marked when the answer came)."""
    truth: dict[str, list[dict]] = {}
    found: dict[str, AnnotatorStats] = {}
    for e in entries:
        if e.get("kind") == "gold":
            if e.get("gold", True):
                truth[e["file"]] = e["boxes"]
            else:
                truth.pop(e["file"], None)
        elif e.get("kind") == "answer":
            who = e["volunteer"]
            stats = found.setdefault(who, AnnotatorStats(who))
            stats.answers += 1
            if e.get("gold") and e["file"] in truth:
                s = score(e["boxes"], truth[e["file"]])
                stats.gold += 1
                stats.ious += s.ious
                stats.box_errors += s.box_errors
                stats.landmark_errors += s.landmark_errors
                stats.ids_right += s.ids_right
                stats.ids_asked += s.ids_asked
                stats.missed += sum(1 for v in s.ious if v == 0)
                stats.extra += s.extra
    return found


def journal_stats(xml: Path) -> dict[str, AnnotatorStats]:
    """The figures from an XML's journal, read without opening the store (a server may hold it)."""
    journal = Path(xml).resolve().parent / ".bearid-label" / f"{Path(xml).stem}.journal.jsonl"
    if not journal.exists():
        return {}
    entries = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return stats_of(entries)


class Crowd:
    """The redundancy of one label store: who has which photo, the answers so far, the gold."""

    def __init__(
        self,
        store: LabelStore,
        k: int,
        ctx: QueueContext,
        gold_every: int = 5,
        bounds: Bounds | None = None,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if k < 2:
            raise BearIDError(f"--redundancy {k}: give 2 or more annotators per photo (1 is the plain tool)")
        if gold_every < 2:
            raise BearIDError(f"--gold-every {gold_every}: one gold photo in 2 tasks or fewer is too many")
        self.store, self.k, self.ctx, self.gold_every, self.bounds = store, k, ctx, gold_every, bounds or Bounds()
        self.ttl, self.clock = ttl, clock
        self.gold: dict[int, list[dict]] = {}
        self.answers: dict[int, dict[str, list[dict]]] = {}
        self.gold_answered: dict[int, set[str]] = {}
        self.settled: set[int] = set()
        self.handed: dict[int, dict[str, float]] = {}  # photo -> annotator -> until
        self.given: dict[str, int] = {}  # tasks handed to each annotator
        self._replay()

    # -- state from the journal --------------------------------------------------------------
    def _replay(self) -> None:
        index = self.store.index
        for e in self.store.entries():
            i = index.get(e.get("file", ""))
            if i is None:
                continue
            kind = e.get("kind")
            if kind == "gold":
                if e.get("gold", True):
                    self.gold[i] = e["boxes"]
                else:
                    self.gold.pop(i, None)
            elif kind == "answer":
                if e.get("gold"):
                    self.gold_answered.setdefault(i, set()).add(e["volunteer"])
                else:
                    self.answers.setdefault(i, {})[e["volunteer"]] = e["boxes"]
                self.given[e["volunteer"]] = self.given.get(e["volunteer"], 0) + 1
            elif kind == "edit" and CONSENSUS in e:
                self.settled.add(i)
                self._dispute(i, e[CONSENSUS].get("disputes") or [])

    def _dispute(self, i: int, reasons: list[str]) -> None:
        path = self.store.path_of(i)
        if reasons:
            self.ctx.disputes[path] = "; ".join(reasons)
        else:
            self.ctx.disputes.pop(path, None)

    # -- handing out -------------------------------------------------------------------------
    def _holders(self, i: int, but: str) -> int:
        now = self.clock()
        return sum(1 for who, until in self.handed.get(i, {}).items() if who != but and until > now)

    def todo(self) -> list[int]:
        """Photos still waiting for answers (gold aside)."""
        return [i for i in range(len(self.store)) if i not in self.gold and i not in self.settled]

    def next(self, who: str) -> int | None:
        """The photo `who` labels next: one of theirs they hold already, else a gold photo
        they have not answered as their first task and then one in every `gold_every` (so an
        annotator is measured before their answers count; or when nothing else is left),
        else the waiting photo closest to its K answers."""
        who = check_volunteer(who)
        with self.store.lock:
            now = self.clock()
            held = [i for i, h in self.handed.items() if h.get(who, 0) > now]
            if held:
                return held[0]
            gold = [i for i in sorted(self.gold) if who not in self.gold_answered.get(i, set())]
            open_ = [
                i
                for i in self.todo()
                if who not in self.answers.get(i, {}) and len(self.answers.get(i, {})) + self._holders(i, who) < self.k
            ]
            open_.sort(key=lambda i: (-len(self.answers.get(i, {})), i))
            count = self.given.get(who, 0)
            if gold and (count % self.gold_every == 0 or not open_):
                found = gold[count // self.gold_every % len(gold)]
            elif open_:
                found = open_[0]
            else:
                return None
            self.handed.setdefault(found, {})[who] = now + self.ttl
            self.given[who] = count + 1
            return found

    def task(self, i: int) -> dict:
        """What an annotator sees of photo `i`: the photo, never its faces (gold or not)."""
        size = self.store.photo_size(i)
        return {
            "index": i,
            "photo": f"/api/images/{i}/photo",
            "width": size[0] if size else None,
            "height": size[1] if size else None,
        }

    # -- answers -----------------------------------------------------------------------------
    def answer(self, i: int, who: str, boxes: list) -> dict:
        """`who`'s answer for photo `i`, which must have been handed to them and not answered."""
        who = check_volunteer(who)
        if not isinstance(boxes, list) or len(boxes) > MAX_FACES:
            raise BearIDError(f"boxes must be a list of at most {MAX_FACES} faces")
        given = [box_to_json(box_from_json(b, n)) for n, b in enumerate(boxes)]
        for b in given:
            b["attrs"] = {}  # an answer is boxes, landmarks, an ID and ignore: nothing else of the page's
        self.store.check_inside(i, given)
        with self.store.lock:
            if who not in self.handed.get(i, {}):
                raise Forbidden(f"photo {i} was not given to {who} to label (ask /api/blind/next)")
            known = self.store.known_ids()
            for n, b in enumerate(given):
                if b["label"] and b["label"] not in known:
                    raise Forbidden(f"box {n}: {b['label']} is not a bear of this XML")
            gold = i in self.gold
            self.store.note(
                {
                    "kind": "answer",
                    "volunteer": who,
                    "file": self.store.dataset.images[i].file,
                    "boxes": given,
                    "gold": gold,
                }
            )
            del self.handed[i][who]
            if gold:
                self.gold_answered.setdefault(i, set()).add(who)
            else:
                self.answers.setdefault(i, {})[who] = given
                if len(self.answers[i]) >= self.k and i not in self.settled:
                    self._settle(i)
        return {"index": i, "answered": True}

    def _settle(self, i: int) -> None:
        skills = {name: s.skill() for name, s in self.stats().items()}
        answers = self.answers[i]
        classes = self.classes()
        agreed = consensus(answers, skills, self.bounds, classes)
        detail = {
            CONSENSUS: {
                "answers": sorted(answers),
                "id_weights": {w: round(skills.get(w, Skill()).id_weight(classes), 4) for w in sorted(answers)},
                "disputes": agreed.reasons(),
            }
        }
        self.store.update(i, agreed.boxes, self.store.versions[i], CONSENSUS, detail)
        self.settled.add(i)
        self._dispute(i, agreed.reasons())

    # -- gold and figures --------------------------------------------------------------------
    def mark_gold(self, i: int, who: str, gold: bool = True) -> dict:
        """A curator's word that photo `i`'s boxes now are the truth (or no longer gold)."""
        with self.store.lock:
            boxes = self.store.boxes(i)
            if gold and not boxes:
                raise BearIDError(f"photo {i} has no faces: a gold photo's faces are its truth")
            self.store.note(
                {
                    "kind": "gold",
                    "volunteer": who,
                    "file": self.store.dataset.images[i].file,
                    "boxes": boxes,
                    "gold": gold,
                }
            )
            if gold:
                self.gold[i] = boxes
            else:
                self.gold.pop(i, None)
        return {"index": i, "gold": gold, "faces": len(boxes)}

    def classes(self) -> int:
        """How many bears an ID could name (the vote's weights depend on it)."""
        return max(len(self.store.known_ids()), 2)

    def stats(self) -> dict[str, AnnotatorStats]:
        return stats_of(self.store.entries())
