"""The page in a real browser: Debian's Chromium driven by playwright (never ``playwright install``).

What a person does and sees: the page opens with a query answered; a gallery click shows k neighbours without the
query and a vote over k; a model switch changes the results; a typed mask threshold re-renders the masks; a file
that is not an image says so in the page. Screenshots (1280×720, what fits without scrolling, and the full page)
are kept in the test's tmp dir and in ``$SSLZOO_ARTIFACTS`` if set.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 90_000
VIEWPORT = {"width": 1280, "height": 720}


def _save(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    artifacts = os.environ.get("SSLZOO_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(artifacts) / path.name)
    return path


def _all_rendered(page, selector: str) -> None:
    """Wait until every matched <img> finished loading real pixels (not a broken or empty image)."""
    page.wait_for_function(
        f"() => {{ const e = [...document.querySelectorAll({selector!r})];"
        " return e.length > 0 && e.every(i => i.complete && i.naturalWidth > 0); }"
    )


def _gallery_indices(page, selector: str) -> list[int]:
    """Gallery indices of the tiles shown (their files are named ``gal-<gallery digest>-<index>.png``)."""
    srcs = page.locator(selector).evaluate_all("els => els.map(e => e.getAttribute('src'))")
    return [int(m.group(1)) for s in srcs if (m := re.search(r"gal-[0-9a-f]+-(\d+)\.png", s or ""))]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # the first query may embed the gallery on two shared CPU cores
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, served):
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served.url)
    yield page
    page.close()


def _choose(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")


@pytest.mark.browser
def test_gallery_click_shows_k_neighbours_without_the_query_and_a_vote_over_k(page, served, tmp_path):
    from playwright.sync_api import expect

    message = page.locator("#neighbours-message")
    # The page opens with the first gallery image already queried, and the browser fits the 1280-px width.
    expect(message).to_contain_text("gallery image #0")
    expect(message).to_contain_text(f"Model `{served.vit}`".replace("`", ""))
    _all_rendered(page, "#gallery-browser img")
    right = page.locator("#gallery-browser img").evaluate_all(
        "els => Math.max(...els.map(e => e.getBoundingClientRect().right))"
    )
    assert right <= VIEWPORT["width"], "gallery tiles are cut off on the right"
    _save(page, tmp_path, "app-first-view", full_page=False)

    page.locator("#gallery-browser img").nth(4).click()  # gallery image #4 (page 1, in order)
    expect(message).to_contain_text("gallery image #4")
    expect(message).to_contain_text("weighted vote of the 10 nearest gallery images")
    expect(page.locator("#neighbours-gallery img")).to_have_count(10)
    _all_rendered(page, "#neighbours-gallery img")
    shown = _gallery_indices(page, "#neighbours-gallery img")
    assert len(shown) == 10 and 4 not in shown
    captions = page.locator("#neighbours-gallery .caption-label").all_inner_texts()
    assert all(re.fullmatch(r"\d · -?\d\.\d{4}", c.strip()) for c in captions), captions  # label in full

    k_box = page.locator("input[aria-label='number input for neighbours k']")
    k_box.fill("1")
    k_box.press("Enter")  # typed: the shown query (#4) is asked again with k = 1
    expect(message).to_contain_text("weighted vote of the 1 nearest gallery images")
    expect(page.locator("#neighbours-gallery img")).to_have_count(1)
    assert 4 not in _gallery_indices(page, "#neighbours-gallery img")
    page.locator("#gallery-browser img").nth(5).click()
    expect(message).to_contain_text("gallery image #5")
    expect(message).to_contain_text("weighted vote of the 1 nearest gallery images")
    expect(page.locator("#neighbours-gallery img")).to_have_count(1)
    assert 5 not in _gallery_indices(page, "#neighbours-gallery img")
    _save(page, tmp_path, "app-neighbours")


@pytest.mark.browser
def test_model_switch_changes_the_results(page, served, tmp_path):
    from playwright.sync_api import expect

    message = page.locator("#neighbours-message")
    expect(message).to_contain_text("gallery image #0")
    _all_rendered(page, "#neighbours-gallery img")
    before = _gallery_indices(page, "#neighbours-gallery img")
    _choose(page, "model-box", served.cnn)
    expect(message).to_contain_text(served.cnn)
    expect(message).not_to_contain_text(served.vit)
    _all_rendered(page, "#neighbours-gallery img")
    after = _gallery_indices(page, "#neighbours-gallery img")
    expected = [r["index"] for r in served.backend.neighbours_of_index(served.cnn, "digits", 0, 10).rows]
    assert after == expected and after != before
    _save(page, tmp_path, "app-model-switch")


@pytest.mark.browser
def test_typed_threshold_rerenders_the_masks(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Attention").click()
    page.locator("#attention-examples img").nth(1).click()  # scikit-image's "chelsea"
    expect(page.locator("#attention-image img").first).to_be_visible()
    page.get_by_role("button", name="Show attention").click()
    overlays = page.locator("#attention-gallery img")
    expect(overlays).to_have_count(8)  # mean, its mask, 3 heads, 3 head masks
    message = page.locator("#attention-message")
    expect(message).to_contain_text("holding 60% of the mass")
    _all_rendered(page, "#attention-gallery img")
    before = overlays.nth(1).get_attribute("src")
    box = page.locator("#threshold input[type='number']")
    box.fill("0.3")
    box.press("Enter")  # typed, the slider never moved
    expect(message).to_contain_text("holding 30% of the mass")
    expect(page.locator("#attention-gallery")).to_contain_text("t = 0.30")
    _all_rendered(page, "#attention-gallery img")
    assert overlays.nth(1).get_attribute("src") != before  # a new mask picture, not the old one relabelled
    _save(page, tmp_path, "app-attention")


@pytest.mark.browser
def test_non_image_upload_shows_the_message_in_the_page(page, tmp_path):
    from playwright.sync_api import expect

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all")
    message = page.locator("#neighbours-message")
    expect(message).to_contain_text(
        "gallery image #0"
    )  # the first view is in: nothing will overwrite the message
    page.get_by_text("or upload a query image").click()
    page.locator("#query-image input[type='file']").set_input_files(str(notes))
    expect(message).to_contain_text("notes.txt is not an image")
    _save(page, tmp_path, "app-bad-upload")


@pytest.mark.browser
def test_embedding_map_hover_shows_the_image_and_click_queries_it(page, served, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Embedding map").click()
    page.get_by_role("button", name="Draw the map").click()
    points = page.locator("#map-plot circle[data-i]")
    expect(points).to_have_count(360)
    # A point drawn on top of the others at its own centre (points overlap), hovered where a person would.
    index = page.evaluate(
        """() => [...document.querySelectorAll('#map-plot circle[data-i]')].find(c => {
             const r = c.getBoundingClientRect();
             return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === c;
           }).dataset.i"""
    )
    point = page.locator(f"#map-plot circle[data-i='{index}']")
    index = int(index)
    point.hover()
    tip = page.locator("#map-plot .map-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(f"#{index} · {point.get_attribute('data-label')}")
    _all_rendered(page, "#map-plot .map-tip img")
    _save(page, tmp_path, "app-embedding-map", full_page=False)
    # The coordinates download under a name that says what it holds, not file-<hash>.csv.
    csv = page.locator("#map-csv a[download]").first
    expect(csv).to_have_attribute("download", "embedding-map-pca-vit-random-digits.csv")
    point.click()
    expect(page.locator("#neighbours-message")).to_contain_text(f"gallery image #{index},")
    assert index not in _gallery_indices(page, "#neighbours-gallery img")


# ---------------------------------------------------------------------------------------------------- layout
# Boxes are read from the page (getBoundingClientRect), not from pixels: [left, top, right, bottom] in CSS px.
_BOXES = (
    "els => els.map(e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; })"
)


def _boxes(page, selector: str) -> list[list[float]]:
    return page.locator(selector).evaluate_all(_BOXES)


def _overlap(a: list[float], b: list[float], tolerance: float = 0.5) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > tolerance and min(a[3], b[3]) - max(a[1], b[1]) > tolerance


def _inside(inner: list[float], outer: list[float], tolerance: float = 0.5) -> bool:
    return all(inner[i] >= outer[i] - tolerance for i in (0, 1)) and all(
        inner[i] <= outer[i] + tolerance for i in (2, 3)
    )


def _assert_nothing_covers_the_pictures(page, block: str) -> None:
    """In ``block``: its label and corner buttons cover no picture, and every caption is whole, inside its
    thumbnail and under (not over) its picture."""
    pictures = _boxes(page, f"{block} img")
    covers = _boxes(page, f"{block} > label[data-testid='block-label']") + _boxes(
        page, f"{block} .icon-button-wrapper button"
    )
    assert pictures and covers
    assert not [(c, p) for c in covers for p in pictures if _overlap(c, p)], (
        f"{block}: label/buttons over a picture"
    )
    captions = page.locator(f"{block} .caption-label")
    fits = captions.evaluate_all(
        "els => els.map(e => [e.scrollWidth <= e.clientWidth, e.scrollHeight <= e.clientHeight, e.innerText])"
    )
    assert all(w and h for w, h, _ in fits), (
        f"{block}: clipped captions {[t for w, h, t in fits if not (w and h)]}"
    )
    thumbs = _boxes(page, f"{block} .thumbnail-item")
    for caption, thumb, picture in zip(_boxes(page, f"{block} .caption-label"), thumbs, pictures):
        assert _inside(caption, thumb) and not _overlap(caption, picture), f"{block}: caption out of place"


@pytest.mark.browser
def test_neighbours_labels_and_captions_cover_nothing_and_the_query_downloads_by_name(page, tmp_path):
    from playwright.sync_api import expect

    expect(page.locator("#neighbours-message")).to_contain_text("gallery image #0")
    _all_rendered(page, "#neighbours-gallery img")
    _all_rendered(page, "#query-shown img")
    _save(page, tmp_path, "app-layout-neighbours")
    _assert_nothing_covers_the_pictures(page, "#query-shown")
    _assert_nothing_covers_the_pictures(page, "#neighbours-gallery")
    query = _boxes(page, "#query-shown img")[0]
    assert not [b for b in _boxes(page, "#neighbours-gallery .thumbnail-item") if _overlap(query, b)]
    download = page.locator("#query-shown a[download]").get_attribute("download")
    assert download == "query-vit-random-digits-gallery-0.png"


@pytest.mark.browser
def test_attention_captions_and_colour_bars_are_whole(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Attention").click()
    page.locator("#attention-examples img").nth(1).click()
    expect(page.locator("#attention-image img").first).to_be_visible()
    page.get_by_role("button", name="Show attention").click()
    expect(page.locator("#attention-gallery img")).to_have_count(8)
    _all_rendered(page, "#attention-gallery img")
    _save(page, tmp_path, "app-layout-attention")
    _assert_nothing_covers_the_pictures(page, "#attention-gallery")
    captions = page.locator("#attention-gallery .caption-label").all_inner_texts()
    assert "head 3, mask t = 0.60" in [c.strip() for c in captions]  # in full, not "head 3, mask t = 0…"


def _save_collapsed_cnn(folder: Path) -> str:
    """``sslzoo_cnn4`` whose last BatchNorm outputs ~1 everywhere: every image embeds to nearly one vector."""
    import timm
    import torch

    import zoo
    import zoo.architectures  # registers sslzoo_cnn4 with timm

    torch.manual_seed(0)
    cnn = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
    last_bn = [m for m in cnn.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    with torch.no_grad():
        last_bn.weight.mul_(1e-4)
        last_bn.bias.fill_(1.0)
    zoo.save_encoder(cnn, folder / "encoder", model_args={"in_chans": 1})
    return str(folder)


@pytest.mark.browser
def test_a_collapsed_encoder_gets_a_warning_line(page, served, tmp_path):
    from playwright.sync_api import expect

    collapsed = _save_collapsed_cnn(served.root / "runs" / "cnn-collapsed")
    message = page.locator("#neighbours-message")
    expect(message).to_contain_text("gallery image #0")
    _choose(page, "model-box", collapsed)
    # (The random encoders of the other tests are flagged too: random weights give nearly one feature.)
    expect(message).to_contain_text(f"Model {collapsed} · gallery digits")  # its result, not a progress line
    expect(message).to_contain_text(
        re.compile("features look collapsed: all neighbours within 0.005 cosine", re.IGNORECASE)
    )
    expect(message).to_contain_text("this encoder may not have learned")
    _all_rendered(page, "#neighbours-gallery img")
    _save(page, tmp_path, "app-collapsed")
