"""A scripted VLM that "sees": it measures brightness and colour of the images it is sent and
answers generation, refinement, verification, structuring and writing requests accordingly.

* Verifier/judge: scores each candidate by the features named in the rubric's criteria
  ("bright", "red", "green", "blue") and ranks by score (a tie goes to Image 1, a position bias).
* Generator (label visible): first proposes brightness criteria, whatever the images show.
* Refiner: proposes the feature on which the preferred image beats the other most; when there is
  none it repeats brightness (so such pairs are dropped).
* Structurer: one theme per feature mentioned, tips = the criteria mentioning it (with their numbers
  under "from"); the other criteria go to "General craft" as plain strings (no sources).
* Writer: a fixed two-theme rubric naming the caption.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable

from PIL import Image

from arrpo.rubrics.learn import OTHER_LABEL, PREFERRED_LABEL
from arrpo.testing.scripted_server import ChatRequest, Reply

FEATURES = ("bright", "red", "green", "blue")
CRITERION = {
    "bright": "The image is bright and evenly lit, with no murky shadows.",
    "red": "The dominant colour of the image is a saturated red.",
    "green": "The image is rich in green tones.",
    "blue": "The image is dominated by blue tones.",
}
FILLER = [
    "The composition is balanced and uncluttered.",
    "Edges are clean and free of visible artifacts.",
    "The subject is fully inside the frame.",
    "Textures look plausible at a normal viewing distance.",
]


def features(image: Image.Image) -> dict[str, float]:
    """Mean brightness and per-channel means, in [0, 1]."""
    small = image.convert("RGB").resize((8, 8))
    pixels = list(small.getdata())
    n = len(pixels)
    r = sum(p[0] for p in pixels) / n / 255
    g = sum(p[1] for p in pixels) / n / 255
    b = sum(p[2] for p in pixels) / n / 255
    return {"bright": (r + g + b) / 3, "red": r, "green": g, "blue": b}


def mentioned(text: str) -> list[str]:
    lowered = text.lower()
    return [f for f in FEATURES if re.search(rf"\b{f}", lowered)]


def criteria_for(feature: str, k: int) -> list[str]:
    return [CRITERION[feature], *FILLER][:k]


def _parts(request: ChatRequest, index: int = -1) -> list[tuple[str, object]]:
    """(kind, value) parts of one message: ("text", str) or ("image", PIL image)."""
    import base64
    import io

    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[index].get("content")
    if isinstance(content, str):
        return [("text", content)]
    out: list[tuple[str, object]] = []
    for part in content:
        if part.get("type") == "text":
            out.append(("text", part["text"]))
        else:
            raw = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            out.append(("image", Image.open(io.BytesIO(raw)).convert("RGB")))
    return out


def request_kind(request: ChatRequest) -> str:
    """judge | generate | refine | structure | write (of the conversation's first message)."""
    first = "\n".join(v for k, v in _parts(request, 0) if k == "text")
    if "Earlier you wrote these criteria" in first:
        return "refine"
    if '"criteria"' in first:
        return "generate"
    if "Consolidate them into one rubric" in first:
        return "structure"
    if "evaluation rubric for judging" in first or "general evaluation rubric" in first:
        return "write"
    if '"rank"' in first:
        return "judge"
    return "unknown"


def is_repair(request: ChatRequest) -> bool:
    return len([m for m in request.messages if m.get("role") == "user"]) > 1


def labelled_images(request: ChatRequest) -> dict[str, Image.Image]:
    """Images that follow a text label in the first message, by label."""
    found: dict[str, Image.Image] = {}
    last_text = ""
    for kind, value in _parts(request, 0):
        if kind == "text":
            last_text = str(value)
        else:
            found[last_text] = value  # type: ignore[assignment]
    return found


def rubric_criteria(text: str) -> list[str]:
    block = text.split("Evaluation Rubrics:", 1)[1] if "Evaluation Rubrics:" in text else ""
    block = re.split(r"\n(?:Caption|Editing instruction):", block)[0]
    return [m.group(1) for m in re.finditer(r"^(?:Theme|- Tip\d+): (.+)$", block, re.M)]


class SeeingVLM:
    """The handler. ``overrides[kind]`` may replace the answer: ``f(request, default) -> str|Reply``."""

    def __init__(self, overrides: dict[str, Callable[[ChatRequest, str], object]] | None = None):
        self.overrides = overrides or {}
        self.kinds: Counter[str] = Counter()

    def __call__(self, request: ChatRequest):
        kind = request_kind(request)
        self.kinds[kind] += 1
        default = getattr(self, f"_{kind}", self._unknown)(request)
        if kind in self.overrides:
            return self.overrides[kind](request, default)
        return default

    # --------------------------------------------------------------- answers
    def _judge(self, request: ChatRequest) -> str:
        images = [v for k, v in _parts(request, 0) if k == "image"]
        first, second = images[-2], images[-1]  # edit requests start with Image BASE
        criteria = rubric_criteria(request.text)
        named = [f for c in criteria for f in mentioned(c)]
        s1 = sum(features(first)[f] for f in named)
        s2 = sum(features(second)[f] for f in named)
        rank = [1, 2] if s1 >= s2 else [2, 1]
        return json.dumps({"rank": rank, "reason": f"scores {s1:.3f} vs {s2:.3f} on {sorted(set(named))}"})

    def _k(self, request: ChatRequest) -> int:
        match = re.search(r"Write exactly (\d+)", "\n".join(v for k, v in _parts(request, 0) if k == "text"))
        return int(match.group(1)) if match else 5

    def _generate(self, request: ChatRequest) -> str:
        return json.dumps({"criteria": criteria_for("bright", self._k(request)), "reason": "brightness"})

    def _refine(self, request: ChatRequest) -> str:
        images = labelled_images(request)
        good, bad = features(images[PREFERRED_LABEL]), features(images[OTHER_LABEL])
        margins = {f: good[f] - bad[f] for f in FEATURES}
        best = max(FEATURES, key=lambda f: margins[f])
        feature = best if margins[best] > 0 else "bright"
        return json.dumps({"criteria": criteria_for(feature, self._k(request)), "reason": f"use {feature}"})

    def _structure(self, request: ChatRequest) -> str:
        text = "\n".join(v for k, v in _parts(request, 0) if k == "text")
        listed = re.findall(r"^\d+\. (.+)$", text.split("Criteria:", 1)[1].split("Consolidate")[0], re.M)
        themes = []
        for feature in FEATURES:
            tips = [{"tip": c, "from": [n]} for n, c in enumerate(listed, start=1) if feature in mentioned(c)]
            if tips:
                themes.append({"theme": f"{feature.capitalize()} quality", "tips": tips})
        others = [c for c in listed if not mentioned(c)]
        if others:  # plain strings: the structurer does not say where these tips came from
            themes.append({"theme": "General craft", "tips": others})
        return json.dumps({"themes": themes, "reason": "grouped by feature"})

    def _write(self, request: ChatRequest) -> str:
        text = "\n".join(v for k, v in _parts(request, 0) if k == "text")
        caption = re.search(r"(?:Caption|Editing instruction): (.+)", text)
        subject = caption.group(1) if caption else "the caption"
        return json.dumps({"themes": [
            {"theme": f"Fidelity to: {subject}", "tips": ["Every named object is present."]},
            {"theme": "Visual quality", "tips": ["No artifacts.", "Plausible lighting."]},
        ]})

    def _unknown(self, request: ChatRequest) -> Reply:
        return Reply(text=None, status=400)
