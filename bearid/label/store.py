"""The XML being labelled: every change is journalled, then saved at once, atomically.

Each change replaces one photo's boxes. It names the version of the photo it was made on; a
change made on an older version (another tab, another volunteer) is refused as a Conflict,
so no one overwrites work they have not seen. The journal (`.bearid-label/<name>.journal.jsonl`
beside the XML) is appended and synced *before* the XML is rewritten: after a crash between
the two, opening the store again finishes the change. It also records who changed what and
which photos were reviewed. The XML as it was before the first change is kept there too.
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
from bearid.label.boxes import box_from_json, box_to_json
from bearid.metadata import Dataset, ImageEntry, read_faces, write_faces

VOLUNTEER = re.compile(r"^[\w .@-]{1,40}$")


class Conflict(BearIDError):
    """The photo changed since the page loaded it."""

    def __init__(self, index: int, version: int):
        super().__init__(f"photo {index} was changed elsewhere (now version {version}); reload it")
        self.index, self.version = index, version


def check_volunteer(name: str) -> str:
    if not isinstance(name, str) or not VOLUNTEER.match(name.strip()):
        raise BearIDError(f"volunteer name {name!r}: use 1-40 letters, digits, spaces, '.', '@', '_' or '-'")
    return name.strip()


@dataclass
class Opened:
    recovered: int  # changes the journal had that the XML lacked (a crash), now saved
    outside: int  # photos changed in the XML by something else since their last change here


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
        self.lock = threading.Lock()
        try:
            self.dataset: Dataset = read_faces(self.xml)
            self.index = {image.file: i for i, image in enumerate(self.dataset.images)}
            self.versions = [0] * len(self.dataset.images)
            self.reviewed: dict[str, set[int]] = {}
            self.last_edit: dict[int, dict] = {}  # photo -> its latest journal edit (who, when)
            self.opened = self._replay()
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
    def update(self, i: int, boxes: list[dict], version: int, volunteer: str) -> int:
        """Replace photo `i`'s boxes, made on `version`; returns the new version."""
        volunteer = check_volunteer(volunteer)
        new = [box_from_json(b, n) for n, b in enumerate(boxes)]
        with self.lock:
            if version != self.versions[i]:
                raise Conflict(i, self.versions[i])
            image = self.dataset.images[i]
            before, after = self.boxes(i), [box_to_json(b) for b in new]
            if before == after:
                return version
            self.last_edit[i] = self._append(
                {
                    "kind": "edit",
                    "volunteer": volunteer,
                    "file": image.file,
                    "version": version + 1,
                    "before": before,
                    "after": after,
                }
            )
            image.boxes = new
            self.versions[i] = version + 1
            self._save()
            return version + 1

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

    # -- inside ---------------------------------------------------------------------------
    def _append(self, entry: dict) -> dict:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def _save(self) -> None:
        if not self.original.exists():  # the XML as it was before the first change (paths rebased)
            write_faces(read_faces(self.xml), self.original)
        write_faces(self.dataset, self.xml)

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
        for e in self._entries():
            i = self.index.get(e.get("file", ""))
            if i is None:
                continue
            if e.get("kind") == "edit":
                last[i] = e
            elif e.get("kind") == "review":
                self.reviewed.setdefault(e["queue"], set()).add(i)
        self.last_edit = dict(last)
        recovered = outside = 0
        for i, e in last.items():
            now = self.boxes(i)
            self.versions[i] = e["version"]
            if now == e["after"]:
                continue
            if now == e["before"]:  # journalled, then the crash came before the XML was saved
                self.dataset.images[i].boxes = [box_from_json(b, n) for n, b in enumerate(e["after"])]
                recovered += 1
            else:  # changed by another tool since: the XML wins, and open pages must reload
                self.versions[i] += 1
                outside += 1
        if recovered:
            self._save()
        return Opened(recovered, outside)


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
