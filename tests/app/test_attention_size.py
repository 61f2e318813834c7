"""The attention tab's input side: any size in, a multiple of the patch within 518 out (99999 used to assert)."""

from __future__ import annotations

import pytest

from app.backend import MAX_INPUT_SIZE, input_side
from zoo.errors import SslzooError


@pytest.mark.parametrize("patch", [4, 8, 14, 16])
@pytest.mark.parametrize("size", [1, 17, 224, 517, 518, 519, 99999, "300", None])
def test_the_side_is_a_multiple_of_the_patch_within_the_limit(size, patch):
    side = input_side(size, 224, patch)
    assert side % patch == 0 and 2 * patch <= side <= MAX_INPUT_SIZE


def test_a_huge_size_gets_the_largest_multiple_of_the_patch_within_518():
    assert input_side(99999, 224, 16) == 512 and input_side(99999, 224, 14) == 518


@pytest.mark.parametrize("size", ["abc", float("nan"), -5, 0])
def test_a_size_that_is_not_a_positive_number_is_one_line(size):
    with pytest.raises(SslzooError, match="image size"):
        input_side(size, 224, 16)
