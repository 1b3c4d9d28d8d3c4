"""Pascal-VOC-style XML annotations (DIOR, DIOR-R, DIOR-RSVG), read safely.

Annotation files are untrusted input: they are parsed with :mod:`defusedxml` only, so an entity
bomb ("billion laughs") or an external entity is refused at once instead of expanding in memory.
Every failure becomes a :class:`VocError` whose message is a quarantine reason a person understands.

Only the fields the converters need are read: ``<filename>``, ``<size>`` and, per ``<object>``,
``<name>``, ``<difficult>``, ``<description>`` (DIOR-RSVG's referring expression), the horizontal
``<bndbox>`` and the oriented DIOR-R ``<robndbox>`` (four named corners).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as safe_parse

from skyeye_data import rawfs

# DIOR-R writes the four corners of a rotated box as named tags, clockwise from the top left.
ROBNDBOX_CORNERS = (
    ("x_left_top", "y_left_top"),
    ("x_right_top", "y_right_top"),
    ("x_right_bottom", "y_right_bottom"),
    ("x_left_bottom", "y_left_bottom"),
)
_BNDBOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
_OBJECT_TAG = re.compile(rb"<object[\s>]")


class VocError(Exception):
    """An annotation file (or one of its objects) that cannot be used; the message says why."""


@dataclass
class VocObject:
    """One ``<object>``: its class name and whichever box kinds it carries, unvalidated."""

    index: int  # 0-based position among the file's <object> elements
    name: str
    difficult: bool = False
    description: str | None = None
    bndbox: list[float] | None = None  # xmin, ymin, xmax, ymax
    polygon: list[float] | None = None  # 8 corner coordinates of a robndbox
    problem: str | None = None  # why the object's geometry could not be read


@dataclass
class VocAnnotation:
    filename: str | None
    size: tuple[int, int] | None  # (width, height) as declared by <size>, when present and valid
    objects: list[VocObject] = field(default_factory=list)


def read_voc(path: Path) -> VocAnnotation:
    """Parse one VOC XML file; raise VocError (with a human reason) when the file is unusable."""
    try:
        with rawfs.open_raw(path, "xml") as handle:  # the guarded reader: no FIFO, device or symlink out
            root = safe_parse(handle).getroot()
    except rawfs.RawAccessError as error:
        raise VocError(error.reason) from error
    except DefusedXmlException as error:
        raise VocError(f"unsafe XML refused ({type(error).__name__}: {error})") from error
    except ParseError as error:
        raise VocError(f"XML cannot be parsed ({error})") from error
    except OSError as error:
        raise VocError(f"annotation file cannot be read ({error})") from error
    if root.tag != "annotation":
        raise VocError(f"root element is <{root.tag}>, expected <annotation>")
    objects = [_read_object(i, element) for i, element in enumerate(root.findall("object"))]
    return VocAnnotation(filename=_text(root, "filename"), size=_read_size(root), objects=objects)


def count_object_tags(path: Path, limit_bytes: int = 16 << 20) -> int:
    """How many ``<object>`` tags a file holds, by a plain byte scan (no XML parsing).

    Used when a file cannot be parsed: DIOR-RSVG numbers objects globally across files, so a
    broken file must still advance the numbering by the objects it was meant to hold.
    """
    try:
        with rawfs.open_raw(path, "xml") as handle:
            return len(_OBJECT_TAG.findall(handle.read(limit_bytes)))
    except (OSError, rawfs.RawAccessError):
        return 0


def _text(parent: Element, tag: str) -> str | None:
    child = parent.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _number(parent: Element, tag: str) -> float:
    text = _text(parent, tag)
    if text is None:
        raise VocError(f"<{tag}> is missing")
    try:
        value = float(text)
    except ValueError:
        raise VocError(f"<{tag}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise VocError(f"<{tag}> is not finite: {text!r}")
    return value


def _read_size(root: Element) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        width, height = int(_number(size, "width")), int(_number(size, "height"))
    except VocError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _read_object(index: int, element: Element) -> VocObject:
    obj = VocObject(index=index, name=_text(element, "name") or "")
    obj.description = _text(element, "description")
    obj.difficult = (_text(element, "difficult") or "0") not in ("0", "", "false", "False")
    try:
        if (bndbox := element.find("bndbox")) is not None:
            obj.bndbox = [_number(bndbox, tag) for tag in _BNDBOX_TAGS]
        if (robndbox := element.find("robndbox")) is not None:
            obj.polygon = [_number(robndbox, tag) for corner in ROBNDBOX_CORNERS for tag in corner]
    except VocError as error:
        obj.problem = str(error)
    if obj.bndbox is None and obj.polygon is None and obj.problem is None:
        obj.problem = "object has neither <bndbox> nor <robndbox>"
    return obj
