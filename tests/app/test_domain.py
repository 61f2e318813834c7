"""Uploads unlike the gallery's images are flagged by their pixels when the embedding alone does not tell."""

from __future__ import annotations

import numpy as np
import pytest
from _runs import save_tiny_run

import zoo
from app.backend import Backend
from app.domain import PixelRange, grey, statistics
from app.images import example_photos


def test_statistics_of_a_hand_made_image():
    pixels = np.zeros((28, 28), np.float32)
    pixels[0, :] = 1.0  # the top row is lit: 28 of the 2-px ring's 28² − 24² = 208 pixels
    border, mean, contrast = statistics(pixels)
    assert border == pytest.approx(28 / 208)
    assert mean == pytest.approx(28 / 784)
    assert contrast == pytest.approx(np.sqrt(28 / 784 - (28 / 784) ** 2))


def test_the_range_holds_99_percent_of_the_gallery():
    rng = np.random.default_rng(0)
    images = [np.full((10, 10), v, np.float32) for v in rng.uniform(0.2, 0.6, 1000)]
    r = PixelRange.of(images)
    inside = sum(not r.outside(image) for image in images)
    assert 985 <= inside <= 995  # 0.5% below, 0.5% above, on each of the statistics that vary
    assert r.outside(np.full((10, 10), 0.9, np.float32))[0].startswith("border brightness 0.90")


@pytest.fixture(scope="module")
def fmnist_backend(tmp_path_factory):
    import zoo.architectures  # noqa: F401  (registers sslzoo_cnn4 with timm)

    run = save_tiny_run(tmp_path_factory.mktemp("tiny"))
    return Backend(), str(run / "encoder")


def test_a_photo_near_the_garments_in_the_embedding_is_still_flagged_by_its_pixels(fmnist_backend, tmp_path):
    backend, model = fmnist_backend
    astronaut = example_photos()[0]
    result = backend.neighbours(model, "fashion-mnist", astronaut, 5)
    assert result.out_of_domain and any(s.startswith("border brightness") for s in result.unlike_gallery)
    # A garment of the gallery's own kind, uploaded, is not.
    garment = zoo.load_dataset("fashion-mnist", split="train")[7]["image"]
    garment.save(tmp_path / "garment.png")
    result = backend.neighbours(model, "fashion-mnist", str(tmp_path / "garment.png"), 5)
    assert result.unlike_gallery == [] and not result.far_in_embedding


def test_gallery_queries_are_never_flagged(fmnist_backend):
    backend, model = fmnist_backend
    result = backend.neighbours_of_index(model, "fashion-mnist", 3, 5)
    assert not result.out_of_domain
    assert grey(result.query).shape == (28, 28)
