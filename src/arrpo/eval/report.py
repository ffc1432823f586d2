"""Reports of a run directory: metrics JSON, a Markdown summary, SVG plots and one HTML page.

The HTML file is self-contained (thumbnails inlined as data URLs, no scripts or fonts fetched)
so it opens offline and can be mailed around.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrpo.errors import ReportError
from arrpo.eval.metrics import Summary, by_subset, evidence_summary, outcome_from_record, summarize
from arrpo.eval.rundir import EvalRecord, RunDir
from arrpo.html.plots import grouped_bars
from arrpo.html.templates import html_environment
from arrpo.html.thumbs import thumbnail_data_url
from arrpo.rubric import Rubric


@dataclass
class Report:
    """What :func:`write_report` wrote: the metrics, the summary text and the files."""

    metrics: dict[str, Any]
    summary: str
    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        """The path of one written file (``report["report.html"]``)."""
        return self.paths[name]


def load_run(run_dir: str | Path | RunDir) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, EvalRecord]]]:
    """(run info, pair manifest, judge → pair id → latest record)."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not run.run_json.exists():
        raise ReportError(f"{run.root} is not an arrpo eval run directory (no run.json)")
    info = json.loads(run.run_json.read_text(encoding="utf-8"))
    records = {j["name"]: run.records(j["name"]) for j in info.get("judges", [])}
    return info, run.pairs(), records


def compute_metrics(run_dir: str | Path | RunDir, *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Metrics per judge (overall and per subset) over the pairs of the manifest that were judged;
    for a judge with OCR evidence also ``evidence`` (:class:`~arrpo.eval.metrics.EvidenceSummary`)."""
    info, pairs, records = load_run(run_dir)
    ids = [p["id"] for p in pairs]
    specs = {j.get("name"): j for j in info.get("judges", []) if isinstance(j, dict)}
    result: dict[str, Any] = {"pairs": len(ids), "forward": info.get("forward"), "judges": {}}
    for judge, by_id in records.items():
        judged = [by_id[i] for i in ids if i in by_id]
        outcomes = [outcome_from_record(record) for record in judged]
        overall = summarize(outcomes, resamples=resamples, seed=seed)
        subsets = by_subset(outcomes, resamples=resamples, seed=seed)
        result["judges"][judge] = {
            "judged": len(outcomes),
            "overall": overall.to_dict(),
            "subsets": {k: v.to_dict() for k, v in subsets.items()},
        }
        evidence = evidence_summary(judged, policy_name(specs.get(judge, {})))
        if evidence is not None:
            result["judges"][judge]["evidence"] = evidence.to_dict()
    return result


def policy_name(spec: dict[str, Any]) -> str:
    """What decides with a judge's OCR evidence, as reports name it: ``evidence_only``, or its
    ``ocr_policy`` (``evidence``, ``tiebreak``, ``override``)."""
    return "evidence_only" if spec.get("evidence_only") else str(spec.get("ocr_policy") or "evidence")


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _ci(summary: dict[str, Any], name: str) -> str:
    low, high = summary.get("intervals", {}).get(name, (None, None))
    return "" if low is None else f" [{_pct(low)}, {_pct(high)}]"


def table_rows(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A judge's table rows: ``all`` (overall), then one per subset, unless a single subset holds
    every pair (it would only repeat the overall row)."""
    subsets = data["subsets"]
    if len(subsets) == 1 and next(iter(subsets.values()))["n"] == data["overall"]["n"]:
        return [("all", data["overall"])]
    return [("all", data["overall"]), *subsets.items()]


def markdown_summary(metrics: dict[str, Any]) -> str:
    """``summary.md``: :func:`summary_table` and the two plots."""
    return (summary_table(metrics)
            + "\n\n![accuracy per subset](accuracy_by_subset.svg)\n\n![forward vs reverse](forward_reverse.svg)\n")


def summary_table(metrics: dict[str, Any]) -> str:
    """The paper's table columns (forward, reverse, mean, Δ) plus consistency, ties, invalid and
    cost, under a title (Markdown; what ``arrpo eval`` prints); then :func:`evidence_table` when a
    judge has OCR evidence."""
    lines = [
        f"# arrpo eval: {metrics['pairs']} pairs (forward = {metrics.get('forward')})",
        "",
        "Accuracy in % over all pairs (invalid answers count as wrong); [95% bootstrap interval].",
        "",
        "| judge | subset | n | forward | reverse | mean | Δ (fwd−rev) | swap consistency | ties | invalid | calls/pair | tokens/pair | s/pair |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for judge, data in metrics["judges"].items():
        for subset, s in table_rows(data):
            v = s["values"]
            lines.append(
                f"| {judge} | {subset} | {s['n']} | {_pct(v['forward'])}{_ci(s, 'forward')} | "
                f"{_pct(v['reverse'])}{_ci(s, 'reverse')} | {_pct(v['mean'])}{_ci(s, 'mean')} | "
                f"{_pct(v['delta'])}{_ci(s, 'delta')} | {_pct(v['consistency'])} | {_pct(v['tie_rate'])} | "
                f"{_pct(v['invalid_rate'])} | {s['calls_per_pair']:.2f} | {s['tokens_per_pair']:.0f} | "
                f"{s['wall_s_per_pair']:.2f} |"
            )
    evidence = evidence_table(metrics)
    return "\n".join(lines) + (f"\n\n{evidence}" if evidence else "")


def evidence_table(metrics: dict[str, Any]) -> str:
    """What each judge's OCR evidence was and did (Markdown; ``""`` when no judge has evidence)."""
    rows = [(judge, data["evidence"]) for judge, data in metrics["judges"].items() if data.get("evidence")]
    if not rows:
        return ""
    lines = [
        "OCR evidence: pairs whose prompt asks for text, unreadable, decisive, and right by the evidence alone; "
        "order answers whose winner the evidence decided, and of those changed by the policy: the model's "
        "A/B replaced (overrode), its tie settled (broke ties), now right (fixed), right before (broke).",
        "",
        "| judge | policy | pairs | asks for text | unavailable | decisive | evidence right | decided by evidence "
        "| overrode | broke ties | fixed | broke |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for judge, e in rows:
        share = _pct(e["decided_by_evidence"] / e["orders"]) if e["orders"] else "–"
        lines.append(
            f"| {judge} | {e['policy']} | {e['pairs']} | {e['asked_for_text']} | {e['unavailable']} | {e['decisive']} | "
            f"{e['evidence_correct']} | {e['decided_by_evidence']}/{e['orders']} ({share}%) | {e['overrode']} | "
            f"{e['broke_ties']} | {e['fixed']} | {e['broke']} |"
        )
    return "\n".join(lines)


def plots(metrics: dict[str, Any]) -> dict[str, str]:
    """SVG charts: mean accuracy per subset (one bar per judge) and forward vs reverse per judge."""
    judges = list(metrics["judges"])
    subsets = sorted({s for j in judges for s in metrics["judges"][j]["subsets"]})
    per_subset = {
        j: [metrics["judges"][j]["subsets"].get(s, {}).get("values", {}).get("mean", float("nan")) for s in subsets]
        for j in judges
    }
    fwd_rev = {
        side: [metrics["judges"][j]["overall"]["values"][side] for j in judges] for side in ("forward", "reverse", "mean")
    }
    return {
        "accuracy_by_subset.svg": grouped_bars("Mean accuracy per subset", subsets, per_subset),
        "forward_reverse.svg": grouped_bars("Forward vs reverse accuracy", judges, fwd_rev),
    }


def _outcome_class(record: EvalRecord | None) -> str:
    if record is None:
        return "pending"
    if record.invalid:
        return "invalid"
    if record.forward.correct and record.reverse.correct:
        return "correct"
    if not record.forward.correct and not record.reverse.correct:
        return "wrong"
    return "order-dependent"


def render_html(run_dir: str | Path | RunDir, metrics: dict[str, Any], charts: dict[str, str]) -> str:
    """The self-contained HTML report."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    info, pairs, records = load_run(run)
    judges = list(records)
    rows = []
    for pair in pairs:
        cells = []
        thumb_names: dict[str, str] = {}
        shown_evidence = None  # what was read, beside the images: the first judge with OCR evidence
        for judge in judges:
            record = records[judge].get(pair["id"])
            if record:
                thumb_names = thumb_names or record.thumbs
            rubric_text = None
            if record and record.rubric_key:
                path = run.rubrics(judge) / f"{record.rubric_key}.json"
                if path.exists():
                    rubric_text = Rubric.load(path).render()
            evidence = record.evidence.display() if record and record.evidence else None
            if evidence and evidence["reads"] and shown_evidence is None:
                shown_evidence = evidence
            cells.append({"judge": judge, "record": record, "outcome": _outcome_class(record), "rubric": rubric_text,
                          "evidence": evidence})
        rows.append({
            "pair": pair,
            "cells": cells,
            "evidence": shown_evidence,
            "thumb_a": thumbnail_data_url(run.thumbs, thumb_names.get("a")),
            "thumb_b": thumbnail_data_url(run.thumbs, thumb_names.get("b")),
            "thumb_source": thumbnail_data_url(run.thumbs, thumb_names.get("source")),
        })
    subsets = sorted({p["subset"] for p in pairs})
    table = []
    for judge, data in metrics["judges"].items():
        for subset, s in table_rows(data):
            table.append({"judge": judge, "subset": subset, "s": s})
    return html_environment("arrpo.eval").get_template("report.html.j2").render(
        info=info, metrics=metrics, table=table, rows=rows, judges=judges, subsets=subsets,
        charts=charts, pct=_pct, ci=_ci,
    )


def write_report(run_dir: str | Path | RunDir, *, resamples: int = 1000, seed: int = 0) -> Report:
    """Write ``metrics.json``, ``summary.md``, the SVG plots and ``report.html``; returns the metrics,
    the summary table and the paths."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    metrics = compute_metrics(run, resamples=resamples, seed=seed)
    charts = plots(metrics)
    written = {}
    for name, svg in charts.items():
        run.report_file(name).write_text(svg, encoding="utf-8")
        written[name] = run.report_file(name)
    targets = {
        "metrics.json": json.dumps(metrics, indent=2, allow_nan=True) + "\n",
        "summary.md": markdown_summary(metrics),
        "report.html": render_html(run, metrics, charts),
    }
    for name, text in targets.items():
        # a model's answer may hold text UTF-8 cannot encode (a lone surrogate): escape it, never fail
        run.report_file(name).write_text(text, encoding="utf-8", errors="backslashreplace")
        written[name] = run.report_file(name)
    return Report(metrics=metrics, summary=summary_table(metrics), paths=written)


__all__ = ["Report", "ReportError", "Summary", "compute_metrics", "markdown_summary", "plots", "render_html",
           "summary_table", "write_report"]
