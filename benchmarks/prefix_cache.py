"""How much of the judge's prompt a server's prefix cache can serve, per prompt layout.

A simulation of vLLM-style automatic prefix caching over the exact requests arrpo sends
(:meth:`arrpo.judge.PairwiseJudge.build_request`, one judge per ``prompt_layout``):

* each request is rendered the way the Qwen3-VL chat template renders it (ChatML turns:
  ``<|im_start|>role\\n … <|im_end|>\\n``, then ``<|im_start|>assistant\\n``); an image is
  ``<|vision_start|>``, ceil(H/32)·ceil(W/32) ``<|image_pad|>`` tokens (16-pixel patches merged
  2×2) and ``<|vision_end|>``;
* the token sequence is cut into 16-token blocks; a block's hash chains the previous block's hash,
  the block's tokens and the SHA-256 of every image whose placeholder tokens it holds (so equal
  placeholder runs of different images never match); only full blocks are cached;
* a request is served the longest run of leading blocks already in the cache (at least one token
  is always computed, as vLLM does), then all its full blocks are cached. The cache is unbounded
  (a server whose KV memory holds the working set) and requests arrive one at a time in the
  order the caller sends them (an eval's forward then reverse order of each pair; a training
  step's groups one after another, each group's pairs in both orders).

Text tokens: ``--tokenizer`` takes a ``tokenizer.json`` (or a folder holding one, e.g. a local
Qwen3-VL download), read offline by the ``tokenizers`` library. Without it, a documented
approximation: one token per pre-token of the Qwen2/Qwen3 tokenizer's split (runs of letters
with their leading space or mark, single digits, punctuation runs, newlines) — exact for the
common English words the judge's instructions and rubrics are made of, a slight undercount for
rare words (which split into 2–3 BPE pieces). Only the share served from cache is reported; it
changes little with the tokenizer, since both layouts hold the same text.

Scenarios: (a) an ``arrpo eval`` run of 200 pairs, each asked in both orders (t2i: 1024² images;
edits: a 1024² source and two edits); (b) RPO steps of 8 prompts with groups of 2 and 16 samples
(512²), every pair of a group (``all_pairs``) asked in both orders (``order: both``), t2i and
edits (the source shared by the group). Every request carries the same 10-theme learned rubric.

    python benchmarks/prefix_cache.py
    python benchmarks/prefix_cache.py --tokenizer ~/models/Qwen3-VL-8B-Instruct --steps 4
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import itertools
import math
import platform
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from arrpo.images import ImageData, load_image
from arrpo.judge import PairwiseJudge
from arrpo.rubric import Rubric, Theme
from arrpo.schema import Comparison
from arrpo.vlm.base import ImagePart, VLMRequest
from arrpo.vocab import PromptLayout, Task

BLOCK = 16
PIXELS_PER_TOKEN_SIDE = 32  # 16-pixel patches, merged 2x2
LAYOUTS: tuple[PromptLayout, ...] = ("authors", "cached")
#: The Qwen2/Qwen3 pre-tokenizer split, with \p{L} as [^\W\d_] and \p{N} as \d (Python's re).
PRE_TOKENS = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: A learned rubric of 10 themes with 4 tips each (the shape of the paper's learned rubrics).
RUBRIC = Rubric(task="t2i", themes=[
    Theme(theme="Prompt fidelity: every object, attribute and count the caption names is present", tips=[
        "Check each noun phrase of the caption against the image; a missing object outweighs a small artifact.",
        "Counts matter: three cups means exactly three, not two or four, and each is clearly visible.",
        "Attributes bind to the right object: a red hat on the man, not a red coat or a red background.",
        "Actions and states described by the caption (running, broken, open) are shown, not merely implied."]),
    Theme(theme="Spatial relations and composition follow the caption", tips=[
        "Left, right, above, below, in front of and behind must match the caption as a viewer reads the image.",
        "The main subject is where the caption puts it and is not cropped away or hidden by other objects.",
        "Relative sizes are plausible: a cup on a table is smaller than the table, a distant tower looks far away.",
        "Several subjects interact as described (holding, facing, sitting on) rather than standing side by side."]),
    Theme(theme="Written text is spelled exactly as requested", tips=[
        "Read every word on signs, labels, screens and book covers letter by letter against the caption.",
        "One wrong, missing, swapped or doubled letter is a clear defect, even when the rest looks polished.",
        "Text the caption does not ask for should not appear; gibberish glyphs count as a defect.",
        "Lettering sits on its surface with the right perspective, and is legible at the size it is shown."]),
    Theme(theme="Anatomy and structure of people and animals are plausible", tips=[
        "Count fingers, limbs, eyes and ears; look for merged, missing or extra parts.",
        "Joints bend the way they can, and poses are physically possible and balanced.",
        "Faces are symmetric where they should be, with eyes looking in a consistent direction.",
        "Animals have the body plan of their species: legs, tails, fur or feathers where they belong."]),
    Theme(theme="Physical plausibility of light, shadow and reflections", tips=[
        "Shadows fall away from the light sources in one consistent direction and have plausible softness.",
        "Reflections in water, glass and metal match the objects and colors they reflect.",
        "Light sources named in the caption (lamps, neon, the sun) actually light the scene around them.",
        "Transparent and translucent materials refract and tint what is behind them."]),
    Theme(theme="Freedom from generation artifacts", tips=[
        "Look for smeared textures, repeated patterns, broken straight lines and melted or fused objects.",
        "Check edges where objects meet the background for halos, seams and color bleeding.",
        "Small objects (cutlery, jewellery, wheels) keep coherent shapes rather than dissolving into noise.",
        "No watermarks, frames, captions or borders that the caption did not request."]),
    Theme(theme="Style and medium match the caption", tips=[
        "A watercolor looks like watercolor, an oil painting like oil, a photograph like a photograph.",
        "The requested era, mood or artist reference is recognisable without dominating the content.",
        "The style is consistent across the whole image rather than mixing rendering techniques.",
        "Without a requested style, a natural photographic or illustrative look is expected, not a random one."]),
    Theme(theme="Color and tone as described", tips=[
        "Named colors are the colors of the named objects, not of nearby objects or the background.",
        "Lighting mood (dusk, neon, overcast, golden hour) matches the caption's words.",
        "White balance and saturation are plausible for the scene unless a stylised look is requested.",
        "Contrast keeps the subject readable: no crushed shadows or blown highlights over important detail."]),
    Theme(theme="Detail and sharpness where it matters", tips=[
        "The subject is in focus and rendered with fine, consistent detail.",
        "Background blur is acceptable only where the caption implies depth of field or motion.",
        "Textures (wood grain, fabric, skin, fur) look like the materials they depict at their scale.",
        "Detail does not become busy noise that hides the shapes the caption asks for."]),
    Theme(theme="Overall aesthetic quality", tips=[
        "Balanced composition, pleasing color harmony and a clear visual hierarchy.",
        "The image reads at a glance: the caption's subject is the first thing the eye finds.",
        "Framing and perspective suit the subject; nothing important touches the border awkwardly.",
        "When both images satisfy the caption equally, prefer the one a careful human editor would publish."]),
])

SUBJECTS = ["a red bicycle", "an old lighthouse", "a tabby cat", "a street food stall", "a glass teapot",
            "two astronauts", "a wooden sailboat", "a bowl of ramen", "a fox in the snow", "a vintage car",
            "a bookshop window", "three paper lanterns", "a violinist", "a desert canyon", "a robot chef",
            "a mountain cabin", "a koi pond", "a neon diner", "a hot air balloon", "a chess board"]
SETTINGS = ["at sunset", "in heavy rain, cinematic lighting", "as a watercolor painting", "on a busy street",
            "under a starry sky, long exposure photograph", "in a minimalist studio with soft light",
            "in the style of a 1950s travel poster", "seen from above", "with a sign that says \"OPEN LATE\"",
            "in early morning fog"]
EDITS = ["make the sky pink", "replace the car with a bicycle", "add a rainbow behind the house",
         "change the text on the sign to \"CLOSED\"", "remove the person on the left", "turn it into winter",
         "make it look like an oil painting", "add a cat sitting on the bench"]


# ------------------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class Token:
    """One prompt token: its text (or special name) and, for image placeholders, the image's hash."""

    text: str
    image: str | None = None


def text_tokenizer(path: str | None) -> Callable[[str], list[str]]:
    """The text tokenizer: a real one from ``path`` (tokenizer.json, or a folder holding one), or
    the pre-token approximation (see the module docstring)."""
    if path is None:
        return functools.lru_cache(maxsize=4096)(PRE_TOKENS.findall)
    from tokenizers import Tokenizer

    file = Path(path).expanduser()
    tokenizer = Tokenizer.from_file(str(file / "tokenizer.json" if file.is_dir() else file))
    tokenizer.no_truncation()  # a file may carry a model's length limit and padding: neither is wanted
    tokenizer.no_padding()
    return functools.lru_cache(maxsize=4096)(lambda text: tokenizer.encode(text, add_special_tokens=False).tokens)


def image_tokens(image: ImageData) -> int:
    """Placeholder tokens of one image in a Qwen3-VL prompt."""
    return math.ceil(image.height / PIXELS_PER_TOKEN_SIDE) * math.ceil(image.width / PIXELS_PER_TOKEN_SIDE)


def prompt_tokens(request: VLMRequest, tokenize: Callable[[str], list[str]]) -> list[Token]:
    """The request as the Qwen3-VL chat template lays it out, as tokens."""
    tokens: list[Token] = []
    for message in request.messages:
        tokens += [Token("<|im_start|>"), *map(Token, tokenize(f"{message.role}\n"))]
        for part in message.parts:
            if isinstance(part, ImagePart):
                key = part.image.sha256
                tokens += [Token("<|vision_start|>"), *[Token("<|image_pad|>", key)] * image_tokens(part.image),
                           Token("<|vision_end|>")]
            else:
                tokens += map(Token, tokenize(part.text))
        tokens += [Token("<|im_end|>"), *map(Token, tokenize("\n"))]
    tokens += [Token("<|im_start|>"), *map(Token, tokenize("assistant\n"))]
    return tokens


# ------------------------------------------------------------------------------------- cache
class PrefixCache:
    """An unbounded block prefix cache (vLLM's automatic prefix caching, in miniature)."""

    def __init__(self) -> None:
        self.blocks: set[bytes] = set()
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.requests = 0

    @staticmethod
    def block_hashes(tokens: Sequence[Token]) -> Iterator[bytes]:
        """The hash of each full block: the previous block's hash, its tokens, its images."""
        parent = b""
        for start in range(0, len(tokens) - BLOCK + 1, BLOCK):
            block = tokens[start:start + BLOCK]
            digest = hashlib.sha256(parent)
            for token in block:
                digest.update(token.text.encode("utf-8") + b"\x00")
            for image in sorted({t.image for t in block if t.image}):
                digest.update(b"image:" + image.encode())
            parent = digest.digest()
            yield parent

    def serve(self, tokens: Sequence[Token]) -> int:
        """Serve one request; returns the tokens served from the cache."""
        hashes = list(self.block_hashes(tokens))
        hit = 0
        for block in hashes:
            if block not in self.blocks:
                break
            hit += 1
        cached = min(hit * BLOCK, len(tokens) - 1)  # at least one token is computed
        self.blocks.update(hashes)
        self.requests += 1
        self.prompt_tokens += len(tokens)
        self.cached_tokens += cached
        return cached


# ------------------------------------------------------------------------------------- inputs
_images: dict[tuple[int, int], int] = {}


def image(size: int) -> ImageData:
    """A new image of ``size``² pixels, different from every other one (a solid colour and a
    pixel pattern from a counter)."""
    n = _images[(size, 0)] = _images.get((size, 0), 0) + 1
    im = Image.new("RGB", (size, size), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
    for bit in range(24):
        if n >> bit & 1:
            im.putpixel((bit, 0), (255, 255, 255))
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def prompts(task: Task) -> Iterator[str]:
    if task == "edit":
        return itertools.cycle(f"{edit} ({n})" if n else edit for n in range(100) for edit in EDITS)
    return (f"{subject} {setting}" for setting, subject in itertools.product(SETTINGS * 10, SUBJECTS))


def eval_requests(task: Task, pairs: int, size: int) -> Iterator[tuple[Comparison, str]]:
    """An eval run: each pair forward (A first) then reverse (B first)."""
    for _, prompt in zip(range(pairs), prompts(task), strict=False):
        source = image(size) if task == "edit" else None
        comparison = Comparison(task=task, prompt=prompt, image_a=image(size), image_b=image(size), source=source,
                                rubric=RUBRIC)
        yield comparison, "AB"
        yield comparison, "BA"


def rpo_requests(task: Task, group: int, steps: int, prompts_per_step: int, size: int) -> Iterator[tuple[Comparison, str]]:
    """Training steps: per prompt a group of samples, all pairs, each in both orders."""
    texts = prompts(task)
    for _ in range(steps * prompts_per_step):
        prompt = next(texts)
        source = image(size) if task == "edit" else None
        samples = [image(size) for _ in range(group)]
        for i, j in itertools.combinations(range(group), 2):
            comparison = Comparison(task=task, prompt=prompt, image_a=samples[i], image_b=samples[j], source=source,
                                    rubric=RUBRIC)
            yield comparison, "AB"
            yield comparison, "BA"


def simulate(requests: Iterable[tuple[Comparison, str]], tokenize: Callable[[str], list[str]]) -> dict[str, PrefixCache]:
    """Serve the same requests under each layout, one cache per layout."""
    judges = {layout: PairwiseJudge(None, prompt_layout=layout) for layout in LAYOUTS}  # type: ignore[arg-type]
    caches = {layout: PrefixCache() for layout in LAYOUTS}
    for comparison, order in requests:
        for layout, judge in judges.items():
            caches[layout].serve(prompt_tokens(judge.build_request(comparison, order), tokenize))
    return caches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", help="tokenizer.json, or a folder with one (default: the approximation)")
    parser.add_argument("--pairs", type=int, default=200, help="eval pairs (each asked in both orders)")
    parser.add_argument("--eval-size", type=int, default=1024, help="eval image side, pixels")
    parser.add_argument("--steps", type=int, default=2, help="RPO steps")
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--rpo-size", type=int, default=512, help="training image side, pixels")
    args = parser.parse_args(argv)
    tokenize = text_tokenizer(args.tokenizer)
    rubric_tokens = len(tokenize(RUBRIC.render()))
    print(f"# prefix cache: 16-token blocks, images hashed with their bytes, unbounded cache "
          f"({platform.machine()}, Python {platform.python_version()})")
    print(f"text tokens: {args.tokenizer or 'approximation (Qwen pre-token split)'}; the 10-theme rubric is "
          f"{rubric_tokens} tokens; eval images {args.eval_size}² ({image_tokens(image(args.eval_size))} tokens), "
          f"training images {args.rpo_size}² ({image_tokens(image(args.rpo_size))} tokens)\n")
    scenarios: list[tuple[str, Iterable[tuple[Comparison, str]]]] = []
    for task in ("t2i", "edit"):
        scenarios.append((f"eval {task}, {args.pairs} pairs x 2 orders", eval_requests(task, args.pairs, args.eval_size)))
    for task, group in itertools.product(("t2i", "edit"), (2, 16)):
        scenarios.append((f"RPO {task}, G={group}, {args.steps}x{args.prompts_per_step} groups, all_pairs x 2 orders",
                          rpo_requests(task, group, args.steps, args.prompts_per_step, args.rpo_size)))
    print("| scenario | requests | prompt tokens / request | authors: served from cache | cached: served from cache |")
    print("|---|---:|---:|---:|---:|")
    for name, requests in scenarios:
        caches = simulate(requests, tokenize)
        authors, cached = caches["authors"], caches["cached"]
        per_request = authors.prompt_tokens / max(1, authors.requests)
        print(f"| {name} | {authors.requests} | {per_request:,.0f} | "
              f"{authors.cached_tokens / authors.prompt_tokens:.1%} | {cached.cached_tokens / cached.prompt_tokens:.1%} |")


if __name__ == "__main__":
    main()
