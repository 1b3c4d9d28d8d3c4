"""Class names as English phrases: 'storagetank' → 'storage tank', three of them → 'the three storage tanks'.

Shared by the single-task detection builder and the phrase-grounding mixes (RSPG, Conversa), so a
class reads the same in every sample.
"""

from __future__ import annotations

import re
from typing import Sequence

NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip

# DIOR writes its class names squashed ("storagetank"); these read as English. Other names (DOTA's
# "storage-tank", "small-vehicle") only need their hyphens turned into spaces.
READABLE_CLASSES = {
    "baseballfield": "baseball field",
    "basketballcourt": "basketball court",
    "expressway-service-area": "expressway service area",
    "expressway-toll-station": "expressway toll station",
    "golffield": "golf field",
    "groundtrackfield": "ground track field",
    "storagetank": "storage tank",
    "tenniscourt": "tennis court",
    "trainstation": "train station",
}
_SEPARATORS = re.compile(r"[-_\s]+")


def number_word(n: int) -> str:
    """'three' for 3; digits past twenty ('24')."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def readable_class(label: str) -> str:
    """A detection class name as words: 'storagetank' → 'storage tank', 'small-vehicle' → 'small vehicle'."""
    key = label.strip().lower()
    return READABLE_CLASSES.get(key) or _SEPARATORS.sub(" ", key).strip()


def plural(noun: str) -> str:
    """English plural of the last word: 'overpass' → 'overpasses', 'tennis court' → 'tennis courts'."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def count_phrase(label: str, count: int) -> str:
    """'the airplane' for one box, 'the three airplanes' for three."""
    noun = readable_class(label)
    return f"the {noun}" if count == 1 else f"the {number_word(count)} {plural(noun)}"


def join_phrases(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
