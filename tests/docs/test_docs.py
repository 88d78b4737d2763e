"""The documentation builds offline with warnings as errors, with a page per public name."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
pytest.importorskip("sphinx_book_theme")


def _public_names() -> list[str]:
    import sc_sed
    import sc_sed.baselines

    names = ["sc_sed.SEDModel"]
    model = sc_sed.SEDModel
    for attr in dir(model):  # the model's own public methods, plus save/load
        obj = getattr(model, attr)
        own = getattr(obj, "__module__", "") or ""
        if not attr.startswith("_") and callable(obj) and own.startswith("sc_sed"):
            names.append(f"sc_sed.SEDModel.{attr}")
    names += ["sc_sed.SEDModel.save", "sc_sed.SEDModel.load"]
    for mod in (sc_sed.tl, sc_sed.pl, sc_sed.data, sc_sed.datasets, sc_sed.baselines):
        names += [f"{mod.__name__}.{n}" for n in mod.__all__]
    return names


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """Build the site from a copy of docs/ (the checkout stays clean) into a temporary folder."""
    tmp = tmp_path_factory.mktemp("docs")
    repo = tmp / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "docs", repo / "docs",
                    ignore=shutil.ignore_patterns("_build", "generated", "tutorials", "jupyter_execute"))  # fmt: skip
    for name in ("sc_sed", "tutorials", "benchmarks", "CHANGELOG.md", "README.md"):
        (repo / name).symlink_to(ROOT / name)
    out = tmp / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           str(repo / "docs"), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_public_name_has_an_api_page(html):
    missing = [n for n in _public_names() if not (html / "generated" / f"{n}.html").exists()]
    assert not missing, f"add these to docs/api.md: {missing}"
    page = (html / "generated" / "sc_sed.tl.evaluate.html").read_text()
    assert "Parameters" in page and "Returns" in page, "numpydoc sections are rendered"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pages_and_cli_help(html):
    for page in ("index", "installation", "tutorials", "api", "cli", "method", "benchmarks",
                 "changelog", "contributing"):  # fmt: skip
        assert (html / f"{page}.html").exists(), page
    cli = (html / "cli.html").read_text()
    for command in ("demo", "train", "generate"):
        assert f"sc-sed {command} --help" in cli
    assert "sed_overview.svg" in (html / "index.html").read_text()
    assert "Unreleased" in (html / "changelog.html").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tutorials_are_rendered_with_their_images(html):
    notebooks = sorted((ROOT / "tutorials").glob("[0-9]*.ipynb"))
    assert notebooks
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        n_images = sum(
            "image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {})
            for c in cells if c["cell_type"] == "code" for out in c.get("outputs", [])
        )  # fmt: skip
        assert n_images >= 1, f"{nb.name} has no figure in its outputs: run `make tutorials`"
        page = html / "tutorials" / f"{nb.stem}.html"
        assert page.exists(), page
        srcs = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
        images = [s for s in srcs if "_images/" in s]
        assert len(images) >= n_images, (nb.name, n_images, images)
        for src in images:
            assert (page.parent / src).resolve().exists(), src
