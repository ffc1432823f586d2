"""The filter that keeps criteria naming an image by position, rank or label away from the verifier."""

from __future__ import annotations

import pytest

from arrpo.rubrics.parsing import parse_criteria, refers_to_label

LEAKY = [
    "Image 1 is sharper",
    "image 2 keeps the roof",
    "Image #2 has no artifacts",
    "Image B keeps the roof",
    "the first image has artifacts",
    "The second image is darker",
    "The 2nd image shows two cats",
    "Unlike the 1st image, the sky is blue",
    "The image on the left is sharper",
    "the image on the right has a blurry face",
    "The left-hand image keeps the horizon straight",
    "the right hand image has more contrast",
    "The left image is sharp",
    "the left one is cleaner",
    "The latter image has correct text",
    "the former image keeps the colours",
    "The better image has five fingers on each hand",
    "the worse image shows seams",
    "The better one follows the caption",
    "The preferred image is bright",
    "The chosen image is clean",
    "compared to the other image, the sky is clearer",
    "The top image is sharper",
    "Like the winning candidate, the dog is centred",
]

FINE = [
    "The top image region (sky) is free of banding",
    "Objects on the left side of the image are in focus",
    "The person's left hand has five fingers",
    "The bottom image edge has no stretched pixels",
    "Hands have five fingers",
    "The edit keeps Image BASE's roofline intact",
    "Text in the image is legible",
    "One cat is visible",
    "The second cat has a tail",
    "Two trees stand in the field, one on the left and one on the right",
    "The first word of the sign is spelled correctly",
    "The image has better image quality in dark areas than typical renders",
    "The latter half of the caption (a red hat) is depicted",
    "The right side of the image shows the sea",
    "Overall image quality is high, with no noise",
    "The image is bright and evenly lit",
]


@pytest.mark.parametrize("text", LEAKY)
def test_position_rank_and_label_references_are_flagged(text):
    assert refers_to_label(text)


@pytest.mark.parametrize("text", FINE)
def test_descriptions_of_one_image_are_not_flagged(text):
    assert not refers_to_label(text)


def test_flagged_criteria_are_rejected_and_the_rest_kept():
    reply = parse_criteria('{"criteria": ["The image on the left is sharper", "The top image region is clean"]}', 5)
    assert reply.criteria == ["The top image region is clean"]
    assert reply.rejected == ["The image on the left is sharper"]
