"""The app's API endpoints, called the way a user's script would: through ``gradio_client``.

Each answer is checked against the same quantity computed here independently (numpy ranking instead of faiss,
the attention matrix captured from timm's own unfused attention instead of the app's recomputation, sklearn's PCA).
"""

from __future__ import annotations

import csv
import io
import re

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


def _leave_one_out_top_k(feats: np.ndarray, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar gallery images other than ``index``, by numpy: (indices, similarities)."""
    sims = feats @ feats[index]
    sims[index] = -np.inf
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]


def _vote(labels: np.ndarray, sims: np.ndarray, n_classes: int = 10, temperature: float = 0.07) -> np.ndarray:
    votes = np.zeros(n_classes)
    np.add.at(votes, labels, np.exp(sims / temperature))  # DINO's weight exp(s / T)
    return votes


@pytest.mark.parametrize("k", [K, 1])
def test_gallery_query_has_k_neighbours_other_than_itself_matching_numpy(
    client, served, vit_gallery_feats, k
):
    index = 17
    answer = client.predict(served.vit, "digits", index, k, api_name="/gallery_neighbours")
    rows = _table(answer)
    assert len(rows) == k and len(answer[2]) == k  # the table and the neighbour images
    returned = np.array([r[1] for r in rows])
    assert index not in returned  # the query is never its own neighbour
    _, expected_sims = _leave_one_out_top_k(vit_gallery_feats, index, k)
    np.testing.assert_allclose([r[3] for r in rows], expected_sims, atol=1e-5)
    kth = expected_sims[-1]
    sims = vit_gallery_feats @ vit_gallery_feats[index]
    assert (sims[returned] >= kth - 1e-6).all()  # exactly the top-k of the others (up to ties at the k-th)
    assert f"weighted vote of the {k} nearest gallery images" in answer[0]
    assert f"gallery image #{index}" in answer[0] and "left out of its own neighbours" in answer[0]


@pytest.mark.parametrize("k", [K, 1])
def test_knn_prediction_is_the_weighted_vote_of_all_k_neighbours(client, served, digits_test, k):
    index = 3
    labels = np.asarray(digits_test["label"])
    answer = client.predict(served.vit, "digits", index, k, api_name="/gallery_neighbours")
    rows = _table(answer)
    votes = _vote(labels[[r[1] for r in rows]], np.array([r[3] for r in rows]))
    assert f"k-NN prediction: {int(np.argmax(votes))}**" in answer[0]
    share = 100 * votes.max() / votes.sum()
    assert f"{int(np.argmax(votes))} {share:.0f}%" in answer[0]  # the shares are of the k votes


def test_every_result_names_the_model_and_gallery_that_produced_it(client, served):
    for model in (served.vit, served.cnn):
        answer = client.predict(model, "digits", 5, 3, api_name="/gallery_neighbours")
        assert f"Model `{model}` · gallery `digits`" in answer[0]
    message, _, _ = client.predict(served.cnn, "digits", "PCA", api_name="/embedding_map")
    assert f"Model `{served.cnn}` · gallery `digits`" in message


def test_upload_of_a_gallery_image_finds_it_first_and_is_in_domain(client, served, digits_test, tmp_path):
    index = 42
    path = tmp_path / "digit.png"
    digits_test[index]["image"].save(path)
    answer = client.predict(served.vit, "digits", handle_file(str(path)), 5, api_name="/neighbours")
    rows = _table(answer)
    assert rows[0][1] == index and rows[0][3] == pytest.approx(1.0, abs=1e-5)  # an upload is not left out
    assert "far from the gallery" not in answer[0] and "query: your upload" in answer[0]


def test_a_photo_far_from_the_gallery_is_flagged(client, served, vit_gallery_feats):
    """The threshold is the 1st percentile of the gallery's own leave-one-out nearest-neighbour similarities."""
    photo = __import__("app.images").images.example_photos()[0]  # the astronaut, against 8×8 digits
    answer = client.predict(served.vit, "digits", handle_file(photo), 5, api_name="/neighbours")
    best = _table(answer)[0][3]
    sims = vit_gallery_feats @ vit_gallery_feats.T
    np.fill_diagonal(sims, -np.inf)
    threshold = np.percentile(sims.max(axis=1), 1.0)
    assert (
        best < threshold
    )  # a random ViT still places a photo further from digits than digits from each other
    assert (
        answer[0].startswith("⚠️") and "far from the gallery" in answer[0] and f"{threshold:.3f}" in answer[0]
    )


def test_the_page_shows_the_input_the_model_saw(client, served, tmp_path):
    """A 28×28 grayscale upload is exactly what the 28-px one-channel ViT sees; a colour photo becomes one."""
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "gray28.png")
    answer = client.predict(
        served.vit, "digits", handle_file(str(tmp_path / "gray28.png")), 3, api_name="/neighbours"
    )
    seen = Image.open(answer[1]["path"] if isinstance(answer[1], dict) else answer[1])
    assert seen.mode == "L" and seen.size == (28, 28)
    np.testing.assert_array_equal(np.asarray(seen), pixels)
    assert "model input: 28×28 grayscale" in answer[0]
    photo = __import__("app.images").images.example_photos()[1]  # chelsea, 451×300 RGB
    answer = client.predict(served.vit, "digits", handle_file(photo), 3, api_name="/neighbours")
    seen = Image.open(answer[1]["path"] if isinstance(answer[1], dict) else answer[1])
    assert seen.mode == "L" and seen.size == (28, 28)


def test_concurrent_queries_all_answer_with_whole_images(served):
    """Sixteen gallery queries at once: every answer complete and every image it names served whole."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from gradio_client import Client

    def ask(i: int) -> int:
        answer = Client(served.url, verbose=False, download_files=False).predict(
            served.vit, "digits", i, 5, api_name="/gallery_neighbours"
        )
        urls = [answer[1]["url"], *(item["image"]["url"] for item in answer[2])]
        with httpx.Client() as http:
            for url in urls:
                reply = http.get(url)
                reply.raise_for_status()
                Image.open(io.BytesIO(reply.content)).load()
        return len(answer[2])

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(ask, range(16))) == [5] * 16


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

    from app.embedding_map import selected_index

    message, svg, csv_path = client.predict(served.vit, "digits", "PCA", api_name="/embedding_map")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 360 and "PCA of 360" in message
    coords = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    expected = PCA(n_components=2).fit_transform(vit_gallery_feats)
    signs = np.sign((coords * expected).sum(axis=0))  # principal axes are defined up to sign
    np.testing.assert_allclose(coords, expected * signs, atol=1e-3 * np.abs(expected).max())
    assert [int(r["label"]) for r in rows] == list(digits_test["label"])
    # One hoverable point per gallery image, with its label and image; a click is read back as its index.
    points = re.findall(r'<circle [^>]*data-i="(\d+)" data-label="([^"]*)" data-src="([^"]*)"', svg)
    assert [int(i) for i, _, _ in points] == list(range(360))
    assert [label for _, label, _ in points] == [str(y) for y in digits_test["label"]]
    assert all(src.startswith("gradio_api/file=") for _, _, src in points)
    assert selected_index(svg) is None
    assert selected_index(svg.replace('data-selected=""', 'data-selected="12"')) == 12


def test_leaderboard_shows_the_recorded_rows(client):
    markdown, chart, table = client.predict(api_name="/leaderboard")
    assert "## digits" in markdown and "vit-random" in markdown and "raw-pixels" in markdown
    assert sorted(row[1] for row in table["data"]) == ["raw-pixels", "vit-random"]
    assert Image.open(chart).format == "PNG"


def test_served_on_loopback_with_local_runs_offered(served):
    assert served.url.startswith("http://127.0.0.1:")
    assert {served.vit, served.cnn} <= set(served.backend.model_choices())


def test_gallery_browser_pages_through_one_class(client, digits_test):
    labels = np.asarray(digits_test["label"])
    message, items, page = client.predict("digits", "all classes", 1, api_name="/gallery_browser")
    assert "360 images, 10 classes" in message and page == 1
    assert [int(item["caption"].split(" · ")[0][1:]) for item in items] == list(range(48))
    threes = np.flatnonzero(labels == 3)
    message, items, page = client.predict("digits", "3", 1, api_name="/gallery_browser")
    shown = [int(item["caption"].split(" · ")[0][1:]) for item in items]
    assert shown == threes[:48].tolist() and f"page 1 of 1 ({len(threes)} images)" in message
    _, items, page = client.predict("digits", "all classes", 99, api_name="/gallery_browser")
    assert page == 8 and len(items) == 360 - 7 * 48  # past the end: the last page


def test_gallery_browser_shuffles_the_whole_split(served):
    from app.handlers import Handlers

    handlers = Handlers(served.backend)
    seen = []
    for page in range(1, 9):
        _, _, shown, _ = handlers.gallery_browser("digits", "all classes", page, seed=7)
        seen += shown
    assert sorted(seen) == list(range(360)) and seen != list(range(360))
    assert (
        handlers.gallery_browser("digits", "all classes", 1, seed=7)[2] == seen[:48]
    )  # the same order again


def test_a_model_switch_reruns_the_shown_query_under_the_new_model(served):
    from app.handlers import Handlers

    handlers = Handlers(served.backend)
    before = handlers.requery(served.vit, "digits", "index", None, 11, 5)
    after = handlers.requery(served.cnn, "digits", "index", None, 11, 5)
    assert f"Model `{served.vit}`" in before[0] and f"Model `{served.cnn}`" in after[0]
    assert [r[1] for r in before[3]] != [r[1] for r in after[3]]
    assert after[3] == handlers.gallery_neighbours(served.cnn, "digits", 11, 5)[3]
    cleared = handlers.requery(served.cnn, "digits", None, None, None, 5)
    assert cleared[2] == [] and cleared[3] == [] and f"Model `{served.cnn}`" in cleared[0]


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
