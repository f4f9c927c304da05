"""The repository's shape: the layer library imports only torch and numpy (CuPy on CUDA, Numba for
the CPU path) and never the harness; every Python block in the READMEs runs; nothing we ship points
at paths that exist only on our machines."""
import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import REPO

LIBRARY_MAY_IMPORT = {"torch", "numpy", "cupy", "numba", "llvmlite"}  # llvmlite: Numba's own backend
SHIPPED = ["unicornn", "repro", "psMNIST", "noisy_cifar", "eigenworms", "healthcare", "imdb", "benchmarks"]


def imported_top_level_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_library_imports_only_torch_numpy_and_the_standard_library():
    for path in sorted((REPO / "unicornn").glob("*.py")):
        outside = set(imported_top_level_modules(path)) - LIBRARY_MAY_IMPORT - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {outside}"


def test_library_works_without_the_harness_installed():
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in ('repro', 'tqdm', 'torchvision', 'ray', "
            "'tensorboard', 'aeon', 'spacy', 'matplotlib')]; import torch, unicornn; "
            "m = unicornn.UnICORNN(2, 4, 3, dt=0.1, alpha=1.0, nlayers=2); m(torch.randn(5, 2, 2)).sum().backward()")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def python_blocks(markdown):
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize("readme", sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("**/README.md")
                                          if ".venv" not in p.parts and "results" not in p.parts))
def test_every_python_block_in_the_readmes_runs(readme):
    for block in python_blocks((REPO / readme).read_text()):
        exec(compile(block, readme, "exec"), {"__name__": "readme"})


def test_nothing_shipped_cites_paths_of_our_machines():
    for folder in SHIPPED:
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".md"}:
                assert "../shared" not in path.read_text() and "/work/" not in path.read_text(), path


def code_strings(path, table=None):
    """The string constants of a module's code: docstrings (examples, explanations) and the
    assignment to ``table`` excluded."""
    tree = ast.parse(path.read_text())
    tree.body = [node for node in tree.body if not (isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == table for target in node.targets))]
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


# authors_logs.py maps the tasks to the authors' published log files (data, not behaviour)
HARNESS_CODE = [p for p in sorted((REPO / "repro").glob("*.py")) if p.name != "authors_logs.py"]


def test_the_harness_special_cases_no_experiment():
    """Experiments are named only in the table of repro/experiments.py (MODULES); all else about
    them is read from their declarations."""
    from repro import experiments
    names = set(experiments.MODULES) | {t.name for n in experiments.MODULES for t in experiments.get(n).tasks}
    for path in HARNESS_CODE:
        named = {name for text in code_strings(path, table="MODULES") for name in names if name in text}
        assert not named, f"{path.name} names {named}: declare it in the experiment's EXPERIMENT instead"


def test_run_folder_file_names_are_spelled_out_once():
    from repro import run_folder
    files = {run_folder.CHECKPOINT, run_folder.ARGS, run_folder.LOG, run_folder.LOG_CSV, run_folder.SUMMARY,
             run_folder.HISTORY, run_folder.BEST_MODEL}
    for path in HARNESS_CODE:
        if path.name != "run_folder.py":
            spelled = {name for text in code_strings(path) for name in files if name in text}
            assert not spelled, f"{path.name} spells out {spelled}: use the constants of repro/run_folder.py"


def test_real_mnist_location_follows_the_environment(tmp_path):
    env = dict(os.environ, UNICORNN_MNIST_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", "import conftest; print(conftest.MNIST_DIR)"],
                          cwd=REPO / "tests", env=env, capture_output=True, text=True, timeout=120)
    assert pathlib.Path(done.stdout.strip()) == tmp_path
