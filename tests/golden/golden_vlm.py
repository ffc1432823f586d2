"""The frozen scripted VLM behind the behaviour snapshot (``test_behaviour_snapshot.py``).

Its answers are a pure function of each request, so the order in which concurrent requests arrive
never matters, and they depend on what the images *are*:

* Judge (and the rubric learner's verifier): each candidate image gets a score, the SHA-256 of its
  bytes salted with the rubric text of the request (none for the direct judge); the lower score
  wins. On a pair's "close call" (one pair in five, drawn from the two image hashes and the rubric)
  the judge has a position bias and always prefers Image 1, so ``--order both`` disagrees there.
  Swapped A/B labels, a lost source image or a rubric that did not reach the prompt all change
  the verdicts. Answer styles vary by pair (plain JSON, fenced JSON in prose, ``"winner": "Image
  N"``, ordinal ranks), one pair in six answers prose first and only the re-ask in JSON, and one
  in thirteen never answers usably (an ``invalid`` verdict).
* Training images (tiny generator, float pixels): bytes are too sensitive there, so the judge
  compares the mean red of the two images instead; when they are within ``RED_MARGIN`` it prefers
  Image 1 (position bias: a ``tie`` under ``--order both``, a masked group).
* Generator / refiner: ``k`` criteria drawn from the caption's words and the attempt; on some
  pairs one of them names "the first image" (rejected by the label-leak filter).
* Structurer: themes by the first word of each criterion's topic, tips with their sources.
* Writer (zero-shot and prompt rubrics): a two-theme rubric naming the caption.

Changing anything here changes the snapshot: regenerate it (see ``regenerate.py``) only with the
change stated in the commit message.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

from arrpo.testing.scripted_server import ChatRequest, Reply

#: Mean-red difference (0..255) under which the training judge falls back to Image 1.
RED_MARGIN = 0.4
#: Width and height of the tiny training images: these are judged by colour, not by bytes.
TRAIN_IMAGE_SIZE = (32, 32)

TOPICS = ("lighting", "anatomy", "texture", "layout", "colour", "detail", "edges", "faces")


def _sha(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _user_texts(request: ChatRequest, index: int) -> str:
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[index].get("content") if users else ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _user_images(request: ChatRequest, index: int) -> list[bytes]:
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[index].get("content") if users else ""
    if not isinstance(content, list):
        return []
    return [base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
            for p in content if p.get("type") == "image_url"]


def request_kind(request: ChatRequest) -> str:
    """judge | generate | refine | structure | write | unknown (from the first user message)."""
    first = _user_texts(request, 0)
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


def _is_reask(request: ChatRequest) -> bool:
    return len([m for m in request.messages if m.get("role") == "user"]) > 1


def _rubric_block(text: str) -> str:
    if "Evaluation Rubrics:" not in text:
        return ""
    block = text.split("Evaluation Rubrics:", 1)[1]
    return re.split(r"\n(?:Caption|Editing instruction):", block)[0].strip()


def _caption(text: str) -> str:
    found = re.search(r"^(?:Caption|Editing instruction): (.+)$", text, re.M)
    return found.group(1).strip() if found else ""


def _mean_red(data: bytes) -> float | None:
    """Mean red (0..255) of a tiny training image; None for any other image."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        if image.size != TRAIN_IMAGE_SIZE:
            return None
        red = list(image.convert("RGB").getdata(band=0))
    return sum(red) / len(red)


def judge_answer(request: ChatRequest) -> str:
    """The judge's answer: rank by salted image hash (or by red for training images)."""
    text = _user_texts(request, 0)
    first, second = _user_images(request, 0)[-2:]  # edits start with Image BASE
    salt = _sha(_rubric_block(text))[:12] if _rubric_block(text) else ""
    h1, h2 = _sha(first), _sha(second)
    key = bytes.fromhex(_sha("|".join(["golden-v1", *sorted((h1, h2)), salt])))  # the pair's dice
    red1, red2 = _mean_red(first), _mean_red(second)
    if red1 is not None and red2 is not None:  # training images: by colour, one plain answer style
        close = abs(red1 - red2) < RED_MARGIN
        rank = [1, 2] if close or red1 > red2 else [2, 1]
        why = "the two look alike; the first is fine" if close else "one image is clearly redder"
        return json.dumps({"rank": rank, "reason": why + (", as the rubric asks" if salt else "")})
    close = key[0] % 5 == 0
    image1_wins = close or _sha(salt + h1) < _sha(salt + h2)
    why = "the first one looks about as good" if close else "one image follows the caption more closely"
    if salt:
        why += ", as the rubric asks"
    style = key[1] % 6
    if key[2] % 12 == 0:  # never usable: invalid after the re-ask
        return "The two images are hard to tell apart."
    if style == 3 and not _is_reask(request):
        return "Let me look at both again before I decide."
    rank = [1, 2] if image1_wins else [2, 1]
    if style == 1:
        return f"Here is my decision.\n```json\n{json.dumps({'rank': rank, 'reason': why})}\n```\nThanks."
    if style == 2:
        return json.dumps({"winner": "Image 1" if image1_wins else "Image 2", "reason": why})
    if style == 4:
        return json.dumps({"rank": ["1st", "2nd"] if image1_wins else ["2nd", "1st"], "reason": why})
    return json.dumps({"rank": rank, "reason": why})


def _k(text: str) -> int:
    found = re.search(r"Write exactly (\d+)", text)
    return int(found.group(1)) if found else 5


def criteria_answer(request: ChatRequest, refine: bool) -> str:
    """``k`` criteria drawn from the caption and, when refining, the earlier criteria."""
    text = _user_texts(request, 0)
    caption = _caption(text)
    words = [w for w in re.findall(r"[a-z]+", caption.lower()) if len(w) > 3] or ["subject"]
    previous = re.findall(r"^\d+\. (.+)$", text, re.M) if refine else []
    seed = int(_sha(caption + "|" + "|".join(previous)), 16)
    criteria = []
    for n in range(_k(text)):
        topic = TOPICS[(seed >> (4 * n)) % len(TOPICS)]
        word = words[(seed >> (5 * n + 3)) % len(words)]
        criteria.append(f"{topic.capitalize()}: the {word} shows consistent {topic} (check {n + 1}).")
    if seed % 4 == 1:  # a criterion that names a candidate by position: the learner must reject it
        criteria[-1] = "The first image has the better colour balance."
    if _is_reask(request):
        criteria = [*criteria[:-1], "Detail: fine detail is crisp everywhere."]
    return json.dumps({"criteria": criteria, "reason": "refined" if refine else "from the caption"})


def structure_answer(request: ChatRequest) -> str:
    """One theme per topic word, tips with the numbers they came from."""
    text = _user_texts(request, 0)
    listed = re.findall(r"^(\d+)\. (.+)$", text.split("Criteria:", 1)[1].split("Consolidate")[0], re.M)
    themes: dict[str, list[dict]] = {}
    for number, criterion in listed:
        topic = criterion.split(":", 1)[0].strip() if ":" in criterion else "General"
        tips = themes.setdefault(topic, [])
        if len(tips) < 3:
            tips.append({"tip": criterion, "from": [int(number)]})
    ordered = sorted(themes.items(), key=lambda item: (-len(item[1]), item[0]))
    return json.dumps({"themes": [{"theme": f"{name} quality", "tips": tips} for name, tips in ordered],
                       "reason": "grouped by topic"})


def write_answer(request: ChatRequest) -> str:
    """A fixed two-theme rubric naming the caption (or the task)."""
    subject = _caption(_user_texts(request, 0)) or "the caption"
    return json.dumps({"themes": [
        {"theme": f"Fidelity to: {subject}", "tips": ["Every named object is present.", "Counts are right."]},
        {"theme": "Visual quality", "tips": ["No artifacts on faces or hands.", "Plausible lighting."]},
    ]})


def golden_vlm(request: ChatRequest) -> Reply:
    """The handler: one deterministic answer per request."""
    kind = request_kind(request)
    if kind == "judge":
        return Reply(judge_answer(request))
    if kind in ("generate", "refine"):
        return Reply(criteria_answer(request, refine=kind == "refine"))
    if kind == "structure":
        return Reply(structure_answer(request))
    if kind == "write":
        return Reply(write_answer(request))
    return Reply(text=None, status=400)


def fingerprint(request: ChatRequest) -> dict:
    """What the client sent, with every image replaced by the start of its SHA-256: messages and
    sampling parameters exactly as they reached the server."""

    def part(p: dict) -> dict:
        if p.get("type") == "image_url":
            url = p["image_url"]["url"]
            return {"type": "image", "sha256": _sha(base64.b64decode(url.split(",", 1)[1]))[:16],
                    "media": url.split(";", 1)[0].removeprefix("data:")}
        return p

    body = dict(request.body or {})
    messages = []
    for message in body.pop("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": [part(p) for p in content]}
        messages.append(message)
    return {"kind": request_kind(request), "variant": variant(request), "messages": messages, "params": body}


def variant(request: ChatRequest) -> str:
    """The kind of a request with what shapes its prompt: an edit, a rubric, a re-ask."""
    first = _user_texts(request, 0)
    flags = [name for name, present in (("edit", "Image BASE" in first or "Editing instruction:" in first),
                                         ("rubric", bool(_rubric_block(first))), ("reask", _is_reask(request)))
             if present]
    return "/".join([request_kind(request), *flags])
