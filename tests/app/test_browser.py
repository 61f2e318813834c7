"""The page in a real browser: Debian's Chromium driven by playwright (never ``playwright install``).

Open the page, click a gallery image and see its neighbours; open the Attention tab, pick an example photo and see
the overlays rendered. Screenshots are kept as artifacts in the test's tmp dir and in ``$SSLZOO_ARTIFACTS`` if set.
"""

from __future__ import annotations

import os
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


def _save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("SSLZOO_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(artifacts) / path.name)
    return path


def _all_rendered(locator) -> bool:
    """Every matched <img> finished loading real pixels (not a broken or empty image)."""
    return locator.evaluate_all("els => els.length > 0 && els.every(e => e.complete && e.naturalWidth > 0)")


@pytest.mark.browser
def test_pick_an_image_see_neighbours_and_an_attention_overlay(served, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # the first query embeds the gallery on two shared CPU cores

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(served.url)

            # Neighbours: the gallery browser fills on load; clicking an image queries it.
            thumbs = page.locator("#gallery-browser img")
            expect(thumbs.first).to_be_visible()
            thumbs.nth(4).click()
            neighbours = page.locator("#neighbours-gallery img")
            expect(neighbours).to_have_count(10)
            expect(page.locator("#neighbours-message")).to_contain_text("k-NN prediction")
            expect(page.locator("#neighbours-gallery")).to_contain_text("1.000")  # itself, similarity 1
            page.wait_for_function(
                "() => [...document.querySelectorAll('#neighbours-gallery img')]"
                ".every(e => e.complete && e.naturalWidth > 0)"
            )
            assert _all_rendered(neighbours)
            _save(page, tmp_path, "app-neighbours")

            # Attention: pick scikit-image's "chelsea" example, show the overlays.
            page.get_by_role("tab", name="Attention").click()
            page.locator("#attention-examples img").nth(1).click()
            expect(page.locator("#attention-image img").first).to_be_visible()
            page.get_by_role("button", name="Show attention").click()
            overlays = page.locator("#attention-gallery img")
            expect(overlays).to_have_count(8)  # mean, its mask, 3 heads, 3 head masks
            expect(page.locator("#attention-message")).to_contain_text("[CLS] attention")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#attention-gallery img')]"
                ".every(e => e.complete && e.naturalWidth > 0)"
            )
            assert _all_rendered(overlays)
            shot = _save(page, tmp_path, "app-attention")
            assert shot.stat().st_size > 10_000

            # Leaderboard: the recorded rows and their chart.
            page.get_by_role("tab", name="Leaderboard").click()
            expect(page.locator("#leaderboard-markdown")).to_contain_text("vit-random")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#leaderboard-chart img')]"
                ".some(e => e.complete && e.naturalWidth > 0)"
            )
            _save(page, tmp_path, "app-leaderboard")
        finally:
            browser.close()
