"""Runs inside dbt's own virtualenv (started by tests/dbt/persistent_dbt.py, never imported by the tests): dbt commands
read as JSON lines from stdin, run with dbt's programmatic entry point (dbtRunner), one JSON answer line each.

The project is parsed once per distinct set of parse inputs (the command's global options and the environment: the
schema, the vars, the target path) and the manifest reused by the following commands, as dbt's documentation on
programmatic invocations describes; a command with other inputs gets its own parse.
"""

import json
import os
import sys

from dbt.cli.main import dbtRunner

# dbt prints its console log on stdout: answers get their own copy of stdout, dbt's console goes to stderr
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

manifests = {}
for line in sys.stdin:
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["env"])
    options = request["options"]
    messages = []

    def collect(event, messages=messages):
        if event.info.level in ("info", "warn", "error"):
            messages.append(event.info.msg)

    key = json.dumps([sorted(request["env"].items()), options])
    if key not in manifests:
        parsed = dbtRunner().invoke(["parse", *options])
        if not parsed.success:
            answers.write(json.dumps({"success": False, "log": f"parse failed: {parsed.exception!r}"}) + "\n")
            answers.flush()
            continue
        manifests[key] = parsed.result
    result = dbtRunner(manifest=manifests[key], callbacks=[collect]).invoke([*request["command"], *options])
    if result.exception is not None:
        messages.append(f"{type(result.exception).__name__}: {result.exception}")
    answers.write(json.dumps({"success": bool(result.success), "log": "\n".join(messages)}) + "\n")
    answers.flush()
