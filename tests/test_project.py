"""The project's own promises about its files: environment.yml mirrors pyproject.toml, notebooks are
committed clean and only call src, and the Makefile's verbs exist."""
import re
import tomllib

import nbformat
import pytest
import yaml

from signal_noise.paths import NOTEBOOKS_DIR, ROOT


def test_environment_yml_installs_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e .[dev]"} == wanted
    for name in ("torch", "torchvision", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn",
                 "wandb", "papermill", "nbconvert", "jupyterlab", "ipykernel", "tqdm", "pytest"):
        spec = next(d for d in wanted if re.match(rf"{name}\b", d))
        assert re.search(r"[<>]=?", spec), f"{name} should be a range, got {spec!r}"


@pytest.mark.parametrize("name", ["01-sweep.ipynb", "02-report.ipynb"])
def test_notebooks_are_clean_and_call_src(name):
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None
        assert not re.search(r"^\s*(def|class) ", cell.source, re.M), "a def or class belongs in src"
    for line in params[0].source.splitlines():
        if line.strip():
            assert re.match(r"^\w+: (str|int|float|bool) = ", line), f"parameters hold typed literals: {line}"


def test_makefile_has_the_readme_verbs():
    text = (ROOT / "Makefile").read_text()
    for verb in ("env", "data", "sweeps", "report", "test", "bench", "lab", "help"):
        assert re.search(rf"^{verb}:.*## ", text, re.M), verb
    readme = (ROOT / "README.md").read_text()
    assert "make report" in readme and "make test" in readme


@pytest.mark.slow
def test_notebooks_run_top_to_bottom_with_their_defaults(tmp_path):
    """What `make lab` users get: both notebooks run as committed, on the shipped tiny store."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    papermill = Path(sys.executable).parent / "papermill"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for name in ("01-sweep.ipynb", "02-report.ipynb"):
        proc = subprocess.run([str(papermill), str(NOTEBOOKS_DIR / name), str(tmp_path / name), "-k", "python3",
                               "--cwd", str(NOTEBOOKS_DIR)], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        executed = nbformat.read(tmp_path / name, as_version=4)
        assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
