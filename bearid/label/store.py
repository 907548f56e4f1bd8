"""The XML being labelled: every change is journalled, then saved at once, atomically.

Each change replaces one photo's boxes. It names the version of the photo it was made on; a
change made on an older version (another tab, another volunteer) is refused as a Conflict,
so no one overwrites work they have not seen. The journal (`.bearid-label/<name>.journal.jsonl`
beside the XML) is appended and synced *before* the XML is rewritten: after a crash between
the two, opening the store again finishes the change. It also records who changed what and
which photos were reviewed. The XML as it was before the first change is kept there too.

A match decision (bearid.label.matches: "this is bf_051", "a new bear", "not a bear", "can't
tell") is an edit like any other, whose journal entry also says what was decided, by whom,
and on which candidates; a new bear's ID is given under the same lock, so two volunteers
naming new bears at once get two IDs, and an ID is never given twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bearid.data.layout import photos_under
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_bytes, remove_stale_temps
from bearid.label.boxes import BadEdit, box_from_json, box_to_json
from bearid.label.identities import check_bear_id, check_prefix, next_free
from bearid.metadata import Dataset, ImageEntry, read_faces, write_faces
from bearid.metadata._xml import NOT_XML_TEXT, Unwritable
from bearid.metadata.faces import faces_document

VOLUNTEER = re.compile(r"^[\w .@-]{1,40}$")


class Forbidden(BearIDError):
    """Something the account's role may not do."""


class Conflict(BearIDError):
    """The photo changed since the page loaded it."""

    def __init__(self, index: int, version: int):
        super().__init__(f"photo {index} was changed elsewhere (now version {version}); reload it")
        self.index, self.version = index, version


def check_volunteer(name: str) -> str:
    if not isinstance(name, str) or not VOLUNTEER.match(name.strip()):
        raise BearIDError(f"volunteer name {name!r}: use 1-40 letters, digits, spaces, '.', '@', '_' or '-'")
    return name.strip()


DECISIONS = ("same", "new", "not_bear", "unsure")


@dataclass
class Opened:
    recovered: int  # changes the journal had that the XML lacked (a crash), now saved
    outside: int  # photos changed in the XML by something else since their last change here
    torn: int = 0  # bytes of a last journal line cut short by a crash, dropped
    skipped: int = 0  # journal edits that cannot be saved as XML (written before they were refused)
    temps: int = 0  # temporary files of a killed save, removed


class LabelStore:
    """One imglab XML opened for labelling, by one server at a time (a lock file says so)."""

    def __init__(self, xml: Path):
        self.xml = Path(xml).resolve()
        self.home = self.xml.parent / ".bearid-label"
        self.home.mkdir(exist_ok=True)
        self.journal = self.home / f"{self.xml.stem}.journal.jsonl"
        self.original = self.home / f"{self.xml.stem}.original.xml"
        self._lockfile = open(self.home / f"{self.xml.stem}.lock", "w")  # noqa: SIM115 (held open: its lock lasts as long as the store)
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise BearIDError(f"{self.xml} is already open in another `bearid label`; stop that one first") from None
        self.lock = threading.RLock()
        try:
            temps = remove_stale_temps(self.xml.parent, prefix=f".{self.xml.name}.")
            torn = self._mend_journal()
            self.dataset: Dataset = read_faces(self.xml)
            self.index = {image.file: i for i, image in enumerate(self.dataset.images)}
            self.versions = [0] * len(self.dataset.images)
            self.reviewed: dict[str, set[int]] = {}
            self.last_edit: dict[int, dict] = {}  # photo -> its latest journal edit (who, when)
            self.bears: dict[str, dict] = {}  # new bears named here: id -> who, when, name
            self.ever: set[str] = set()  # every bear ID this XML or its journal has held
            self.roster: set[str] = set()  # bears known from elsewhere (the model's), to match faces to
            self.opened = self._replay()
            self.opened.torn, self.opened.temps = torn, temps
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._lockfile.close()

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataset.images)

    def boxes(self, i: int) -> list[dict]:
        return [box_to_json(b) for b in self.dataset.images[i].boxes]

    def path_of(self, i: int) -> Path:
        return self.dataset.path_of(self.dataset.images[i])

    def history(self, i: int | None = None) -> list[dict]:
        """Journal entries, oldest first (of photo `i` only, if given)."""
        entries = self._entries()
        return entries if i is None else [e for e in entries if e.get("file") == self.dataset.images[i].file]

    # -- changing -------------------------------------------------------------------------
    def known_ids(self) -> set[str]:
        """The bears faces can be matched to: those of the XML, new bears named here, and the
        roster (the bears the model knows)."""
        return set(self.dataset.labels()) | set(self.bears) | self.roster

    def next_id(self, prefix: str) -> str:
        """The ID a new bear with `prefix` gets: one no bear of this XML has ever had."""
        return next_free(check_prefix(prefix or ""), self.ever | self.known_ids())

    def update(self, i: int, boxes: list[dict], version: int, volunteer: str, detail: dict | None = None) -> int:
        """Replace photo `i`'s boxes, made on `version`; returns the new version. `detail`
        goes into the journal entry (a match decision says what was decided there)."""
        volunteer = check_volunteer(volunteer)
        new = [box_from_json(b, n) for n, b in enumerate(boxes)]
        with self.lock:
            if version != self.versions[i]:
                raise Conflict(i, self.versions[i])
            image = self.dataset.images[i]
            before, after = self.boxes(i), [box_to_json(b) for b in new]
            if before == after and not detail:
                return version
            old, image.boxes = image.boxes, new
            try:  # the XML as it will be, before anything is journalled: a bad edit stops here, alone
                document = faces_document(self.dataset, self.xml)
            except Unwritable as exc:
                image.boxes = old
                raise BadEdit(f"photo {i}: {exc}") from None
            self.last_edit[i] = self._append(
                {
                    "kind": "edit",
                    "volunteer": volunteer,
                    "file": image.file,
                    "version": version + 1,
                    "before": before,
                    "after": after,
                    **(detail or {}),
                }
            )
            self.versions[i] = version + 1
            self.ever |= {b.label for b in new if b.label}
            self._save(document)
            return version + 1

    def edit(self, i: int, boxes: list, version: int, volunteer: str, curator: bool) -> int:
        """A change from the plain editor, with the rules of roles: only a curator gives a bear
        ID that no bear has had here (a volunteer names new bears through the match review,
        which a curator settles), and `matched_by` is the server's to write: a face whose
        label the editor changed was matched by `volunteer`, one whose label stayed keeps
        who matched it, whatever the client sent."""
        if not isinstance(boxes, list):
            raise BadEdit("boxes must be a list")
        new = [box_to_json(box_from_json(b, n)) for n, b in enumerate(boxes)]
        self.check_inside(i, new)
        with self.lock:
            before = self.boxes(i)
            known = self.known_ids()
            for n, box in enumerate(new):
                label = box["label"]
                if label and label not in known and not curator:
                    raise Forbidden(f"box {n}: {label} is not a bear of this XML; only a curator may add one")
                was = before[n] if n < len(before) else None
                box["attrs"].pop("matched_by", None)
                if was is not None and was["label"] == label:
                    if "matched_by" in was["attrs"]:
                        box["attrs"]["matched_by"] = was["attrs"]["matched_by"]
                elif label:
                    box["attrs"] = {k: v for k, v in box["attrs"].items() if k not in ("known", "confidence")}
                    box["attrs"]["matched_by"] = check_volunteer(volunteer)
            return self.update(i, new, version, volunteer)

    def photo_size(self, i: int) -> tuple[int, int] | None:
        """(width, height) of photo `i`: the XML's, else read from the photo's header (None: unreadable)."""
        image = self.dataset.images[i]
        if image.width and image.height:
            return image.width, image.height
        from bearid.imageio import displayed_size

        try:
            return displayed_size(self.path_of(i))
        except (OSError, ValueError, BearIDError):
            return None

    def check_inside(self, i: int, boxes: list[dict]) -> None:
        """Refuse a box larger than photo `i`, or wholly outside it, naming the box and the
        photo's size (a box may cross the edge, as a face cut by the frame does)."""
        size = self.photo_size(i) if boxes else None
        if size is None:
            return
        w, h = size
        for n, b in enumerate(boxes):
            left, top, width, height = b["left"], b["top"], b["width"], b["height"]
            outside = left >= w or top >= h or left + width <= 0 or top + height <= 0
            if width > w or height > h or outside:
                raise BadEdit(
                    f"box {n} ({left}, {top}, {width} x {height}) does not fit photo {i}, which is {w} x {h} pixels"
                )

    def decide(
        self,
        i: int,
        face: int,
        decision: str,
        version: int,
        volunteer: str,
        bear_id: str | None = None,
        prefix: str | None = None,
        name: str | None = None,
        shown: list[dict] | None = None,
        model: str | None = None,
    ) -> dict:
        """Settle who face `face` of photo `i` is: `same` (the known bear `bear_id`), `new` (the
        next free ID with `prefix`, optionally with a `name`), `not_bear` (the box is kept, as
        ignored), `unsure` (nothing changes; recorded). `shown`: the candidates the person saw.
        Returns {"version", "bear_id"}."""
        volunteer = check_volunteer(volunteer)
        if decision not in DECISIONS:
            raise BearIDError(f"decision {decision!r}: one of {', '.join(DECISIONS)}")
        for what, value in (("bear_id", bear_id), ("prefix", prefix), ("name", name)):
            if value is not None and not isinstance(value, str):
                raise BearIDError(f"{what} must be text, got {value!r}")
        if name and (NOT_XML_TEXT.search(name) or len(name) > 80):
            raise BearIDError("a bear's name is up to 80 characters, with no control characters")
        with self.lock:
            if version != self.versions[i]:
                raise Conflict(i, self.versions[i])
            boxes = self.boxes(i)
            if not 0 <= face < len(boxes):
                raise BearIDError(f"photo {i} has no face {face} (it has {len(boxes)})")
            box = boxes[face]
            bear = None
            if decision == "same":
                bear = check_bear_id(bear_id or "")
                if bear not in self.known_ids():
                    raise BearIDError(f"{bear} is not a bear of this XML; to add one, decide 'new'")
            elif decision == "new":
                bear = self.next_id(prefix or "")
            match = {
                "decision": decision,
                "face": face,
                "bear_id": bear,
                "previous": box["label"],
                "matched_by": volunteer,
                "shown": shown or [],
                "model": model,
            }
            if decision == "unsure":
                self._append({"kind": "match", "volunteer": volunteer, "file": self.dataset.images[i].file, **match})
                return {"version": version, "bear_id": None}
            if decision == "new":
                self.bears[bear] = self._append(
                    {"kind": "bear", "bear_id": bear, "name": (name or "").strip() or None, "volunteer": volunteer}
                )
                self.ever.add(bear)
            if decision == "not_bear":
                box.update(label=None, ignore=True)
            else:
                box.update(label=bear, ignore=False)
                box["attrs"] = {k: v for k, v in box["attrs"].items() if k not in ("known", "confidence")}
                box["attrs"]["matched_by"] = volunteer
            return {"version": self.update(i, boxes, version, volunteer, {"match": match}), "bear_id": bear}

    # -- merge and split: several photos in one operation, undoable -----------------------
    def merge(self, keep: str, gone: str, volunteer: str) -> dict:
        """`gone` is `keep`: every face of `gone` becomes `keep`'s. Returns the operation."""
        keep, gone = check_bear_id(keep), check_bear_id(gone)
        with self.lock:
            for bear in (keep, gone):
                if bear not in self.known_ids():
                    raise BearIDError(f"{bear} is not a bear of this XML")
            if keep == gone:
                raise BearIDError(f"{keep} cannot be merged into itself")
            faces = {
                i: {n: keep for n, b in enumerate(image.boxes) if b.label == gone}
                for i, image in enumerate(self.dataset.images)
            }
            op = {"kind": "merge", "id": new_op_id(), "keep": keep, "gone": gone}
            return self._relabel({i: f for i, f in faces.items() if f}, volunteer, op)

    def split(self, faces: list[tuple[int, int]], volunteer: str, prefix: str, name: str | None = None) -> dict:
        """The chosen faces (photo, face) of one bear are another bear: they get the next free ID."""
        if name is not None and (not isinstance(name, str) or NOT_XML_TEXT.search(name) or len(name) > 80):
            raise BearIDError("a bear's name is text of up to 80 characters, with no control characters")
        with self.lock:
            labels = set()
            for i, n in faces:
                if not (0 <= i < len(self) and 0 <= n < len(self.dataset.images[i].boxes)):
                    raise BearIDError(f"no face {n} on photo {i}")
                labels.add(self.dataset.images[i].boxes[n].label)
            if len(labels) != 1 or None in labels:
                raise BearIDError(
                    f"the faces to split off must all be of one named bear, not {sorted(map(str, labels))}"
                )
            new = self.next_id(prefix)
            volunteer = check_volunteer(volunteer)
            self.bears[new] = self._append(
                {"kind": "bear", "bear_id": new, "name": (name or "").strip() or None, "volunteer": volunteer}
            )
            self.ever.add(new)
            chosen: dict[int, dict[int, str]] = {}
            for i, n in faces:
                chosen.setdefault(i, {})[n] = new
            op = {"kind": "split", "id": new_op_id(), "from": labels.pop(), "new": new}
            return self._relabel(chosen, volunteer, op)

    def undo(self, op_id: str, volunteer: str) -> dict:
        """Put back the IDs an operation changed, where no one has changed them since."""
        with self.lock:
            entries = self._entries()
            renamed = {e["file"]: e["to"] for e in entries if e.get("kind") == "refile"}
            edits = [e for e in entries if e.get("kind") == "edit" and e.get("op", {}).get("id") == op_id]
            if not edits:
                raise BearIDError(f"no merge, split or import {op_id!r} in the journal of {self.xml}")
            if edits[0]["op"].get("kind") == "import":
                return self._unimport(edits, renamed, volunteer, op_id)
            back: dict[int, dict[int, str | None]] = {}
            kept = 0
            for e in edits:
                i = self._now_index(e["file"], renamed)
                if i is None:
                    continue
                now = self.boxes(i)
                for n, (b, a) in enumerate(zip(e["before"], e["after"])):
                    if b["label"] != a["label"]:
                        if n < len(now) and now[n]["label"] == a["label"]:
                            back.setdefault(i, {})[n] = b["label"]
                        else:
                            kept += 1
            op = {"kind": "undo", "id": new_op_id(), "of": op_id, "left_as_changed_since": kept}
            return self._relabel(back, volunteer, op)

    def _now_index(self, file: str, renamed: dict[str, str]) -> int | None:
        """The photo a journal entry names, where it is now (a refiled photo moved since)."""
        name, seen = file, set()
        while name in renamed and name not in seen:
            seen.add(name)
            name = renamed[name]
        return self.index.get(name, self.index.get(file))

    def _unimport(self, edits: list[dict], renamed: dict[str, str], volunteer: str, op_id: str) -> dict:
        """Undo an import (bearid.labels): each photo it changed gets back the boxes it had,
        unless someone changed it since (those are left as they are, and counted)."""
        back, kept = [], 0
        for e in edits:
            i = self._now_index(e["file"], renamed)
            if i is None:
                continue
            if self.boxes(i) == e["after"]:
                back.append((i, e["before"]))
            else:
                kept += 1
        op = {
            "kind": "undo",
            "id": new_op_id(),
            "of": op_id,
            "left_as_changed_since": kept,
            "photos": len(back),
            "faces": sum(len(b) for _, b in back),
        }
        for i, boxes in back:
            self.update(i, boxes, self.versions[i], volunteer, {"op": op})
        return op

    def _relabel(self, faces: dict[int, dict[int, str | None]], volunteer: str, op: dict) -> dict:
        op = {**op, "photos": len(faces), "faces": sum(len(f) for f in faces.values())}
        for i, changes in sorted(faces.items()):
            boxes = self.boxes(i)
            for n, bear in changes.items():
                boxes[n]["label"] = bear
            self.update(i, boxes, self.versions[i], volunteer, {"op": op})
        return op

    def refile(self, root: Path, moved: list[tuple[str, str]], volunteer: str) -> int:
        """Photos moved in the archive (paths relative to `root`): the XML names them where they
        are now. Returns how many it names anew."""
        from bearid.metadata.faces import relative_file

        volunteer = check_volunteer(volunteer)
        root = Path(root).resolve()
        by_path = {self.dataset.path_of(image).resolve(): i for i, image in enumerate(self.dataset.images)}
        done = 0
        with self.lock:
            for old, new in moved:
                i = by_path.get((root / old).resolve())
                if i is None:
                    continue
                image = self.dataset.images[i]
                to = relative_file(root / new, self.dataset.base_dir)
                self._append({"kind": "refile", "volunteer": volunteer, "file": image.file, "to": to})
                del self.index[image.file]
                image.file = to
                self.index[to] = i
                done += 1
            if done:
                self._save()
        return done

    def operations(self) -> list[dict]:
        """Merges, splits and undos, oldest first."""
        seen: dict[str, dict] = {}
        for e in self._entries():
            if e.get("kind") == "edit" and "op" in e:
                seen.setdefault(e["op"]["id"], {**e["op"], "volunteer": e["volunteer"], "time": e["time"]})
        return list(seen.values())

    def review(self, i: int, queue: str, volunteer: str) -> None:
        """Record that `volunteer` has looked at photo `i` for `queue`: it leaves that queue."""
        volunteer = check_volunteer(volunteer)
        with self.lock:
            if i in self.reviewed.get(queue, set()):
                return
            self._append(
                {"kind": "review", "volunteer": volunteer, "file": self.dataset.images[i].file, "queue": queue}
            )
            self.reviewed.setdefault(queue, set()).add(i)

    def note(self, entry: dict) -> dict:
        """Journal an entry that changes no box (an annotator's blind answer, a gold mark)."""
        entry["volunteer"] = check_volunteer(entry["volunteer"])
        with self.lock:
            return self._append(entry)

    def entries(self) -> list[dict]:
        """Every journal entry, oldest first."""
        return self._entries()

    # -- inside ---------------------------------------------------------------------------
    def _append(self, entry: dict) -> dict:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}
        line = json.dumps(entry, sort_keys=True) + "\n"  # ASCII: any text the client sent is escaped
        with open(self.journal, "ab") as fh:
            if fh.tell() and _last_byte(self.journal) != b"\n":
                line = "\n" + line  # never glued to a torn line
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def _save(self, document: bytes | None = None) -> None:
        """Write the XML (`document`: its bytes, made and checked already), keeping its mode."""
        if not self.original.exists():  # the XML as it was before the first change (paths rebased)
            write_faces(read_faces(self.xml), self.original)
        atomic_write_bytes(self.xml, document if document is not None else faces_document(self.dataset, self.xml))

    def _mend_journal(self) -> int:
        """Cut a last line that a crash left without its end (its change never reached the
        XML), so the next entry starts on a line of its own. Returns the bytes dropped."""
        if not self.journal.exists() or _last_byte(self.journal) in (b"", b"\n"):
            return 0
        data = self.journal.read_bytes()
        keep = data.rfind(b"\n") + 1
        with open(self.journal, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        return len(data) - keep

    def _entries(self) -> list[dict]:
        if not self.journal.exists():
            return []
        out = []
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-append: its change never reached the XML
        return out

    def _replay(self) -> Opened:
        last: dict[int, dict] = {}
        skipped = 0
        for e in self._entries():
            if e.get("kind") == "bear":
                self.bears[e["bear_id"]] = e
                continue
            i = self.index.get(e.get("file", ""))
            if i is None:
                continue
            if e.get("kind") == "edit":
                try:
                    e["_boxes"] = [box_from_json(b, n) for n, b in enumerate(e["after"])]
                except (BadEdit, KeyError, TypeError):
                    skipped += 1  # an edit older releases took that XML cannot hold: never saved
                    continue
                last[i] = e
                self.ever |= {b["label"] for b in e["after"] if b.get("label")}
            elif e.get("kind") == "review":
                self.reviewed.setdefault(e["queue"], set()).add(i)
        self.last_edit = dict(last)
        self.ever |= set(self.dataset.labels()) | set(self.bears)
        recovered = outside = 0
        for i, e in last.items():
            now = self.boxes(i)
            self.versions[i] = e["version"]
            if now == e["after"]:
                continue
            if now == e["before"]:  # journalled, then the crash came before the XML was saved
                self.dataset.images[i].boxes = e["_boxes"]
                recovered += 1
            else:  # changed by another tool since: the XML wins, and open pages must reload
                self.versions[i] += 1
                outside += 1
        for e in last.values():
            e.pop("_boxes", None)
        if recovered:
            self._save()
        return Opened(recovered, outside, skipped=skipped)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return b""
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


def new_op_id() -> str:
    """A new operation's id (merge, split, undo, filing): its time and a random tail."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}"


def photo_list(folder: Path, xml: Path) -> Path:
    """An imglab XML listing every photo under `folder` with no faces yet, for labelling
    from scratch. Hidden and `_`-prefixed files and folders (BearID's own) are left out. An XML that
    already exists is kept as it is, so running again carries on where the work stopped."""
    folder, xml = Path(folder).resolve(), Path(xml).resolve()
    if xml.exists():
        return xml
    photos = photos_under(folder)
    if not photos:
        raise BearIDError(f"{folder}: no photos found to label")
    write_faces(
        Dataset(
            [ImageEntry(str(p)) for p in photos],
            name="bearid label",
            comment=f"photos under {folder}",
            base_dir=xml.parent,
        ),
        xml,
    )
    return xml
