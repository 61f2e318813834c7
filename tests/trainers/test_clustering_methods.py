"""DeepCluster, DeeperCluster and Self-Label train on digits, find clusters that match the digits far better than
chance, export an encoder that zoo.load reads, and resume from a checkpoint to the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from trainers import train
from trainers.clustering import N_ROTATIONS, nmi
from trainers.methods.deepercluster import SubClassHeads, hierarchical_loss, rotate_batch
from trainers.methods.selflabel import label_update_epochs

TINY = {
    "dataset": "digits",
    "arch_args": ("widths=(8,16,16,32)",),
    "image_size": 16,
    "batch_size": 128,
    "epochs": 3,
    "progress": False,
    "knn_every": 0,
    "log_every": 1,
    "warmup_epochs": 0.2,
}
N_TRAIN = 1437
STEPS_PER_EPOCH = N_TRAIN // 128

# A few rounds each: DeepCluster and DeeperCluster re-cluster every epoch, Self-Label relabels at epochs 0, 1, 2.
METHODS = {
    "deepcluster": {"k": 20, "pca_dim": 16},
    "deepercluster": {"super_clusters": 2, "sub_clusters": 5, "pca_dim": 16, "cluster_every": 1},
    "selflabel": {"num_clusters": 20, "num_heads": 2, "label_updates": 9},
}
# Where the interrupted run dies: mid-epoch (labels come back from the checkpoint) or just after an epoch
# boundary with only the epoch-end checkpoint (the resumed run must re-cluster exactly as the first one did).
KILL = {
    "deepcluster": {"at_step": STEPS_PER_EPOCH + 4, "checkpoint_every": 3},
    "deepercluster": {"at_step": STEPS_PER_EPOCH + 1, "checkpoint_every": 0},
    "selflabel": {"at_step": 2 * STEPS_PER_EPOCH + 5, "checkpoint_every": 2},
}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _method_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["method"]


def _chance_nmi(labels: np.ndarray, n_clusters: int) -> float:
    """NMI of a random assignment to ``n_clusters`` clusters: what "no structure found" scores."""
    rng = np.random.default_rng(0)
    return max(nmi(rng.integers(n_clusters, size=len(labels)), labels) for _ in range(5))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("method", list(METHODS))
def test_method_finds_digit_clusters_exports_and_resumes(method, tmp_path, monkeypatch):
    options = {**TINY, **METHODS[method]}
    run = train(method, out=str(tmp_path / "full"), **options)

    # Pseudo-labels of every round agree with the true digits far more than a random partition does.
    rounds = [r for r in _rows(run) if "nmi_true" in r]
    assert len(rounds) == 3
    true_labels = zoo.to_arrays(zoo.load_dataset("digits", split="train"))[1]
    state = _method_state(run)
    labels = state["pseudo_labels"].numpy()
    n_clusters = {"deepcluster": 20, "deepercluster": 10, "selflabel": 20}[method]
    chance = _chance_nmi(true_labels, n_clusters)
    # (Self-Label's first labels come from a random network and head: still ~9x chance on digits.)
    assert all(r["nmi_true"] > 5 * chance for r in rounds), (chance, rounds)
    assert all("nmi_prev" in r for r in rounds[1:])
    for head_labels in labels.reshape(-1, N_TRAIN):
        counts = np.bincount(head_labels, minlength=n_clusters)
        assert (counts > 0).all()  # no empty cluster
        if method == "selflabel":  # equipartition: N/K = 71.85 → 71 or 72 each
            assert counts.min() >= N_TRAIN // 20 and counts.max() <= N_TRAIN // 20 + 1
    assert nmi(labels.reshape(-1, N_TRAIN)[0], true_labels) == pytest.approx(rounds[-1]["nmi_true"])
    if method == "selflabel":  # labels of a random network, then of one trained on them: they get better
        assert rounds[-1]["nmi_true"] > rounds[0]["nmi_true"]

    encoder = zoo.load(run, device="cpu")
    feats = encoder.embed(torch.rand(3, 1, 16, 16))
    assert feats.shape == (3, 32) and torch.isfinite(feats).all()
    assert json.loads((run / "encoder" / "sslzoo.json").read_text())["method"] == method

    # Kill a second run part-way, resume it, and reach exactly the same weights and pseudo-labels.
    from trainers.methods import get_method

    kill = KILL[method]
    cls = get_method(method)
    original = cls.on_after_step

    def dying(self, step):
        if step.global_step == kill["at_step"]:
            raise _Killed
        original(self, step)

    monkeypatch.setattr(cls, "on_after_step", dying)
    partial = tmp_path / "killed"
    with pytest.raises(_Killed):
        train(method, out=str(partial), checkpoint_every=kill["checkpoint_every"], **options)
    monkeypatch.setattr(cls, "on_after_step", original)
    train(method, out=str(partial), resume=True, checkpoint_every=kill["checkpoint_every"], **options)

    resumed = _method_state(partial)
    assert resumed.keys() == state.keys()
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6, msg=key)
    assert resumed["_extra_state"]["rounds"] == state["_extra_state"]["rounds"]


def test_rotate_batch_turns_each_image_by_its_own_angle():
    image = torch.arange(4.0).view(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    batch = image.repeat(4, 1, 1, 1)
    out = rotate_batch(batch, torch.tensor([0, 1, 2, 3]))
    assert out[0, 0].tolist() == [[0, 1], [2, 3]]
    assert out[1, 0].tolist() == [[1, 3], [0, 2]]  # 90° counter-clockwise
    assert out[2, 0].tolist() == [[3, 2], [1, 0]]
    assert out[3, 0].tolist() == [[2, 0], [3, 1]]


def test_sub_class_heads_use_only_the_true_super_class_head():
    torch.manual_seed(0)
    heads = SubClassHeads(n_super=N_ROTATIONS * 2, k=3, dim=5)
    feats, supers = torch.randn(4, 5), torch.tensor([0, 7, 3, 7])
    logits = heads(feats, supers)
    for i, s in enumerate(supers):
        expected = heads.weight[s] @ feats[i] + heads.bias[s]
        torch.testing.assert_close(logits[i], expected)
    subs = torch.tensor([2, 0, 1, 1])
    super_logits = torch.randn(4, N_ROTATIONS * 2)
    super_loss, sub_loss = hierarchical_loss(super_logits, logits, supers, subs)
    # Eq. (3) by hand: −log softmax at the targets, averaged over the batch.
    by_hand_super = -torch.stack([super_logits[i].log_softmax(0)[supers[i]] for i in range(4)]).mean()
    by_hand_sub = -torch.stack([logits[i].log_softmax(0)[subs[i]] for i in range(4)]).mean()
    torch.testing.assert_close(super_loss, by_hand_super)
    torch.testing.assert_close(sub_loss, by_hand_sub)
    # Only the heads of super-classes 0, 3 and 7 receive gradient.
    sub_loss.backward()
    touched = heads.weight.grad.abs().sum(dim=(1, 2)) > 0
    assert touched.nonzero().flatten().tolist() == [0, 3, 7]


def test_sub_class_heads_give_the_same_gradient_every_time():
    # A run must repeat itself bit for bit under the same seed. Gathering per-sample weights (weight[supers]) made
    # every backward pass differ on a multi-threaded CPU: 30 passes, 30 different gradients.
    torch.manual_seed(0)
    heads = SubClassHeads(n_super=8, k=8, dim=64)
    feats, supers, upstream = torch.randn(256, 64), torch.randint(0, 8, (256,)), torch.randn(256, 8)
    gradients, threads = set(), torch.get_num_threads()
    torch.set_num_threads(2)  # the drift needs threads; this folder's tests otherwise run on one
    try:
        for _ in range(10):
            heads.zero_grad()
            (heads(feats, supers) * upstream).sum().backward()
            gradients.add(heads.weight.grad.numpy().tobytes() + heads.bias.grad.numpy().tobytes())
    finally:
        torch.set_num_threads(threads)
    assert len(gradients) == 1


def test_sub_class_heads_run_under_bf16_autocast_on_bf16_features():
    # The quick demo trains with bf16 autocast on CPUs with bf16 units: the backbone then hands the heads bf16
    # features, and each head's product plus its float32 bias comes out in float32 — a bf16 buffer refused it.
    torch.manual_seed(0)
    heads = SubClassHeads(n_super=8, k=3, dim=16)
    feats, supers = torch.randn(6, 16).to(torch.bfloat16).requires_grad_(), torch.tensor([0, 5, 5, 2, 0, 7])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = heads(feats, supers)
    expected = torch.stack(
        [feats[i].float() @ heads.weight[s].T + heads.bias[s] for i, s in enumerate(supers)]
    )
    torch.testing.assert_close(logits.float(), expected, atol=0.05, rtol=0.02)  # bf16 products
    logits.float().sum().backward()
    assert heads.weight.grad is not None and feats.grad is not None


def test_label_update_schedule_is_dense_early():
    assert label_update_epochs(3, 9) == [0, 1, 2]
    assert label_update_epochs(400, 10) == [0, 4, 16, 36, 64, 100, 144, 196, 256, 324]
    assert label_update_epochs(5, 1) == [0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_two_process_run_assigns_the_same_labels_as_one(method, tmp_path):
    """Under torchrun the features of both ranks are gathered and clustered once: labels equal the 1-process ones.

    One epoch, so both runs cluster the same initial weights (after training, per-rank batch norm statistics make
    the two runs' weights differ slightly, as DDP without SyncBN does).
    """
    import os
    import subprocess
    import sys

    options = {**TINY, **METHODS[method], "epochs": 1}
    single = train(method, out=str(tmp_path / "one"), **options)
    args = [f"--method={method}", f"--out={tmp_path / 'two'}", "--no-progress"]
    for key, value in options.items():
        if key == "progress":
            continue
        value = " ".join(value) if isinstance(value, tuple) else value
        args.append(f"--{key.replace('_', '-')}={value}")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        f"--master-port={_free_port()}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*torchrun, "-m", "app.cli", "train", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _method_state(single), _method_state(tmp_path / "two")
    assert torch.equal(one["pseudo_labels"], two["pseudo_labels"])
    assert one["_extra_state"]["rounds"] == two["_extra_state"]["rounds"]


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("deepcluster", {"cluster_every": 0}, "--cluster-every must be at least 1"),
        ("deepercluster", {"sub_clusters": 0}, "--sub-clusters must be at least 1"),
        ("selflabel", {"num_clusters": 1}, "--num-clusters must be at least 2"),
    ],
)
def test_bad_options_are_one_clear_line(method, options, message):
    from trainers.engine import build_configs
    from zoo.errors import SslzooError

    with pytest.raises(SslzooError, match=message):
        build_configs(method, options)


def test_more_clusters_than_samples_is_a_clear_error():
    from trainers.clustering import kmeans
    from zoo.errors import SslzooError

    with pytest.raises(SslzooError, match="lower k"):
        kmeans(np.zeros((5, 3), dtype=np.float32), k=10)
