"""`make test-pythons`: the tap's in-process tests (tests/tap, tests/sandbox) on every Python version the tap declares
(tap-invoiz/pyproject.toml's classifiers, which `tap-invoiz --about` and the Hub definition report), each in a fresh
virtualenv with the tap and the sandbox installed from this checkout. A version this machine lacks is skipped, not
passed: nox says so (run with --error-on-missing-interpreters to make it fail).

Not part of `make test`, which runs everything on the one Python of .venv.
"""

from __future__ import annotations

from importlib.metadata import metadata

import nox

CLASSIFIER = "Programming Language :: Python :: "


def declared_pythons() -> list[str]:
    """The minor versions the tap declares, e.g. ["3.10", "3.11"]: what this session must prove. Read from the
    installed tap's metadata (`make test-pythons` reinstalls it when tap-invoiz/pyproject.toml changes), which is
    also where `tap-invoiz --about` reads them."""
    classifiers = metadata("tap-invoiz").get_all("Classifier") or []
    versions = [c.removeprefix(CLASSIFIER) for c in classifiers if c.startswith(CLASSIFIER)]
    return [v for v in versions if v.count(".") == 1]


nox.options.sessions = ["tap"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=declared_pythons())
def tap(session: nox.Session) -> None:
    session.install("-e", "./tap-invoiz[testing]", "-e", "./invoiz-sandbox", "pytest-xdist~=3.8", "pytest<9.2")
    # the same tests as in make test, two processes; arguments after `--` replace the default selection
    args = session.posargs or ["tests/tap", "tests/sandbox", "-n", "2", "--dist", "loadgroup"]
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "-q", *args)
