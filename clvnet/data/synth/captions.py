"""SynthRS captions: global sentences about the scene, local sentences about the boxed objects.

:class:`CaptionBuilder` assembles sentences from templates whose slots are plain text or grounded
phrases, so every phrase's character span is exact by construction. The wording (numbers, colours,
class names, participles, relation words) is fully determined by the geometry; the templates and a
few synonyms are drawn at random so captioning metrics are not trivial, yet stay learnable.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clvnet.data.synth.objects import PLURALS

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve")
_NO_COLOR = {"tree", "swimming pool", "roundabout"}
_SCENE_NAMES = {
    "residential": ("a residential area", "a residential neighbourhood"),
    "industrial": ("an industrial area", "an industrial zone"),
    "harbour": ("a coastal harbour", "a harbour area on the coast"),
    "riverside": ("a riverside area", "the land along a river"),
    "rural": ("a rural landscape", "a stretch of countryside"),
    "airport": ("part of an airport", "an airfield"),
    "park": ("a park with a lake", "a lakeside park"),
}
_SCENE_TEMPLATES = ("This aerial image shows {x}.", "The image is a top-down view of {x}.",
                    "This is an overhead view of {x}.")


@dataclass
class Ref:
    """A grounded phrase slot: its text and the object indices it refers to."""

    text: str
    ids: list[int]
    cls: str
    in_box: bool


@dataclass
class CaptionBuilder:
    """Accumulates sentences; records each grounded phrase's exact span."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    phrases: list[tuple[str, tuple[int, int], Ref]] = field(default_factory=list)

    def sentence(self, template: str, **slots: str | Ref) -> None:
        """Append one sentence; ``{name}`` slots take text or a :class:`Ref` (grounded)."""
        if self.parts:
            self._emit(" ")
        first = True
        for literal, name, _, _ in string.Formatter().parse(template):
            if literal:
                self._emit(literal[0].upper() + literal[1:] if first else literal)
                first = False
            if name is None:
                continue
            val = slots[name]
            if isinstance(val, Ref):
                text = val.text[0].upper() + val.text[1:] if first else val.text
                start = self.length
                self._emit(text)
                self.phrases.append((text, (start, self.length), val))
            else:
                self._emit(val[0].upper() + val[1:] if first and val else val)
            first = first and not (val.text if isinstance(val, Ref) else val)

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    @property
    def text(self) -> str:
        """The caption so far."""
        return "".join(self.parts)


def article(word: str) -> str:
    """``a`` or ``an`` for the next word."""
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(cls: str, n: int, color: str | None) -> str:
    """``"a red car"``, ``"three white storage tanks"``, ``"five trees"``."""
    adj = f"{color} " if color and cls not in _NO_COLOR else ""
    if n == 1:
        head = adj + cls
        return f"{article(head)} {head}"
    return f"{NUMBERS[n] if n < len(NUMBERS) else 'many'} {adj}{PLURALS[cls]}"


def be(n: int) -> str:
    """``is`` or ``are``."""
    return "is" if n == 1 else "are"


def pronoun(n: int, subject: bool = False) -> str:
    """``it`` / ``them`` (object) or ``it`` / ``they`` (subject)."""
    return "it" if n == 1 else "they" if subject else "them"


def participle(rng: np.random.Generator, cls: str, n: int, kind: str, ground: str, water: str,
               along_road: bool, near_road: bool) -> str:
    """What the objects are doing where, e.g. ``"parked in a row in the parking lot"``."""
    arr = {"row": " in a row", "cluster": " close together"}.get(kind, "") if n > 1 else ""

    def pick(*opts: str) -> str:
        return opts[int(rng.integers(len(opts)))]

    if cls == "car":
        if ground == "parking lot":
            return f"parked{arr} in the parking lot"
        return pick("driving along the road", "travelling on the road")
    if cls in ("boat", "ship"):
        verb = pick("floating", "moored") if cls == "boat" else pick("sailing", "anchored")
        return f"{verb}{arr} on the {water}"
    if cls == "airplane":
        return f"parked{arr} on the apron"
    if cls == "roundabout":
        return pick("located at the junction of two roads", "located where the two roads meet")
    if cls == "tree":
        if along_road:
            return pick("lining the road", "planted along the road")
        return f"growing{arr} on the {ground}"
    if cls == "swimming pool":
        return "set in a garden"
    if cls == "tennis court":
        return f"laid out{arr} on the grass"
    if cls == "storage tank":
        return f"standing{arr} on the {ground}"
    if near_road:
        return f"standing{arr} beside the road"
    return f"standing{arr} on the {ground}"


def scene_sentence(b: CaptionBuilder, rng: np.random.Generator, scene_type: str) -> None:
    """The first global sentence: the scene type."""
    names = _SCENE_NAMES[scene_type]
    b.sentence(_SCENE_TEMPLATES[int(rng.integers(len(_SCENE_TEMPLATES)))], x=names[int(rng.integers(len(names)))])


def layout_sentence(b: CaptionBuilder, rng: np.random.Generator, facts: list[str]) -> None:
    """The second global sentence: one or two land-cover facts (already phrased)."""
    if not facts:
        return
    if len(facts) == 1:
        b.sentence("{a}.", a=facts[0])
    else:
        joiner = (", while {b}.", ", and {b}.")[int(rng.integers(2))]
        b.sentence("{a}" + joiner, a=facts[0], b=facts[1])


def word_count(text: str) -> int:
    """Whitespace-separated word count."""
    return len(text.split())


def phrase_meta(b: CaptionBuilder) -> dict[str, Any]:
    """Per-phrase meta lists: class names, in-box flags and instance counts."""
    return {"classes": [r.cls for _, _, r in b.phrases], "in_box": [r.in_box for _, _, r in b.phrases],
            "counts": [len(r.ids) for _, _, r in b.phrases]}
