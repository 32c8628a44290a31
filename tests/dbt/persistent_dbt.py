"""dbt for the dbt tests: one long-lived dbt process per test module, so that a test building the project a dozen
times pays dbt's start-up and the project's parse once per schema instead of once per command (about half of a
small build's time). The commands and their results are dbt's own (tests/dbt/persistent_dbt_worker.py runs them with
dbtRunner in dbt's virtualenv); where that virtualenv's Python cannot be found, each command is a `dbt` process."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from invoiz_ops.pipeline import dbt_executable

WORKER = Path(__file__).resolve().parent / "persistent_dbt_worker.py"


@dataclass(frozen=True)
class DbtResult:
    success: bool
    log: str  # dbt's console messages (info and above), one per line


class DbtSession:
    def __init__(self, log_file: Path) -> None:
        executable = Path(dbt_executable() or "dbt")
        python = executable.parent / "python"
        self._executable = str(executable)
        self._log = open(log_file, "a")
        self._process = None
        if python.exists():
            self._process = subprocess.Popen(
                # -I: not the worker's folder on sys.path (dbt imports every dbt_* module it finds there)
                [str(python), "-I", str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
            )

    def invoke(self, command: list[str], options: list[str], env: dict[str, str]) -> DbtResult:
        """`dbt COMMAND OPTIONS` with environment ENV (the whole environment of the command)."""
        if self._process is None:
            done = subprocess.run(
                [self._executable, *command, *options], env=env, capture_output=True, text=True, timeout=900
            )
            return DbtResult(done.returncode == 0, done.stdout + done.stderr)
        self._process.stdin.write(json.dumps({"command": command, "options": options, "env": env}) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the dbt process ended (exit {self._process.wait()}); its output: {self._log.name}")
        return DbtResult(**json.loads(answer))

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
        self._log.close()
