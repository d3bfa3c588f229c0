"""Sphinx configuration of the stick_breaking_dgms documentation.

Why this tool chain: Sphinx with the PyData theme, numpydoc and MyST Markdown is what the
libraries this package builds on document themselves with (PyMC and PyTensor): the
docstrings are written for numpydoc and Sphinx's roles already, so autodoc turns them into
the API reference unchanged, and MyST lets the user guide stay in the Markdown it was
written in (tables, code blocks, links) while still using Sphinx's directives where a page
needs one (the API reference, the doctests). The code examples in the pages are
``doctest``/``testcode`` blocks, run by Sphinx's doctest builder in the test suite
(``tests/test_docs.py``), so an example that stops working fails the tests.

Build (warnings are errors):

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the package of this checkout, installed or not

project = "stick_breaking_dgms"
author = "stick_breaking_dgms contributors"
copyright = "2026, " + author
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- MyST -----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3  # links such as runs.md#nan-policy-and-numerical-options

# -- autodoc, autosummary, numpydoc ---------------------------------------------------------
# Nothing is mocked: every module documented here imports with the package's own
# dependencies. The JAX twins (stick_breaking_dgms.backend.jax) need PyTensor and jax, so
# their page documents them only where both are installed (see api/backend.md).
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -- doctest: the pages' examples run in a scratch folder -----------------------------------
doctest_global_setup = """
import os as _docs_os, tempfile as _docs_tempfile
_docs_cwd = _docs_os.getcwd()
_docs_scratch = _docs_tempfile.mkdtemp(prefix="sbdgm-docs-")
_docs_os.chdir(_docs_scratch)
import numpy as np


def _docs_jax_available():
    import importlib.util
    from stick_breaking_dgms import backend
    return backend.NAME == "pytensor" and importlib.util.find_spec("jax") is not None


_docs_jax = _docs_jax_available()  # the JAX twins' examples run where JAX mode works
"""
doctest_global_cleanup = """
_docs_os.chdir(_docs_cwd)
import shutil as _docs_shutil
_docs_shutil.rmtree(_docs_scratch, ignore_errors=True)
"""
doctest_test_doctest_blocks = "default"  # docstrings' >>> examples run too

# -- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "stick_breaking_dgms"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False

# -- pages written elsewhere: in the user guide's toctree when they exist -----------------
# index.md has the marker line below in its user-guide toctree. It is replaced by the
# optional pages that exist (in this order), then by any other page of docs/ or docs/user/
# that no toctree lists yet, so that a page added by someone else joins the guide instead
# of failing the -W build ("document isn't included in any toctree").
OPTIONAL_PAGES = ["sweeps", "kl_exact"]
OPTIONAL_MARKER = "<!-- optional pages -->"


def _unlisted_pages(index_text):
    listed = {line.strip() for line in index_text.splitlines()}
    found = []
    for folder in ("", "user"):
        path = os.path.join(HERE, folder)
        for name in sorted(os.listdir(path)):
            doc = (folder + "/" if folder else "") + name[:-3]
            if name.endswith(".md") and doc not in listed and doc != "index":
                found.append(doc)
    first = [p for p in OPTIONAL_PAGES if p in found]
    return first + [p for p in found if p not in first]


# api/backend.md documents the JAX twins where they import (PyTensor and jax installed).
JAX_MARKER = "<!-- jax twins -->"


def _jax_twins_importable():
    try:
        import stick_breaking_dgms.backend.jax  # noqa: F401
    except ImportError:
        return False
    return True


def _fill_markers(app, docname, source):
    if docname == "index":
        source[0] = source[0].replace(OPTIONAL_MARKER, "\n".join(_unlisted_pages(source[0])))
    elif docname == "api/backend":
        if _jax_twins_importable():
            text = "```{eval-rst}\n.. automodule:: stick_breaking_dgms.backend.jax\n```\n"
        else:
            text = ("Not documented in this build: this environment lacks PyTensor or jax "
                    "(the module's docstring is in `stick_breaking_dgms/backend/jax.py`).\n")
        source[0] = source[0].replace(JAX_MARKER, text)


def _index_always_outdated(app, env, added, changed, removed):
    """Re-read index.md on every build: a page may have appeared since the last one."""
    return ["index"]


def setup(app):
    app.connect("source-read", _fill_markers)
    app.connect("env-get-outdated", _index_always_outdated)
