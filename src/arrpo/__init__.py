"""arrpo: Auto-Rubric as Reward (ARR) and Rubric Policy Optimization (RPO).

The judging core imports without torch; training lives in ``arrpo.rl`` behind the ``train`` extra.
"""

from arrpo._version import __version__
from arrpo.images import ImageData, ImageError, load_image
from arrpo.rubric import Provenance, Rubric, Theme
from arrpo.schema import Comparison, OrderAnswer, Usage, Verdict

__all__ = [
    "Comparison",
    "ImageData",
    "ImageError",
    "OrderAnswer",
    "Provenance",
    "Rubric",
    "Theme",
    "Usage",
    "Verdict",
    "__version__",
    "load_image",
]
