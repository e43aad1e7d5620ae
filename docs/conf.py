"""Sphinx configuration of the resnet-cifar documentation site (``make docs``: offline, warnings are errors)."""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "resnet-cifar"
author = "the resnet-cifar developers"
copyright = "2026, the resnet-cifar developers"

extensions = [
    "myst_parser",  # prose pages in Markdown
    "sphinx.ext.autodoc",  # the Python API from the docstrings
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",  # the command-line reference from the parser itself
    "sphinx_gallery.gen_gallery",  # tutorials: plain scripts executed at every build
    "zoo_tables",  # the models and shipped weights tables, from the registry and the manifest
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "tutorials_src/README.txt"]

html_theme = "furo"
html_title = "resnet-cifar"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

sphinx_gallery_conf = {
    "examples_dirs": "tutorials_src",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/tutorial_",  # every tutorial runs at every build: one that stops working fails it
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
}
