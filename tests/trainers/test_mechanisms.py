"""The special mechanisms of each method: MoCo's queue and momentum, EMA and schedules, DINO's centre."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainers.methods.base import StepInfo, momentum_update
from trainers.schedules import cosine_schedule, linear_warmup


class TinyNet(nn.Module):
    """A stand-in backbone: (B, 1, 8, 8) → (B, 6)."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 6)

    def forward(self, x):
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


def fake_ctx() -> SimpleNamespace:
    return SimpleNamespace(create_backbone=TinyNet, image_size=8, mean=(0.5,), std=(0.5,))


def step(global_step: int, total: int = 100, per_epoch: int = 10) -> StepInfo:
    return StepInfo(global_step, global_step // per_epoch, global_step % per_epoch, per_epoch, total)


def test_moco_queue_replaces_the_oldest_keys_in_order():
    from trainers.methods.moco import MoCo, MoCoConfig

    torch.manual_seed(0)
    moco = MoCo(MoCoConfig(queue_size=5, proj_dim=3, proj_hidden_dim=4), fake_ctx())
    a, b, c = (torch.full((2, 3), v) for v in (1.0, 2.0, 3.0))
    a[1], b[1], c[1] = 1.5, 2.5, 3.5
    for keys in (a, b, c):
        moco.enqueue(keys)
    # Slots 0-4 after a=[1, 1.5], b=[2, 2.5], c=[3, 3.5] with K = 5: c wrapped around over the oldest key (1).
    assert moco.queue[:, 0].tolist() == [3.5, 1.5, 2.0, 2.5, 3.0]
    assert int(moco.queue_ptr) == 1
    # A batch larger than the queue keeps only its newest K keys.
    moco.enqueue(torch.arange(7.0).view(7, 1).expand(7, 3))
    assert sorted(moco.queue[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_momentum_update_formula():
    target, online = nn.Linear(2, 2), nn.Linear(2, 2)
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o, rtol=0, atol=1e-7)
        assert not t.requires_grad or t.grad is None


def test_momentum_update_of_all_parameters_at_once_is_bitwise_the_loop_over_parameters():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 36, 10))
    target = copy.deepcopy(online).requires_grad_(False)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    expected = [t.detach().clone() for t in target.parameters()]
    for t, o in zip(expected, online.parameters()):
        t.mul_(0.996).add_(o.detach(), alpha=1 - 0.996)
    momentum_update(target, online, 0.996)
    assert all(torch.equal(t, e) for t, e in zip(target.parameters(), expected))


def test_dino_per_parameter_clip_is_bitwise_the_loop_over_parameters():
    from trainers.methods.dino import clip_grad_norm_per_parameter

    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(shape)) for shape in [(5, 3), (7,), (2, 3, 4), (1,), (6, 6)]]
    for i, p in enumerate(params):
        p.grad = torch.randn_like(p) * (0.1 if i % 2 else 10.0)  # some above the limit, some below
    params[3].grad = None  # no gradient: skipped
    expected = [None if p.grad is None else p.grad.clone() for p in params]
    for g in expected:
        if g is not None:
            g.mul_((3.0 / (g.norm(2) + 1e-6)).clamp(max=1.0))
    clip_grad_norm_per_parameter(params, 3.0)
    for p, e in zip(params, expected):
        assert (p.grad is None and e is None) or torch.equal(p.grad, e)
    assert params[0].grad.norm() <= 3.0 + 1e-5 and torch.equal(params[1].grad, expected[1])


def test_moco_updates_key_encoder_with_momentum_before_the_keys():
    from trainers.augment import BatchRandom
    from trainers.methods.base import Batch
    from trainers.methods.moco import MoCo, MoCoConfig

    torch.manual_seed(0)
    moco = MoCo(MoCoConfig(queue_size=8, proj_dim=3, proj_hidden_dim=4, momentum=0.8), fake_ctx())
    with torch.no_grad():  # make query and key encoders differ, as after some training
        for p in moco.backbone.parameters():
            p.add_(1.0)
    key_before = moco.key_backbone.fc.weight.clone()
    query = moco.backbone.fc.weight.clone()
    x = torch.rand(4, 1, 8, 8)
    batch = Batch([x, x], torch.arange(4), torch.zeros(4, dtype=torch.long), BatchRandom(0, 0, 4, 0, 4))
    loss, logs = moco.training_step(batch, step(0))
    torch.testing.assert_close(moco.key_backbone.fc.weight, 0.8 * key_before + 0.2 * query)
    assert logs["momentum"] == 0.8
    loss.backward()
    assert all(p.grad is None for p in moco.key_backbone.parameters())


class BNNet(nn.Module):
    """A stand-in backbone with batch norm: (B, 1, 8, 8) → (B, 32)."""

    num_features = 32

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
            *(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
            *(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        )

    def forward(self, x):
        return self.net(x)


def _positive_beats_the_same_image_keyed_elsewhere(shuffle_bn: str | None, seed: int) -> float:
    """How often the positive logit q_i·k_i beats q_i·k′_i, with k′_i the key of the *same* view of the same image
    computed in another batch (as a queue entry would be): only BN statistics can tell the two keys apart.

    Query and key encoder are equal and both views are the image itself, so without a leak each wins half the time.
    """
    from sklearn.datasets import load_digits

    from trainers.augment import BatchRandom
    from trainers.methods.base import Batch
    from trainers.methods.moco import MoCo, MoCoConfig

    torch.manual_seed(seed)
    ctx = SimpleNamespace(create_backbone=BNNet, image_size=8, mean=(0.5,), std=(0.5,))
    options = {} if shuffle_bn is None else {"shuffle_bn": shuffle_bn}
    moco = MoCo(MoCoConfig(queue_size=8, proj_dim=16, proj_hidden_dim=32, **options), ctx)
    digits = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(seed))
    n, others = 128, 8
    x, rest = digits[order[:n]], digits[order[n:]]

    def batch(images, step):
        labels = torch.zeros(n, dtype=torch.long)
        return Batch([images, images], torch.arange(n), labels, BatchRandom(seed, step, n, 0, n))

    with torch.no_grad():
        q = moco.queries(x)
        positive = (q * moco.keys(x, batch(x, 0))).sum(1)
        elsewhere = torch.empty(n)
        for r in range(others):  # each other batch keys n/8 of the images among 7n/8 images not in x
            z = rest[r * n : (r + 1) * n].clone()
            mine = torch.arange(r, n, others)
            z[mine] = x[mine]
            elsewhere[mine] = (q[mine] * moco.keys(z, batch(z, r + 1))[mine]).sum(1)
    return float((positive > elsewhere).float().mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_moco_in_one_process_keys_do_not_identify_the_positive_by_bn_statistics(seed):
    # Plain BN: the query and its key are normalised with the same batch statistics, so the positive always wins.
    assert _positive_beats_the_same_image_keyed_elsewhere("off", seed) > 0.95
    # The default in one process (split-bn, shuffled keys): a coin flip, as for keys of the same image elsewhere.
    assert _positive_beats_the_same_image_keyed_elsewhere(None, seed) < 0.75


def test_moco_shuffle_bn_choice_is_resolved_into_the_config():
    from trainers.methods.moco import MoCo, MoCoConfig, resolve_shuffle_bn
    from zoo.errors import SslzooError

    with_bn = SimpleNamespace(create_backbone=BNNet, image_size=8, mean=(0.5,), std=(0.5,))
    assert MoCo(MoCoConfig(queue_size=8, proj_dim=4), with_bn).cfg.shuffle_bn == "split-bn"
    assert (
        MoCo(MoCoConfig(queue_size=8, proj_dim=4), fake_ctx()).cfg.shuffle_bn == "off"
    )  # no BN: nothing leaks
    assert resolve_shuffle_bn("auto", 4, batch_norm=True) == "ddp-shuffle"
    assert resolve_shuffle_bn("split-bn", 4, batch_norm=True) == "split-bn"
    with pytest.raises(SslzooError, match="torchrun"):
        resolve_shuffle_bn("ddp-shuffle", 1, batch_norm=True)
    assert MoCoConfig(shuffle_bn=True).shuffle_bn == "auto"  # run configs written before the choices
    with pytest.raises(SslzooError, match="--shuffle-bn must be one of"):
        MoCoConfig(shuffle_bn="sync")


def test_cosine_schedule_at_chosen_steps():
    assert cosine_schedule(0, 100, 1.0, 0.0, warmup_steps=10) == 0.0
    assert cosine_schedule(5, 100, 1.0, 0.0, warmup_steps=10) == 0.5
    assert cosine_schedule(10, 100, 1.0, 0.0, warmup_steps=10) == 1.0
    assert cosine_schedule(55, 100, 1.0, 0.0, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_schedule(100, 100, 1.0, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_schedule(400, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert linear_warmup(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert linear_warmup(30, 30, 0.04, 0.07) == 0.07


def test_byol_tau_goes_from_base_to_one_by_cosine():
    from trainers.methods.byol import BYOL, BYOLConfig

    byol = BYOL(BYOLConfig(proj_hidden_dim=8, proj_dim=4, momentum=0.99), fake_ctx())
    # τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2
    for k in (0, 25, 50, 100):
        expected = 1 - (1 - 0.99) * (math.cos(math.pi * k / 100) + 1) / 2
        assert byol.tau(step(k)) == pytest.approx(expected)


def test_dino_teacher_temperature_and_momentum_schedules():
    from trainers.methods.dino import DINO, DINOConfig

    cfg = DINOConfig(out_dim=8, hidden_dim=8, bottleneck_dim=4, warmup_teacher_temp_epochs=3)
    dino = DINO(cfg, fake_ctx())
    assert dino.teacher_temp(step(0)) == pytest.approx(0.04)
    assert dino.teacher_temp(step(15)) == pytest.approx(0.055)  # half of the 30 warm-up steps
    assert dino.teacher_temp(step(60)) == pytest.approx(0.07)
    assert dino.teacher_momentum(step(0)) == pytest.approx(0.996)
    assert dino.teacher_momentum(step(50)) == pytest.approx(0.998)
    assert dino.teacher_momentum(step(100)) == pytest.approx(1.0)


def test_dino_center_update_and_no_teacher_gradient():
    from trainers.augment import BatchRandom
    from trainers.methods.base import Batch
    from trainers.methods.dino import DINO, DINOConfig

    torch.manual_seed(0)
    cfg = DINOConfig(out_dim=8, hidden_dim=8, bottleneck_dim=4, center_momentum=0.7, n_local_crops=2)
    dino = DINO(cfg, fake_ctx())
    dino.center.fill_(0.5)
    crops = [torch.rand(3, 1, 8, 8) for _ in range(4)]
    with torch.no_grad():
        teacher = [dino.teacher_head(dino.teacher_backbone(c)) for c in crops[:2]]
    expected = 0.7 * 0.5 + 0.3 * torch.cat(teacher).mean(0, keepdim=True)  # Eq. (4)
    batch = Batch(crops, torch.arange(3), torch.zeros(3, dtype=torch.long), BatchRandom(0, 0, 3, 0, 3))
    loss, _ = dino.training_step(batch, step(50))
    torch.testing.assert_close(dino.center, expected)
    loss.backward()
    assert all(p.grad is None for p in [*dino.teacher_backbone.parameters(), *dino.teacher_head.parameters()])
    assert all(not p.requires_grad for p in dino.teacher_head.parameters())
    assert dino.backbone.fc.weight.grad is not None and dino.backbone.fc.weight.grad.abs().sum() > 0


def test_dino_clips_each_parameters_gradient_as_clip_grad_norm_on_that_parameter_alone():
    from trainers.augment import BatchRandom
    from trainers.engine import build_configs
    from trainers.methods.base import Batch
    from trainers.methods.dino import DINO, DINOConfig

    torch.manual_seed(0)
    cfg = DINOConfig(out_dim=8, hidden_dim=8, bottleneck_dim=4, n_local_crops=2, freeze_last_layer_epochs=0)
    dino = DINO(cfg, fake_ctx())
    crops = [torch.rand(3, 1, 8, 8) for _ in range(4)]
    batch = Batch(crops, torch.arange(3), torch.zeros(3, dtype=torch.long), BatchRandom(0, 0, 3, 0, 3))
    loss, _ = dino.training_step(batch, step(50))
    loss.backward()
    params = [p for p in dino.parameters() if p.grad is not None]
    for i, p in enumerate(params):  # gradient norms from 0.1 to 100: some above 3, some below
        p.grad.mul_(10.0 ** (i % 4 - 1) / p.grad.norm())
    expected = [p.grad.clone() for p in params]
    for g in expected:
        holder = torch.nn.Parameter(torch.zeros_like(g))
        holder.grad = g
        torch.nn.utils.clip_grad_norm_([holder], 3.0)  # scales g in place, on its own
    dino.on_before_optimizer_step(step(50))
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-6, atol=0)
    norms = torch.stack([p.grad.norm() for p in params])
    assert norms.max() <= 3.0 + 1e-4 and norms.min() < 0.2  # small gradients were left alone
    # By default DINO runs clip per parameter and the engine's global clip is off; the config says so.
    train_cfg, method_cfg = build_configs("dino", {})
    assert train_cfg.grad_clip is None and method_cfg.param_grad_clip == 3.0


def test_knn_monitor_by_hand_and_against_the_evaluators():
    from trainers.knn import knn_accuracy

    # Hand-worked: the test point (1, 0) has neighbours (1, 0.1) [class 0] and (0.9, 0.2), (0.8, 0.3) [class 1].
    train = torch.tensor([[1.0, 0.1], [0.9, 0.2], [0.8, 0.3], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    test = torch.tensor([[1.0, 0.0]])
    assert knn_accuracy(train, labels, test, torch.tensor([0]), k=1) == 1.0
    # k=3 at a high temperature: two class-1 votes of almost equal weight outvote one class-0 vote.
    assert knn_accuracy(train, labels, test, torch.tensor([1]), k=3, temperature=100.0) == 1.0

    evaluators_knn = pytest.importorskip("evaluators.knn")
    torch.manual_seed(0)
    feats, y = torch.randn(300, 16), torch.randint(0, 5, (300,))
    feats[:, :5] += 2.0 * torch.nn.functional.one_hot(y, 5)
    mine = knn_accuracy(feats[:200], y[:200], feats[200:], y[200:], k=10, temperature=0.07)
    theirs = evaluators_knn.knn_classify(feats[:200], y[:200], feats[200:], y[200:], k=10, temperature=0.07)
    assert mine * 100 == pytest.approx(theirs["top1"], abs=1e-6)


def test_dino_blurs_local_crops_with_sigma_in_their_own_pixels():
    """main_dino.py blurs a 96-px local crop with σ ∈ [0.1, 2] px of that crop (not scaled by 96 / 224)."""
    from types import SimpleNamespace

    from trainers.augment import BatchRandom
    from trainers.methods.dino import DINO, DINOConfig

    ctx = SimpleNamespace(create_backbone=TinyNet, image_size=224, mean=(0.5,), std=(0.5,))
    dino = DINO(DINOConfig(out_dim=8, hidden_dim=8, bottleneck_dim=4, jitter=0.0), ctx)
    assert dino.local_crop.size == 96
    impulse = torch.zeros(64, 1, 96, 96)
    impulse[:, 0, 48, 48] = 1.0
    out = dino.local(impulse, BatchRandom(0, 0, 64, 0, 64)) * 0.5 + 0.5  # undo the normalisation
    row = out[:, 0, 48, :]
    j = torch.arange(96.0) - 48
    spread = (
        ((row / row.sum(1, keepdim=True)) * j.square()).sum(1).sqrt()
    )  # ≈ √(σ² + 1/12) per blurred sample
    blurred = spread[spread > 0.3]
    assert 16 <= len(blurred) <= 48  # p = 0.5 of 64
    assert blurred.max() > 1.5 and blurred.max() < 2.05  # σ up to 2 px; scaled by 96/224 it would stay < 0.9


class HeadedNet(TinyNet):
    """A backbone whose pooled output is wider than its ``num_features`` (as timm's VGG: 512 vs 4096)."""

    num_features = 3
    head_hidden_size = 6


@pytest.mark.parametrize("name", ["simclr", "moco", "byol", "dino", "selflabel"])
def test_heads_take_the_backbones_pooled_width(name):
    from trainers.augment import BatchRandom
    from trainers.methods import get_method
    from trainers.methods.base import Batch

    torch.manual_seed(0)
    method_cls = get_method(name)
    small = {"dino": {"out_dim": 8, "hidden_dim": 8, "bottleneck_dim": 4}, "moco": {"queue_size": 8}}
    ctx = SimpleNamespace(
        create_backbone=HeadedNet,
        image_size=8,
        mean=(0.5,),
        std=(0.5,),
        num_train=4,
        cfg=SimpleNamespace(seed=0, epochs=1),
    )
    method = method_cls(method_cls.Config(**small.get(name, {})), ctx)
    crops = [torch.rand(4, 1, 8, 8) for _ in method.view_specs()]
    batch = Batch(crops, torch.arange(4), torch.zeros(4, dtype=torch.long), BatchRandom(0, 0, 4, 0, 4))
    out = method.training_step(batch, step(5))  # a head built for 3 inputs fails on the 6-wide features
    assert torch.isfinite(out[0] if isinstance(out, tuple) else out)
