"""Every docstring example in the library runs, as written, as a doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import likeness

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(likeness.__path__, "likeness.")
    # alembic revision scripts are imported by alembic only; a __main__ module runs when imported
    if ".migrations." not in info.name and not info.name.endswith(".__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
