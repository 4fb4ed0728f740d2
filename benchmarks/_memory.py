"""Peak memory of a process tree: the sum of its processes' PSS, sampled while it runs.

``ru_maxrss`` of a forked worker counts every page it shares with its parent,
so "parent + workers × largest" counts shared pages several times.  PSS
(proportional set size) splits each shared page between the processes that
map it, so the sum over the tree is the memory the job actually holds.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    pids, index = [pid], 0
    while index < len(pids):
        try:  # a process that ends while it is looked at has no children left to count
            for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
                pids.extend(int(child) for child in task.read_text().split())
        except OSError:
            pass
        index += 1
    return pids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(command: list[str], interval: float = 0.05, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``command`` to completion; its result and the peak summed PSS of its process tree, in MB."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    peak = 0
    done = threading.Event()

    failed: list[BaseException] = []

    def sample() -> None:
        nonlocal peak
        try:
            while not done.is_set():
                peak = max(peak, sum(_pss_kb(pid) for pid in process_tree(process.pid)))
                time.sleep(interval)
        except BaseException as error:  # a sampler that died would report a peak too low, silently
            failed.append(error)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    if failed:
        raise RuntimeError(f"sampling the memory of {command} failed") from failed[0]
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, stdout, stderr)
    return result, peak / 1024
