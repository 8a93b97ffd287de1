#!/usr/bin/env python3
"""Where the time of the guest's sequential disk read goes, per thread: a sampling profile.

    bench/disk_profile.py                      # tandem, raw image, cache=none
    bench/disk_profile.py --engine qemu        # the same under QEMU 7.2 tcg, for comparison
    bench/disk_profile.py --cache writeback --format qcow2 --mib 4096

Boots the disk bench guest of bench/disk.py (`tandem.bench=disk`) with iobench told to do only
the sequential read (--mib MiB in 1 MiB O_DIRECT requests, wrapping around the 512 MiB scratch
image) under `perf record -g -F 1999 -k CLOCK_MONOTONIC`, and keeps the samples taken between
the arrivals of the read's start and end markers. Per thread (tandem names them vcpu0,
tcg-compile, tandem-io; QEMU with `-name debug-threads=on`: CPU 0/TCG, the main loop, worker
threads): its samples as a share of all, and how busy it was (samples / (rate x seconds): 1.0 is
one core all the time), its top symbols by self samples, and by inclusive samples (each symbol
counted once per sample whose call chain holds it). vCPU samples are also sorted into
bench/profile.py's classes. Writes target/bench/disk-profile-ENGINE.md and prints it.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disk  # noqa: E402
import profile as tprofile  # noqa: E402  (bench/profile.py: classify, short)

ROOT = disk.ROOT
FREQ = 1999


def schedstat(pid):
    """{thread name: (ns on a CPU, ns runnable but waiting for one)} of every thread of pid."""
    out = collections.Counter(), collections.Counter()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait, _ = f.read().split()
        except OSError:
            continue
        out[0][comm] += int(run)
        out[1][comm] += int(wait)
    return {c: (out[0][c], out[1][c]) for c in out[0]}


def emulator_pid(p, perf):
    """The emulator: perf's child, or the process itself without perf."""
    if not perf:
        return p.pid
    try:
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def record(argv, data, perf=True):
    cmd = ["perf", "record", "-q", "-g", "-F", str(FREQ), "-k", "CLOCK_MONOTONIC", "-o", data,
           "--"] + argv if perf else argv
    marks = {}
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         errors="replace")
    for line in p.stdout:
        now = time.clock_gettime(time.CLOCK_MONOTONIC)
        at = line.find("TANDEM-DISK")
        if at >= 0:
            words = line[at:].split()
            if words[0] == "TANDEM-DISK-START":
                marks["start"] = now
                pid = emulator_pid(p, perf)
                marks["sched0"] = schedstat(pid) if pid else {}
            elif words[0] == "TANDEM-DISK" and words[1] == "seq-read":
                marks["end"] = now
                marks["sched1"] = schedstat(pid) if pid else {}
                marks["line"] = line[at:].strip()
    p.wait()
    marks["total"] = time.clock_gettime(time.CLOCK_MONOTONIC) - t0
    return marks


def samples(data):
    """Yields (time, thread name, [(sym, dso), ...] innermost first)."""
    p = subprocess.Popen(["perf", "script", "-i", data, "-F", "comm,tid,time,ip,sym,dso"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         errors="replace")
    head = re.compile(r"^(.*?)\s+(\d+)\s+([0-9.]+):\s*$")
    frame = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s*\((.*)\)\s*$")
    cur = None
    for line in p.stdout:
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        if not line[0].isspace():
            if cur:
                yield cur
            m = head.match(line.rstrip())
            cur = (float(m.group(3)), m.group(1).strip(), []) if m else None
            continue
        m = frame.match(line)
        if cur is not None and m:
            sym = m.group(1) or "[unknown]"
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            cur[2].append((sym, m.group(2)))
    if cur:
        yield cur
    p.wait()


def thread_group(comm, engine):
    if engine == "tandem":
        for pre in ("vcpu", "tcg-compile", "tandem-io"):
            if comm.startswith(pre):
                return pre
        return comm
    if comm.startswith("CPU "):
        return "CPU/TCG (vCPU)"
    if comm.startswith("worker"):
        return "worker (I/O pool)"
    return comm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("tandem", "qemu"), default="tandem")
    ap.add_argument("--format", choices=("raw", "qcow2"), default="raw")
    ap.add_argument("--cache", default="none")
    ap.add_argument("--mib", type=int, default=2048, help="MiB read (default 2048)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--no-perf", action="store_true",
                    help="only the threads' scheduler statistics, without perf")
    args = ap.parse_args()
    import shutil
    qemu, qemu_img = shutil.which("qemu-system-x86_64"), shutil.which("qemu-img")
    r = subprocess.run(["bash", os.path.join(ROOT, "fixtures", "fetch.sh")], cwd=ROOT,
                       stdout=subprocess.PIPE, text=True, check=True)
    vmlinuz, initramfs = r.stdout.split()[-3:-1]
    vdb, images = disk.prepare_guest_images(f"{args.mib} 0 1 60 seq-read", qemu_img)
    argv = disk.guest_argv(args.engine, disk.TANDEM, qemu, vmlinuz, initramfs,
                           images[args.format], args.format, args.cache, vdb)
    if args.engine == "qemu":
        argv += ["-name", "debug-threads=on"]
    data = os.path.join(disk.WORK, f"perf-{args.engine}.data")
    marks = record(argv, data, not args.no_perf)
    if "end" not in marks:
        sys.exit("bench/disk_profile.py: no seq-read result on the console")
    a, b = marks["start"], marks["end"]
    secs = b - a
    # Per thread, from /proc/PID/task/*/schedstat over the read: on a CPU, runnable but waiting
    # for one (the machine's other load), and the rest (sleeping: waiting for work).
    sched = ["| thread (schedstat) | on a CPU | waiting for a CPU | sleeping |",
             "| --- | ---: | ---: | ---: |"]
    s0, s1 = marks.get("sched0", {}), marks.get("sched1", {})
    for comm in sorted(s1, key=lambda c: -(s1[c][0] - s0.get(c, (0, 0))[0])):
        run = (s1[comm][0] - s0.get(comm, (0, 0))[0]) / 1e9
        wait = (s1[comm][1] - s0.get(comm, (0, 0))[1]) / 1e9
        if run < 0.005 * secs:
            continue
        sched.append(f"| {comm} | {100 * run / secs:.0f}% | {100 * wait / secs:.0f}% | "
                     f"{100 * max(0.0, secs - run - wait) / secs:.0f}% |")
    if args.no_perf:
        print(f"{marks['line']} ({args.mib * 1.048576 / secs:.0f} MB/s host-timed over "
              f"{secs:.2f} s); shares of that interval:\n")
        print("\n".join(sched))
        return
    per_thread = collections.Counter()
    self_syms = collections.defaultdict(collections.Counter)
    incl_syms = collections.defaultdict(collections.Counter)
    classes = collections.Counter()
    total = 0
    for t, comm, frames in samples(data):
        if not a <= t < b or not frames:
            continue
        total += 1
        g = thread_group(comm, args.engine)
        per_thread[g] += 1
        sym, dso = frames[0]
        name = "(generated code)" if tprofile.classify(sym, dso) == "generated" else \
            tprofile.short(sym) if not dso.startswith("[kernel") else f"[k] {sym}"
        self_syms[g][name] += 1
        seen = set()
        for s, d in frames:
            n = "(generated code)" if tprofile.classify(s, d) == "generated" else \
                tprofile.short(s) if not d.startswith("[kernel") else f"[k] {s}"
            if n not in seen:
                seen.add(n)
                incl_syms[g][n] += 1
        if args.engine == "tandem" and g == "vcpu":
            classes[tprofile.classify(sym, dso)] += 1
    L = [f"# Sequential read under {args.engine}: where the time goes", "",
         f"`bench/disk_profile.py --engine {args.engine} --format {args.format} --cache "
         f"{args.cache} --mib {args.mib}`: `{marks['line']}` (guest-timed; "
         f"{args.mib * 1.048576 / secs:.0f} MB/s host-timed over {secs:.2f} s). perf at "
         f"{FREQ} Hz with call graphs, {total} samples in the read's interval.", "",
         "Each thread's time over the read (/proc/PID/task/TID/schedstat, so with perf's "
         "own cost):", ""] + sched + ["",
         "| thread | share of samples | busy (cores) |", "| --- | ---: | ---: |"]
    for g, n in per_thread.most_common():
        L.append(f"| {g} | {100 * n / total:.1f}% | {n / (FREQ * secs):.2f} |")
    L.append("")
    if classes:
        v = sum(classes.values())
        L.append("vCPU samples by bench/profile.py's classes: " + ", ".join(
            f"{c} {100 * n / v:.0f}%" for c, n in classes.most_common()) + ".")
        L.append("")
    for g, n in per_thread.most_common(4):
        L.append(f"## {g} ({n} samples)")
        L.append("")
        L.append("| self | % | inclusive | % |")
        L.append("| --- | ---: | --- | ---: |")
        s1 = self_syms[g].most_common(args.top)
        s2 = incl_syms[g].most_common(args.top)
        for i in range(max(len(s1), len(s2))):
            c1 = (f"{s1[i][0][:70]} | {100 * s1[i][1] / n:.1f}%" if i < len(s1) else " | ")
            c2 = (f"{s2[i][0][:70]} | {100 * s2[i][1] / n:.1f}%" if i < len(s2) else " | ")
            L.append(f"| {c1} | {c2} |")
        L.append("")
    text = "\n".join(L)
    out = os.path.join(disk.WORK, f"disk-profile-{args.engine}.md")
    with open(out, "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
