#!/usr/bin/env python3
"""Wall-clock phases of a container start, from kernel tracepoints (root, `perf` installed).

    benches/phases.py NAME RUNS COMMAND...

runs COMMAND (RUN in it becomes the run's number, for unique ids) RUNS times under
`perf record` of sched_process_exec/exit and the clone3, pivot_root and mkdir syscall
entries, and prints the median time between: the runtime's exec (its name contains NAME),
its first mkdir, its clone3, the pivot_root, the payload's exec and exit, and the runtime's
exit. The first two runs are warm-up. Tracepoints cost about a microsecond each, unlike
strace, which multiplies a start's time. Example (README "Where isorun's time goes"):

    benches/phases.py isorun 60 target/release/isorun --root /run/ph run -b BUNDLE phRUN
    benches/phases.py floor 60 target/release/isolab-floor BUNDLE/rootfs phfRUN
"""
import re
import statistics
import subprocess
import sys
import tempfile

EVENTS = ("sched:sched_process_exec,sched:sched_process_exit,syscalls:sys_enter_clone3,"
          "syscalls:sys_enter_pivot_root,syscalls:sys_enter_mkdir")
KEYS = ["first mkdir", "clone3", "pivot_root", "exec payload", "payload exit", "end"]


def main():
    name, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    loop = " ; ".join(" ".join(c.replace("RUN", str(i)) for c in cmd) for i in range(runs))
    with tempfile.NamedTemporaryFile(suffix=".data") as data:
        subprocess.run(["perf", "record", "-q", "-o", data.name, "-e", EVENTS, "--", "sh", "-c", loop],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run(["perf", "script", "-i", data.name, "-F", "comm,pid,time,event,trace"],
                             capture_output=True, text=True, check=True).stdout
    starts, cur = [], None
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if not m:
            continue
        _, pid, t, ev, trace = m.groups()
        t, pid = float(t) * 1000, int(pid)
        if ev == "sched:sched_process_exec" and name in trace:
            cur = {"start": t, "main": pid}
            starts.append(cur)
        elif cur is None:
            continue
        elif ev == "syscalls:sys_enter_mkdir" and pid == cur["main"]:
            cur.setdefault("first mkdir", t)
        elif ev == "syscalls:sys_enter_clone3" and pid == cur["main"]:
            cur.setdefault("clone3", t)
        elif ev == "syscalls:sys_enter_pivot_root":
            cur.setdefault("pivot_root", t)
        elif ev == "sched:sched_process_exec" and pid != cur["main"]:
            cur.setdefault("exec payload", t)
        elif ev == "sched:sched_process_exit" and pid != cur["main"] and "exec payload" in cur:
            cur.setdefault("payload exit", t)
        elif ev == "sched:sched_process_exit" and pid == cur["main"]:
            cur.setdefault("end", t)
    rows = [r for r in starts[2:] if all(k in r for k in KEYS)]
    if not rows:
        sys.exit(f"phases: no complete run of {name!r} in the trace")
    print(f"{len(rows)} runs")
    prev = "start"
    for k in KEYS:
        print(f"{prev:>13} → {k:<13} median {statistics.median(r[k] - r[prev] for r in rows):6.2f} ms")
        prev = k
    print(f"{'total':>13}   median {statistics.median(r['end'] - r['start'] for r in rows):6.2f} ms")


if __name__ == "__main__":
    main()
