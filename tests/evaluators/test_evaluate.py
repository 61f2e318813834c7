def test_evaluate_is_the_function_whichever_import_comes_first():
    import subprocess
    import sys

    code = "import evaluators.evaluate; from evaluators import evaluate; assert callable(evaluate), evaluate"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unreadable_files_are_left_out_counted_in_the_records_and_strict_images_refuses(
    tmp_path, monkeypatch, capsys
):
    import pytest
    from _messy import BAD, messy_folder

    from evaluators.evaluate import EvalConfig, evaluate
    from zoo.errors import SslzooError

    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    dataset = f"folder:{messy_folder(tmp_path / 'photos')}"
    config = EvalConfig(protocols="knn", k=3)
    (record,) = evaluate("random-sslzoo_cnn4", dataset, config, progress=False)
    assert record.excluded_files == len(BAD) == 3
    assert sum(record.splits.values()) == 28  # what it measured: the readable ones
    assert record.to_dict()["excluded_files"] == 3
    err = capsys.readouterr().err
    assert "left out 3 of the 31 image files" in err and "skipped_files.txt" in err
    with pytest.raises(SslzooError, match=r"3 of its 31 image files are not readable .*cats/cut\.jpg"):
        evaluate(
            "random-sslzoo_cnn4", dataset, EvalConfig(protocols="knn", strict_images=True), progress=False
        )
    (clean,) = evaluate("raw-pixels", "digits", config, progress=False)
    assert clean.excluded_files == 0
