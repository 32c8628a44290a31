"""CPU-seconds of the processes a benchmark starts, counted whole: reaped children (RUSAGE_CHILDREN), live process
trees (/proc) and the orphans a run leaves behind (this process as their subreaper)."""

from __future__ import annotations

import ctypes
import os
import resource
import time
from pathlib import Path


def children_cpu() -> float:
    """CPU-seconds of this process's reaped children (and what they reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> None:
    """Make this process the new parent of its descendants' orphans (Linux), so that their CPU can be counted.

    The multiprocess executor starts its steps from a fork server that outlives the run's process: without this, it
    is re-parented to init, and its CPU and that of every step it forked (the loads) never reach this process's
    RUSAGE_CHILDREN. As a subreaper, this process reaps it (:func:`reap_orphans`) and the figures include it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed: the cycles' CPU cannot be counted")


def children() -> set[int]:
    """Pids of this process's live (or not yet reaped) children."""
    me = os.getpid()
    return {pid for pid, (parent, _) in process_table().items() if parent == me}


def reap_orphans(before: set[int], timeout: float = 120) -> None:
    """Wait for the children that appeared since ``before`` (the orphans a cycle left, re-parented here) to end, and
    reap them: their CPU, with their own reaped children's, is then in RUSAGE_CHILDREN."""
    deadline = time.monotonic() + timeout
    pending = children() - before
    while pending:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                pending.discard(pid)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"processes {sorted(pending)} a cycle left behind did not end within {timeout:.0f} s")
        time.sleep(0.1)


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime + cutime + cstime in seconds) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(v) for v in fields[11:15]) / _TICKS


def process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU-seconds with reaped children)} of every live process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))):
            table[int(entry.name)] = stat
    return table


def tree_cpu(root: int | None) -> float:
    """CPU-seconds of a process and all its live descendants, with the children they have reaped (cutime/cstime):
    sampled before and after a cycle, the difference is what the tree spent in between."""
    if not root:
        return 0.0
    stats = process_table()
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total
