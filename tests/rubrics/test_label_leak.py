"""Label-blind verification: no verification request carries the label, in any form.

"Any form" covers: words in the text ("preferred", "expected", "label", ...), a rank array, the
generator's conversation (history, system prompt), guide exemplars, criteria that name an image by
position or label, and the order the images are shown in. The strongest check is the flip test:
flipping every label must leave the verification requests byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re

from arrpo.rubrics import LearnConfig, RubricLearner, read_guide, read_seeds
from arrpo.rubrics.parsing import refers_to_label

from .conftest import write_png
from .seeing_vlm import request_kind

FIXED = json.dumps({"criteria": ["The image is bright and evenly lit.", "Colours are vivid."]})
FORBIDDEN = re.compile(
    r"prefer|expected|label|chosen|rejected|ground.truth|human|winner|correct answer|annotat|people", re.I
)


def _verifications(server):
    return [r for r in server.seen if request_kind(r) == "judge"]


def _signature(request) -> tuple:
    texts = tuple(json.dumps(m, sort_keys=True) for m in request.messages)
    return texts


def _flip(path, out):
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record["label"] = "B" if record["label"] == "A" else "A"
        lines.append(json.dumps(record))
    out.write_text("\n".join(lines) + "\n")
    return out


async def test_flipping_every_label_leaves_verification_requests_identical(
    seed_dir, seeing, backend_for, tmp_path
):
    seeds_path = seed_dir(["first", "refine", "drop", "first", "refine", "drop", "first", "first"])
    flipped_path = _flip(seeds_path, seeds_path.with_name("flipped.jsonl"))
    requests = []
    for path in (seeds_path, flipped_path):
        _, server = seeing({"generate": lambda r, d: FIXED})
        seeds = read_seeds(path, task="t2i")
        learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=0))
        await learner.learn(seeds, tmp_path / f"{path.stem}.state.jsonl")
        requests.append(sorted(_signature(r) for r in _verifications(server)))
    assert len(requests[0]) == 16  # 8 pairs, both orders (the default)
    assert requests[0] == requests[1]


async def test_verification_requests_hold_no_label_words_history_or_extra_images(
    seed_dir, seeing, backend_for, tmp_path
):
    seeds_path = seed_dir(["first", "refine", "drop", "refine"])
    guide_path = tmp_path / "guide.jsonl"
    write_png(tmp_path / "g_good.png", (250, 250, 250))
    write_png(tmp_path / "g_bad.png", (0, 0, 60))
    guide_path.write_text(json.dumps({"prompt": "a lamp", "preferred": "g_good.png", "dispreferred": "g_bad.png",
                                      "rationale": "The preferred one is bright."}) + "\n")
    vlm, server = seeing()
    seeds = read_seeds(seeds_path, task="t2i")
    guide = read_guide(guide_path, "t2i")
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=3, t_max=2), guide=guide)
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    assert result.summary.decided == 4

    pair_images = {}
    for pair in seeds.pairs:
        loaded = pair.load()
        pair_images[pair.prompt] = {loaded.image_a.sha256, loaded.image_b.sha256}
    guide_hashes = {guide.exemplars[0].preferred.sha256, guide.exemplars[0].dispreferred.sha256}

    verifications = _verifications(server)
    assert len(verifications) == vlm.kinds["judge"] > 4
    for request in verifications:
        body = json.dumps(request.body)
        text_only = re.sub(r'"url": "data:[^"]+"', "", body)
        assert not FORBIDDEN.search(text_only), FORBIDDEN.search(text_only)
        assert [m["role"] for m in request.messages] == ["user"]  # fresh conversation, no system prompt
        caption = re.search(r"Caption: (.+)", request.text).group(1)
        shown = {hashlib.sha256(b).hexdigest() for b in request.image_bytes}
        assert len(request.image_bytes) == 2 and shown == pair_images[caption]
        assert not shown & guide_hashes
    # the generator did get the guide and the label
    generations = [r for r in server.seen if request_kind(r) == "generate"]
    assert all("Preferred image:" in r.text and "Example 1" in r.text for r in generations)


async def test_shown_order_is_not_tied_to_the_label(seed_dir, seeing, backend_for, tmp_path):
    # a file where A is always the preferred image (like raw MJ-Bench) must still be shown both ways
    path = seed_dir(["first"] * 16)
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["label"] == "B":
            record["image_a"], record["image_b"], record["label"] = record["image_b"], record["image_a"], "A"
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    _, server = seeing({"generate": lambda r, d: FIXED})
    seeds = read_seeds(path, task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=0, verify_order="random")
    result = await RubricLearner(backend_for(server), config).learn(seeds, tmp_path / "state.jsonl")
    shown_first = [o.attempts[0].orders[0] for o in result.outcomes]
    assert 3 <= shown_first.count("AB") <= 13, shown_first


async def test_criteria_naming_an_image_by_position_or_label_never_reach_the_verifier(
    seed_dir, seeing, backend_for, tmp_path
):
    leaky = json.dumps({"criteria": [
        "The preferred image is bright.", "Image 1 has more red.", "The left image is sharp.",
        "Unlike the other image, it is clean.", "The image is bright and evenly lit.",
    ]})
    _, server = seeing({"generate": lambda r, d: leaky})
    seeds = read_seeds(seed_dir(["first"]), task="t2i")
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=5, t_max=0))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    outcome = result.outcomes[0]
    assert outcome.status == "passed_first"
    assert outcome.criteria == ["The image is bright and evenly lit."]
    assert len(outcome.rejected) == 4
    verification = _verifications(server)[0].text
    assert "Image 1 has more red" not in verification and "preferred" not in verification.lower()


async def test_only_leaky_criteria_are_repaired_then_dropped(seed_dir, seeing, backend_for, tmp_path):
    leaky = json.dumps({"criteria": ["The first image is better.", "Image 2 is worse."]})
    vlm, server = seeing({"generate": lambda r, d: leaky})
    seeds = read_seeds(seed_dir(["first"]), task="t2i")
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=0, parse_retries=1))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    assert result.outcomes[0].status == "dropped"
    assert "position" in result.outcomes[0].note
    assert vlm.kinds["generate"] == 2 and vlm.kinds["judge"] == 0


def test_label_reference_detector():
    for leaky in ("Image 1 is sharper", "the second image has artifacts", "The preferred image is bright",
                  "compared to the other image", "Image B keeps the roof", "the chosen image is clean"):
        assert refers_to_label(leaky), leaky
    for fine in ("Hands have five fingers", "The edit keeps Image BASE's roofline intact",
                 "Text in the image is legible", "One cat is visible", "The second cat has a tail"):
        assert not refers_to_label(fine), fine
