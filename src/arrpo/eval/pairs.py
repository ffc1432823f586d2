"""The labelled pair model, re-exported from :mod:`arrpo.pairs` (where it lives, shared with rubric learning)."""

from __future__ import annotations

from arrpo.pairs import ImageRef, Label, LoadedPair, PreferencePair, coin, randomise_ab

__all__ = ["ImageRef", "Label", "LoadedPair", "PreferencePair", "coin", "randomise_ab"]
