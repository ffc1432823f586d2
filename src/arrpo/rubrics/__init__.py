"""ARR rubrics: zero-shot writing, few-shot learning from labelled pairs, Theme-Tips structuring."""

from arrpo.rubrics.guide import Guide, GuideExemplar, GuideFileError, read_guide
from arrpo.rubrics.learn import (
    LearnConfig,
    LearnResult,
    LearnSummary,
    PairOutcome,
    RubricLearner,
    VerifyAttempt,
)
from arrpo.rubrics.seeds import SeedFileError, SeedPair, SeedSet, read_seeds
from arrpo.rubrics.state import LearnStateError
from arrpo.rubrics.structure import fallback_themes, structure_criteria
from arrpo.rubrics.write import RubricWriteError, RubricWriter

__all__ = [
    "Guide",
    "GuideExemplar",
    "GuideFileError",
    "LearnConfig",
    "LearnResult",
    "LearnStateError",
    "LearnSummary",
    "PairOutcome",
    "RubricLearner",
    "RubricWriteError",
    "RubricWriter",
    "SeedFileError",
    "SeedPair",
    "SeedSet",
    "VerifyAttempt",
    "fallback_themes",
    "read_guide",
    "read_seeds",
    "structure_criteria",
]
