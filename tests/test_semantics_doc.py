"""docs/semantics.md is executable: every `>>>` example in it runs and gives what it shows.

The examples live in ```pycon blocks. They run with the doctest module, in document order, in one
namespace, inside an empty scratch folder (the command-line examples write files there), with
NumPy's print options fixed so that array reprs do not depend on the caller's settings.
"""

import doctest
import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parent.parent / "docs" / "semantics.md"
FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.S | re.M)
MIN_EXAMPLES = 80  # the document has more; a doc without its examples fails; a doc without them fails


def pycon_source(text: str) -> str:
    """The document with everything outside ```pycon blocks blanked, line for line, so doctest
    sees only the examples (a closing fence never reads as expected output) and its line
    numbers are the document's."""
    kept = ["\n"] * text.count("\n")
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start(1))
        body = block.group(1).splitlines(keepends=True)
        kept[first:first + len(body)] = body
    return "".join(kept)


def test_every_example_is_in_a_pycon_block():
    """A `>>>` outside a pycon block would be shown to readers but never run."""
    outside = FENCE.sub("", DOC.read_text())
    assert not re.search(r"^\s*(>>>|\.\.\.) ", outside, re.M)


def test_semantics_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(pycon_source(text), {"__name__": "semantics"}, DOC.name, str(DOC), 0)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    with np.printoptions(precision=8, threshold=1000, linewidth=75, suppress=False, legacy=False):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    assert results.attempted >= MIN_EXAMPLES, f"only {results.attempted} examples ran"
