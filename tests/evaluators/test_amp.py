"""``Encoder.embed(amp=...)``: autocast embeddings stay close to full precision; ``--amp`` records the error."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
import zoo.architectures  # registers sslzoo_cnn4 with timm
from evaluators.evaluate import _AutocastEncoder
from zoo.errors import SslzooError


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return zoo.Encoder.from_model(timm.create_model("sslzoo_cnn4", in_chans=1), name="random-sslzoo_cnn4")


def test_bf16_embeddings_are_close_to_fp32_but_not_equal(encoder):
    images = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    full = encoder.embed(images)
    low = encoder.embed(images, amp="bf16")
    assert low.dtype == torch.float32 and low.shape == full.shape
    distance = 1.0 - F.cosine_similarity(full, low, dim=1)
    # bf16 keeps 8 bits of mantissa: the forward really ran in it (not equal), and stays within ~1e-3.
    assert not torch.equal(full, low)
    assert distance.max() < 1e-3


def test_unknown_precision_is_one_clear_error(encoder):
    with pytest.raises(SslzooError, match="unknown amp precision 'int4'"):
        encoder.embed(torch.zeros(1, 1, 32, 32), amp="int4")


def test_autocast_encoder_has_its_own_cache_identity_and_refuses_baselines(encoder):
    from evaluators.baselines import RawPixels

    wrapped = _AutocastEncoder(encoder, "bf16", "random-sslzoo_cnn4")
    assert wrapped.identity == encoder.identity + "+amp-bf16"  # fp32 features are never served for bf16
    assert wrapped.transform is encoder.transform
    images = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(wrapped.embed(images), encoder.embed(images, amp="bf16"))
    with pytest.raises(SslzooError, match="--amp needs a neural encoder; raw-pixels"):
        _AutocastEncoder(RawPixels(), "bf16", "raw-pixels")
