"""``sslzoo export / push / card``: cards from the leaderboard's records, dry runs, offline failure, token hygiene."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import ModelCard

import zoo.architectures  # registers the sslzoo_* architectures with timm
from app.cli import main
from zoo import publish
from zoo.registry import MODELS

FAKE_TOKEN = "hf_fakeTokenForTests0123456789abcdef"


def _save_run(root: Path) -> Path:
    """A run folder with an exported (random, 28 px, 1-channel) encoder and its training config."""
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 16, 16, 32)).eval()
    zoo.save_encoder(
        net,
        root / "encoder",
        model_args={"in_chans": 1, "widths": (8, 16, 16, 32)},
        pretrained_cfg={"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)},
        metadata={
            "method": "byol",
            "dataset": "digits",
            "seed": 0,
            "commit": "feedface",
            "config": {"epochs": 1},
        },
    )
    return root


@pytest.fixture
def run(tmp_path) -> Path:
    return _save_run(tmp_path / "runs" / "byol-digits")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, Path]:
    """A run really trained (SimCLR, one short epoch on digits) and its real records on digits (k-NN and
    clustering through the evaluators) in a temporary leaderboard; made once for the module."""
    from evaluators.evaluate import EvalConfig, evaluate
    from evaluators.records import write_records
    from trainers.engine import train

    root = tmp_path_factory.mktemp("evaluated")
    run = train(
        "simclr",
        dataset="digits",
        epochs=1,
        batch_size=512,
        arch="sslzoo_cnn4",
        arch_args=("widths=(8,16,16,32)",),
        knn_every=0,
        progress=False,
        out=str(root / "runs" / "simclr-digits"),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLZOO_CACHE", str(root / "cache"))
        records = evaluate(
            str(run), "digits", EvalConfig(protocols="knn,clustering", cache=False), progress=False
        )
    write_records(records, root / "leaderboard")
    return Path(run), root / "leaderboard"


def test_exported_trained_run_loads_from_the_hub_in_timm_and_zoo_with_the_runs_embeddings(
    evaluated, tmp_path, hub_cache
):
    run, leaderboard = evaluated
    out = tmp_path / "hub-ready"
    assert (
        main(
            [
                "export",
                str(run),
                "--out",
                str(out),
                "--repo",
                "sslzoo-test/simclr-digits",
                "--leaderboard",
                str(leaderboard),
            ]
        )
        == 0
    )
    hub_cache.add_repo("sslzoo-test/simclr-digits", out)
    x = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        expected = zoo.load(run / "encoder", device="cpu")(x)
        via_timm = timm.create_model(
            "hf-hub:sslzoo-test/simclr-digits", pretrained=True, num_classes=0
        ).eval()(x)
        via_zoo = zoo.load("hf-hub:sslzoo-test/simclr-digits", device="cpu")(x)
    assert torch.equal(via_timm, expected) and torch.equal(via_zoo, expected)
    assert "curves.png" in publish.upload_files(out)  # the run's training curves go along, shown in the card
    assert "![curves.png](curves.png)" in (out / "README.md").read_text()
    meta = json.loads((out / "sslzoo.json").read_text())
    assert meta["method"] == "simclr" and meta["config"]["train"]["epochs"] == 1


def _recorded(leaderboard: Path) -> dict[str, float]:
    """Each recorded metric as cards show it: records are in percent, cards round to two decimals."""
    from evaluators.records import read_records

    return {
        f"{r.protocol}_{m}": round(v, 2)
        for r in read_records(leaderboard)
        for m, v in r.metrics.items()
        if "_std" not in m
    }


def test_export_writes_a_card_whose_model_index_holds_the_recorded_metrics(evaluated, tmp_path, capsys):
    run, leaderboard = evaluated
    out = tmp_path / "hub-ready"
    assert (
        main(
            [
                "export",
                str(run),
                "--out",
                str(out),
                "--repo",
                "me/byol-digits",
                "--leaderboard",
                str(leaderboard),
            ]
        )
        == 0
    )
    assert "embeddings identical" in capsys.readouterr().out
    card = ModelCard.load(out / "README.md")
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    recorded = _recorded(leaderboard)
    assert (
        set(index)
        == set(recorded)
        == {
            "knn_top1",
            "knn_top5",
            "clustering_nmi",
            "clustering_ami",
            "clustering_ari",
            "clustering_acc",
        }
    )
    for name, value in recorded.items():
        assert index[name] == pytest.approx(value, abs=1e-9)
    assert all(r.dataset_split == "test" for r in card.data.eval_results)


def test_card_regenerates_a_runs_card_from_the_records(evaluated, tmp_path, capsys):
    import shutil

    run, leaderboard = evaluated
    run = Path(
        shutil.copytree(run, tmp_path / "simclr-digits")
    )  # matched by weights hash; the original stays clean
    assert main(["card", str(run), "--leaderboard", str(leaderboard)]) == 0
    written = run / "encoder" / "README.md"
    assert capsys.readouterr().out == f"wrote {written}  (6 model-index rows)\n"  # every file written, once
    assert len(ModelCard.load(written).data.eval_results) == 6


def test_records_are_found_by_weights_hash_when_the_run_moved(evaluated, tmp_path):
    import shutil

    run, leaderboard = evaluated
    moved = Path(shutil.copytree(run, tmp_path / "elsewhere"))
    from app.publish_cli import records_for
    from evaluators.records import read_records

    records = [r.to_dict() for r in read_records(leaderboard)]
    assert len(records_for(str(moved), records, folder=moved / "encoder")) == 2  # knn + clustering


def test_push_dry_run_lists_the_files_and_sends_nothing(run, tmp_path, capsys):
    # conftest sets HF_HUB_OFFLINE=1: any request huggingface_hub tried would raise, so passing means none was made.
    assert (
        main(["push", str(run), "--repo", "me/byol-digits", "--dry-run", "--leaderboard", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    for name in ("README.md", "config.json", "model.safetensors", "sslzoo.json"):
        assert name in out
    assert "dry run: would upload 4 files" in out and "https://huggingface.co/me/byol-digits" in out


def test_real_push_offline_fails_with_one_clear_line(run, tmp_path, capsys):
    assert main(["push", str(run), "--repo", "me/byol-digits", "--leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sslzoo: error: HF_HUB_OFFLINE=1 is set")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_token_in_the_environment_appears_in_no_output_and_no_file(run, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # a real request, refused at once
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    lb = str(tmp_path / "no-records")
    out_dir = tmp_path / "exported"
    assert (
        main(["export", str(run), "--out", str(out_dir), "--repo", "me/byol-digits", "--leaderboard", lb])
        == 0
    )
    assert main(["push", str(run), "--repo", "me/byol-digits", "--dry-run", "--leaderboard", lb]) == 0
    assert (
        main(["push", str(out_dir), "--repo", "me/byol-digits"]) == 2
    )  # the upload itself is attempted and fails
    captured = capsys.readouterr()
    assert "upload of me/byol-digits" in captured.err and captured.err.count("\n") == 1
    assert FAKE_TOKEN not in captured.out + captured.err
    assert "hf_fake" not in captured.out + captured.err
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files, "the export wrote nothing?"
    for path in files:
        assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_a_registry_entry_card_cites_its_published_numbers(tmp_path, capsys):
    out = tmp_path / "dino-vits16.md"
    assert main(["card", "dino-vits16", "--out", str(out), "--leaderboard", str(tmp_path)]) == 0
    card = ModelCard.load(out)
    published = {(r.metric_type, r.dataset_type, r.dataset_split): r for r in card.data.eval_results}
    knn = published[("knn_top1", "ILSVRC/imagenet-1k", "validation")]
    assert knn.metric_value == MODELS["dino-vits16"].published["imagenet_knn"] == 74.5
    assert knn.source_url == MODELS["dino-vits16"].published_source
    assert published[("linear_top1", "ILSVRC/imagenet-1k", "validation")].metric_value == 77.0
    assert card.data.license == "apache-2.0" and "dino" in card.data.tags


def test_every_registry_entry_has_an_up_to_date_generated_card():
    from zoo.cards import TEMPLATE_PATH, parse_card

    for name, entry in MODELS.items():
        path = TEMPLATE_PATH.parent / f"{name}.md"
        assert path.is_file(), f"model_cards/{name}.md is missing: run `sslzoo card --all`"
        parse_card(path.read_text(), expected=publish.published_results(entry))


def test_a_shipped_folder_entry_gets_its_card_in_the_folder_and_in_model_cards(
    run, tmp_path, monkeypatch, capsys
):
    from zoo.registry import ModelEntry

    (run / "encoder" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    entry = ModelEntry(
        name="byol-digits-mini", method="byol", arch="sslzoo_cnn4", source=f"folder:{run}", dim=32
    )
    monkeypatch.setitem(MODELS, entry.name, entry)
    out = tmp_path / "cards" / "byol-digits-mini.md"
    assert main(["card", entry.name, "--out", str(out), "--leaderboard", str(tmp_path / "none")]) == 0
    in_folder = (run / "encoder" / "README.md").read_text()
    assert 'zoo.load("byol-digits-mini")' in in_folder and "![curves.png](curves.png)" in in_folder
    assert "(../runs/byol-digits/encoder/curves.png)" in out.read_text()  # the figure, seen from model_cards/


class _FakeHub:
    """A local HTTP server answering the four Hub API calls of ``create_repo`` + ``upload_folder`` for small files.

    huggingface_hub runs its real code (requests, payloads, auth headers); only the far end is ours, and it keeps
    what it received so the test can check the files that arrived.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        hub = self
        self.created: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.auth: set[str] = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_POST(self) -> None:
                import base64

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.auth.add(self.headers.get("Authorization", ""))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    hub.created.append(payload)
                    reply = {"url": f"{hub.url}/{payload['organization']}/{payload['name']}"}
                elif path == "/api/validate-yaml":
                    reply = {"errors": [], "warnings": []}
                elif "/preupload/" in path:
                    files = json.loads(body)["files"]
                    reply = {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                        ]
                    }
                elif "/commit/" in path:
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    reply = {"commitUrl": f"{hub.url}/{repo}/commit/{'1234' * 10}", "commitOid": "1234" * 10}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_push_uploads_exactly_the_validated_files_and_sends_the_token_only_in_the_header(
    run, tmp_path, monkeypatch, capsys
):
    import huggingface_hub.constants as hf_constants

    hub = _FakeHub()
    try:
        monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        out = tmp_path / "hub-ready"
        assert main(["export", str(run), "--out", str(out), "--leaderboard", str(tmp_path / "none")]) == 0
        (out / "notes.txt").write_text("not part of the model")  # a stray file is not uploaded
        assert main(["push", str(out), "--repo", "me/byol-digits", "--private"]) == 0
    finally:
        hub.close()
    captured = capsys.readouterr()
    assert "uploaded 4 files" in captured.out and f"{hub.url}/me/byol-digits (private if new)" in captured.out
    assert hub.created == [{"name": "byol-digits", "organization": "me", "visibility": "private"}]
    assert sorted(hub.files) == ["README.md", "config.json", "model.safetensors", "sslzoo.json"]
    for name, content in hub.files.items():
        assert content == (out / name).read_bytes(), name
    assert hub.auth == {f"Bearer {FAKE_TOKEN}"}  # the token travels in the header, to the endpoint only
    assert FAKE_TOKEN not in captured.out + captured.err
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert FAKE_TOKEN.encode() not in path.read_bytes(), path
