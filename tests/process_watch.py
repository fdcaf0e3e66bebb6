"""Run a command as a child subreaper and report every descendant that outlives it.

Usage: python process_watch.py REPORT.json [--signal NAME --after-file PATH] -- COMMAND...

This process marks itself a child subreaper (Linux PR_SET_CHILD_SUBREAPER), so
any process the command starts that is orphaned (its parent exited) is
re-parented here rather than to init: the process tree below this one is then
complete, whatever sessions or process groups the descendants moved to. After
the command exits (optionally after sending it a signal once a file appears),
it waits a moment, lists its remaining descendants, writes them to the report,
and kills them, so that a failing test leaves nothing behind either.
"""

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.server_stack import process_family, process_table

PR_SET_CHILD_SUBREAPER = 36


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (zombies left out: they are dead, only not yet reaped)."""
    table = process_table()
    zombies = {row.pid for row in table if row.state == "Z"}
    return sorted(process_family([pid], groups=False, table=table) - zombies - {pid})


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    report = Path(argv[0])
    split = argv.index("--")
    options, command = argv[1:split], argv[split + 1 :]
    send = dict(zip(options[::2], options[1::2]))
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    signalled = False
    if "--signal" in send:
        deadline = time.monotonic() + float(send.get("--within", 240))
        while not Path(send["--after-file"]).exists() and child.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if child.poll() is None:
            child.send_signal(getattr(signal, send["--signal"]))
            signalled = True
    returncode = child.wait()
    time.sleep(1.0)  # let a stray process show itself after its parent's exit
    reap_zombies()
    survivors = [{"pid": pid, "cmdline": cmdline(pid)} for pid in descendants(os.getpid())]
    for entry in survivors:
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    report.write_text(json.dumps({"returncode": returncode, "signalled": signalled, "survivors": survivors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
