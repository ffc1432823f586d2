"""Reading back what a command wrote, masking what legitimately varies, and comparing it with the
committed snapshot (the scenarios themselves are in ``scenarios.py``).

What is masked (and nothing else):

* values of the keys in :data:`MASKED_KEYS` (latencies, wall-clock durations, dates), keeping the
  key, so a key that appears or disappears is still a difference;
* the cells of the Markdown table columns in :data:`MASKED_COLUMNS` (``summary.md``'s seconds per pair);
* ISO-8601 timestamps inside strings (:data:`_TIMESTAMP`);
* the temporary work folder, the shared data folder, the repository root and the scripted server's
  URL (a free port) inside strings (``<work>``, ``<data>``, ``<repo>``, ``<endpoint>``);
* TensorBoard event-file names (they carry the host name and the start time);
* training floats that CPU torch may not reproduce bit for bit: :data:`TRAIN_TOLERANT` fields of
  ``metrics.jsonl`` and the LoRA tensor summaries are compared with :data:`REL_TOL`/:data:`ABS_TOL`.

Binary outputs (thumbnails, plots, gallery PNGs, checkpoints) are compared by name only; HTML
reports by existence and by which pair ids, judge names and numbers they mention.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
INPUTS = Path(__file__).resolve().parent / "inputs"

#: Keys whose values vary from run to run: the value is replaced by "<masked>", the key is kept.
MASKED_KEYS = frozenset({
    "latency_s",  # verdicts and answers: seconds the model took
    "wall_s", "wall_s_per_pair",  # eval records, sessions and metrics: wall-clock seconds
    "created", "finished", "measured",  # rubric provenance, eval sessions, held-out results: dates
})
#: Columns of Markdown tables (summary.md) holding wall-clock figures: cells masked.
MASKED_COLUMNS = frozenset({"s/pair"})
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
#: metrics.jsonl fields of ``arrpo train`` compared with a tolerance (float noise of CPU torch).
TRAIN_TOLERANT = frozenset({"loss", "policy_loss", "kl", "ratio_mean", "ratio_min", "ratio_max", "grad_norm",
                            "advantage_mean"})
#: metrics.jsonl fields of ``arrpo train`` that are wall-clock durations (masked).
TRAIN_TIMES = re.compile(r"^time/")
REL_TOL = 1e-4
ABS_TOL = 1e-6
#: Library versions the training numbers depend on (the tiny pipeline's random init, kernels).
TRAIN_LIBRARIES = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "pillow", "numpy")


# ------------------------------------------------------------------------------- normalising
@dataclass
class Places:
    """Folders whose paths are replaced by placeholders in every string."""

    work: Path
    data: Path
    endpoint: str | None = None  # the scripted server's URL (its port is free-chosen)

    def text(self, value: str) -> str:
        if self.endpoint:
            value = value.replace(self.endpoint, "<endpoint>")
        for path, name in ((self.work, "<work>"), (self.data, "<data>"), (REPO, "<repo>")):
            for spelling in {str(path), str(path.resolve())}:
                value = value.replace(spelling, name)
        return _TIMESTAMP.sub("<timestamp>", value)


def normalise(value: Any, places: Places) -> Any:
    """``value`` with masked keys, timestamps and temporary paths replaced (see the module doc)."""
    if isinstance(value, dict):
        return {k: "<masked>" if k in MASKED_KEYS else normalise(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, places) for v in value]
    if isinstance(value, str):
        return places.text(value)
    return value


def mask_table_columns(text: str, columns: frozenset[str] = MASKED_COLUMNS) -> str:
    """Markdown ``text`` with the cells of the named table columns replaced by ``<masked>``."""
    out, masked = [], set()
    for line in text.split("\n"):
        if not line.startswith("|"):
            masked = set()
            out.append(line)
            continue
        cells = line.split("|")
        if not masked and any(c.strip() in columns for c in cells):
            masked = {n for n, c in enumerate(cells) if c.strip() in columns}
        elif not set(line) <= set("|-: "):
            cells = [" <masked> " if n in masked else c for n, c in enumerate(cells)]
        out.append("|".join(cells))
    return "\n".join(out)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def by_id(records: list[dict]) -> list[dict]:
    """Records appended in completion order (concurrent work) in a stable order: by id, and for
    one id in the order written (a resumed or retried id keeps its history); records without an
    id (a run record) first, in the order written."""
    return sorted(records, key=lambda r: (r.get("id") is not None, str(r.get("id"))))


def file_names(root: Path, places: Places) -> list[str]:
    """Every file under ``root`` (relative, sorted), TensorBoard event names masked."""
    names = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        name = re.sub(r"events\.out\.tfevents\.[^/]+$", "events.out.tfevents.<masked>", name)
        names.append(places.text(name))
    return names


def html_summary(path: Path, tokens: list[str]) -> dict:
    """An HTML report compared loosely: it exists, is not empty, and which of ``tokens`` it shows."""
    if not path.is_file():
        return {"exists": False}
    import html as html_lib

    text = html_lib.unescape(path.read_text(encoding="utf-8", errors="replace"))
    return {"exists": True, "non_empty": len(text) > 1000, "mentions": sorted({t for t in tokens if t in text})}


def read_output(path: Path, places: Places, html_tokens: list[str]) -> Any:
    """One written file as compared: JSON/JSONL/YAML/Markdown/text parsed, HTML loosely, binaries by name."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return normalise(json.loads(path.read_text(encoding="utf-8")), places)
    if suffix == ".jsonl":
        return normalise(by_id(read_jsonl(path)), places)
    if suffix in (".yaml", ".yml"):
        import yaml

        return normalise(yaml.safe_load(path.read_text(encoding="utf-8")), places)
    if suffix in (".md", ".txt"):
        return mask_table_columns(places.text(path.read_text(encoding="utf-8")))
    if suffix == ".html":
        return html_summary(path, html_tokens)
    return None  # binary: its name is in the file list


def read_tree(root: Path, places: Places, html_tokens: list[str], *, skip: Callable[[str], bool] = lambda n: False) -> dict:
    """The file list of ``root`` and the compared content of every text file in it."""
    names = file_names(root, places)
    contents = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = places.text(path.relative_to(root).as_posix())
        if skip(name):
            continue
        content = read_output(path, places, html_tokens)
        if content is not None:
            contents[name] = content
    return {"files": names, "contents": contents}


# ------------------------------------------------------------------------------- requests
def request_summary(seen: list, fingerprint: Callable, *, image_hashes: bool = True) -> dict:
    """What the server was asked, independent of arrival order: the number of requests per kind,
    the SHA-256 of every canonical request (sorted), and one full request per variant (kind, edit,
    rubric, re-ask; the first in sorted order) so a changed prompt shows as a readable diff."""
    canon = []
    for request in seen:
        printed = fingerprint(request)
        if not image_hashes:
            for message in printed["messages"]:
                for part in message.get("content") if isinstance(message.get("content"), list) else []:
                    if part.get("type") == "image":
                        part["sha256"] = "<generated>"
        canon.append((printed["variant"], json.dumps(printed, sort_keys=True, ensure_ascii=False), printed))
    canon.sort(key=lambda item: (item[0], item[1]))
    kinds: dict[str, int] = {}
    examples: dict[str, dict] = {}
    for variant, _, printed in canon:
        kinds[variant] = kinds.get(variant, 0) + 1
        examples.setdefault(variant, printed)
    return {
        "count": len(canon),
        "by_variant": kinds,
        "sha256": sorted(hashlib.sha256(text.encode()).hexdigest()[:20] for _, text, _ in canon),
        "examples": examples,
    }


# ------------------------------------------------------------------------------- running
def command_argv(template: str, values: dict[str, str]) -> list[str]:
    """One row of the command table with its placeholders filled in (values may hold spaces)."""
    return [token.format(**values) for token in shlex.split(template)]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``arrpo`` in this process through typer's CliRunner; returns (exit code, output)."""
    from typer.testing import CliRunner

    from arrpo.cli import app

    env = {k: None for k in os.environ if k.startswith(("ARRPO_", "OPENAI_"))}
    result = CliRunner().invoke(app, argv, env={**env, "COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(*result.exc_info))
        raise AssertionError(f"arrpo {' '.join(argv)} raised:\n{trace}\n{result.output}")
    return result.exit_code, result.output


# ------------------------------------------------------------------------------- comparing
@dataclass
class Diff:
    """The differences found, as readable lines (path: expected → actual)."""

    lines: list[str] = field(default_factory=list)
    parts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def add(self, where: str, message: str) -> None:
        self.total += 1
        part = _part(where)
        self.parts[part] = self.parts.get(part, 0) + 1
        if len(self.lines) < 5000:
            self.lines.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return self.total > 0

    def report(self, shown: int = 60) -> str:
        """Differences per part (file, request list, ...), then the first ``shown`` of them, those
        in records (JSONL: verdicts, states, metrics; rewards) first."""
        counts = "\n  ".join(f"{n:4d} in {part}" for part, n in self.parts.items())
        records_first = sorted(self.lines, key=_priority)
        detail = "\n  ".join(records_first[:shown])
        more = f"\n  … and {self.total - shown} more" if self.total > shown else ""
        return f"{self.total} differences:\n  {counts}\nfirst of them:\n  {detail}{more}"


def _priority(line: str) -> int:
    """Records (JSONL files, the rewards the trainer computed) first, tensor summaries last."""
    where = line.split(": ", 1)[0]
    return 0 if ".jsonl" in where or ".spied_calls" in where else 2 if ".lora[" in where else 1


def _part(where: str) -> str:
    """The file or section a difference is in: ``name.contents["<file>"]`` or ``name.<key>``."""
    found = re.match(r'[^.]+\.(?:contents|lora)\["[^"]*"\]', where)
    if found:
        return found.group(0)
    head, _, rest = where.partition(".")
    key = re.split(r"[.\[]", rest, maxsplit=1)[0]
    return f"{head}.{key}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + f"… ({len(text)} chars)"


def compare(expected: Any, actual: Any, where: str, diff: Diff, *, allowed_new: dict[str, str],
            tolerant: Callable[[str], bool] = lambda w: False) -> None:
    """Record every difference between ``expected`` and ``actual`` in ``diff``.

    Dict keys must match exactly, except that a key of ``allowed_new`` may be present in
    ``actual`` only (so may a string of it in a list of strings, e.g. a new file in a file list). Floats at paths where ``tolerant(path)`` is true are compared with
    :data:`REL_TOL`/:data:`ABS_TOL`; everything else exactly.
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key not in actual:
                diff.add(_at(where, key), f"missing (expected {_short(expected[key])})")
            else:
                compare(expected[key], actual[key], _at(where, key), diff, allowed_new=allowed_new, tolerant=tolerant)
        for key in actual:
            if key not in expected and key not in allowed_new:
                diff.add(_at(where, key), f"new key (value {_short(actual[key])}); list it in ALLOWED_NEW_KEYS "
                         "with a reason if the addition is deliberate")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if expected and actual and all(isinstance(v, str) for v in (*expected, *actual)):
            # a name of allowed_new (a deliberately added file) may stand in actual only
            actual = [v for v in actual if v in expected or v not in allowed_new]
            if expected != actual:  # file names, hashes, ids, criteria: say what came and went
                gone = [v for v in expected if v not in actual]
                new = [v for v in actual if v not in expected]
                if gone or new:
                    diff.add(where, f"only expected: {_short(gone)}; only found: {_short(new)}")
                else:
                    diff.add(where, f"same items in another order: {_short(expected)} → {_short(actual)}")
            return
        if len(expected) != len(actual):
            diff.add(where, f"{len(expected)} items expected, {len(actual)} found")
        for n, (e, a) in enumerate(zip(expected, actual, strict=False)):
            compare(e, a, f"{where}[{n}]", diff, allowed_new=allowed_new, tolerant=tolerant)
        return
    numbers = (int, float)
    if (isinstance(expected, float) or isinstance(actual, float)) and tolerant(where) \
            and isinstance(expected, numbers) and isinstance(actual, numbers) \
            and not isinstance(expected, bool) and not isinstance(actual, bool):
        if not math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            diff.add(where, f"{expected!r} → {actual!r} (beyond rel {REL_TOL}, abs {ABS_TOL})")
        return
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual \
            and max(len(expected), len(actual)) > 300:
        diff.add(where, _text_difference(expected, actual))
    elif type(expected) is not type(actual) or expected != actual:
        diff.add(where, f"{_short(expected)} → {_short(actual)}")


def _at(where: str, key: str) -> str:
    """``where.key``, or ``where["key"]`` for a key that is a file or tensor name."""
    return f"{where}.{key}" if re.fullmatch(r"[\w-]+", key) else f"{where}[{json.dumps(key, ensure_ascii=False)}]"


def _text_difference(expected: str, actual: str, context: int = 60) -> str:
    """Where two long texts first differ, with some context of each."""
    at = next((n for n, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b), min(len(expected), len(actual)))
    start = max(0, at - context)

    def window(text: str) -> str:
        return json.dumps(("…" if start else "") + text[start : at + context] + ("…" if len(text) > at + context else ""),
                          ensure_ascii=False)

    return f"texts differ at character {at}: {window(expected)} → {window(actual)}"


def load_snapshot(name: str) -> dict:
    path = SNAPSHOTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no snapshot {path}; make it with: python tests/golden/regenerate.py {name}")
    return json.loads(path.read_text(encoding="utf-8"))


def save_snapshot(name: str, snapshot: dict) -> Path:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    path = SNAPSHOTS / f"{name}.json"
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for name in TRAIN_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found
