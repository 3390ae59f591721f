"""Every ``ppnets ...`` command shown in the README and the docs parses with today's command line:
a renamed verb or flag fails here, not in a user's terminal."""
from __future__ import annotations

import glob
import os
import re
import shlex

import pytest

from ppnets.cli.main import build_parser
from tests.conftest import REPO

PAGES = ["README.md", "CONTRIBUTING.md", "notebooks/README.md", *sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))]


def _shown_commands():
    """(page, line number, words) of each ``ppnets`` command in the pages' code blocks, with
    continuation lines joined and comments dropped; placeholders (``...``, ``<x>``) skipped."""
    for page in PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            lines = f.read().splitlines()
        in_code, pending, start = False, "", 0
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                in_code, pending = not in_code, ""
                continue
            if not in_code:
                continue
            text = (pending + " " + line.strip()) if pending else line.strip()
            if text.endswith("\\"):
                pending, start = text[:-1], start if pending else number
                continue
            pending, first = "", start or number
            start = 0
            if not text.startswith("ppnets ") or "..." in text or re.search(r"<\w", text):
                continue
            words = shlex.split(text, comments=True)
            yield page, first, words[1:]


COMMANDS = list(_shown_commands())


def test_the_pages_show_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("page, line, words", COMMANDS,
                         ids=[f"{p}:{n}" for p, n, _ in COMMANDS])
def test_a_shown_command_parses(page, line, words):
    parser = build_parser()
    try:
        parser.parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{page}:{line}: `ppnets {' '.join(words)}` does not parse (exit {exc.code})")
