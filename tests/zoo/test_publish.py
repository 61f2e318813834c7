"""Publishing: an exported run loads from the Hub (timm and zoo) exactly as trained; validation catches bad folders."""

from __future__ import annotations

import json

import pytest
import timm
import torch

import zoo.architectures  # registers the sslzoo_* architectures with timm
from zoo import publish
from zoo.cards import Result
from zoo.errors import SslzooError

INPUT = (1, 28, 28)


def make_run(root, seed: int = 0):
    """A run folder as the trainers leave it: training config + RUN/encoder/ written by zoo.save_encoder.

    The weights are moved away from their initialisation (one SGD step on a toy objective) so a loader that silently
    re-initialised the network would not pass.
    """
    torch.manual_seed(seed)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 16, 16, 32))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.randn(16, *INPUT)).pow(2).mean().backward()
    opt.step()
    net.eval()
    config = {"method": "simclr", "dataset": "digits", "epochs": 1, "seed": seed, "lr": 0.5}
    (root / "config.json").parent.mkdir(parents=True, exist_ok=True)
    zoo.save_encoder(
        net,
        root / "encoder",
        model_args={"in_chans": 1, "widths": (8, 16, 16, 32)},
        pretrained_cfg={"input_size": INPUT, "mean": (0.5,), "std": (0.5,), "crop_pct": 1.0},
        metadata={
            "method": "simclr",
            "dataset": "digits",
            "seed": seed,
            "commit": "0123abcd",
            "config": config,
        },
    )
    (root / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    return root


RESULTS = [
    Result("knn", "top1", 91.5, "digits", params={"k": 20, "temperature": 0.07}),
    Result("clustering", "nmi", 0.7, "digits", params={"seeds": 3}),
]


def test_exported_run_loads_from_the_hub_cache_in_timm_and_zoo_with_the_runs_embeddings(tmp_path, hub_cache):
    run = make_run(tmp_path / "runs" / "simclr-digits")
    folder = publish.export_folder(
        run, tmp_path / "hub-ready", repo_id="sslzoo-test/simclr-digits", results=RESULTS
    )
    assert publish.upload_files(folder) == ["README.md", "config.json", "model.safetensors", "sslzoo.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "sslzoo_cnn4" and config["num_features"] == 32
    assert config["pretrained_cfg"]["input_size"] == list(INPUT) and config["pretrained_cfg"]["mean"] == [0.5]
    meta = json.loads((folder / "sslzoo.json").read_text())
    assert meta["method"] == "simclr" and meta["seed"] == 0 and meta["config"]["lr"] == 0.5

    hub_cache.add_repo("sslzoo-test/simclr-digits", folder)
    x = torch.randn(5, *INPUT)
    with torch.no_grad():
        expected = zoo.load(run, device="cpu")(x)
        via_timm = timm.create_model(
            "hf-hub:sslzoo-test/simclr-digits", pretrained=True, num_classes=0
        ).eval()(x)
        via_zoo = zoo.load("hf-hub:sslzoo-test/simclr-digits", device="cpu")(x)
    assert torch.equal(via_timm, expected)
    assert torch.equal(via_zoo, expected)


def test_card_of_the_export_holds_the_recorded_metrics(tmp_path):
    run = make_run(tmp_path / "run")
    folder = publish.export_folder(run, tmp_path / "out", repo_id="me/run", results=RESULTS)
    report = publish.validate_folder(folder, reference=run, expected=RESULTS)
    assert report.results == 2 and report.max_abs_diff == 0.0
    text = (folder / "README.md").read_text()
    assert "91.50" in text and '"lr": 0.5' in text and "0123abcd" in text


def test_validation_refuses_weights_that_do_not_embed_like_the_original(tmp_path):
    run = make_run(tmp_path / "run", seed=0)
    other = make_run(tmp_path / "other", seed=1)
    folder = publish.export_folder(other, tmp_path / "out")
    with pytest.raises(SslzooError, match="differ"):
        publish.validate_folder(folder, reference=run)


def test_validation_refuses_a_card_without_the_recorded_results_and_missing_files(tmp_path):
    run = make_run(tmp_path / "run")
    folder = publish.export_folder(run, tmp_path / "out", results=RESULTS[:1])
    with pytest.raises(SslzooError, match="lacks k-means NMI"):
        publish.validate_folder(folder, expected=RESULTS)
    (folder / "README.md").unlink()
    with pytest.raises(SslzooError, match=r"README\.md missing"):
        publish.validate_folder(folder)


def test_dry_run_lists_the_files_and_a_real_push_offline_fails_with_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    folder = publish.export_folder(make_run(tmp_path / "run"), tmp_path / "out", repo_id="me/run")
    result = publish.push(folder, "me/run", dry_run=True)
    assert result.dry_run and result.files == ["README.md", "config.json", "model.safetensors", "sslzoo.json"]
    assert result.bytes == sum((folder / f).stat().st_size for f in result.files)
    with pytest.raises(SslzooError, match="HF_HUB_OFFLINE") as info:
        publish.push(folder, "me/run")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["noslash", "a/b/c", "-x/y", "me/ spaces"])
def test_bad_repo_ids_are_refused(bad):
    with pytest.raises(SslzooError, match="ORG/NAME"):
        publish.check_repo_id(bad)


def test_a_folder_without_an_encoder_is_refused_with_a_hint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SslzooError, match="holds no exported encoder"):
        publish.export_folder(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_hub_model_in_our_layout_re_exports_with_its_metadata(tmp_path, hub_cache):
    first = publish.export_folder(make_run(tmp_path / "run"), tmp_path / "first", repo_id="org/simclr")
    hub_cache.add_repo("org/simclr", first)
    again = publish.export_folder("hf-hub:org/simclr", tmp_path / "again", repo_id="other/simclr")
    assert (again / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    assert json.loads((again / "sslzoo.json").read_text())["config"]["lr"] == 0.5
    assert 'zoo.load("hf-hub:other/simclr")' in (again / "README.md").read_text()
    publish.validate_folder(again, reference=tmp_path / "run")


@pytest.mark.slow
def test_a_registry_entry_exports_with_its_published_numbers(tmp_path, hub_cache):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch16_224", num_classes=0)
    (tmp_path / "weights").mkdir()
    save_file(net.state_dict(), tmp_path / "weights" / "model.safetensors")
    hub_cache.add_repo("timm/vit_small_patch16_224.dino", tmp_path / "weights")
    folder = publish.export_folder("dino-vits16", tmp_path / "out", repo_id="me/dino-vits16")
    report = publish.validate_folder(
        folder, expected=publish.published_results(zoo.registry.MODELS["dino-vits16"])
    )
    assert report.results == 2 and report.max_abs_diff == 0.0
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained_cfg"]["interpolation"] == "bicubic" and "tag" not in config["pretrained_cfg"]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(zoo.load(folder, device="cpu")(x), net.eval()(x))


def _tree(root):
    """Every path under ``root`` with its bytes (folders as None): what a refused export must leave unchanged."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "destination",
    [
        "work",  # a folder of the user's: `cd work && sslzoo export ... --out .`
        "run",  # the source run itself
        "run/encoder",  # the source's encoder folder
        "run/encoder/hub",  # inside the source
        "work/notes.txt",  # a file
        "export-with-extra",  # an earlier export the user added a file to
    ],
)
def test_an_export_never_replaces_what_it_did_not_write(tmp_path, destination):
    run = make_run(tmp_path / "run")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    earlier = publish.export_folder(run, tmp_path / "export-with-extra")
    (earlier / "notes.txt").write_text("mine too")
    before = _tree(tmp_path)
    with pytest.raises(SslzooError) as info:
        publish.export_folder(run, tmp_path / destination)
    assert "\n" not in str(info.value) and destination.split("/")[-1] in str(info.value)
    assert _tree(tmp_path) == before


def test_an_earlier_export_or_an_empty_folder_is_replaced(tmp_path):
    run = make_run(tmp_path / "run")
    first = publish.export_folder(run, tmp_path / "out", repo_id="me/a")
    assert "me/a" in (first / "README.md").read_text()
    again = publish.export_folder(run, tmp_path / "out", repo_id="me/b")
    assert "me/b" in (again / "README.md").read_text() and "me/a" not in (again / "README.md").read_text()
    (tmp_path / "empty").mkdir()
    assert (publish.export_folder(run, tmp_path / "empty") / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out", "run"]


def test_a_killed_writers_temporary_plot_is_not_exported(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "curves.png").write_bytes(b"\x89PNG whole")
    (run / ".curves-999999999-abcd1234.png").write_bytes(b"\x89PNG half")
    folder = publish.export_folder(run, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "curves.png",
        "model.safetensors",
        "sslzoo.json",
    ]
    assert ".curves-" not in (folder / "README.md").read_text()
