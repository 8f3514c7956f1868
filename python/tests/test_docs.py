"""The Python snippets of the README and docs/ run, so that documentation examples cannot rot: every
```python block executes in a fresh namespace (its asserts check what its comments say), except a
block preceded by `<!-- snippet: not run ... -->` (it needs a process group; the tests run the
same code elsewhere)."""

import glob
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def snippets():
    for page in PAGES:
        lines = open(page).read().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "```python":
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            skipped = i > 0 and re.match(r"^<!--\s*snippet:\s*not run", lines[i - 1])
            yield pytest.param("\n".join(lines[i + 1:end]), id=f"{os.path.basename(page)}:{i + 1}",
                               marks=[pytest.mark.skip(reason="needs a process group")] if skipped else [])


def test_the_docs_have_python_snippets():
    assert sum(1 for _ in snippets()) >= 4


@pytest.mark.parametrize("code", snippets())
def test_snippet_runs(code):
    exec(compile(code, "<snippet>", "exec"), {"__name__": "snippet"})
