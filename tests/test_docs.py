"""The documentation builds without a warning, and its code examples run.

Builds docs/ with Sphinx (-W: every warning an error) into a temporary folder, then runs
Sphinx's doctest builder over the same parsed pages: the ``doctest`` / ``testcode``
blocks of the MyST pages (the user guide's and the extending guides' examples) and the
``>>>`` examples of the docstrings the API reference includes. Skipped only when Sphinx
or the other documentation packages (the ``docs`` extra, part of ``test``) are missing.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
NEEDED = ("sphinx", "pydata_sphinx_theme", "numpydoc", "myst_parser")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason="the docs packages are not installed ("
                       + ", ".join(MISSING) + '): pip install -e ".[docs]"'),
    pytest.mark.slow,
]


# Both builds in one process (one import of the package and the graph library): the HTML
# build parses the pages into ``doctrees``, the doctest build reuses them and runs the
# examples. Each build's exit code is printed on a line of its own.
BUILD = """
import sys
from sphinx.cmd.build import build_main
docs, base = sys.argv[1:3]
common = ["-W", "--keep-going", "-q", "-d", base + "/doctrees", docs]
html = build_main(["-b", "html"] + common + [base + "/html"])
print("HTML-EXIT", html, flush=True)
if html == 0:
    print("DOCTEST-EXIT", build_main(["-b", "doctest"] + common + [base + "/doctest"]),
          flush=True)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, SBDGM_BLAS_THREADS="1")
    result = subprocess.run([sys.executable, "-c", BUILD, DOCS, str(base)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    codes = dict(line.split() for line in result.stdout.splitlines()
                 if line.startswith(("HTML-EXIT", "DOCTEST-EXIT")))
    return base, codes, result.stdout + result.stderr


def test_html_builds_without_warnings(built):
    base, codes, output = built
    assert codes.get("HTML-EXIT") == "0", output
    for page in ("index.html", "user/installing.html", "user/evaluation.html",
                 "extending/family.html", "api/config.html", "performance.html"):
        assert (base / "html" / page).is_file(), page
    api = (base / "html" / "api" / "families.base.html").read_text(encoding="utf-8")
    assert "LatentFamily" in api  # autodoc ran on the docstrings


def test_code_examples_run(built):
    base, codes, output = built
    assert codes.get("HTML-EXIT") == "0", "the HTML build failed first:\n" + output
    report = base / "doctest" / "output.txt"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    # the failing examples first (what doctest prints between its rows of asterisks)
    failures = "\n".join(part for part in text.split("*" * 70) if "Failed example" in part
                          or "Exception raised" in part)
    assert codes.get("DOCTEST-EXIT") == "0", failures + "\n" + output[-5000:]
    assert " 0 failures in tests" in text, text
    assert "0 failures in setup code" in text and "0 failures in cleanup code" in text, text
