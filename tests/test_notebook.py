"""examples/notebook.ipynb runs from top to bottom in a real kernel (nbclient + ipykernel), so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_runs_and_shows_its_objects(monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbclient, ipykernel)")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient, ipykernel)")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (nbclient, ipykernel)")
    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    # the kernel runs this interpreter (ipykernel's built-in python3 spec is sys.executable) on this checkout
    env_path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), env_path) if p))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "examples")}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if o.output_type == "execute_result" and "text/html" in o["data"]]
    assert any("yolotal run" in h and "<img" in h and "per-GT" in h for h in html)  # Run displays itself
    assert any("yolotal scan" in h and "per class" in h for h in html)  # ScanReport too
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "candidates" in text and "positives" in text and "score sum" in text
