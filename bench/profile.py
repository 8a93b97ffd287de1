#!/usr/bin/env python3
"""Where tandem's time goes, per guest workload and for the boot: a sampling profile.

    bench/profile.py                 # boot + every workload, one tandem run under perf
    bench/profile.py --top 8         # more symbols per row

Boots the bench fixtures with `tandem.bench=1` under `perf record` (Debian's linux-perf,
installed when missing and run as root), notes when each TANDEM-BENCH marker reaches the
serial console, and attributes every sample of the run to the interval it fell in: the boot
(start to TANDEM-INIT-START), then each workload (its START to its end marker). Samples are
sorted into what the emulator was doing:

  generated   compiled guest code and the FPU stubs (anonymous executable memory)
  helpers     host functions that compiled code calls: memory slow paths (jit_load,
              jit_store, the softmmu and page walks under them), flags (eflags_from_cc,
              which the interpreter calls too), the FPU runner
  interpreter tier 0: the x86 semantics run over the interpreter builder
  dispatcher  finding the next block, chaining, interrupts, invalidations
  decode      fetching and decoding new blocks
  kernel      the host kernel on the vCPU's behalf (syscalls, page faults, signals)
  compiler    the background Cranelift thread (a second core; not on the vCPU's path)

A sample is classified by its own symbol only (no call graphs: cheap and steady), so e.g. a
page walk counts as a helper if compiled code's slow path is the common way into it. The
shares are of the vCPU thread's samples; the compiler column is that thread's samples as a
share of the vCPU's. Writes bench/results/profile.md and prints it.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "results", "profile.md")
DATA = os.path.join(ROOT, "target", "bench", "profile.data")

CLASSES = ["generated", "helpers", "interpreter", "dispatcher", "decode", "kernel", "other"]

# Checked in order, on the symbol name (perf's demangled Rust paths).
RULES = [
    ("decode", re.compile(r"iced_x86::|tcg::block::form|lookup_block|fetch_block|env::fetch")),
    ("helpers", re.compile(
        r"jit_glue|jit_load|jit_store|helper_|eflags_from_cc|fpu::run|Linear::|paging::|Walk::|"
        r"AddressSpace|"
        r"memory::Phys|ram_page_host|fast_tlb|FastTlb|tlb::Tlb|mmio|PortBus|hw::")),
    ("interpreter", re.compile(
        r"semantics::|Interp<|interp::|TcgVcpu::step|system::|flags::|fpu::|operand::|"
        r"condition::")),
    ("dispatcher", re.compile(
        r"TcgVcpu|BlockCache|block::|JumpTable|jump_table|chain::|CompiledBlock::call|"
        r"InterruptPin|irq::|RunControl|mpmc|mpsc|hash|Hash|fast_hash|lapic|apic")),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_perf():
    if shutil.which("perf"):
        return
    if os.geteuid() != 0:
        sys.exit("bench/profile.py: needs perf (Debian: apt-get install linux-perf)")
    sh(["apt-get", "update", "-qq"])
    sh(["apt-get", "install", "-y", "-qq", "linux-perf"])


def fixtures():
    paths = sh(["bash", "fixtures/fetch.sh"], cwd=ROOT, capture_output=True).stdout.split()
    return paths[-3], paths[-2]


def record(vmlinuz, initrd):
    """Runs the workloads under perf; returns [(monotonic seconds, console line)]."""
    os.makedirs(os.path.dirname(DATA), exist_ok=True)
    cmd = ["perf", "record", "-F", "997", "-k", "CLOCK_MONOTONIC", "-o", DATA, "--",
           os.path.join(ROOT, "target", "release", "tandem"), "-accel", "tcg", "-m", "512",
           "-nographic", "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
           "-append", "console=ttyS0 tandem.bench=1"]
    marks = [(time.clock_gettime(time.CLOCK_MONOTONIC), "START")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         errors="replace")
    for line in p.stdout:
        now = time.clock_gettime(time.CLOCK_MONOTONIC)
        if line.startswith("TANDEM-"):
            marks.append((now, line.strip()))
    p.wait()
    marks.append((time.clock_gettime(time.CLOCK_MONOTONIC), "END"))
    return marks


def intervals(marks):
    """[(name, start, end)]: the boot, then each workload."""
    out = []
    start = marks[0][0]
    for t, line in marks:
        if line == "TANDEM-INIT-START":
            out.append(("boot", start, t))
        elif line.startswith("TANDEM-BENCH-START "):
            name, start = line.split()[1], t
        elif line.startswith("TANDEM-BENCH ") and len(line.split()) == 3:
            out.append((line.split()[1], start, t))
    return out


def classify(sym, dso):
    if dso.startswith("[JIT]") or dso in ("[unknown]", "//anon", "[anon]") or sym == "[unknown]":
        return "generated"
    if dso.startswith("[kernel") or dso == "[vdso]":
        return "kernel"
    for name, rx in RULES:
        if rx.search(sym):
            return name
    return "other"


def samples():
    """Yields (time, thread name, symbol, dso)."""
    p = subprocess.Popen(["perf", "script", "-i", DATA, "-F", "comm,time,ip,sym,dso"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         errors="replace")
    rx = re.compile(r"^\s*(\S+)\s+([0-9.]+):\s+[0-9a-f]+\s+(.*?)\s*\((.*)\)\s*$")
    for line in p.stdout:
        m = rx.match(line)
        if m:
            yield float(m.group(2)), m.group(1), m.group(3) or "[unknown]", m.group(4)
    p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=5, help="symbols listed per interval")
    ap.add_argument("--reuse", action="store_true",
                    help="analyse the last recording again instead of running tandem")
    args = ap.parse_args()
    ensure_perf()
    marks_file = DATA + ".marks.json"
    if args.reuse:
        with open(marks_file) as f:
            marks = [tuple(m) for m in json.load(f)]
    else:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
        vmlinuz, initrd = fixtures()
        marks = record(vmlinuz, initrd)
        with open(marks_file, "w") as f:
            json.dump(marks, f)
    spans = intervals(marks)
    if not spans:
        sys.exit("bench/profile.py: no TANDEM-BENCH markers on the console")
    counts = {n: collections.Counter() for n, _, _ in spans}
    syms = {n: collections.Counter() for n, _, _ in spans}
    compiler = collections.Counter()
    for t, comm, sym, dso in samples():
        for name, a, b in spans:
            if a <= t < b:
                break
        else:
            continue
        if comm.startswith("tcg-compile"):
            compiler[name] += 1
        elif comm.startswith("vcpu"):
            c = classify(sym, dso)
            counts[name][c] += 1
            syms[name][sym if c != "generated" else "(generated code)"] += 1
    lines = ["# Where tandem tcg's vCPU time goes", "",
             "`bench/profile.py`: one `-accel tcg` run of the bench workloads under `perf record "
             "-F 997`; shares of the vCPU thread's samples by what the sampled code is (see the "
             "script's docstring), and the compiler thread's samples as a share of the vCPU's.",
             "",
             "| interval | s | " + " | ".join(CLASSES) + " | compiler | top symbols |",
             "| --- | ---: | " + " | ".join("---:" for _ in CLASSES) + " | ---: | --- |"]
    for name, a, b in spans:
        total = sum(counts[name].values()) or 1
        pct = [f"{100 * counts[name][c] / total:.0f}%" for c in CLASSES]
        top = ", ".join(f"{short(s)} {100 * n / total:.0f}%"
                        for s, n in syms[name].most_common(args.top))
        lines.append(f"| {name} | {b - a:.2f} | " + " | ".join(pct) +
                     f" | {100 * compiler[name] / total:.0f}% | {top} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(text)


def short(sym):
    """The last two path segments of a Rust symbol, without generics."""
    s = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", sym))
    parts = [p for p in s.split("::") if p]
    return "::".join(parts[-2:]) if len(parts) > 1 else s


if __name__ == "__main__":
    main()
