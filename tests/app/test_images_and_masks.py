"""Upload normalisation, DINO's thresholded attention mask, overlays, and the ``sslzoo app`` command line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.attention import mask_overlay, overlay, similarity_map, threshold_mask, with_colour_bar
from app.images import read_image
from zoo.errors import SslzooError

# ------------------------------------------------------------------------------------------------ read_image


def test_rgba_is_flattened_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    image, note = read_image(rgba)
    assert image.mode == "RGB" and "transparency" in note
    assert image.getpixel((1, 1)) == (255, 255, 255) and image.getpixel((0, 0)) == (0, 0, 255)


def test_sixteen_bit_grayscale_is_scaled_as_in_training_not_clipped():
    values = np.array([[0, 1000], [2000, 65535]], dtype=np.uint16)  # would clip to 255 with convert("L")
    image, note = read_image(Image.fromarray(values))
    assert "8 bits" in note
    # The one decoding rule (zoo.imaging): 65535 → 255, i.e. a division by 257, as training sees the file.
    np.testing.assert_array_equal(np.asarray(image)[..., 0], [[0, 4], [8, 255]])


def test_cmyk_becomes_rgb_and_big_images_shrink(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (3000, 1500), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    image, note = read_image(path, max_side=512)
    assert image.mode == "RGB" and max(image.size) == 512 and image.size[0] == 2 * image.size[1]
    assert "CMYK" in note and "downscaled from 3000×1500" in note
    r, g, b = image.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert read_image(path)[0].size == (20, 40)


def test_gradio_payloads_file_or_data_url(tmp_path):
    import base64
    import io

    buf = io.BytesIO()
    Image.new("L", (3, 2), 7).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    image, _ = read_image({"path": None, "url": url})
    assert image.size == (3, 2) and image.getpixel((0, 0)) == (7, 7, 7)
    (tmp_path / "a.png").write_bytes(buf.getvalue())
    assert read_image({"path": str(tmp_path / "a.png"), "url": None})[0].size == (3, 2)


@pytest.mark.parametrize(
    ("source", "message"),
    [(None, "no image given"), ("/nonexistent/x.png", "cannot find"), (np.zeros((2, 2, 7)), "(H, W, 3)")],
)
def test_bad_sources_raise_one_line(source, message):
    with pytest.raises(SslzooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_image(source)


# ------------------------------------------------------------------------------------------------ masks


def test_threshold_mask_hand_worked():
    attn = np.array([0.1, 0.4, 0.2, 0.3])
    # Sorted ascending: 0.1, 0.2, 0.3, 0.4 with cumulative sums 0.1, 0.3, 0.6, 1.0.
    # t = 0.65 keeps cumulative > 0.35: values 0.3 and 0.4 (together 0.7 ≥ 0.65).
    assert threshold_mask(attn, 0.65).tolist() == [False, True, False, True]
    # t = 0.35 keeps cumulative > 0.65: only 0.4.
    assert threshold_mask(attn, 0.35).tolist() == [False, True, False, False]
    assert threshold_mask(attn, 1.0).all()


def test_threshold_mask_per_head_keeps_at_least_t_of_each_heads_mass():
    rng = np.random.default_rng(0)
    maps = rng.dirichlet(np.full(49, 0.3), size=6).reshape(6, 7, 7) * 0.9  # rows sum to 0.9, like CLS→patches
    for t in (0.3, 0.6, 0.9):
        mask = threshold_mask(maps, t)
        assert mask.shape == maps.shape
        for head, keep in zip(maps, mask):
            share = head / head.sum()
            kept = np.sort(share[keep])
            assert share[keep].sum() >= t - 1e-12  # the kept patches reach the mass t …
            assert share[keep].sum() - kept[0] < t  # … and dropping the weakest kept patch would not
            assert kept[0] >= share[~keep].max(initial=0)  # they are the most-attended ones


def test_overlay_and_mask_keep_the_image_size():
    image = Image.new("RGB", (60, 40), (200, 200, 200))
    heat = np.arange(6, dtype=float).reshape(2, 3)
    out = overlay(image, heat)
    assert out.size == (60, 40) and out.getpixel((0, 0)) != out.getpixel((59, 39))
    # The bottom row of patches (values 3, 4, 5) is kept: tinted half-way to red (DINO's apply_mask, alpha 0.5)
    # inside, outlined in red on its border, and untouched outside.
    masked = mask_overlay(image, heat >= 3, colour=(255, 0, 0), alpha=0.5)
    assert masked.size == (60, 40)
    assert masked.getpixel((30, 30)) == (228, 100, 100)  # 200 * 0.5 + 255 * 0.5 = 227.5, 200 * 0.5 = 100
    assert masked.getpixel((30, 5)) == (200, 200, 200)
    assert (255, 0, 0) in (masked.getpixel((30, 19)), masked.getpixel((30, 20)))  # the contour between rows


def test_colour_bar_is_added_on_the_right_with_the_colour_map_top_to_bottom():
    import matplotlib

    image = Image.new("RGB", (50, 100), (0, 0, 0))
    out = with_colour_bar(image, 0.0, 0.25, cmap="viridis")
    assert out.height == 100 and out.width > 60 and out.getpixel((10, 10)) == (0, 0, 0)
    top, bottom = out.getpixel((58, 0)), out.getpixel((58, 99))
    expected = [tuple(round(255 * c) for c in matplotlib.colormaps["viridis"](v)[:3]) for v in (1.0, 0.0)]
    assert [top, bottom] == expected


def test_colour_bar_labels_are_whole_and_scale_with_the_picture():
    for height in (100, 168, 320):
        image = Image.new("RGB", (height, height), (0, 0, 0))
        out = np.asarray(with_colour_bar(image, -0.000123, 12345.6)).min(axis=2)  # darkest channel per pixel
        labels = out[:, height + max(4, height // 40) + max(12, height // 14) :]  # right of the bar
        assert (labels[:, -2:] == 255).all()  # nothing drawn up to the right edge: no digit cut off
        inked = np.flatnonzero((labels < 128).any(axis=1))
        assert inked.min() <= 1 and inked.max() >= height - 2  # hi at the top, lo at the bottom, both inside
        assert (labels[height // 3 : 2 * height // 3] == 255).all()  # two labels, not one over the other
        assert (labels < 128).sum() > (height / 10) ** 2  # text a tenth of the height tall, not a few pixels


def test_similarity_map_is_the_cosine_to_the_pooled_feature():
    import torch

    feats = torch.zeros(1, 2, 1, 3)
    feats[0, :, 0, 0] = torch.tensor([1.0, 0.0])
    feats[0, :, 0, 1] = torch.tensor([0.0, 2.0])
    feats[0, :, 0, 2] = torch.tensor([3.0, 3.0])
    sim = similarity_map(feats, torch.tensor([[1.0, 1.0]]))
    np.testing.assert_allclose(sim[0, 0].numpy(), [2**-0.5, 2**-0.5, 1.0], atol=1e-6)


# ------------------------------------------------------------------------------------------------ CLI


def test_app_command_options(capsys):
    from app.cli import main

    with pytest.raises(SystemExit):
        main(["app", "--help"])
    out = capsys.readouterr().out
    for option in ("--model", "--gallery", "--host", "--port", "--leaderboard"):
        assert option in out
    assert "127.0.0.1" in out


def test_app_command_with_a_bad_gallery_is_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["app", "--gallery", f"folder:{tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no images" in err[0]
