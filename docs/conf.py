"""Sphinx configuration: the user guide and architecture in Markdown (MyST), the notebooks
executed at build time (MyST-NB), the API reference from the numpydoc docstrings.

Built with warnings as errors and nitpicky cross-references (``sphinx-build -W -n``), so a
broken docstring, a broken link or a reference to a name that does not exist fails the build.
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

project = "mrp_numpyro"
author = "the mrp_numpyro developers"
release = metadata.version("mrp_numpyro")
version = release

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]

# The notebooks live in notebooks/ beside the package; the build executes copies of them.
NOTEBOOKS = HERE / "notebooks"
NOTEBOOKS.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy2(notebook, NOTEBOOKS / notebook.name)

exclude_patterns = ["_build", "notebooks/*_runs", "**/.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# Every notebook runs from top to bottom with the fast settings; an error fails the build.
# MRP_DOCS_NB_EXECUTION=off skips them for a quick look at the pages.
nb_execution_mode = os.environ.get("MRP_DOCS_NB_EXECUTION", "force")
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4

autosummary_generate = True
# Each object is documented once, in the module that defines it: a package's page lists its
# modules, not the names its __init__ hands on (which would make every reference ambiguous).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Cross-references are checked (-n), those into the package by name. The libraries it
# builds on are not documented here (no intersphinx: the build must work offline), so
# references to their names are not chased.
nitpicky = True
_EXTERNAL = (
    "numpy|np|jax|jnp|pd|pandas|omegaconf|DictConfig|hydra|numpyro|dist|xarray|xr|arviz|az|matplotlib|scipy"
    "|collections|typing|os|pathlib|functools|enum|dataclasses|abc|types"
)
nitpick_ignore_regex = [
    ("py:.*", rf"^({_EXTERNAL})(\..*)?$"),
    # numpydoc's type phrases in Parameters sections ("array (cells, p)", "mapping of str to float").
    ("py:.*", r"^(array|int array|mapping|sequence|callable|path-like|numpy float type|numpy dtype|optional|.* or .*|.* of .*)$"),
    # Names in annotations that autodoc leaves unqualified or splits (pathlib.Path, a
    # matplotlib Figure, the pieces of a subscripted generic, type variables).
    ("py:class", r"^(Path|Figure|mapT|_Array|.*\._Array|dict\[.*|list\[.*|tuple\[.*)$"),
]

html_theme = "furo"
html_title = f"mrp_numpyro {release}"
