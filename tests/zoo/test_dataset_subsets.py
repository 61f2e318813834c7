"""Subset options on dataset names: ``NAME?train=N&test=M`` (stratified, seeded) and ``NAME?val=N`` (a validation
split carved from train, returned as ``test``)."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.datasets import split_subset_options
from zoo.errors import SslzooError


def _arrays(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zoo.to_arrays(zoo.load_dataset(name, split=split))
    return np.asarray(images), labels


def _rows(images: np.ndarray) -> set[bytes]:
    return {im.tobytes() for im in images}


def test_options_are_parsed_and_other_query_options_stay_in_the_name():
    assert split_subset_options("digits") == ("digits", {})
    assert split_subset_options("digits?train=500&test=100") == ("digits", {"train": 500, "test": 100})
    assert split_subset_options("hf:org/name?label=fine&val=50&image=img") == (
        "hf:org/name?label=fine&image=img",
        {"val": 50},
    )
    for bad in ("digits?train=0", "digits?train=ten", "digits?test=-3"):
        with pytest.raises(SslzooError, match="positive number"):
            split_subset_options(bad)


def test_train_and_test_subsets_are_stratified_fixed_and_drawn_from_their_split():
    images, labels = _arrays("digits?train=500&test=100", "train")
    test_images, test_labels = _arrays("digits?train=500&test=100", "test")
    full_images, full_labels = _arrays("digits", "train")
    assert len(labels) == 500 and len(test_labels) == 100
    # Stratified: each class keeps its share of the full split, to within one image.
    expected = np.bincount(full_labels, minlength=10) * 500 / len(full_labels)
    assert np.all(np.abs(np.bincount(labels, minlength=10) - expected) <= 1)
    assert _rows(images) <= _rows(full_images) and _rows(test_images) <= _rows(_arrays("digits", "test")[0])
    again, _ = _arrays("digits?test=100&train=500", "train")  # same images whatever the option order
    assert np.array_equal(images, again)


def test_val_carves_a_validation_split_from_train_and_never_uses_test():
    dd = zoo.load_dataset("digits?val=300")
    assert {k: len(v) for k, v in dd.items()} == {"train": 1437 - 300, "test": 300}
    train, val = (_rows(_arrays("digits?val=300", s)[0]) for s in ("train", "test"))
    full_train = _rows(_arrays("digits", "train")[0])
    # Every validation image comes from train (none from test), and none is also in the remaining train split.
    assert val <= full_train and train <= full_train and not (val & train)


def test_asking_for_the_whole_split_or_more_is_one_clear_error():
    with pytest.raises(SslzooError, match="as many images as the split has"):
        zoo.load_dataset("digits?test=360")
