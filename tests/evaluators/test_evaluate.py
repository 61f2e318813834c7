def test_evaluate_is_the_function_whichever_import_comes_first():
    import subprocess
    import sys

    code = "import evaluators.evaluate; from evaluators import evaluate; assert callable(evaluate), evaluate"
    subprocess.run([sys.executable, "-c", code], check=True)
