"""What the page preselects: a shipped mini-zoo encoder, not whichever local run sorts first."""

from __future__ import annotations

import pytest

from app.ui import PREFERRED_MODELS, default_choices, default_model


def _shipped() -> list[str]:
    from zoo.registry import MODELS

    return sorted(n for n, e in MODELS.items() if e.source.startswith("folder:"))


def test_the_default_model_is_a_shipped_encoder_even_with_local_runs(tmp_path):
    from app.backend import Backend

    if not _shipped():
        pytest.skip("no encoder shipped under models/")
    for run in ("aaa-run", "cnn-random"):  # what sorted first before
        (tmp_path / "runs" / run / "encoder").mkdir(parents=True)
        (tmp_path / "runs" / run / "encoder" / "config.json").write_text("{}")
    models, _, model, _ = default_choices(Backend(runs_dir=tmp_path / "runs"))
    assert models[:2] == [str(tmp_path / "runs" / r) for r in ("aaa-run", "cnn-random")]  # still offered
    assert model in _shipped()
    assert model == next((m for m in PREFERRED_MODELS if m in _shipped()), _shipped()[0])


def test_a_given_model_wins_and_without_shipped_encoders_the_first_offered():
    assert default_model(["runs/a", "runs/b"]) == "runs/a"
    assert default_model([]) is None
    shipped = _shipped()
    if shipped:
        assert default_model(["runs/a", shipped[-1]]) == shipped[-1]
