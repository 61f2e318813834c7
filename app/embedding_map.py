"""The embedding map as an interactive SVG: hover a point to see its image and label, click it to query it.

The page shows it in a ``gr.HTML`` whose ``js_on_load`` draws the tooltip (the gallery image, served from the
:class:`~app.tiles.TileStore` folder, and ``#index · label``) and, on a click, writes the point's gallery index into
the SVG's ``data-selected`` attribute and fires the component's ``click`` event; :func:`selected_index` reads it
back on the server. No plotting library is needed in the browser, and it works offline.

>>> import numpy as np
>>> html = map_svg(np.array([[0.0, 0.0], [1.0, 2.0]]), [0, 1], np.array([0, 1]), ["a", "b"], lambda i: f"{i}.png", "t")
>>> html.count("data-i="), selected_index(html.replace('data-selected=""', 'data-selected="1"'))
(2, 1)
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Sequence

import numpy as np

from zoo.errors import SslzooError

MAX_TSNE_POINTS = 2000  # t-SNE is O(N log N) per iteration; 2,000 points take ~10 s on two cores
WIDTH, HEIGHT, MARGIN = 900, 560, 24
LEGEND_WIDTH = 170

MAP_JS = """
// The SVG (and its tooltip box) arrive later than this script runs, so look them up on every event.
const tipOf = () => element.querySelector('.map-tip');
const find = (e) => e.target.closest ? e.target.closest('circle[data-i]') : null;
element.addEventListener('mouseover', (e) => {
  const p = find(e);
  const tip = tipOf();
  if (!p || !tip) return;
  tip.replaceChildren();
  const img = document.createElement('img');
  img.src = p.dataset.src;
  const text = document.createElement('div');
  text.textContent = '#' + p.dataset.i + ' · ' + p.dataset.label;
  tip.append(img, text);
  tip.style.display = 'block';
});
element.addEventListener('mousemove', (e) => {
  const tip = tipOf();
  if (!tip) return;
  const box = element.getBoundingClientRect();
  tip.style.left = (e.clientX - box.left + 14) + 'px';
  tip.style.top = (e.clientY - box.top + 14) + 'px';
});
element.addEventListener('mouseout', (e) => { const tip = tipOf(); if (tip && find(e)) tip.style.display = 'none'; });
element.addEventListener('click', (e) => {
  const p = find(e);
  if (!p) return;
  props.value = props.value.replace(/data-selected="[0-9]*"/, 'data-selected="' + p.dataset.i + '"');
  trigger('click');
});
"""

MAP_CSS = """
.map-wrap { position: relative; }
.map-wrap svg { width: 100%; height: auto; max-width: 1100px; }
.map-wrap circle { cursor: pointer; }
.map-wrap circle:hover { stroke: #000; stroke-width: 1.5; }
.map-tip { display: none; position: absolute; pointer-events: none; background: #fff; border: 1px solid #999;
  padding: 4px; font-size: 12px; z-index: 10; }
.map-tip img { width: 84px; height: 84px; image-rendering: pixelated; object-fit: contain; display: block; }
"""


def project(
    feats: np.ndarray, method: str = "pca", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str, list[float] | None]:
    """2-D coordinates of ``(N, D)`` embeddings: PCA of all, or t-SNE of at most :data:`MAX_TSNE_POINTS`.

    Returns:
        ``(coords (M, 2), indices (M,), method, explained)``: the rows mapped (all for PCA, a seeded random subset
        for t-SNE on more points), ``"pca"`` or ``"t-sne"``, and PCA's explained-variance ratios (``None``: t-SNE).
    """
    method = (method or "pca").lower()
    indices = np.arange(len(feats))
    if len(feats) < 3:
        raise SslzooError(f"the gallery has {len(feats)} images; a 2-D map needs at least 3.")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        return (
            np.asarray(pca.fit_transform(feats), np.float64),
            indices,
            "pca",
            pca.explained_variance_ratio_.tolist(),
        )
    if method not in ("tsne", "t-sne"):
        raise SslzooError(f"unknown projection {method!r}; choose pca or t-sne.")
    from sklearn.manifold import TSNE

    if len(feats) > MAX_TSNE_POINTS:
        indices = np.sort(np.random.default_rng(seed).choice(len(feats), MAX_TSNE_POINTS, replace=False))
    perplexity = float(min(30.0, (len(indices) - 1) / 3))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine")
    return np.asarray(tsne.fit_transform(feats[indices]), np.float64), indices, "t-sne", None


def class_colours(n: int) -> list[str]:
    """Matplotlib's tab10 / tab20 as hex, one per class."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [matplotlib.colors.to_hex(cmap(c % cmap.N)) for c in range(n)]


def map_svg(
    coords: np.ndarray,
    indices: Sequence[int],
    labels: np.ndarray,
    classes: Sequence[str],
    tile_url: Callable[[int], str],
    title: str,
    axes: tuple[str, str] = ("", ""),
) -> str:
    """An SVG scatter of ``(M, 2)`` ``coords``: one circle per gallery image, coloured by label, with a legend.

    Args:
        coords: Projected embeddings.
        indices: ``(M,)`` gallery indices of the points (``data-i``).
        labels: ``(M,)`` integer labels.
        classes: Class names.
        tile_url: Gallery index → URL of its image (the hover tooltip).
        title: Drawn above the plot.
        axes: x and y axis captions.
    """
    coords = np.asarray(coords, dtype=np.float64)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    plot_w, plot_h = WIDTH - LEGEND_WIDTH - 2 * MARGIN, HEIGHT - 3 * MARGIN
    xs = MARGIN + (coords[:, 0] - lo[0]) / span[0] * plot_w
    ys = 2 * MARGIN + (1 - (coords[:, 1] - lo[1]) / span[1]) * plot_h  # y grows upwards, as in a plot
    colours = class_colours(len(classes))
    esc = html_lib.escape
    parts = [
        f'<div class="map-wrap"><svg viewBox="0 0 {WIDTH} {HEIGHT}" data-selected="" role="img" '
        f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{MARGIN}" y="{MARGIN}" font-size="14">{esc(title)}</text>',
        f'<text x="{MARGIN + plot_w / 2}" y="{HEIGHT - 6}" font-size="12" text-anchor="middle">{esc(axes[0])}</text>',
        f'<text x="10" y="{2 * MARGIN + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 10 {2 * MARGIN + plot_h / 2})">{esc(axes[1])}</text>',
    ]
    for x, y, i, c in zip(xs, ys, indices, np.asarray(labels)):
        name = classes[int(c)] if 0 <= int(c) < len(classes) else str(int(c))
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colours[int(c) % len(colours)]}" fill-opacity="0.75" '
            f'data-i="{int(i)}" data-label="{esc(name)}" data-src="{esc(tile_url(int(i)))}"/>'
        )
    legend_x = WIDTH - LEGEND_WIDTH + 10
    for c, name in enumerate(classes):
        y = 2 * MARGIN + 18 * c
        parts.append(f'<circle cx="{legend_x}" cy="{y}" r="5" fill="{colours[c % len(colours)]}"/>')
        parts.append(f'<text x="{legend_x + 10}" y="{y + 4}" font-size="12">{esc(name)}</text>')
    parts.append('</svg><div class="map-tip"></div></div>')
    return "".join(parts)


def selected_index(svg: str | None) -> int | None:
    """The gallery index the user clicked (written into ``data-selected`` by the page), or ``None``."""
    match = re.search(r'data-selected="([0-9]+)"', svg or "")
    return int(match.group(1)) if match else None
