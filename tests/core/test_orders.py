"""Order policies and how two orders combine into one verdict."""

from __future__ import annotations

import pytest

from arrpo.judge import PairwiseJudge, combine_orders, random_order
from arrpo.schema import Comparison, OrderAnswer


def answer(order, winner, why=None):
    return OrderAnswer(order=order, winner=winner, invalid_reason=why)


@pytest.mark.parametrize(
    ("first", "second", "policy", "expected"),
    [
        ("A", "A", "tie", ("A", True, None)),
        ("B", "B", "tie", ("B", True, None)),
        ("A", "B", "tie", ("tie", False, None)),
        ("A", "B", "first", ("A", False, None)),
        ("B", "A", "first", ("B", False, None)),
        ("tie", "tie", "tie", ("tie", True, None)),
        ("tie", "A", "tie", ("tie", False, None)),
    ],
)
def test_combine(first, second, policy, expected):
    assert combine_orders(answer("AB", first), answer("BA", second), policy) == expected


def test_combine_disagreement_as_invalid():
    winner, agree, why = combine_orders(answer("AB", "A"), answer("BA", "B"), "invalid")
    assert (winner, agree) == ("invalid", False) and "disagree" in why


def test_combine_with_an_invalid_order():
    winner, agree, why = combine_orders(answer("AB", "A"), answer("BA", "invalid", "empty answer"))
    assert winner == "invalid" and agree is None and "order BA: empty answer" in why


def test_random_order_is_seeded_by_content(make_image):
    comparisons = [
        Comparison(prompt=f"p{i}", image_a=make_image((i, 0, 0)), image_b=make_image((0, i, 0)))
        for i in range(200)
    ]
    orders = [random_order(c) for c in comparisons]
    assert orders == [random_order(c) for c in comparisons]  # reruns repeat
    assert 70 < orders.count("AB") < 130  # a fair coin
    assert [random_order(c, seed=1) for c in comparisons] != orders


def test_policies_choose_orders(make_image):
    comparison = Comparison(prompt="p", image_a=make_image((1, 1, 1)), image_b=make_image((2, 2, 2)))
    assert PairwiseJudge(None, order="given").orders_for(comparison) == ["AB"]  # type: ignore[arg-type]
    assert PairwiseJudge(None, order="both").orders_for(comparison) == ["AB", "BA"]  # type: ignore[arg-type]
    assert PairwiseJudge(None, order="random").orders_for(comparison) == [random_order(comparison)]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order\n  Input should be 'given', 'random' or 'both'"):
        PairwiseJudge(None, order="sideways")  # type: ignore[arg-type]


def test_messages_show_images_in_order(make_image):
    a, b, src = make_image((255, 0, 0)), make_image((0, 255, 0)), make_image((0, 0, 255))
    judge = PairwiseJudge(None)  # type: ignore[arg-type]
    t2i = Comparison(prompt="p", image_a=a, image_b=b)
    assert judge.build_messages(t2i, "AB")[0].images == [a, b]
    assert judge.build_messages(t2i, "BA")[0].images == [b, a]
    edit = Comparison(task="edit", prompt="make it blue", image_a=a, image_b=b, source=src)
    message = judge.build_messages(edit, "BA")[0]
    assert message.images == [src, b, a]
    assert "Image BASE" in message.text and "Editing instruction: make it blue" in message.text


def test_comparison_validation(make_image):
    a, b = make_image(), make_image((1, 2, 3))
    with pytest.raises(ValueError, match="needs a source image"):
        Comparison(task="edit", prompt="p", image_a=a, image_b=b)
    with pytest.raises(ValueError, match="takes no source"):
        Comparison(task="t2i", prompt="p", image_a=a, image_b=b, source=a)
    assert Comparison(prompt="p", image_a=a, image_b=b).swapped().image_a == b
