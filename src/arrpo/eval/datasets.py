"""Dataset adapters: upstream benchmark files in, one stream of :class:`PreferencePair` out.

Each adapter reads a benchmark in the layout its authors publish and resolves image paths
against a user-supplied image root (default: the folder of the dataset file). Choose one with a
``KIND:PATH`` spec, e.g. ``mmrb2:benchmark/t2i.json`` (see :data:`ADAPTERS` and
``docs/evaluation.md``).

Benchmarks that are only distributed as Hugging Face datasets (GenAI-Bench, EditReward-Bench)
are read row by row from a JSON/JSONL export with the upstream column names, or from a local
Hugging Face dataset directory when ``datasets`` or ``pyarrow`` is installed (neither is a
dependency of arrpo; without them a directory gives a clear error saying what to install).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from arrpo.errors import ArrpoError
from arrpo.eval.pairs import ImageRef, Label, PreferencePair, randomise_ab


class DatasetError(ArrpoError, ValueError, kind="dataset"):
    """A dataset file cannot be read as the kind it was given as; the message says why."""


class DatasetOptions(BaseModel):
    """Adapter options (``--dataset-option key=value`` on the command line).

    ``None`` means the adapter's own default (documented per adapter).
    """

    seed: int = Field(0, description="Seed of the deterministic A/B randomisation.")
    randomise_ab: bool | None = Field(None, description="Swap A/B for half the pairs by id hash.")
    drop_ties: bool | None = Field(None, description="Leave out pairs whose human label is a tie.")
    subset_field: str | None = Field(None, description="Upstream field to use as the subset.")
    split: str | None = Field(None, description="Split of a Hugging Face dataset directory.")
    all_groups: bool = Field(False, description="EditReward-Bench: read the 3- and 4-candidate groups too (default K=2 only).")


Adapter = Callable[[Path, "Path | None", DatasetOptions], Iterator[PreferencePair]]


# --------------------------------------------------------------------------- reading helpers
def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON file (a list, or an object holding a list under ``pairs``/``data``) or JSONL."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix == ".jsonl" or (stripped.startswith("{") and "\n{" in stripped and not _is_json(text)):
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object per line")
            records.append(record)
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        for key in ("pairs", "data", "rows", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a list of JSON objects")
    return data


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def read_rows(path: Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a table: a JSON/JSONL export, a CSV file, or a local Hugging Face dataset directory."""
    if path.is_dir():
        yield from read_hf_directory(path, split)
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
    elif path.suffix == ".parquet":
        yield from _parquet_rows([path])
    else:
        yield from read_records(path)


def read_hf_directory(path: Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a local Hugging Face dataset directory (``save_to_disk`` output or parquet files).

    Uses ``datasets`` when installed, else ``pyarrow``; with neither, raises :class:`DatasetError`
    saying what to install or how to export the rows to JSONL instead.
    """
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        datasets = None
    if datasets is not None:
        yield from _rows_with_datasets(datasets, path, split)
        return
    try:
        import pyarrow  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        raise DatasetError(
            f"{path} is a Hugging Face dataset directory; reading it needs the 'datasets' or "
            "'pyarrow' package, and neither is installed. Install one (pip install pyarrow), or "
            "export the rows to JSONL with image columns as file paths and pass that file instead."
        ) from None
    parquet = sorted(path.rglob("*.parquet"))
    arrow = sorted(path.rglob("*.arrow"))
    if split:
        parquet = [p for p in parquet if split in p.relative_to(path).as_posix()]
        arrow = [p for p in arrow if split in p.relative_to(path).as_posix()]
    if parquet:
        yield from _parquet_rows(parquet)
    elif arrow:
        yield from _arrow_rows(arrow)
    else:
        raise DatasetError(f"{path}: no .parquet or .arrow files found" + (f" for split {split!r}" if split else ""))


def _rows_with_datasets(datasets: Any, path: Path, split: str | None) -> Iterator[dict[str, Any]]:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = datasets.load_from_disk(str(path))
    else:
        loaded = datasets.load_dataset(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise DatasetError(f"{path}: choose a split with split=NAME (has {sorted(loaded)})")
            split = next(iter(loaded))
        loaded = loaded[split]
    for name, feature in loaded.features.items():
        if isinstance(feature, datasets.Image):
            loaded = loaded.cast_column(name, datasets.Image(decode=False))
    yield from loaded


def _parquet_rows(files: list[Path]) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        raise DatasetError("reading parquet files needs 'pyarrow' (pip install pyarrow)") from None
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def _arrow_rows(files: list[Path]) -> Iterator[dict[str, Any]]:
    import pyarrow as pa  # type: ignore[import-not-found]

    for file in files:
        with pa.memory_map(str(file)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(source)
            for batch in reader:
                yield from batch.to_pylist()


def resolve_path(name: str, bases: Iterable[Path]) -> str:
    """The first existing ``base/name`` (absolute names are kept); the first candidate if none exists."""
    path = Path(name)
    if path.is_absolute():
        return str(path)
    candidates = [base / path for base in bases]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return str(candidates[0] if candidates else path)


def image_cell(value: Any, bases: list[Path], what: str) -> ImageRef:
    """An image from a table cell: a path, ``{"bytes", "path"}`` (Hugging Face), raw bytes or a PIL image."""
    if isinstance(value, str) and value:
        return ImageRef(path=resolve_path(value, bases))
    if isinstance(value, (bytes, bytearray)):
        return ImageRef(data=bytes(value))
    if isinstance(value, dict):
        data = value.get("bytes")
        if isinstance(data, str):
            data = base64.b64decode(data)
        if data:
            return ImageRef(data=bytes(data), path=value.get("path") or None)
        if value.get("path"):
            return ImageRef(path=resolve_path(value["path"], bases))
    if hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return ImageRef(data=buffer.getvalue())
    raise DatasetError(f"{what}: no usable image (got {type(value).__name__})")


def _bases(path: Path, images: Path | None) -> list[Path]:
    folder = path if path.is_dir() else path.parent
    return [images, folder] if images is not None else [folder]


def _short_hash(*parts: Any) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:12]


def _subset(record: dict[str, Any], options: DatasetOptions, default: str) -> str:
    if options.subset_field:
        value = record.get(options.subset_field)
        return str(value) if value not in (None, "") else default
    return default


def _finish(pair: PreferencePair, options: DatasetOptions, randomise_default: bool) -> PreferencePair:
    randomise = options.randomise_ab if options.randomise_ab is not None else randomise_default
    return randomise_ab(pair, options.seed) if randomise else pair


# ------------------------------------------------------------------------------------ adapters
_PROMPT_KEYS = ("prompt", "instruction", "caption")
_LABELS: dict[str, Label] = {
    "a": "A", "b": "B", "tie": "tie", "1": "A", "2": "B", "0": "tie", "=": "tie", "image_a": "A", "image_b": "B",
}


def _generic_label(value: Any, where: str) -> Label:
    label = _LABELS.get(str(value).strip().lower())
    if label is None:
        raise DatasetError(f"{where}: label must be A, B or tie (got {value!r})")
    return label


def _generic_rows(rows: Iterable[dict[str, Any]], path: Path, images: Path | None,
                  options: DatasetOptions) -> Iterator[PreferencePair]:
    bases = _bases(path, images)
    for number, row in enumerate(rows, start=1):
        where = f"{path}: record {number}"
        prompt = next((row[k] for k in _PROMPT_KEYS if row.get(k)), None)
        if prompt is None:
            raise DatasetError(f"{where}: needs a prompt (or instruction/caption)")
        for key in ("image_a", "image_b", "label"):
            if row.get(key) in (None, ""):
                raise DatasetError(f"{where}: missing {key!r}")
        source = row.get("source") or None
        label = _generic_label(row["label"], where)
        if label == "tie" and options.drop_ties:
            continue
        task = row.get("task") or ("edit" if source else "t2i")
        yield PreferencePair(
            id=str(row.get("id") or f"{number}"),
            task=task,
            prompt=str(prompt),
            image_a=image_cell(row["image_a"], bases, f"{where} image_a"),
            image_b=image_cell(row["image_b"], bases, f"{where} image_b"),
            source=image_cell(source, bases, f"{where} source") if source else None,
            label=label,
            subset=str(row.get(options.subset_field or "subset") or "all"),
        )


def generic(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """Generic JSONL/JSON/CSV: ``id, prompt, image_a, image_b, label[, source, task, subset]``."""
    yield from _generic_rows(read_rows(path), path, images, options)


def hf_directory(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """A local Hugging Face dataset directory with the generic columns."""
    if not path.is_dir():
        raise DatasetError(f"{path}: the 'hf' kind takes a Hugging Face dataset directory")
    yield from _generic_rows(read_hf_directory(path, options.split), path, images, options)


def mmrb2(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """MMRB2 ``t2i.json`` / ``edit.json``: ``{"pairs": [...]}`` with ``chosen`` A/B.

    Responses are ``response_content`` lists of ``[type, value]``; the first image is used. A prompt
    with input images is an edit whose source is the first input image (``meta.input_images``
    counts them). Subset: ``prompt_source``.
    """
    bases = _bases(path, images)
    for number, item in enumerate(read_records(path), start=1):
        where = f"{path}: pair {number}"
        chosen = item.get("chosen") or item.get("human_preference")
        if chosen not in ("A", "B"):
            raise DatasetError(f"{where}: 'chosen' must be A or B (got {chosen!r})")
        texts, inputs = _content(item.get("prompt_content") or [])
        answer_a = _first_image(item.get("response_a") or {})
        answer_b = _first_image(item.get("response_b") or {})
        if answer_a is None or answer_b is None:
            raise DatasetError(f"{where}: a response has no image (only image responses are supported)")
        pid = str(item.get("id") or item.get("pair_id") or number)
        yield PreferencePair(
            id=pid,
            task="edit" if inputs else "t2i",
            prompt="\n".join(texts),
            image_a=ImageRef(path=resolve_path(answer_a, bases)),
            image_b=ImageRef(path=resolve_path(answer_b, bases)),
            source=ImageRef(path=resolve_path(inputs[0], bases)) if inputs else None,
            label=chosen,
            subset=_subset(item, options, str(item.get("prompt_source") or "mmrb2")),
            meta={
                "model_a": (item.get("response_a") or {}).get("model_name"),
                "model_b": (item.get("response_b") or {}).get("model_name"),
                "input_images": len(inputs),
            },
        )


def _content(parts: list) -> tuple[list[str], list[str]]:
    texts, images = [], []
    for part in parts:
        if isinstance(part, (list, tuple)) and len(part) == 2:
            kind, value = part
            (images if kind == "image" else texts).append(str(value))
    return texts, images


def _first_image(response: dict) -> str | None:
    _, images = _content(response.get("response_content") or [])
    return images[0] if images else None


def hpdv3(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """HPDv3 test pairs: ``prompt, path1 (preferred), path2[, model1, model2, confidence, choice_dist]``.

    ``path1`` is always the preferred image, so A/B is randomised by default.
    """
    bases = _bases(path, images)
    for number, item in enumerate(read_records(path), start=1):
        where = f"{path}: record {number}"
        for key in ("prompt", "path1", "path2"):
            if not item.get(key):
                raise DatasetError(f"{where}: missing {key!r}")
        pair = PreferencePair(
            id=f"{number}-{_short_hash(item['prompt'], item['path1'], item['path2'])}",
            prompt=item["prompt"],
            image_a=ImageRef(path=resolve_path(item["path1"], bases)),
            image_b=ImageRef(path=resolve_path(item["path2"], bases)),
            label="A",
            subset=_subset(item, options, "hpdv3"),
            meta={k: item.get(k) for k in ("model1", "model2", "confidence") if k in item},
        )
        yield _finish(pair, options, randomise_default=True)


_COMPARISON_TYPE = re.compile(r"\s*([A-Za-z])\s*_?\s*vs\.?\s*_?\s*([A-Za-z])\s*", re.I)


def _editreward_label(ranking: Any, comparison_type: Any, where: str) -> Label:
    """The label of one EditReward-Bench row.

    ``comparison_type`` ``XvsY`` says which group letters the row compares: ``candidate_1`` is X
    (upstream's "Left"), ``candidate_2`` is Y. So ``X>Y`` prefers candidate_1 (A), ``Y>X``
    candidate_2 (B), ``X=Y`` is a tie. K=2 rows compare A with B.
    """
    match = _COMPARISON_TYPE.fullmatch(str(comparison_type)) if comparison_type else None
    first, second = (match.group(1).upper(), match.group(2).upper()) if match else ("A", "B")
    text = str(ranking or "").replace(" ", "").upper()
    labels: dict[str, Label] = {f"{first}>{second}": "A", f"{second}>{first}": "B",
                                f"{first}={second}": "tie", f"{second}={first}": "tie"}
    if text not in labels:
        raise DatasetError(f"{where}: ranking {ranking!r} does not compare {first} with {second} "
                           f"(comparison_type {comparison_type!r})")
    return labels[text]


def editreward(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """TIGER EditReward-Bench rows: ``id, instruction, source_image, candidate_1, candidate_2,
    ranking, comparison_type, dataset``.

    ``dataset`` is the group size (``2pair``, ``3pair``, ``4pair``). Only K=2 rows are read unless
    ``all_groups`` is set; then every row of the 3- and 4-candidate groups is one pair too, its
    letters mapped to candidates by ``comparison_type`` (``AvsC``: candidate_1 is A, candidate_2 is
    C, so ``C>A`` prefers candidate_2). ``A=B`` is a tie, kept unless ``drop_ties``. Upstream's
    group-level score (every comparison of a group right) is not computed; ``meta.group`` names the
    group. Subset: ``subset_field``, else the group size.
    """
    bases = _bases(path, images)
    for number, row in enumerate(read_rows(path, options.split), start=1):
        where = f"{path}: row {number}"
        group = row.get("dataset")
        if group not in (None, "2pair") and not options.all_groups:
            continue
        label = _editreward_label(row.get("ranking"), row.get("comparison_type"), where)
        if label == "tie" and options.drop_ties:
            continue
        pair_id = str(row.get("id") if row.get("id") is not None else number)
        meta = {k: row.get(k) for k in ("model_1", "model_2", "score_1", "score_2", "dataset", "comparison_type")
                if k in row}
        meta["group"] = pair_id.split("_")[0]
        yield PreferencePair(
            id=pair_id,
            task="edit",
            prompt=str(row.get("instruction") or ""),
            image_a=image_cell(row.get("candidate_1"), bases, f"{where} candidate_1"),
            image_b=image_cell(row.get("candidate_2"), bases, f"{where} candidate_2"),
            source=image_cell(row.get("source_image"), bases, f"{where} source_image"),
            label=label,
            subset=_subset(row, options, str(group or "editreward")),
            meta=meta,
        )


def imagereward(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """ImageRewardDB test rankings (``id, prompt, generations[], ranking[]``; rank 1 = best) as pairs.

    Every two generations of a prompt make one pair (A = the earlier in ``generations``); the lower
    rank wins. Equal ranks are ties, dropped by default as in the upstream accuracy script.
    """
    bases = _bases(path, images)
    drop_ties = True if options.drop_ties is None else options.drop_ties
    for number, item in enumerate(read_records(path), start=1):
        where = f"{path}: item {number}"
        generations, ranking = item.get("generations"), item.get("ranking")
        if not isinstance(generations, list) or not isinstance(ranking, list) or len(generations) != len(ranking):
            raise DatasetError(f"{where}: 'generations' and 'ranking' must be lists of equal length")
        item_id = str(item.get("id") or number)
        for i in range(len(generations)):
            for j in range(i + 1, len(generations)):
                label: Label = "A" if ranking[i] < ranking[j] else "B" if ranking[i] > ranking[j] else "tie"
                if label == "tie" and drop_ties:
                    continue
                yield PreferencePair(
                    id=f"{item_id}:{i}-{j}",
                    prompt=str(item.get("prompt") or ""),
                    image_a=ImageRef(path=resolve_path(generations[i], bases)),
                    image_b=ImageRef(path=resolve_path(generations[j], bases)),
                    label=label,
                    subset=_subset(item, options, "imagereward"),
                    meta={"rank_a": ranking[i], "rank_b": ranking[j]},
                )


def mjbench(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """MJ-Bench caption files (``caption, image_0, image_1, label_0``), one file or a folder of them.

    ``label_0 == 1`` means ``image_0`` is preferred (true of every pair in the artifact subsets), so
    A/B is randomised by default. Subset: the caption file's folder name.
    """
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    root = path if path.is_dir() else path.parent
    if not files:
        raise DatasetError(f"{path}: no caption JSON files found")
    for file in files:
        folder = file.parent
        relative = folder.relative_to(root)
        bases = ([images / relative, images] if images is not None else []) + [folder]
        subset = relative.as_posix() if relative.parts else folder.name
        for number, item in enumerate(read_records(file), start=1):
            where = f"{file}: item {number}"
            for key in ("caption", "image_0", "image_1", "label_0"):
                if key not in item:
                    raise DatasetError(f"{where}: missing {key!r}")
            pair = PreferencePair(
                id=f"{subset}/{Path(item['image_0']).stem}",
                prompt=item["caption"],
                image_a=ImageRef(path=resolve_path(item["image_0"], bases)),
                image_b=ImageRef(path=resolve_path(item["image_1"], bases)),
                label="A" if int(item["label_0"]) == 1 else "B",
                subset=_subset(item, options, subset),
            )
            yield _finish(pair, options, randomise_default=True)


_GENAI_VOTES: dict[str, Label] = {"leftvote": "A", "rightvote": "B", "tievote": "tie", "bothbad_vote": "tie"}


def genai_bench(path: Path, images: Path | None, options: DatasetOptions) -> Iterator[PreferencePair]:
    """GenAI-Bench (GenAI-Arena votes), ``image_generation`` or ``image_edition`` rows.

    Generation: ``prompt, left_image, right_image, vote_type``; edition: ``instruct_prompt,
    source_image, left_output_image, right_output_image, vote_type``. ``leftvote``/``rightvote`` give
    A/B; ``tievote`` and ``bothbad_vote`` are ties (kept as ties unless ``drop_ties``).
    """
    bases = _bases(path, images)
    for number, row in enumerate(read_rows(path, options.split), start=1):
        where = f"{path}: row {number}"
        label = _GENAI_VOTES.get(str(row.get("vote_type")))
        if label is None:
            raise DatasetError(f"{where}: vote_type must be one of {sorted(_GENAI_VOTES)} (got {row.get('vote_type')!r})")
        if label == "tie" and options.drop_ties:
            continue
        edit = "left_output_image" in row
        if edit:
            task, prompt = "image_edition", row.get("instruct_prompt") or ""
            a, b = row.get("left_output_image"), row.get("right_output_image")
        else:
            task, prompt = "image_generation", row.get("prompt") or ""
            a, b = row.get("left_image"), row.get("right_image")
        yield PreferencePair(
            id=str(row.get("id") if row.get("id") is not None else f"{task}-{number - 1}"),
            task="edit" if edit else "t2i",
            prompt=str(prompt),
            image_a=image_cell(a, bases, f"{where} left image"),
            image_b=image_cell(b, bases, f"{where} right image"),
            source=image_cell(row.get("source_image"), bases, f"{where} source_image") if edit else None,
            label=label,
            subset=_subset(row, options, task),
            meta={k: row.get(k) for k in ("vote_type", "left_model", "right_model") if k in row},
        )


#: Dataset kinds accepted in ``KIND:PATH`` specs.
ADAPTERS: dict[str, Adapter] = {
    "jsonl": generic,
    "csv": generic,
    "hf": hf_directory,
    "mmrb2": mmrb2,
    "hpdv3": hpdv3,
    "editreward": editreward,
    "imagereward": imagereward,
    "mjbench": mjbench,
    "genai-bench": genai_bench,
}


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``KIND:PATH``; raises :class:`DatasetError` naming the known kinds."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise DatasetError(f"dataset must be KIND:PATH (kinds: {', '.join(ADAPTERS)}), got {spec!r}")
    if kind not in ADAPTERS:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(ADAPTERS)}")
    return kind, Path(rest).expanduser()


def load_pairs(
    spec: str,
    images: str | Path | None = None,
    options: DatasetOptions | dict[str, Any] | None = None,
    *,
    limit: int | None = None,
    sample: int | None = None,
) -> list[PreferencePair]:
    """All pairs of a dataset spec; ids are checked to be unique.

    ``limit`` keeps the first N pairs; ``sample`` keeps N pairs drawn with the options' seed
    (same seed, same pairs; dataset order kept).
    """
    kind, path = parse_spec(spec)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    opts = options if isinstance(options, DatasetOptions) else DatasetOptions(**(options or {}))
    root = Path(images).expanduser() if images is not None else None
    if root is not None and not root.is_dir():
        raise DatasetError(f"image root {root} is not a directory")
    pairs: list[PreferencePair] = []
    seen: set[str] = set()
    for pair in ADAPTERS[kind](path, root, opts):
        if pair.id in seen:
            raise DatasetError(f"{path}: duplicate pair id {pair.id!r}")
        seen.add(pair.id)
        pairs.append(pair)
        if limit is not None and len(pairs) >= limit:
            break
    if sample is not None and sample < len(pairs):
        keep = set(random.Random(opts.seed).sample(range(len(pairs)), sample))
        pairs = [p for i, p in enumerate(pairs) if i in keep]
    return pairs
