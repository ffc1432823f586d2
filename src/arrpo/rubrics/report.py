"""The learning report: one self-contained HTML page that shows how a rubric was learned.

It is built from the learning state file alone (plus the seed images, read again for thumbnails):
the final Theme-Tips rubric with every tip linked to the seed pairs whose criteria it came from,
the learning statistics, one card per seed pair (images, label, every verification and every
refinement as a diff, the outcome), filters, and the held-out comparison when it was run.
Thumbnails are small inline JPEGs, so the page opens offline and stays small (about 15 kB per
pair).
"""

from __future__ import annotations

import base64
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrpo.datasets.seeds import SeedSet
from arrpo.errors import ReportError
from arrpo.html.templates import html_environment
from arrpo.jsonl import iter_records
from arrpo.rubric import Rubric
from arrpo.rubrics.learn import LearnSummary, PairOutcome
from arrpo.text import valid_utf8

#: Kind of the state record in which ``arrpo rubric learn`` says what a run learned from.
RUN_RECORD = "run"
#: Longest side of the inline thumbnails, in pixels.
THUMB_SIZE = 160
REPORT_NAME = "report.html"
STATUS_TEXT = {
    "passed_first": "verified on the first pass",
    "refined": "verified after refinement",
    "dropped": "dropped",
    "bad_input": "bad input",
    "failed": "failed (not finished)",
    "not_run": "not learned yet",
}




def find_state(path: str | Path) -> Path:
    """The learning state file in ``path`` (a folder holding one ``*.state.jsonl``, or the file)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        if path.exists():
            raise ReportError(f"{path}: not a learning state file or a folder holding one")
        raise ReportError(f"{path}: no such file or folder")
    states = sorted(path.glob("*.state.jsonl"))
    if not states:
        raise ReportError(f"{path}: holds no learning state (*.state.jsonl written by arrpo rubric learn)")
    if len(states) > 1:
        names = ", ".join(s.name for s in states)
        raise ReportError(f"{path}: holds several learning states ({names}); name the one to report on")
    return states[0]


# ----------------------------------------------------------------------------------- diffs
def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """(kind, text) pieces turning ``old`` into ``new`` word by word; kind: same | del | ins."""
    a, b = re.findall(r"\S+\s*", old), re.findall(r"\S+\s*", new)
    pieces: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            pieces.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("ins", "".join(b[j1:j2])))
    return pieces


def criteria_diff(old: list[str], new: list[str]) -> list[dict[str, Any]]:
    """A refinement as rows: kept, removed, added, or changed (with a word diff)."""
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [{"kind": "same", "text": t} for t in old[i1:i2]]
            continue
        olds, news = old[i1:i2], new[j1:j2]
        for k in range(max(len(olds), len(news))):
            if k < len(olds) and k < len(news):
                rows.append({"kind": "changed", "pieces": word_diff(olds[k], news[k])})
            elif k < len(olds):
                rows.append({"kind": "removed", "text": olds[k]})
            else:
                rows.append({"kind": "added", "text": news[k]})
    return rows


# ---------------------------------------------------------------------------------- state
@dataclass
class LearnState:
    """Everything the state file says about a learning run (latest record of each kind wins)."""

    path: Path
    header: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    outcomes: dict[str, PairOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    structure: dict[str, Any] | None = None


def read_learn_state(path: str | Path) -> LearnState:
    """Read a learning state file (raises :class:`ReportError` when it holds none)."""
    state = LearnState(Path(path))
    for record in iter_records(path):
        kind = record.get("kind")
        if kind == "header" and state.header is None:
            state.header = record
        elif kind == RUN_RECORD:
            state.run = record
        elif kind == "structure":
            state.structure = record
        elif kind == "pair" and record.get("id") is not None:
            try:
                outcome = PairOutcome.model_validate(record)
            except ValueError:
                continue
            state.outcomes[outcome.id] = outcome
            state.errors.pop(outcome.id, None)
        elif kind == "error" and record.get("id") is not None:
            state.errors[str(record["id"])] = str(record.get("message"))
            state.outcomes.pop(str(record["id"]), None)
    if state.header is None:
        raise ReportError(f"{path}: not a learning state (no header record)")
    return state


def _seed_pairs(run: dict[str, Any] | None, given: SeedSet | None = None) -> tuple[dict[str, Any], str | None]:
    """Seed pairs by id: ``given``, or read again from the file the run learned from (or a note why not)."""
    if given is not None:
        return {p.id: p for p in given.pairs}, None
    if not run or not (run.get("seed_file") or run.get("dataset")):
        return {}, "the state does not name its seed file (written by an older arrpo or the Python API)"
    from arrpo.datasets.seeds import read_seed_dataset, read_seeds

    try:
        if run.get("dataset"):
            seeds = read_seed_dataset(run["dataset"], task=run.get("task"), images_root=run.get("images"),
                                      options=run.get("dataset_options") or {}, seed=run.get("seed") or 0)
        else:
            seeds = read_seeds(run["seed_file"], task=run.get("task"), format=run.get("format") or "auto",
                               images_root=run.get("images"), seed=run.get("seed") or 0, check_files=False)
    except Exception as exc:  # a moved or edited seed file must not stop the report
        return {}, f"could not read the seed file again ({exc}); images and prompts are missing"
    return {p.id: p for p in seeds.pairs}, None


def thumbnail_url(image: Any) -> str | None:
    """A JPEG thumbnail (at most :data:`THUMB_SIZE` pixels on its longer side) as a data URL; None
    when the image cannot be read. JPEGs are decoded at a reduced scale (PIL's draft mode), which
    makes a 100-pair report several times faster to write than decoding full-size images."""
    if image is None:
        return None
    import io

    from PIL import Image

    from arrpo.images import DEFAULT_MAX_IMAGE_PIXELS

    try:
        data = getattr(image, "data", None)  # an ImageRef with embedded bytes, a path, or an ImageRef path
        source = io.BytesIO(data) if data is not None else Path(getattr(image, "path", None) or image)
        with Image.open(source) as opened:
            if opened.width * opened.height > DEFAULT_MAX_IMAGE_PIXELS:
                return None  # a decompression bomb is not thumbnailed
            opened.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
            small = opened.convert("RGB")
            small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=78, optimize=True)
    except Exception:  # a missing, truncated or unreadable file shows as "no image"
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _anchor(index: int) -> str:
    return f"pair-{index}"


def _attempt_rows(outcome: PairOutcome) -> list[dict[str, Any]]:
    rows = []
    previous: list[str] | None = None
    for number, attempt in enumerate(outcome.attempts):
        answers = attempt.answers or [
            {"order": order, "winner": attempt.winner, "reason": attempt.reason, "invalid_reason": attempt.invalid_reason}
            for order in attempt.orders
        ]
        rows.append({
            "number": number,
            "label": "generated criteria" if number == 0 else f"refinement {number}",
            "criteria": attempt.criteria,
            "diff": criteria_diff(previous, attempt.criteria) if previous is not None else None,
            "answers": [a if isinstance(a, dict) else a.model_dump() for a in answers],
            "winner": attempt.winner,
            "correct": attempt.correct,
            "orders_agree": attempt.orders_agree,
        })
        previous = attempt.criteria
    return rows


def build_context(state: LearnState, rubric: Rubric | None, seeds: SeedSet | None = None) -> dict[str, Any]:
    """The values the report template shows (public so tests and other tools can use them).

    ``seeds``: the pairs learned from (default: read again from the seed file the state names).
    """
    run = state.run or {}
    by_id, seed_note = _seed_pairs(state.run, seeds)
    ids: list[str] = list(run.get("learn_ids") or [])
    if not ids and seeds is not None:
        ids = [p.id for p in seeds.pairs]
    elif not ids:
        known = set(state.outcomes) | set(state.errors)
        ids = [i for i in by_id if i in known] + sorted(known - set(by_id))
    anchors = {pair_id: _anchor(i) for i, pair_id in enumerate(ids)}
    cards = []
    for pair_id in ids:
        seed = by_id.get(pair_id)
        outcome = state.outcomes.get(pair_id)
        status = outcome.status if outcome else ("failed" if pair_id in state.errors else "not_run")
        cards.append({
            "id": pair_id,
            "anchor": anchors[pair_id],
            "status": status,
            "status_text": STATUS_TEXT[status],
            "task": seed.task if seed else run.get("task", "?"),
            "subset": str(getattr(seed, "subset", None) or "all") if seed else "all",
            "prompt": seed.prompt if seed else None,
            "preferred": seed.preferred if seed else None,
            "thumb_a": thumbnail_url(seed.image_a) if seed else None,
            "thumb_b": thumbnail_url(seed.image_b) if seed else None,
            "thumb_source": thumbnail_url(seed.source) if seed and seed.source else None,
            "attempts": _attempt_rows(outcome) if outcome else [],
            "criteria": outcome.criteria if outcome else [],
            "rejected": outcome.rejected if outcome else [],
            "note": outcome.note if outcome else state.errors.get(pair_id),
            "calls": outcome.calls if outcome else 0,
            "tokens": outcome.usage.total_tokens if outcome else 0,
        })
    outcomes = [state.outcomes[i] for i in ids if i in state.outcomes]
    failed = sum(1 for i in ids if i in state.errors)
    summary = LearnSummary.of(len(ids), outcomes, failed=failed)
    return {
        "title": Path(run["rubric"]).name if run.get("rubric") else state.path.name,
        "state_path": str(state.path),
        "fingerprint": (state.header or {}).get("fingerprint", {}),
        "run": run,
        "seed_note": seed_note,
        "summary": summary,
        "structure_calls": (state.structure or {}).get("calls", 0),
        "structure_tokens": sum((state.structure or {}).get("usage", {}).values()),
        "themes": _themes(rubric, state.structure, anchors),
        "structure_method": (state.structure or {}).get("method"),
        "rubric": rubric,
        "cards": cards,
        "statuses": [s for s in STATUS_TEXT if any(c["status"] == s for c in cards)],
        "status_text": STATUS_TEXT,
        "tasks": sorted({c["task"] for c in cards}),
        "subsets": sorted({c["subset"] for c in cards}),
        "holdout": _holdout(rubric),
    }


def _links(numbers: list[int] | None, criteria: dict[int, dict[str, Any]], anchors: dict[str, str]) -> list[dict[str, str]] | None:
    if numbers is None:
        return None
    pair_ids: list[str] = []
    for number in numbers:
        for pair_id in criteria.get(number, {}).get("pairs", []):
            if pair_id not in pair_ids:
                pair_ids.append(pair_id)
    return [{"id": p, "anchor": anchors[p]} for p in pair_ids if p in anchors]


def _themes(rubric: Rubric | None, structure: dict[str, Any] | None, anchors: dict[str, str]) -> list[dict[str, Any]]:
    if rubric is None:
        return []
    recorded = {t.get("theme"): t for t in (structure or {}).get("themes", [])}
    criteria = {c["n"]: c for c in (structure or {}).get("criteria", [])}
    themes = []
    for theme in rubric.themes:
        record = recorded.get(theme.theme, {})
        tip_records = {t.get("tip"): t.get("sources") for t in record.get("tips", [])}
        themes.append({
            "theme": theme.theme,
            "links": _links(record.get("sources"), criteria, anchors) if not theme.tips else None,
            "tips": [{"tip": tip, "links": _links(tip_records.get(tip), criteria, anchors)} for tip in theme.tips],
        })
    return themes


def _holdout(rubric: Rubric | None) -> dict[str, Any] | None:
    held = rubric.provenance.holdout if rubric else None
    if not isinstance(held, dict) or not held.get("judges"):
        return None
    from arrpo.html.plots import grouped_bars

    judges = held["judges"]
    groups = ["forward", "reverse", "mean", "consistency"]
    chart = grouped_bars(f"Held-out accuracy ({held.get('pairs')} pairs, both orders)", groups,
                         {name: [values.get(g, float("nan")) for g in groups] for name, values in judges.items()})
    return {**held, "chart": chart}


def _pct(value: Any) -> str:
    if value is None or value != value:
        return "–"
    return f"{100 * value:.1f}"


def render_report(state: LearnState, rubric: Rubric | None, seeds: SeedSet | None = None) -> str:
    """The report's HTML."""
    context = build_context(state, rubric, seeds)
    return html_environment("arrpo.rubrics", trim=True).get_template("learn_report.html.j2").render(pct=_pct, **context)


def write_learn_report(
    state_path: str | Path,
    *,
    out: str | Path | None = None,
    rubric: Rubric | None = None,
    seeds: SeedSet | None = None,
) -> Path:
    """Write ``report.html`` beside the rubric the state belongs to (or to ``out``); returns its path.

    After ``arrpo rubric learn`` the state names the rubric and the seed file. From the Python API
    (:meth:`RubricLearner.learn`) pass ``rubric`` and ``seeds`` (and ``out``) yourself.
    """
    state = read_learn_state(state_path)
    rubric_path = _rubric_of(state)
    if rubric is None and rubric_path is not None and rubric_path.exists():
        try:
            rubric = Rubric.load(rubric_path)
        except ValueError:
            rubric = None
    target = Path(out) if out else (rubric_path.parent if rubric_path else state.path.parent) / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    # what a model wrote may hold lone surrogates (an escape cut short): U+FFFD, never a crash
    tmp.write_text(valid_utf8(render_report(state, rubric, seeds)), encoding="utf-8")
    tmp.replace(target)
    return target


def _rubric_of(state: LearnState) -> Path | None:
    """The rubric file a state belongs to, where it is now.

    The state records the rubric's path at learning time. A folder that was copied or moved
    (another machine, an archive) still holds the rubric under its name beside the state: that one
    wins, so the report is written into the folder asked about, never into the old location. A
    recorded rubric that is gone leaves the report beside the state file.
    """
    recorded = Path(state.run["rubric"]) if state.run and state.run.get("rubric") else None
    if recorded is None:
        return None
    beside = state.path.parent / recorded.name
    if beside.exists() or not recorded.exists():
        return beside
    return recorded
