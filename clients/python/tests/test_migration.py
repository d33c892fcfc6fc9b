"""MIGRATION.md cannot rot: every ```python after block of the page runs as printed, in a
process of its own, against a real `strata serve` (memory only, as `make run` starts it) reached
through STRATA_URL, and prints what the ```text block under it shows."""
import os
import re
import subprocess
import sys
from typing import Iterator, List, Optional, Tuple

import pytest

from conftest import PKG_ROOT, Server

PAGE = os.path.join(PKG_ROOT, "MIGRATION.md")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def after_blocks() -> List[Tuple[int, str, Optional[str]]]:
    """(line, code, the output shown under it or None) for each ```python after block."""
    text = open(PAGE, encoding="utf-8").read()
    fences = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        if m.group(1).split() != ["python", "after"]:
            continue
        expected = None
        if i + 1 < len(fences) and fences[i + 1].group(1).strip() == "text" \
                and not text[m.end():fences[i + 1].start()].strip():
            expected = fences[i + 1].group(2)
        out.append((text.count("\n", 0, m.start()) + 1, m.group(2), expected))
    return out


BLOCKS = after_blocks()


def test_the_page_has_its_examples():
    assert len(BLOCKS) >= 6
    assert all(expected is not None for _, _, expected in BLOCKS)


@pytest.fixture(scope="module")
def plain_server(strata_bin: str, tmpdir_session: str) -> Iterator[Server]:
    s = Server(strata_bin, tmpdir_session, {})
    yield s
    s.kill()


@pytest.mark.parametrize("line,code,expected", BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_an_after_example_runs_as_printed(plain_server, line, code, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env.update(STRATA_URL=plain_server.url, PYTHONPATH=PKG_ROOT, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"MIGRATION.md line {line}:\n{r.stderr}"
    if expected is not None:
        assert r.stdout == expected, f"MIGRATION.md line {line}"
