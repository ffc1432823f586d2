"""Accuracy and position-bias metrics: pure functions of per-pair outcomes.

Definitions (every rate is over ALL pairs of the run, as in the paper):

* forward / reverse accuracy: share of pairs whose answer in that order names the human-preferred
  image (for a tie label: answers "tie"). An invalid answer or a judge tie on a decisive label
  counts as wrong — never silently dropped.
* mean accuracy = (forward + reverse) / 2 (the paper's headline number); Δ = forward − reverse.
* swap consistency: share of pairs where both orders are valid and name the same winner.
* tie rate / invalid rate: share of the 2·N order answers that are ties / invalid.
* 95% intervals: percentile bootstrap over pairs (both orders of a pair resampled together),
  seeded, so reruns give the same interval. Every statistic is the mean of a per-pair column, so
  one matrix of resample counts (numpy) gives all of them at once: :func:`bootstrap_intervals`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from arrpo.eval.rundir import EvalRecord


@dataclass(frozen=True)
class PairOutcome:
    """What a judge configuration answered for one pair, in the original A/B terms."""

    label: str
    forward: str
    reverse: str
    subset: str = "all"
    calls: int = 2
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0

    @property
    def forward_correct(self) -> bool:
        return self.forward == self.label

    @property
    def reverse_correct(self) -> bool:
        return self.reverse == self.label

    @property
    def consistent(self) -> bool:
        return self.forward == self.reverse and self.forward != "invalid"


def outcome_from_record(record: EvalRecord) -> PairOutcome:
    """A :class:`PairOutcome` from a line of ``verdicts/<judge>.jsonl``."""
    fwd, rev = record.forward, record.reverse
    return PairOutcome(
        label=record.label,
        forward=fwd.winner,
        reverse=rev.winner,
        subset=record.subset,
        calls=fwd.calls + rev.calls,
        prompt_tokens=fwd.prompt_tokens + rev.prompt_tokens,
        completion_tokens=fwd.completion_tokens + rev.completion_tokens,
        wall_s=record.wall_s,
    )


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else float("nan")


def forward_accuracy(outcomes: Sequence[PairOutcome]) -> float:
    return _share(o.forward_correct for o in outcomes)


def reverse_accuracy(outcomes: Sequence[PairOutcome]) -> float:
    return _share(o.reverse_correct for o in outcomes)


def mean_accuracy(outcomes: Sequence[PairOutcome]) -> float:
    return (forward_accuracy(outcomes) + reverse_accuracy(outcomes)) / 2


def position_delta(outcomes: Sequence[PairOutcome]) -> float:
    """Δ = forward − reverse accuracy (positive: the order shown first is favoured)."""
    return forward_accuracy(outcomes) - reverse_accuracy(outcomes)


def swap_consistency(outcomes: Sequence[PairOutcome]) -> float:
    return _share(o.consistent for o in outcomes)


def tie_rate(outcomes: Sequence[PairOutcome]) -> float:
    return _share(w == "tie" for o in outcomes for w in (o.forward, o.reverse))


def invalid_rate(outcomes: Sequence[PairOutcome]) -> float:
    return _share(w == "invalid" for o in outcomes for w in (o.forward, o.reverse))


Statistic = Callable[[Sequence[PairOutcome]], float]

#: The statistics reported for every judge and subset, by name.
STATISTICS: dict[str, Statistic] = {
    "forward": forward_accuracy,
    "reverse": reverse_accuracy,
    "mean": mean_accuracy,
    "delta": position_delta,
    "consistency": swap_consistency,
    "tie_rate": tie_rate,
    "invalid_rate": invalid_rate,
}


#: Resampled pair indices held in memory at once (rows × pairs), bounding the bootstrap's memory.
_CHUNK_CELLS = 2_000_000


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[Any]:
    """Chunks (``numpy`` arrays, one row per resample) of pair indices drawn with replacement.

    The only source of randomness of the intervals: a ``numpy`` generator seeded with ``seed``, so
    the same seed gives the same resamples (and intervals) on every run and machine.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def statistic_columns(outcomes: Sequence[PairOutcome]) -> Any:
    """Per-pair values whose means are the :data:`STATISTICS`, one column each, in that order."""
    import numpy as np

    rows = []
    for o in outcomes:
        fwd, rev = float(o.forward_correct), float(o.reverse_correct)
        rows.append((fwd, rev, (fwd + rev) / 2, fwd - rev, float(o.consistent),
                     ((o.forward == "tie") + (o.reverse == "tie")) / 2,
                     ((o.forward == "invalid") + (o.reverse == "invalid")) / 2))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(STATISTICS))


def _percentiles(values: Any, level: float) -> tuple[float, float]:
    """The nearest-rank percentile interval of sorted resample values (as the first version did)."""
    count = len(values)
    tail = (1 - level) / 2
    return (float(values[int(tail * (count - 1))]), float(values[round((1 - tail) * (count - 1))]))


def bootstrap_intervals(
    outcomes: Sequence[PairOutcome],
    names: Iterable[str] = tuple(STATISTICS),
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the named statistics, all from the same resamples of pairs.

    Vectorised: each resample is a row of pair indices, and every statistic is the mean of its
    per-pair column gathered at those indices.
    """
    import numpy as np

    names = list(names)
    n = len(outcomes)
    if n == 0 or resamples <= 0:
        return {name: (float("nan"), float("nan")) for name in names}
    order = list(STATISTICS)
    columns = statistic_columns(outcomes)[:, [order.index(name) for name in names]]
    chunks = [np.stack([column[indices].mean(axis=1) for column in columns.T], axis=1)
              for indices in resample_indices(n, resamples, seed)]
    values = np.sort(np.concatenate(chunks), axis=0)
    return {name: _percentiles(values[:, i], level) for i, name in enumerate(names)}


def bootstrap_interval(
    outcomes: Sequence[PairOutcome],
    statistic: Statistic,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic``, resampling pairs with replacement.

    A statistic of :data:`STATISTICS` takes the vectorised path; any other function of the
    outcomes is applied to each resample (the same resamples, so both paths agree).
    """
    n = len(outcomes)
    if n == 0:
        return (float("nan"), float("nan"))
    for name, known in STATISTICS.items():
        if statistic is known:
            return bootstrap_intervals(outcomes, [name], resamples=resamples, seed=seed, level=level)[name]
    values = sorted(
        statistic([outcomes[i] for i in row])
        for indices in resample_indices(n, resamples, seed) for row in indices.tolist()
    )
    return _percentiles(values, level)


@dataclass
class Summary:
    """Metrics of one judge configuration on one set of pairs."""

    n: int
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    calls_per_pair: float = 0.0
    tokens_per_pair: float = 0.0
    prompt_tokens_per_pair: float = 0.0
    completion_tokens_per_pair: float = 0.0
    wall_s_per_pair: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return data


def summarize(outcomes: Sequence[PairOutcome], *, resamples: int = 1000, seed: int = 0,
              intervals: Iterable[str] = ("forward", "reverse", "mean", "delta", "consistency")) -> Summary:
    """Every statistic, bootstrap intervals for the chosen ones, and cost per pair."""
    n = len(outcomes)
    values = {name: fn(outcomes) for name, fn in STATISTICS.items()}
    cis = bootstrap_intervals(outcomes, intervals, resamples=resamples, seed=seed) if n and resamples else {}
    per = (lambda total: total / n) if n else (lambda total: float("nan"))
    return Summary(
        n=n,
        values=values,
        intervals=cis,
        calls_per_pair=per(sum(o.calls for o in outcomes)),
        tokens_per_pair=per(sum(o.prompt_tokens + o.completion_tokens for o in outcomes)),
        prompt_tokens_per_pair=per(sum(o.prompt_tokens for o in outcomes)),
        completion_tokens_per_pair=per(sum(o.completion_tokens for o in outcomes)),
        wall_s_per_pair=per(sum(o.wall_s for o in outcomes)),
    )


def by_subset(outcomes: Sequence[PairOutcome], **kwargs: Any) -> dict[str, Summary]:
    """:func:`summarize` per subset, subsets in sorted order."""
    groups: dict[str, list[PairOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.subset, []).append(outcome)
    return {name: summarize(groups[name], **kwargs) for name in sorted(groups)}


# ------------------------------------------------------------------------ OCR evidence
@dataclass
class EvidenceSummary:
    """What a judge's OCR evidence was and did over its judged pairs (only judges with evidence).

    Pair counts: ``pairs`` with an evidence record, of them ``asked_for_text`` (the prompt asks for
    text), ``unavailable`` (an image could not be read), ``decisive`` (the evidence alone leads
    decisively) and ``evidence_correct`` (the evidence's own winner is the human label). Order
    counts, over the ``orders`` answers of those pairs: ``decided_by_evidence`` (the winner is
    the evidence's: every answer of the evidence-only judge, those the policy changed otherwise),
    of the changed ones ``overrode`` (the model had named A or B) and ``broke_ties`` (the model
    said tie), and ``fixed`` (now right) / ``broke`` (right before the change).
    """

    policy: str
    pairs: int = 0
    asked_for_text: int = 0
    unavailable: int = 0
    decisive: int = 0
    evidence_correct: int = 0
    orders: int = 0
    decided_by_evidence: int = 0
    overrode: int = 0
    broke_ties: int = 0
    fixed: int = 0
    broke: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidence_summary(records: Iterable[EvalRecord], policy: str) -> EvidenceSummary | None:
    """:class:`EvidenceSummary` of a judge's records (``policy``: its ``ocr_policy``, or
    ``evidence_only``); ``None`` when no record has evidence (a judge without evidence)."""
    summary = EvidenceSummary(policy=policy)
    for record in records:
        evidence = record.evidence
        if evidence is None:
            continue
        summary.pairs += 1
        summary.asked_for_text += evidence.asks_for_text
        summary.unavailable += evidence.unavailable is not None
        decision = evidence.decision
        if decision is not None and decision.winner != "invalid":
            summary.decisive += decision.decisive
            summary.evidence_correct += decision.winner == record.label
        for outcome in record.outcomes:
            summary.orders += 1
            summary.decided_by_evidence += outcome.decided_by == "evidence"
            change = outcome.policy
            if change is None or not change.changed:
                continue
            summary.overrode += change.vlm_winner in ("A", "B")
            summary.broke_ties += change.vlm_winner == "tie"
            summary.fixed += change.winner == record.label
            summary.broke += change.vlm_winner == record.label
    return summary if summary.pairs else None
