"""``sslzoo benchmark`` end to end on digits with a tiny budget, shipping a run into a mini-zoo folder, and the
README's generated leaderboard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from app.benchmark import (
    ALL_METHODS,
    BASELINE,
    PRESETS,
    QUICK_BUDGET,
    BenchmarkConfig,
    _resolve,
    method_of,
    run_benchmark,
    zoo_name,
)
from zoo.errors import SslzooError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick benchmark on digits: SimCLR and DeepCluster for one epoch, baselines, a (monkeypatched-empty) zoo."""
    root = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("SSLZOO_CACHE", str(root / "cache"))
    mp.setenv("SSLZOO_LEADERBOARD", str(root / "repo-leaderboard"))  # must stay untouched
    mp.setattr("zoo.registry.SHIPPED_DIR", root / "no-models")
    cfg = BenchmarkConfig(
        methods=("simclr", "deepcluster"), dataset="digits", epochs=1, out=str(root / "out"), progress=False
    )
    try:
        summary = run_benchmark(cfg, command="sslzoo benchmark --dataset digits --epochs 1")
        yield root, summary
    finally:
        mp.undo()


def test_quick_benchmark_writes_records_rows_cards_and_plots(quick):
    from huggingface_hub import ModelCard

    root, summary = quick
    out = root / "out"
    rows = {r["model"]: r for r in summary["rows"]}
    runs = [f"{out}/runs/simclr-quick", f"{out}/runs/deepcluster-quick"]
    assert [r["kind"] for r in summary["rows"]] == [BASELINE] * 3 + [QUICK_BUDGET] * 2
    assert set(rows) == {"raw-pixels", "raw-pixels-centred", "random-sslzoo_cnn4", *runs}
    # Quick rows say what they are in the table people read, with their budget.
    table = Path(summary["files"]["table"]).read_text()
    assert table.count("| quick-budget |") == 2 and "quick-budget rows" in table
    assert rows[runs[0]]["epochs"] == 1 and rows[runs[0]]["images_seen"] == 22 * 64  # 1437 // 64 steps
    assert "each method trained for 1 epoch (per its recipe)" in summary["note"]
    # Each quick row is compared with the random CNN on the same test images: the paired margin is the
    # records' difference, and the table says in words whether it is outside the noise.
    random = rows["random-sslzoo_cnn4"]
    for run in runs:
        vs = rows[run]["vs_random"]
        assert vs["baseline"] == "random-sslzoo_cnn4"
        for key in ("knn", "linear"):
            assert vs[key][0] == pytest.approx(rows[run][f"{key}_top1"] - random[f"{key}_top1"], abs=0.01)
            assert vs["learned"][key] == (vs[key][0] > 2 * vs[key][1])
        assert f"| {vs['text']} |" in table
    assert "paired standard error on the same 360 test images" in summary["note"]

    # Records: three protocols per model, in OUT/leaderboard; the repository's leaderboard is not touched.
    lines = [json.loads(x) for x in (out / "leaderboard" / "digits.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["protocol"]) for r in lines) == sorted(
        (m, p) for m in rows for p in ("knn", "linear", "clustering")
    )
    assert not (root / "repo-leaderboard").exists()

    # The raw-pixel row is DINO's k-NN vote on the flattened digits, recomputed here from the arrays.
    import zoo
    from evaluators import knn_classify

    (xtr, ytr), (xte, yte) = (zoo.to_arrays(zoo.load_dataset("digits", split=s)) for s in ("train", "test"))
    flat = [torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(len(x), -1) / 255) for x in (xtr, xte)]
    expected = knn_classify(
        flat[0], torch.from_numpy(ytr), flat[1], torch.from_numpy(yte), k=20, temperature=0.07
    )
    assert rows["raw-pixels"]["knn_top1"] == pytest.approx(expected["top1"], abs=1e-4)

    # Plots: the benchmark's curves and bar chart, and each run's own curves.
    for png in (summary["files"]["curves"], summary["files"]["chart"], *(f"{r}/curves.png" for r in runs)):
        assert Path(png).read_bytes()[:8] == PNG_MAGIC and Path(png).stat().st_size > 5000

    # Cards: one per run, parsed by huggingface_hub, with the run's k-NN record in the model-index and the
    # quick-budget warning.
    for run in runs:
        card = ModelCard.load(f"{run}/encoder/README.md")
        knn = [e for e in card.data.eval_results if e.metric_type == "knn_top1"]
        # in percent with two decimals, as every card shows scores
        assert [e.metric_value for e in knn] == [pytest.approx(round(rows[run]["knn_top1"], 2), abs=1e-9)]
        assert "Quick-budget encoder" in card.text


def test_ship_registers_the_folder_by_name_and_it_reproduces_offline(quick, tmp_path, monkeypatch, request):
    import zoo
    from app.cli import main
    from app.minizoo import ship
    from zoo.registry import MODELS, shipped_entries

    root, _ = quick
    monkeypatch.setenv("SSLZOO_CACHE", str(root / "cache"))
    run = root / "out" / "runs" / "simclr-quick"
    name = "simclr-digits-shiptest"
    request.addfinalizer(lambda: MODELS.pop(name, None))  # ship() registers it in this process
    models, board = tmp_path / "models", tmp_path / "leaderboard"
    # A later session that found the run finished (as `--ship` does) trained nothing: not in the provenance.
    prov = json.loads((run / "benchmark.json").read_text())
    # One epoch of the digits train split (1,437 images) in batches of 64.
    assert prov["sessions"][0]["steps_trained"] == 1437 // 64
    later = {
        **prov["sessions"][0],
        "command": "sslzoo benchmark --ship",
        "commit": "f" * 40,
        "steps_trained": 0,
    }
    (run / "benchmark.json").write_text(json.dumps({**prov, "sessions": [*prov["sessions"], later]}))
    folder, records = ship(
        run, name, models_dir=models, leaderboard=board, cards_dir=tmp_path / "cards", progress=False
    )

    # The Hub-ready folder `sslzoo push` would upload, registered from the folder alone (what a fresh clone sees).
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "curves.png",
        "model.safetensors",
        "sslzoo.json",
    ]
    (entry,) = shipped_entries(models)
    assert (entry.name, entry.method, entry.arch, entry.source) == (
        name,
        "simclr",
        "sslzoo_cnn4",
        f"folder:{folder}",
    )
    # A fresh process (what a fresh clone sees) registers it from the folder alone and loads it by name.
    import subprocess
    import sys

    code = f"import zoo; print(zoo.load({name!r}, device='cpu').identity)"
    env = {**os.environ, "SSLZOO_MODELS_DIR": str(models)}
    fresh = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    encoder = zoo.load(name, device="cpu")
    assert fresh.stdout.strip() == encoder.identity
    assert encoder.identity.startswith(f"{name}@sha256:")
    x = torch.rand(3, 1, 16, 16)
    with torch.inference_mode():
        assert torch.equal(encoder(x), zoo.load(run, device="cpu")(x))

    # Provenance: the exact command, commit and machine that trained it, in sslzoo.json and the card.
    meta = json.loads((folder / "sslzoo.json").read_text())
    assert meta["command"] == "sslzoo benchmark --dataset digits --epochs 1"
    assert meta["commit"] == meta["sessions"][0]["commit"] and len(meta["sessions"]) == 2
    assert meta["machine"].startswith(f"{os.cpu_count()} CPU cores")
    card = (folder / "README.md").read_text()
    assert "sslzoo benchmark --dataset digits --epochs 1" in card and meta["commit"] in card
    assert meta["machine"] in card and "--ship" not in card
    assert (tmp_path / "cards" / f"{name}.md").is_file()

    # Records under the name; `sslzoo leaderboard --reproduce NAME` re-embeds and matches them.
    written = [json.loads(x) for x in (board / "digits.jsonl").read_text().splitlines()]
    assert sorted(r["protocol"] for r in written if r["model"] == name) == ["clustering", "knn", "linear"]
    assert [r.metrics for r in records] == [r["metrics"] for r in written if r["model"] == name]
    # The files generated from those records follow them (leaderboard markdown and chart).
    from evaluators.generated import stale_files

    assert (board / "README.md").is_file() and stale_files(board) == []
    assert main(["leaderboard", "--leaderboard", str(board), "--reproduce", name, "--json"]) == 0


def test_readme_leaderboard_is_written_between_the_markers(quick, tmp_path):
    from app.minizoo import README_END, README_START, update_readme_leaderboard

    root, summary = quick
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    path, n = update_readme_leaderboard(readme, dataset="digits", leaderboard=root / "out" / "leaderboard")
    text = path.read_text()
    assert n == 5 and "old table" not in text  # 3 baselines + 2 trained rows
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    table = text.split(README_START)[1].split(README_END)[0]
    raw = next(r for r in summary["rows"] if r["model"] == "raw-pixels")
    assert f"| `raw-pixels` | baseline | {raw['knn_top1']:.2f} |" in table  # percent, two decimals
    assert "sslzoo readme-leaderboard" in table and "CPU cores" in table

    readme.write_text("no markers here\n")
    with pytest.raises(SslzooError, match="markers"):
        update_readme_leaderboard(readme, dataset="digits", leaderboard=root / "out" / "leaderboard")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_recipe_is_a_valid_training_config(preset):
    from trainers.engine import build_configs

    p = PRESETS[preset]
    assert set(ALL_METHODS) <= set(p.recipes)  # every method (and, in full, other entries)
    for entry in p.recipes:
        cfg, _ = build_configs(method_of(entry), {**p.options(entry), "dataset": p.dataset})
        assert cfg.method == method_of(entry) and cfg.epochs >= 1
    # Full: DINO on the CNN and on a small ViT (the app's attention), runs resumed, not restarted.
    if preset == "full":
        assert p.options("dino")["arch"] == "sslzoo_cnn4" and p.resumable
        assert p.options("dino-vit")["arch"].startswith("sslzoo_vit_") and method_of("dino-vit") == "dino"
        assert (zoo_name("dino"), zoo_name("dino-vit")) == ("dino-fmnist", "dino-vit-fmnist")
        assert _resolve(BenchmarkConfig(preset="full"))[1] == [*ALL_METHODS, "dino-vit"]
    else:
        assert _resolve(BenchmarkConfig(preset="quick"))[1] == list(ALL_METHODS)
        with pytest.raises(SslzooError, match="unknown method dino-vit for the quick preset"):
            _resolve(BenchmarkConfig(preset="quick", methods=("dino-vit",)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "quick", "ship": True}, "--ship ships full-recipe"),
        ({"preset": "full", "ship": True, "validation": True}, "drop --validation"),
        ({"methods": ("simclr", "swav")}, "unknown method swav"),
        ({"preset": "huge"}, "unknown preset"),
    ],
)
def test_bad_options_fail_with_one_line(options, message, tmp_path):
    with pytest.raises(SslzooError, match=message):
        run_benchmark(BenchmarkConfig(out=str(tmp_path), **options))


def test_where_each_preset_trains_and_writes(monkeypatch, tmp_path):
    from app.benchmark import _resolve

    monkeypatch.setenv("SSLZOO_LEADERBOARD", str(tmp_path / "repo-leaderboard"))
    _, _, dataset, out, board = _resolve(BenchmarkConfig())  # quick: a subset; records beside the outputs
    assert (dataset, out, board) == (
        "fashion-mnist?train=10000",
        Path("outputs/benchmark-quick"),
        Path("outputs/benchmark-quick/leaderboard"),
    )
    # Full with --validation: a split carved from train stands in for test, in a folder of its own.
    _, _, dataset, out, _ = _resolve(BenchmarkConfig(preset="full", validation=True))
    assert dataset == "fashion-mnist?val=10000" and out.name == "full-runs-val" and ".cache" in str(out)
    # Shipping records into the repository's leaderboard (what the mini-zoo cards and --reproduce read).
    _, _, dataset, _, board = _resolve(BenchmarkConfig(preset="full", ship=True))
    assert dataset == "fashion-mnist" and board == tmp_path / "repo-leaderboard"


def test_presets_use_bf16_only_where_the_cpu_has_bf16_units(tmp_path, monkeypatch):
    import trainers.distributed
    from app.benchmark import FULL_PRESET, QUICK_PRESET, resolve_amp

    for preset in (QUICK_PRESET, FULL_PRESET):
        options = preset.options("simclr")
        assert options["channels_last"] is True
        for native, expected in ((True, "bf16"), (False, "none")):
            monkeypatch.setattr(trainers.distributed, "cpu_has_native_bf16", lambda native=native: native)
            assert resolve_amp(options, tmp_path / "new", "cpu")["amp"] == expected
    assert (
        FULL_PRESET.options("dino-vit")["amp"] == "none"
    )  # the small ViT: bf16 is no faster on any CPU measured
    # A run folder that holds a run keeps the precision it started with, whatever this machine has.
    run = tmp_path / "started"
    run.mkdir()
    (run / "train_config.json").write_text('{"train": {"amp": "bf16"}}')
    monkeypatch.setattr(trainers.distributed, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp(FULL_PRESET.options("byol"), run, "cpu")["amp"] == "bf16"


def test_quick_note_states_the_epochs_the_runs_had():
    from app.benchmark import _epochs_text, _Run

    def run(epochs):
        return _Run("simclr", Path("r"), 1.0, 1.0, epochs, 0)

    assert _epochs_text([run(2.0), run(1.0), run(2.0)]) == "1–2 epochs"
    assert _epochs_text([run(2.0), run(2.0)]) == "2 epochs"
    assert _epochs_text([run(1.0)]) == "1 epoch"
    assert _epochs_text([run(0.5)]) == "0.5 epochs"
