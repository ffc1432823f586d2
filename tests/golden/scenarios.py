"""The scenarios of the behaviour snapshot: their inputs (built from ``../shared/data``), how each
is run, and what of its output is compared. The command lines and config files themselves are in
``test_behaviour_snapshot.py`` (``COMMANDS``, ``JUDGES_YAML``, ``TRAIN_CONFIG``)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from arrpo.testing.scripted_server import ScriptedVLMServer

from .golden_vlm import fingerprint, golden_vlm
from .snapshot import (
    INPUTS,
    TRAIN_TIMES,
    Places,
    command_argv,
    library_versions,
    normalise,
    read_jsonl,
    read_tree,
    request_summary,
    run_cli,
)

#: MJ-Bench pairs of the pair file: (subset, caption file, indices).
_T2I = (("human", "captions_human.json", range(0, 6)), ("objects_indoor", "captions_objects.json", range(0, 6)))
#: MJ-Bench face pairs turned into edits: the source is the face-damaged image, the instruction asks
#: to repair it, the candidates are the original and the unchanged damaged image.
_EDITS = range(6, 10)
#: ImageReward example: (better, worse) by the human ranking 1 > 2 > 3 > 4, both A/B placements.
_IMAGEREWARD = ((1, 2), (3, 1), (2, 4), (4, 3))
#: Prompts of the training run: the first captions of the MJ-Bench human subset.
TRAIN_PROMPTS = 4


def _captions(data: Path, subset: str, file: str) -> list[dict]:
    return json.loads((data / "mjbench-artifacts" / subset / file).read_text(encoding="utf-8"))


def write_pair_file(data: Path, work: Path) -> Path:
    """The pair file of ``arrpo judge --pairs``: MJ-Bench T2I pairs, MJ-Bench faces as edits, the
    ImageReward example's pairs and one file that is not an image; paths relative to ``--images data``."""
    lines = []
    for subset, file, indices in _T2I:
        rows = _captions(data, subset, file)
        for n in indices:
            row = rows[n]
            original, edited = (f"mjbench-artifacts/{subset}/{row[k]}" for k in ("image_0", "image_1"))
            a, b = (original, edited) if n % 2 == 0 else (edited, original)
            lines.append({"id": f"mj-{subset}-{n}", "prompt": row["caption"], "image_a": a, "image_b": b})
    rows = _captions(data, "human", "captions_human.json")
    for n in _EDITS:
        row = rows[n]
        original, damaged = (f"mjbench-artifacts/human/{row[k]}" for k in ("image_0", "image_1"))
        a, b = (original, damaged) if n % 2 else (damaged, original)
        lines.append({"id": f"edit-face-{n}", "task": "edit", "instruction": "repair the distorted face",
                      "source": damaged, "image_a": a, "image_b": b})
    prompt = json.loads((data / "imagereward-example" / "labels.json").read_text(encoding="utf-8"))["prompt"]
    for better, worse in _IMAGEREWARD:
        lines.append({"id": f"imagereward-{better}v{worse}", "caption": prompt,
                      "image_a": f"imagereward-example/{better}.webp", "image_b": f"imagereward-example/{worse}.webp"})
    broken = work / "broken.jpg"  # not an image: arrpo's own message, whatever Pillow's version says
    broken.write_bytes(b"this is not a JPEG file\n" * 40)
    lines.append({"id": "broken-image", "prompt": "a file that is not an image", "image_a": str(broken),
                  "image_b": "mjbench-artifacts/human/human_1.jpg"})
    path = work / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def write_train_prompts(data: Path, work: Path) -> Path:
    rows = _captions(data, "human", "captions_human.json")[:TRAIN_PROMPTS]
    path = work / "train-prompts.txt"
    path.write_text("".join(row["caption"] + "\n" for row in rows), encoding="utf-8")
    return path


@dataclasses.dataclass
class Inputs:
    """Everything the command table's placeholders name, built once per session."""

    work: Path
    data: Path
    values: dict[str, str]

    def places(self, endpoint: str | None = None) -> Places:
        return Places(self.work, self.data, endpoint)


def build_inputs(work: Path, data: Path, tiny: Path | None = None) -> Inputs:
    """Write the pair file and the training prompts into ``work``; ``tiny`` is a saved tiny SD3
    pipeline (built on first use by a scenario that names ``{tiny}`` when not given)."""
    work.mkdir(parents=True, exist_ok=True)
    values = {
        "data": str(data),
        "mjbench": str(data / "mjbench-artifacts"),
        "seeds": str(data / "mjbench-artifacts" / "human" / "captions_human.json"),
        "pairs": str(write_pair_file(data, work)),
        "rubric": str(INPUTS / "t2i-rubric.json"),
        "prompts": str(write_train_prompts(data, work)),
        **({"tiny": str(tiny)} if tiny else {}),
    }  # plus, per run: endpoint (each scenario has its own server), out, config
    return Inputs(work, data, values)


def _write_config(template: str, values: dict[str, str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.format(**values), encoding="utf-8")
    return path


@contextmanager
def spy_everywhere(module: Any, name: str, calls: list) -> Iterator[None]:
    """Record every call of ``module.name`` (its arguments by parameter name, defaults filled in,
    so positional and keyword calls record alike; and its result), wherever the function is bound:
    modules that imported it by name are patched too, and later imports get the spy."""
    import inspect

    original = getattr(module, name)
    signature = inspect.signature(original)

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append({"arguments": dict(bound.arguments), "result": result})
        return result

    patched = []
    for mod in list(sys.modules.values()):
        namespace = getattr(mod, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if value is original:
                setattr(mod, key, spy)
                patched.append((mod, key))
    try:
        yield
    finally:
        for mod, key in patched:
            setattr(mod, key, original)
        for mod in list(sys.modules.values()):  # modules imported while spying
            namespace = getattr(mod, "__dict__", None)
            if isinstance(namespace, dict):
                for key, value in list(namespace.items()):
                    if value is spy:
                        setattr(mod, key, original)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {**dataclasses.asdict(value), **({"masked": value.masked} if hasattr(value, "masked") else {})}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def lora_summary(path: Path) -> dict:
    """Per tensor of a LoRA safetensors file: shape, dtype, sum and sum of squares (compared with a
    tolerance; the bytes are not compared)."""
    from safetensors.torch import load_file

    summary = {}
    for key, tensor in sorted(load_file(str(path)).items()):
        t = tensor.double()
        summary[key] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype),
                        "sum": float(t.sum()), "sum_sq": float((t * t).sum())}
    return summary


# ------------------------------------------------------------------------------- scenarios
@dataclasses.dataclass
class Scenario:
    """How one row of the command table is run and read back."""

    name: str
    template: str
    collect: Callable[[Path, Inputs, Places], dict]
    config: tuple[str, str] | None = None  # (file name, template) written before the run
    image_hashes: bool = True  # False: images are generated (training), hashes are float-sensitive
    spy: tuple[Any, str] | None = None


def collect_tree(html_tokens: Callable[[Path, Inputs], list[str]] = lambda out, inputs: []) -> Callable[[Path, Inputs, Places], dict]:
    def collect(out: Path, inputs: Inputs, places: Places) -> dict:
        return read_tree(out, places, html_tokens(out, inputs))

    return collect


def _report_numbers(run: Path) -> list[str]:
    """Each judge's overall accuracies as an eval report prints them ("62.5")."""
    path = run / "metrics.json"
    if not path.exists():
        return []
    judges = json.loads(path.read_text(encoding="utf-8")).get("judges", {})
    return [f"{100 * value:.1f}" for judge in judges.values()
            for key, value in judge.get("overall", {}).get("values", {}).items()
            if key in ("forward", "reverse", "mean") and isinstance(value, float)]


def _eval_tokens(out: Path, inputs: Inputs) -> list[str]:
    run = out / "run"
    ids = [r["id"] for r in read_jsonl(run / "pairs.jsonl")] if (run / "pairs.jsonl").exists() else []
    return [*ids, "direct", "arr", "arr-prompt", *_report_numbers(run)]


def _learn_tokens(out: Path, inputs: Inputs) -> list[str]:
    state = out / "rubric.json.state.jsonl"
    ids = [str(r["id"]) for r in read_jsonl(state) if r.get("id") is not None] if state.exists() else []
    return [*ids, "learned", "direct", "zero-shot", "passed_first", "refined", "dropped",
            *_report_numbers(out / "rubric.holdout")]


def collect_train(out: Path, inputs: Inputs, places: Places) -> dict:
    """The training run: files, metrics (durations masked), gallery captions, configs and LoRA
    tensors (summaries), compared by the test with a tolerance where CPU floats may differ."""
    run = out / "run"
    tree = read_tree(run, places, [], skip=lambda name: name.endswith("metrics.jsonl"))
    metrics = []
    for record in read_jsonl(run / "metrics.jsonl"):
        metrics.append({k: "<masked>" if TRAIN_TIMES.match(k) else v for k, v in record.items()})
    tree["contents"]["metrics.jsonl"] = metrics
    tree["lora"] = {p.relative_to(run).as_posix(): lora_summary(p) for p in sorted(run.rglob("*.safetensors"))}
    tree["environment"] = library_versions()
    return tree


def run_scenario(scenario: Scenario, inputs: Inputs, vlm_options: str) -> dict:
    """Run one scenario against a fresh scripted server; its snapshot (normalised)."""
    out = inputs.work / "out" / scenario.name
    out.mkdir(parents=True, exist_ok=False)
    if "{tiny}" in scenario.template + (scenario.config[1] if scenario.config else "") and "tiny" not in inputs.values:
        from arrpo.rl.tiny import save_tiny_pipeline

        inputs.values["tiny"] = str(save_tiny_pipeline("sd3", inputs.work / "tiny-sd3", seed=0))
    calls: list = []
    with ScriptedVLMServer(golden_vlm) as server:
        values = {**inputs.values, "endpoint": server.base_url, "out": str(out)}
        if scenario.config is not None:
            file, template = scenario.config
            values["config"] = str(_write_config(template, values, out.parent / f"{scenario.name}-{file}"))
        template = scenario.template.replace("{vlm}", vlm_options)
        argv = command_argv(template, values)
        if scenario.spy is not None:
            with spy_everywhere(*scenario.spy, calls):
                code, output = run_cli(argv)
        else:
            code, output = run_cli(argv)
        seen = list(server.seen)
        places = inputs.places(server.base_url)
    snapshot = {"exit_code": code, **scenario.collect(out, inputs, places),
                "requests": request_summary(seen, fingerprint, image_hashes=scenario.image_hashes)}
    if scenario.spy is not None:
        snapshot["spied_calls"] = _jsonable(calls)
    snapshot = normalise(snapshot, places)
    snapshot["_output_tail"] = places.text(output[-3000:])  # not compared: helps reading a failure
    return snapshot
