"""The documentation: its Python examples run as written, and the API pages list every public name."""

import importlib
import re
from pathlib import Path

import pytest

import mrp_numpyro

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted((DOCS / "guide").glob("*.md"))


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _python_blocks(p)], ids=lambda p: p.stem)
def test_the_guide_examples_run(page, capsys):
    for code in _python_blocks(page):
        exec(compile(code, str(page), "exec"), {})
    assert "mean" in capsys.readouterr().out


def test_the_api_reference_lists_every_public_name():
    # Table rows name each object where it is defined: "   ~mrp_numpyro.app.run.run".
    paths = re.findall(r"^   ~(mrp_numpyro\.[\w.]+)$", (DOCS / "api.rst").read_text(), flags=re.M)
    listed = {}
    for path in paths:
        module, name = path.rsplit(".", 1)
        listed[name] = getattr(importlib.import_module(module), name)
    missing = sorted(set(mrp_numpyro.__all__) - set(listed))
    assert not missing, f"docs/api.rst does not list {missing}"
    unknown = sorted(set(listed) - set(mrp_numpyro.__all__))
    assert not unknown, f"docs/api.rst lists {unknown}, which mrp_numpyro does not export"
    # Each row is the very object the package exports under that name.
    assert all(getattr(mrp_numpyro, name) is obj for name, obj in listed.items())


def test_every_guide_page_is_in_the_table_of_contents():
    index = (DOCS / "index.md").read_text()
    assert all(f"guide/{p.stem}" in index for p in PAGES)
