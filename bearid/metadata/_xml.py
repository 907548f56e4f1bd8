"""Shared pieces of the imglab-style XML reader and writer (faces and chips files alike)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

from bearid.errors import BearIDError
from bearid.fsio import atomic_write_bytes
from bearid.metadata.errors import MetadataError

XML_DECLARATION = "<?xml version='1.0' encoding='{}'?>"
STYLESHEET = "<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>"
# Part names that older files use for the head top.
PART_ALIASES = {"top": "head_top", "htop": "head_top"}


def parse_root(path: Path, root_tag: str = "dataset") -> ET.Element:
    """Parse an XML file (any declared encoding) and check its root element."""
    try:
        root = ET.fromstring(_true_encoding(Path(path).read_bytes()))
    except FileNotFoundError:
        raise MetadataError(path, "file not found") from None
    except ET.ParseError as exc:
        raise MetadataError(path, f"malformed XML: {exc}") from None
    except OSError as exc:
        raise MetadataError(path, f"cannot read: {exc.strerror or exc}") from None
    if root.tag != root_tag:
        raise MetadataError(path, f"root element is <{root.tag}>, expected <{root_tag}>")
    return root


def _true_encoding(data: bytes) -> bytes:
    """imglab writes whatever bytes it holds (UTF-8 on most systems) under an ISO-8859-1
    declaration. Where such a file's non-ASCII bytes are valid UTF-8, read them as UTF-8."""
    head = data[:200].lower()
    if data.isascii() or b"iso-8859-1" not in head:
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return re.sub(rb"encoding=(['\"])iso-8859-1\1", b"encoding='UTF-8'", data, count=1, flags=re.IGNORECASE)


def int_attr(el: ET.Element, name: str, path: Path, image: str | None, required: bool = True) -> int | None:
    """Read an integer attribute, with an error naming file, image, element and value."""
    raw = el.get(name)
    if raw is None:
        if required:
            raise MetadataError(path, f"<{el.tag}> is missing its '{name}' attribute", image)
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise MetadataError(path, f"<{el.tag}> {name}='{raw}' is not an integer", image) from None


def read_parts(el: ET.Element, path: Path, image: str | None) -> dict[str, tuple[int, int]]:
    """Read <part name x y/> children; alias old head-top names; refuse duplicates."""
    parts: dict[str, tuple[int, int]] = {}
    for part in el.findall("part"):
        raw_name = part.get("name")
        if not raw_name:
            raise MetadataError(path, "<part> is missing its 'name' attribute", image)
        name = PART_ALIASES.get(raw_name, raw_name)
        if name in parts:
            raise MetadataError(path, f"part '{raw_name}' appears twice in one box", image)
        parts[name] = (int_attr(part, "x", path, image), int_attr(part, "y", path, image))  # type: ignore[assignment]
    return parts


def text_of(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


# XML 1.0's characters: no controls but tab, newline and return, no lone surrogates, no U+FFFE/F.
NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Attribute names BearID writes for what other tools and people add: plain names, no
# namespaces, so nothing a name holds can end the element or open another.
ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class Unwritable(BearIDError, ValueError):
    """Something that imglab XML cannot hold, refused before a file is touched."""


def checked_text(value: object, what: str = "text") -> str:
    """`value` as text XML can hold, else Unwritable naming the first bad character."""
    text = str(value)
    bad = NOT_XML_TEXT.search(text)
    if bad:
        raise Unwritable(f"{what} {text!r} holds U+{ord(bad.group()):04X}, which XML cannot hold")
    return text


def checked_name(name: object) -> str:
    """An attribute name, if it is one BearID writes (ATTR_NAME)."""
    if not isinstance(name, str) or not ATTR_NAME.match(name):
        raise Unwritable(f"attribute name {name!r}: use a letter or _, then up to 63 letters, digits, _ . or -")
    return name


def attr(value: object) -> str:
    """Quote an attribute value the way imglab does (single quotes), escaped."""
    text = checked_text(value, "attribute value")
    return "'" + escape(text, {"'": "&apos;", '"': "&quot;", "\n": "&#10;", "\t": "&#9;", "\r": "&#13;"}) + "'"


def attrs(items: dict[str, str]) -> str:
    """` name='value'` for each extra attribute, names checked, values escaped."""
    return "".join(f" {checked_name(k)}={attr(v)}" for k, v in items.items())


def text(value: str) -> str:
    """Element text, escaped."""
    return escape(checked_text(value))


def part_lines(parts: dict[str, tuple[int, int]], indent: str) -> list[str]:
    """Parts sorted by name, as dlib writes them (it keeps them in a std::map)."""
    return [f"{indent}<part name={attr(name)} x={attr(x)} y={attr(y)}/>" for name, (x, y) in sorted(parts.items())]


def header_lines(name: str, comment: str, extra: dict[str, str]) -> list[str]:
    lines = [STYLESHEET, "<dataset>", f"<name>{text(name)}</name>", f"<comment>{text(comment)}</comment>"]
    lines += [f"<{checked_name(tag)}>{text(value)}</{tag}>" for tag, value in extra.items()]
    return lines


def read_document(path: Path, list_tag: str, item_tag: str) -> tuple[list[ET.Element], dict]:
    """Parse a BearID XML file: its item elements (e.g. images/image) and its header as
    keyword arguments (name, comment, base_dir, extra) for the dataset class."""
    root = parse_root(path)
    items_el = root.find(list_tag)
    items = [] if items_el is None else items_el.findall(item_tag)
    header = {
        "name": text_of(root, "name") or "",
        "comment": text_of(root, "comment") or "",
        "base_dir": Path(path).parent,
        # Simple text children other than the known ones (e.g. bearchip's <info>, <command>).
        "extra": {
            c.tag: (c.text or "").strip() for c in root if c.tag not in ("name", "comment", list_tag) and len(c) == 0
        },
    }
    return items, header


def document(lines: list[str], root_tag: str = "dataset") -> bytes:
    """The file's bytes, once they parse back to one `root_tag` element: a writer never
    makes a file its own reader (or dlib) would refuse. ASCII text is declared ISO-8859-1,
    exactly as dlib writes it; text with other characters is written and declared as UTF-8,
    because dlib's parser ignores the declaration, passes bytes through (Python's binding
    decodes them as UTF-8) and rejects numeric character references."""
    body = "\n".join(lines) + "\n"
    encoding = "ISO-8859-1" if body.isascii() else "UTF-8"
    try:
        data = (XML_DECLARATION.format(encoding) + "\n" + body).encode(encoding)
        root = ET.fromstring(data)
    except (UnicodeEncodeError, ET.ParseError) as exc:
        raise Unwritable(f"the XML would not be readable ({exc})") from None
    if root.tag != root_tag:
        raise Unwritable(f"the XML would not be readable: its root would be <{root.tag}>")
    return data


def write_document(path: Path, lines: list[str], root_tag: str = "dataset") -> None:
    """Write atomically what `document` made of `lines`."""
    atomic_write_bytes(path, document(lines, root_tag))


def rebase(file: str, from_dir: Path, to_dir: Path) -> str:
    """Re-express a relative image path for a file written in another directory.

    Absolute paths (from other tools) are kept exactly as they are.
    """
    if os.path.isabs(file):
        return file
    if Path(from_dir).resolve() == Path(to_dir).resolve():
        return file
    absolute = os.path.normpath(os.path.join(os.path.abspath(from_dir), file))
    return Path(os.path.relpath(absolute, os.path.abspath(to_dir))).as_posix()


def resolve(file: str, base_dir: Path) -> Path:
    """The path of an image named in an XML file whose relative paths start at `base_dir`."""
    return Path(file) if os.path.isabs(file) else Path(os.path.normpath(Path(base_dir) / file))


def relative(path: Path, base_dir: Path) -> str:
    """`path` relative to `base_dir`, with forward slashes, as BearID writes image paths."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base_dir))).as_posix()
