"""Sphinx configuration of the sc_sed documentation (built offline: ``make docs``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import sc_sed  # noqa: E402

project = "sc_sed"
author = "sc_sed developers"
copyright = "sc_sed developers"
version = release = sc_sed.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

# offline: no intersphinx, no execution, no remote images
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}  # .rst first: autosummary writes .rst
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_custom_sections = [("Params", "params_style")]
add_module_names = False

html_theme = "sphinx_book_theme"
html_title = f"sc_sed {release}"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": "",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_show_sourcelink = False

# The notebooks live in tutorials/ at the top of the repository; Sphinx reads them from a copy
# inside the source folder (git ignores docs/tutorials/).
_TUTORIALS_SRC = ROOT / "tutorials"
_TUTORIALS_DST = DOCS / "tutorials"


def _copy_tutorials() -> None:
    _TUTORIALS_DST.mkdir(exist_ok=True)
    for stale in _TUTORIALS_DST.glob("*.ipynb"):
        if not (_TUTORIALS_SRC / stale.name).exists():
            stale.unlink()
    for nb in sorted(_TUTORIALS_SRC.glob("[0-9]*.ipynb")):
        target = _TUTORIALS_DST / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


_copy_tutorials()


class CliHelp(Directive):
    """``.. sc-sed-help::`` renders ``sc-sed --help`` and the help of every sub-command.

    The text comes from :func:`sc_sed.cli.build_parser` at build time, so it never goes stale.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Return the help texts as literal blocks, one section per sub-command."""
        import argparse
        import os

        from sc_sed.cli import build_parser

        os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal width
        parser = build_parser()
        out: list[nodes.Node] = [_help_block("sc-sed --help", parser.format_help())]
        for action in parser._actions:  # argparse exposes sub-parsers only here
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    section = nodes.section(ids=[f"sc-sed-{name}"])
                    section += nodes.title(text=f"sc-sed {name}")
                    section += _help_block(f"sc-sed {name} --help", sub.format_help())
                    out.append(section)
        return out


def _help_block(command: str, text: str) -> nodes.Node:
    block = nodes.literal_block(text=f"$ {command}\n{text}")
    block["language"] = "text"
    return block


def setup(app):  # noqa: D103
    app.add_directive("sc-sed-help", CliHelp)
