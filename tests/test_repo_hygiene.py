"""The repository stands alone: every tracked file read by people (Markdown, Python docstrings and comments, and the
rest of the tracked text) names no path of a particular machine, no ticket number of a tracker a clone cannot see, and
every relative Markdown link points at a file that is in the repository.

``hub/schemas/`` is exempt: it is a vendored copy of Meltano Hub's schema files, kept verbatim.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXEMPT = ("hub/schemas/",)

#: Paths that only exist on one machine: a build machine's work folder, home folders, a sibling folder outside the repo.
MACHINE_PATH = re.compile(  # each "/" written as "[/]" so that this file does not match itself
    r"(?<![\w.])[/]work[/]|(?<![\w.])[/]home[/]\w|(?<![\w.])[/]Users[/]\w|(?<![\w.])[/]root[/]"
    r"|\.\.[/]shared\b|\b[A-Z]:\\(?:Users|Documents)",
)
#: A ticket number (the word issue or gh- before a number, or "#" and a number in parentheses): say what the thing is.
TICKET = re.compile(r"\bissues?[ -]?#?\d+|\(#\d+\)|\bgh-\d+", re.IGNORECASE)
#: [text](target) and ![alt](target); the target up to the first space or closing parenthesis.
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: Text that is not a file: external links, anchors within the page, mail.
NOT_A_FILE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)


@functools.cache
def _ls_files() -> tuple[str, ...] | None:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return tuple(f for f in out.split("\0") if f and not f.startswith(EXEMPT) and (ROOT / f).is_file())


def tracked_files() -> tuple[str, ...]:
    files = _ls_files()
    if files is None:
        pytest.skip("not a git checkout (the hygiene checks read `git ls-files`)")
    return files


def text_of(rel: str) -> str | None:
    try:
        return (ROOT / rel).read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary files


def python_prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a Python file."""
    found: list[tuple[int, str]] = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [(1, source)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                found.append((node.body[0].lineno, doc))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found.append((tok.start[0], tok.string))
    return found


def prose_of(rel: str, text: str) -> list[tuple[int, str]]:
    if rel.endswith(".py"):
        return python_prose(text)
    return [(1, text)]


def problems(pattern: re.Pattern, *, prose_only: bool) -> list[str]:
    bad = []
    for rel in tracked_files():
        text = text_of(rel)
        if text is None:
            continue
        chunks = prose_of(rel, text) if prose_only else [(1, text)]
        for first_line, chunk in chunks:
            for match in pattern.finditer(chunk):
                line = first_line + chunk.count("\n", 0, match.start())
                bad.append(f"{rel}:{line}: {match.group(0)!r}")
    return bad


def test_no_tracked_file_names_a_machine_path():
    bad = problems(MACHINE_PATH, prose_only=False)
    assert not bad, "paths of one machine (write them repo-relative, e.g. docs/invoiz-api.md §3.1):\n" + "\n".join(bad)


def test_no_ticket_numbers_in_docs_docstrings_or_comments():
    bad = problems(TICKET, prose_only=True)
    assert not bad, "ticket numbers nobody can look up (say what the thing is):\n" + "\n".join(bad)


def test_relative_markdown_links_point_at_files_in_the_repository():
    files = tracked_files()
    known = set(files) | {str(Path(f).parent) for f in files}
    bad = []
    for rel in files:
        if not rel.endswith(".md"):
            continue
        text = text_of(rel) or ""
        text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)  # code blocks
        for match in MD_LINK.finditer(text):
            target = match.group(1).split("#", 1)[0]
            if not target or NOT_A_FILE.match(match.group(1)):
                continue
            resolved = (ROOT / rel).parent / target
            try:
                inside = resolved.resolve().relative_to(ROOT.resolve()).as_posix()
            except ValueError:
                inside = None
            if inside is None or (inside not in known and inside != "."):
                line = text.count("\n", 0, match.start()) + 1
                bad.append(f"{rel}:{line}: {match.group(1)}")
    assert not bad, "relative links to files that are not tracked in the repository:\n" + "\n".join(bad)


def test_repo_relative_doc_references_exist():
    """Prose names documents as repo-relative paths (``docs/invoiz-api.md §3.1``): each one named must exist."""
    files = tracked_files()
    known = set(files)
    mention = re.compile(
        r"(?<![\w./-])((?:docs|transform|tap-invoiz|invoiz-sandbox|ops|bench|tests|accounts|hub)/[\w./-]+\.md)\b"
    )
    bad = []
    for rel in files:
        text = text_of(rel)
        if text is None:
            continue
        for first_line, chunk in prose_of(rel, text):
            for match in mention.finditer(chunk):
                if match.group(1) not in known:
                    line = first_line + chunk.count("\n", 0, match.start())
                    bad.append(f"{rel}:{line}: {match.group(1)}")
    assert not bad, "documents named that are not in the repository:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("pattern", "sample", "hits"),
    [
        (MACHINE_PATH, "see /" + "work/shared/invoiz-api.md", True),
        (MACHINE_PATH, "see ../" + "shared/product.md", True),
        (MACHINE_PATH, "see docs/invoiz-api.md §3.1", False),
        (TICKET, "the kill test (issue " + "6)", True),
        (TICKET, "fixed in (#12)", True),
        (TICKET, "sb.issue_token()", False),
    ],
)
def test_the_patterns_catch_what_they_should(pattern, sample, hits):
    assert bool(pattern.search(sample)) is hits


def test_test_modules_and_helpers_have_unique_names():
    """The test folders have no __init__.py, so pytest imports each test file (and its helpers) by its base name: two
    files with one name in different folders stop the whole collection."""
    names: dict[str, list[str]] = {}
    for rel in tracked_files():
        path = Path(rel)
        if rel.startswith("tests/") and path.suffix == ".py" and path.name != "conftest.py":
            names.setdefault(path.name, []).append(rel)
    assert not {n: f for n, f in names.items() if len(f) > 1}, "rename one file of each pair (say what it tests)"


#: A module longer than this is split by responsibility (a reader holds one module in mind at a time).
MODULE_LINE_LIMIT = 400
#: The packages whose modules the limit applies to.
PACKAGE_DIRS = ("tap-invoiz/tap_invoiz/", "invoiz-sandbox/invoiz_sandbox/", "ops/invoiz_ops/", "bench/")


def _line_count(rel: str) -> int:
    return len((ROOT / rel).read_text(encoding="utf-8").splitlines())


def test_no_module_of_the_packages_is_longer_than_the_limit():
    modules = [rel for rel in tracked_files() if rel.endswith(".py") and rel.startswith(PACKAGE_DIRS)]
    assert len(modules) > 50  # the packages were found
    too_long = {rel: n for rel in modules if (n := _line_count(rel)) > MODULE_LINE_LIMIT}
    assert not too_long, f"split these modules by responsibility (at most {MODULE_LINE_LIMIT} lines each)"
