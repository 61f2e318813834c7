"""One decoding rule for every image: 16-bit scaled by 1/257, transparency on white, any mode to L or RGB."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from zoo.errors import SslzooError
from zoo.imaging import MAX_PIXELS, open_image, to_channels


def test_a_16_bit_png_decodes_as_scaling_by_1_over_257(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, size=(20, 30), dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    decoded = np.asarray(to_channels(open_image(path), 1))
    np.testing.assert_array_equal(decoded, np.round(values / 257.0).astype(np.uint8))
    # Not clipped: most of the pixels of a 16-bit image are above 255 and would all turn white.
    assert (values > 255).mean() > 0.9 and (decoded == 255).mean() < 0.01
    rgb = np.asarray(to_channels(open_image(path), 3))
    assert rgb.shape == (20, 30, 3) and (rgb == decoded[..., None]).all()


def test_transparency_is_flattened_onto_white_and_float_images_in_unit_range_are_scaled():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert np.asarray(to_channels(rgba, 3)).tolist()[0][0] == [255, 255, 255]
    unit = Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32))
    assert np.asarray(to_channels(unit, 1)).tolist() == [[128, 128], [128, 128]]
    cmyk = Image.new("CMYK", (3, 3), (0, 0, 0, 0))
    assert np.asarray(to_channels(cmyk, 3)).tolist()[0][0] == [255, 255, 255]


def test_unreadable_and_oversized_images_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(SslzooError, match="not a readable image"):
        open_image(empty, what=str(empty))
    bomb = tmp_path / "bomb.png"
    Image.new("L", (1, 1)).save(bomb)
    data = bytearray(bomb.read_bytes())
    data[16:24] = (30000).to_bytes(4, "big") * 2  # IHDR width and height: 30000 × 30000 …
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # … with the chunk's CRC to match
    bomb.write_bytes(bytes(data))
    with pytest.raises(SslzooError, match="megapixels") as info:
        open_image(bomb, what="bomb.png")
    assert MAX_PIXELS < 30000 * 30000 and "\n" not in str(info.value)
