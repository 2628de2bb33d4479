"""Every notebook under notebooks/ executes without error (nbclient, a fresh kernel each).

The notebooks are stored without outputs; this test runs them top to bottom in a scratch
folder, so they can never silently go out of date with the library.
"""

import pathlib

import nbclient  # the test extra installs nbclient and ipykernel
import nbformat
import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
if not NOTEBOOK_DIR.is_dir():  # tests/ copied out of the checkout, run on an installed package
    pytest.skip(f"needs the notebooks/ next to tests/ ({NOTEBOOK_DIR} is missing)", allow_module_level=True)
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "key_concepts", "network_connectome", "fitting", "ensembles"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The kernel inherits the environment: let it pick matplotlib's inline backend.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any failure
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # Every notebook shows at least one figure.
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} produced no figure"
