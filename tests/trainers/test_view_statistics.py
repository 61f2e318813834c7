"""The views SimCLR and BYOL train on have the augmentation statistics their papers state, measured by sampling.

Each quantity is read back from the pixels our pipeline produces — crop boxes from an image whose pixels encode
their own coordinates, a flip from a decreasing x coordinate, jitter from a changed grey level, grayscale from equal
channels, solarisation from an inverted white — and compared with the papers' numbers (SimCLR App. A, BYOL
Table 6), never with our own code:

* crop: area uniform in [0.08, 1] of the image, aspect ratio log-uniform in [3/4, 4/3] (torchvision's
  ``RandomResizedCrop``, which both papers use: a draw whose box does not fit is drawn again);
* horizontal flip p 0.5; colour jitter p 0.8 with brightness and contrast factors U(1 − 0.8s, 1 + 0.8s) and
  saturation U(1 − 0.8s, 1 + 0.8s) (SimCLR, s = 0.5 as for CIFAR) or U(0.8, 1.2) (BYOL); grayscale p 0.2;
  solarisation p 0 (SimCLR, BYOL's first view) and 0.2 (BYOL's second).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from trainers.augment import BatchRandom
from trainers.methods.byol import BYOL, BYOLConfig
from trainers.methods.simclr import SimCLR, SimCLRConfig
from trainers.views import render_crops_batch, sample_rng

N = 4000  # samples per statistic: a rate's standard error is at most 0.008
SIDE = 200  # the coordinate image: coordinates 0-199 fit uint8
PAPER_SCALE = (0.08, 1.0)
PAPER_RATIO = (3 / 4, 4 / 3)


class _Net(torch.nn.Module):
    num_features = 4

    def forward(self, x):
        return x.flatten(1)[:, :4]


def _method(name: str):
    ctx = SimpleNamespace(create_backbone=_Net, image_size=32, mean=(0.0,) * 3, std=(1.0,) * 3, in_chans=3)
    if name == "simclr":
        return SimCLR(SimCLRConfig(crop_min_scale=PAPER_SCALE[0], jitter=0.5), ctx)
    return BYOL(BYOLConfig(crop_min_scale=PAPER_SCALE[0], jitter=0.5), ctx)


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    """Within 4.5 standard errors of ``p`` (a false alarm about once in 150,000 runs)."""
    return abs(hits / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9


def _coordinate_images(n: int) -> np.ndarray:
    """(n, SIDE, SIDE, 3) uint8: red = x, green = y, blue = 0."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    one = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)
    return np.broadcast_to(one, (n, SIDE, SIDE, 3))


def _measured_boxes(spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(area fraction, aspect ratio w/h, flipped) of N crops of ``spec``, read from the crops' pixels."""
    areas, ratios, flips = [], [], []
    for start in range(0, N, 250):
        rngs = [sample_rng(0, 0, i) for i in range(start, start + 250)]
        (crops,) = render_crops_batch(_coordinate_images(250), [spec], rngs, channels=3)
        red, green = crops[:, 0].astype(float), crops[:, 1].astype(float)
        s = crops.shape[-1]
        # Bilinear resampling keeps a linear ramp linear: over output columns 2…s−3 red rises by w·(s−5)/s.
        dx = (red[:, s // 2, s - 3] - red[:, s // 2, 2]) * s / (s - 5)
        dy = (green[:, s - 3, s // 2] - green[:, 2, s // 2]) * s / (s - 5)
        w, h = np.abs(dx), dy
        areas.append(w * h / SIDE**2)
        ratios.append(w / h)
        flips.append(dx < 0)
    return np.concatenate(areas), np.concatenate(ratios), np.concatenate(flips)


def _paper_area_cdf(a: np.ndarray) -> np.ndarray:
    """CDF of the accepted crop area: U(0.08, 1) thinned by the chance that a log-uniform ratio in [3/4, 4/3]
    gives a box inside the image (w, h ≤ side ⇔ a ≤ r ≤ 1/a), the draws that do not fit being drawn again."""
    lo, hi = PAPER_SCALE
    log_span = math.log(PAPER_RATIO[1] / PAPER_RATIO[0])

    def accepted_mass(x: float) -> float:  # ∫_lo^x P(fit | u) du
        full = min(x, 0.75) - lo
        if x <= 0.75:
            return full
        # P(fit | u) = 2·log(1/u) / log_span for u > 3/4; ∫ log(1/u) du = u − u·log u
        g = lambda u: u - u * math.log(u)  # noqa: E731
        return full + 2 * (g(x) - g(0.75)) / log_span

    total = accepted_mass(hi)
    return np.array([accepted_mass(min(max(v, lo), hi)) / total for v in a])


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_crops_and_flips_follow_the_papers_sampler(name):
    method = _method(name)
    for spec in dict.fromkeys(method.view_specs()):  # BYOL's two views share one crop spec
        areas, ratios, flips = _measured_boxes(spec)
        # Every box within the stated ranges (a pixel of rounding at the 32-px output, 200-px image).
        assert areas.min() > PAPER_SCALE[0] * 0.9 and areas.max() < 1.03
        assert ratios.min() > PAPER_RATIO[0] * 0.95 and ratios.max() < PAPER_RATIO[1] * 1.05
        # The area's distribution is the paper's (Kolmogorov-Smirnov against the thinned uniform).
        assert stats.kstest(areas, _paper_area_cdf).pvalue > 1e-4
        # Small crops (which always fit) have a log-uniform aspect ratio: its quartiles where they should be.
        log_r = np.log(ratios[areas < 0.6])
        lo, hi = math.log(PAPER_RATIO[0]), math.log(PAPER_RATIO[1])
        expected = [lo + q * (hi - lo) for q in (0.25, 0.5, 0.75)]
        assert np.allclose(np.quantile(log_r, [0.25, 0.5, 0.75]), expected, atol=0.03)
        assert _binomial_ok(int(flips.sum()), N, 0.5)


def _colour(augment, value: tuple[float, float, float], seed: int) -> torch.Tensor:
    images = torch.tensor(value).view(1, 3, 1, 1).expand(N, 3, 4, 4).contiguous()
    return augment(images, BatchRandom(seed, 0, N, 0, N))


@pytest.mark.parametrize(
    ("name", "view", "saturation", "solarize"),
    [("simclr", 0, (0.6, 1.4), 0.0), ("byol", 0, (0.8, 1.2), 0.0), ("byol", 1, (0.8, 1.2), 0.2)],
)
def test_colour_operations_have_the_papers_rates_and_strengths(name, view, saturation, solarize):
    augment = _method(name).view_colours()[view]
    # Jitter p 0.8: a mid-grey image changes only through brightness (contrast and saturation blend it with its
    # own grey level, grayscale and blur leave a constant grey as it is).
    grey = _colour(augment, (0.5, 0.5, 0.5), seed=1)
    changed = (grey[:, :, 0, 0] - 0.5).abs().amax(1) > 1e-4
    assert _binomial_ok(int(changed.sum()), N, 0.8)  # solarised 0.5 stays 0.5: no jitter, no change
    # Grayscale p 0.2: jitter never makes a coloured image's channels equal; grayscale does.
    colour = (0.5, 0.45, 0.4)
    out = _colour(augment, colour, seed=2)[:, :, 0, 0]
    chroma = out.amax(1) - out.amin(1)
    grey_out = chroma < 1e-6
    assert _binomial_ok(int(grey_out.sum()), N, 0.2)
    # Strengths: brightness, contrast and saturation each scale the chroma (max − min) by their factor, hue keeps
    # it; so the jittered samples' chroma ratio is b·c·s, drawn from the papers' ranges independently here.
    ratio = (chroma[~grey_out] / (max(colour) - min(colour))).numpy()
    jittered = ratio[np.abs(ratio - 1) > 1e-4]
    rng = np.random.default_rng(0)
    b, c = rng.uniform(0.6, 1.4, (2, 20000))
    paper = b * c * rng.uniform(*saturation, 20000)
    assert stats.ks_2samp(jittered, paper).pvalue > 1e-4
    # Solarisation: white stays ≥ 0.6 after jitter (brightness ≥ 0.6, contrast and grayscale keep a constant
    # grey); only solarisation takes it below 0.5.
    white = _colour(augment, (1.0, 1.0, 1.0), seed=3)[:, 0, 0, 0]
    assert _binomial_ok(int((white < 0.5).sum()), N, solarize)
