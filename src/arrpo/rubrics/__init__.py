"""ARR rubrics: zero-shot writing, few-shot learning from labelled pairs, Theme-Tips structuring."""

from arrpo.datasets.seeds import SeedFileError, SeedSet, read_seeds
from arrpo.rubrics.guide import Guide, GuideExemplar, GuideFileError, read_guide
from arrpo.rubrics.holdout import HoldoutError, parse_holdout, split_holdout
from arrpo.rubrics.learn import (
    LearnConfig,
    LearnResult,
    LearnSummary,
    PairOutcome,
    RubricLearner,
    VerifyAnswer,
    VerifyAttempt,
)
from arrpo.rubrics.report import ReportError, write_learn_report
from arrpo.rubrics.state import LearnStateError
from arrpo.rubrics.structure import fallback_themes, structure_criteria
from arrpo.rubrics.write import RubricWriteError, RubricWriter

__all__ = [
    "Guide",
    "GuideExemplar",
    "GuideFileError",
    "HoldoutError",
    "LearnConfig",
    "LearnResult",
    "LearnStateError",
    "LearnSummary",
    "PairOutcome",
    "ReportError",
    "RubricLearner",
    "RubricWriteError",
    "RubricWriter",
    "SeedFileError",
    "SeedSet",
    "VerifyAnswer",
    "VerifyAttempt",
    "fallback_themes",
    "parse_holdout",
    "read_guide",
    "read_seeds",
    "split_holdout",
    "structure_criteria",
    "write_learn_report",
]
