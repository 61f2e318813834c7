"""The app's API endpoints, called the way a user's script would: through ``gradio_client``.

Each answer is checked against the same quantity computed here independently (numpy ranking instead of faiss,
the attention matrix captured from timm's own unfused attention instead of the app's recomputation, sklearn's PCA).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

import zoo

K = 8


@pytest.fixture(scope="module")
def digits_test():
    return zoo.load_dataset("digits", split="test")


@pytest.fixture(scope="module")
def vit_gallery_feats(served, digits_test):
    """The gallery embeddings computed here, L2-normalised: (360, 192)."""
    feats = zoo.load(served.vit).embed(digits_test).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def _table(answer) -> list[list]:
    return answer[3]["data"]


def test_gallery_image_first_neighbour_is_itself_and_ranking_matches_numpy(client, served, vit_gallery_feats):
    index = 17
    answer = client.predict(served.vit, "digits", index, K, api_name="/gallery_neighbours")
    rows = _table(answer)
    assert len(rows) == K and len(answer[2]) == K  # the table and the neighbour images
    assert rows[0][1] == index and rows[0][3] == pytest.approx(1.0, abs=1e-5)
    sims = vit_gallery_feats @ vit_gallery_feats[index]
    returned = np.array([r[1] for r in rows])
    np.testing.assert_allclose([r[3] for r in rows], sims[returned], atol=1e-5)
    kth = np.sort(sims)[::-1][K - 1]
    assert (sims[returned] >= kth - 1e-6).all()  # exactly the top-k (up to ties at the k-th place)
    assert np.all(np.diff([r[3] for r in rows]) <= 1e-7)  # most similar first
    assert "k-NN prediction" in answer[0]


def test_knn_prediction_is_the_weighted_vote_without_the_query(
    client, served, vit_gallery_feats, digits_test
):
    index = 3
    labels = np.asarray(digits_test["label"])
    answer = client.predict(served.vit, "digits", index, K, api_name="/gallery_neighbours")
    rows = _table(answer)
    votes = np.zeros(10)
    for _rank, i, _label, sim in rows:
        if i != index:  # leave-one-out: the query does not vote for itself
            votes[labels[i]] += np.exp(sim / 0.07)  # DINO's weight exp(s / T)
    assert f"k-NN prediction: {int(np.argmax(votes))}**" in answer[0]


def test_upload_of_a_gallery_image_finds_it_first(client, served, digits_test, tmp_path):
    index = 42
    path = tmp_path / "digit.png"
    digits_test[index]["image"].save(path)
    answer = client.predict(served.vit, "digits", handle_file(str(path)), 5, api_name="/neighbours")
    rows = _table(answer)
    assert rows[0][1] == index and rows[0][3] == pytest.approx(1.0, abs=1e-5)


def _tiny_png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width × height`` whose pixel data is missing (Pillow reads the size before any pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("notes.txt", b"not an image at all", "is not an image"),
        ("huge.png", _tiny_png_header(20_000, 20_000), "megapixels"),
        ("bomb.png", _tiny_png_header(100_000, 100_000), "too large"),
        ("truncated.png", None, "could not be decoded"),
    ],
)
def test_bad_uploads_give_one_line_in_the_page(client, served, tmp_path, name, payload, expected):
    path = tmp_path / name
    if payload is None:  # a real PNG cut in half
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            buf, "PNG"
        )
        payload = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(payload)
    for answer in (
        client.predict(served.vit, "digits", handle_file(str(path)), 5, api_name="/neighbours"),
        client.predict(served.vit, handle_file(str(path)), "native", 0.6, api_name="/attention"),
    ):
        assert answer[0].startswith("⚠️") and expected in answer[0] and "\n" not in answer[0]


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("CMYK", "converted from CMYK"),
        ("RGBA", "transparency flattened"),
        ("I;16", "scaled to 8 bits"),
        ("P", ""),
    ],
)
def test_other_colour_modes_are_converted_and_searched(client, served, tmp_path, mode, note):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    image = {
        "CMYK": lambda: rgb.convert("CMYK"),
        "RGBA": lambda: Image.merge("RGBA", (*rgb.split(), Image.new("L", rgb.size, 128))),
        "I;16": lambda: Image.fromarray(rng.integers(0, 65535, (40, 30), dtype=np.uint16)),
        "P": lambda: rgb.convert("P"),
    }[mode]()
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    image.save(path)
    answer = client.predict(served.vit, "digits", handle_file(str(path)), 3, api_name="/neighbours")
    assert len(_table(answer)) == 3, answer[0]
    assert note in answer[0]


def test_unavailable_model_and_empty_gallery_are_messages(client, served, tmp_path):
    answer = client.predict("no-such-model", "digits", 1, 3, api_name="/gallery_neighbours")
    assert answer[0].startswith("⚠️") and "unknown model 'no-such-model'" in answer[0]
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    answer = client.predict(f"folder:{tmp_path / 'empty'}", api_name="/gallery_browser")
    assert answer[0].startswith("⚠️") and "holds no images" in answer[0]
    answer = client.predict(served.vit, "digits", 360, 3, api_name="/gallery_neighbours")
    assert answer[0].startswith("⚠️") and "out of range" in answer[0]


def _cls_attention_from_timm(run: str, x: torch.Tensor) -> torch.Tensor:
    """Row [CLS] of the last block's full attention matrix, captured from timm's unfused path: (heads, tokens)."""
    model = zoo.load(run).model
    attn = model.blocks[-1].attn
    attn.fused_attn = False  # the unfused path materialises softmax(q kᵀ/√d) and passes it through attn_drop
    captured = []
    hook = attn.attn_drop.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        model(x)
    hook.remove()
    return captured[0][0, :, 0]


def test_attention_one_map_per_head_summing_to_the_cls_row_share(client, served, digits_test, tmp_path):
    # A 28×28 grayscale upload at the native 28 px: the app's preprocessing is then exactly ToTensor + Normalize.
    pixels = np.asarray(digits_test[7]["image"].resize((28, 28), Image.Resampling.NEAREST))
    path = tmp_path / "digit28.png"
    Image.fromarray(pixels).save(path)
    message, overlays, raw = client.predict(
        served.vit, handle_file(str(path)), "native", 0.6, api_name="/attention"
    )
    maps = np.asarray(raw["maps"])
    assert raw["kind"] == "attention" and maps.shape == (3, 7, 7), message  # one 7×7 map per head
    x = ((torch.tensor(pixels).float() / 255 - 0.5) / 0.5)[None, None]
    row = _cls_attention_from_timm(served.vit, x).numpy()  # (3, 1 + 49)
    np.testing.assert_allclose(row.sum(axis=1), 1.0, atol=1e-5)  # a softmax row
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0 - row[:, 0], atol=1e-5)  # the patches' share of it
    np.testing.assert_allclose(maps.reshape(3, -1), row[:, 1:], atol=1e-5)
    assert len(overlays) == 2 + 2 * 3  # mean, its mask, and per head an overlay and a mask


def test_attention_at_another_input_size_and_for_a_cnn(client, served):
    photo = handle_file(str(__import__("app.images").images.example_photos()[1]))  # chelsea, 451×300 RGB
    _, overlays, raw = client.predict(served.vit, photo, "56", 0.5, api_name="/attention")
    maps = np.asarray(raw["maps"])
    assert maps.shape == (3, 14, 14) and raw["input_size"] == [56, 56] and len(overlays) == 8
    assert np.all(maps >= 0) and np.all(maps.sum(axis=(1, 2)) <= 1 + 1e-6)
    message, overlays, raw = client.predict(served.cnn, photo, "native", 0.5, api_name="/attention")
    assert raw["kind"] == "similarity" and "no attention" in message and "cosine similarity" in message
    assert len(overlays) == 2  # the similarity map and its mask
    maps = np.asarray(raw["maps"])
    assert maps.shape[0] == 1 and np.all(np.abs(maps) <= 1 + 1e-6)


def test_embedding_map_is_the_pca_of_the_gallery(client, served, vit_gallery_feats, digits_test):
    from sklearn.decomposition import PCA

    message, image, csv_path = client.predict(served.vit, "digits", "PCA", api_name="/embedding_map")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 360 and "PCA of 360" in message
    coords = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    expected = PCA(n_components=2).fit_transform(vit_gallery_feats)
    signs = np.sign((coords * expected).sum(axis=0))  # principal axes are defined up to sign
    np.testing.assert_allclose(coords, expected * signs, atol=1e-3 * np.abs(expected).max())
    assert [int(r["label"]) for r in rows] == list(digits_test["label"])
    assert Image.open(image).size[0] > 300


def test_leaderboard_shows_the_recorded_rows(client):
    markdown, chart, table = client.predict(api_name="/leaderboard")
    assert "## digits" in markdown and "vit-random" in markdown and "raw-pixels" in markdown
    assert sorted(row[1] for row in table["data"]) == ["raw-pixels", "vit-random"]
    assert Image.open(chart).format == "PNG"


def test_served_on_loopback_with_local_runs_offered(served):
    assert served.url.startswith("http://127.0.0.1:")
    assert {served.vit, served.cnn} <= set(served.backend.model_choices())


def test_gallery_browser_shows_every_class(client):
    message, items, *_ = client.predict("digits", api_name="/gallery_browser")
    assert "360 images, 10 classes" in message
    classes = {item["caption"].split(" · ")[1] for item in items}
    assert classes == {str(c) for c in range(10)}


@pytest.mark.parametrize("model", ["dino-vits16", "hf-hub:someone/not-downloaded"])
def test_models_not_available_offline_are_one_line_in_the_page(
    client, hub_cache, model, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nor in torch.hub's cache
    answer = client.predict(model, "digits", 0, 3, api_name="/gallery_neighbours")
    assert answer[0].startswith("⚠️") and "HF_HUB_OFFLINE" in answer[0] and "\n" not in answer[0]
    assert answer[3]["data"] == []


@pytest.mark.slow
def test_tsne_map_covers_the_gallery(client, served):
    message, _image, csv_path = client.predict(served.vit, "digits", "t-SNE", api_name="/embedding_map")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert "T-SNE of 360" in message and len(rows) == 360
    assert sorted(int(r["index"]) for r in rows) == list(range(360))
