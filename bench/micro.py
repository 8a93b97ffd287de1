#!/usr/bin/env python3
"""Micro-benchmarks of tandem (issue 5, parts of figure 2): KVM exit cost, a CPL3 compute loop
against native, and the instruction harness's throughput. See bench/MICRO.md for what each
figure means and how to read it.

  exits    a multiboot micro guest (examples/bench_exit_guest.rs) times N port-I/O exits, N
           exits the in-kernel irqchip answers and N MMIO exits with RDTSC, at CPL0 and at
           CPL3, and prints the cycles on COM1; run under tandem (kvm, tcg) and QEMU (kvm with
           -M pc and -M microvm, tcg with -M pc), so neither process start-up nor firmware is
           counted.
  compute  one xorshift loop (examples/bench_compute.rs): natively in-process, as a harness
           snippet through the library (kvm, tcg), and through `tandem exec` processes (with
           a 1-iteration run subtracted).
  harness  snippets per second through the library (examples/bench_harness.rs) against one
           `tandem exec` process per snippet.

Engines alternate within each repetition (A B A B ...). Every figure is the median, min and
max of --runs repetitions (default 5); the load average is recorded around each figure.

Prints a table, or with --json one JSON object (for bench/run to merge); --out FILE also writes
the JSON there. Standard library only.
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
TANDEM = os.path.join(RELEASE, "tandem")
EXAMPLES = os.path.join(RELEASE, "examples")
# Scratch space for the guest image; under target/ so git ignores it.
WORK = os.path.join(ROOT, "target", "bench", "micro")

PIT_HZ = 1193182.0
# The guest's exit status after writing 0x10 to isa-debug-exit (0x10 << 1 | 1), on tandem and
# on QEMU with the device; 0x11 (status 35) is the guest's fault handler.
GUEST_DONE_STATUS = 0x21
# `cal` lines whose window is shorter than this did not see a PIT (QEMU's microvm has no port
# 0x61: the read is all-ones, so OUT2 looks high at once).
MIN_CAL_SECONDS = 0.01

EXIT_KINDS = [
    ("port", "port I/O exit (out to an unclaimed port)"),
    ("pic", "port I/O the in-kernel irqchip answers (in from the PIC mask)"),
    ("mmio", "MMIO exit (store to unassigned MMIO)"),
]

# The compute loop's start values, as examples/bench_compute.rs has them.
SEED = 0x9E3779B97F4A7C15


def log(msg):
    print(f"micro: {msg}", file=sys.stderr, flush=True)


def stats(values):
    """Median, min, max (and the values) of a list, or None if it is empty."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def run(cmd, timeout, **kw):
    """Runs cmd, returning (returncode, stdout, stderr, seconds); a timeout is returncode None."""
    t = time.perf_counter()
    try:
        p = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            **kw,
        )
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        return None, out or "", err or "", time.perf_counter() - t


def children_cpu():
    """CPU seconds (user + system) of every child waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build():
    cmd = [
        "cargo", "build", "--release", "--bin", "tandem",
        "--example", "bench_exit_guest", "--example", "bench_compute",
        "--example", "bench_harness",
    ]
    log(" ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)


def example(name):
    return os.path.join(EXAMPLES, name)


def run_json(cmd, timeout):
    code, out, err, _ = run(cmd, timeout)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}): {err.strip()[-500:]}")
    return json.loads(out)


def machine_info(qemu):
    info = {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kvm_backend": "pvm" if os.path.exists("/sys/module/kvm_pvm") else (
            "intel" if os.path.exists("/sys/module/kvm_intel") else (
                "amd" if os.path.exists("/sys/module/kvm_amd") else "none")),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    code, out, _, _ = run(["git", "rev-parse", "--short", "HEAD"], 10, cwd=ROOT)
    if code == 0:
        info["tandem_commit"] = out.strip()
    if qemu:
        code, out, _, _ = run([qemu, "--version"], 30)
        if code == 0:
            info["qemu"] = out.splitlines()[0].strip()
    return info


# ---------------------------------------------------------------------------------------------
# exits


def exit_engines(image, qemu, kvm_ok):
    """The engines of the exit figure: (name, command or None, reason if not runnable)."""
    tandem = [TANDEM, "-m", "64", "-kernel", image, "-nographic", "-no-reboot"]
    qemu_common = [
        "-m", "64", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", image,
    ]
    engines = []
    no_kvm = None if kvm_ok is True else kvm_ok
    engines.append(("tandem kvm", [TANDEM, "-accel", "kvm"] + tandem[1:], no_kvm))
    # kernel-irqchip=on: QEMU's default for pc, and what tandem does by default; microvm
    # otherwise splits the irqchip and its PIC exits to QEMU.
    for machine in ("pc", "microvm"):
        if not qemu:
            engines.append((f"QEMU kvm {machine}", None, "qemu-system-x86_64 not found"))
        else:
            engines.append((f"QEMU kvm {machine}",
                            [qemu, "-accel", "kvm,kernel-irqchip=on", "-M", machine]
                            + qemu_common, no_kvm))
    engines.append(("tandem tcg", [TANDEM, "-accel", "tcg"] + tandem[1:], None))
    if qemu:
        engines.append(("QEMU tcg pc", [qemu, "-accel", "tcg", "-M", "pc"] + qemu_common, None))
    else:
        engines.append(("QEMU tcg pc", None, "qemu-system-x86_64 not found"))
    return engines


LINE = re.compile(r"TANDEM-EXIT (\w+) ([0-9a-f]{16}) ([0-9a-f]{16})")


def parse_exit_run(out, host_tsc_hz):
    """One guest run's figures: per loop, TSC cycles and ns per iteration (gross) and per exit
    (net of the empty loop), and the TSC rate used."""
    lines = {}
    cals = []
    for m in LINE.finditer(out):
        name, n, cycles = m.group(1), int(m.group(2), 16), int(m.group(3), 16)
        if name == "cal":
            cals.append((n, cycles))
        else:
            lines[name] = (n, cycles)
    fault = re.search(r"TANDEM-EXIT fault (\S+) (\S+) (\S+)", out)
    if fault:
        raise ValueError("the guest faulted: vector %s error code %s rip %s" % fault.groups())
    if "TANDEM-EXIT done" not in out:
        raise ValueError("no `TANDEM-EXIT done` line")
    # The shortest window is the one least stretched by the host descheduling the vCPU.
    hz_cal = None
    if cals:
        ticks, cycles = min(cals, key=lambda c: c[1])
        window = ticks / PIT_HZ
        if host_tsc_hz and cycles / host_tsc_hz >= MIN_CAL_SECONDS:
            hz_cal = cycles / window
    if hz_cal:
        hz, source = hz_cal, "PIT channel 2 calibration in the guest"
    elif host_tsc_hz:
        hz, source = host_tsc_hz, "host TSC rate (no PIT channel 2 in this machine)"
    else:
        raise ValueError("no TSC rate")
    r = {"tsc_hz": hz, "tsc_source": source, "cal_cycles": [c for _, c in cals], "loops": {}}
    for cpl in ("0", "3"):
        base = lines.get("loop" + cpl)
        if not base:
            raise ValueError(f"no loop{cpl} line")
        base_cycles = base[1] / base[0]
        r["loops"]["loop" + cpl] = {"cycles_per_iteration": base_cycles,
                                    "ns_per_iteration": base_cycles / hz * 1e9}
        for kind, _ in EXIT_KINDS:
            got = lines.get(kind + cpl)
            if not got:
                raise ValueError(f"no {kind}{cpl} line")
            gross = got[1] / got[0]
            r["loops"][kind + cpl] = {
                "cycles_per_iteration": gross,
                "ns_per_iteration": gross / hz * 1e9,
                "ns_per_exit": (gross - base_cycles) / hz * 1e9,
            }
    return r


def figure_exits(args, qemu, kvm_ok, host_tsc_hz):
    os.makedirs(WORK, exist_ok=True)
    image = os.path.join(WORK, f"exits-{args.exits_n}.bin")
    code, _, err, _ = run([example("bench_exit_guest"), image, str(args.exits_n)], 60)
    if code != 0:
        raise RuntimeError(f"bench_exit_guest failed: {err.strip()}")
    engines = exit_engines(image, qemu, kvm_ok)
    result = {
        "title": "Exit cost: a micro guest timing N exits with RDTSC (ns per exit, net of the loop)",
        "n": args.exits_n,
        "load_start": loadavg(),
        "engines": {},
    }
    for name, cmd, why in engines:
        result["engines"][name] = {"command": cmd, "runs": [], "failures": [],
                                   "not_measurable": why}
    for rep in range(args.runs):
        for name, cmd, why in engines:
            e = result["engines"][name]
            if cmd is None or why:
                continue
            load = loadavg()
            code, out, err, secs = run(cmd, args.timeout)
            try:
                if code is None:
                    raise ValueError(f"timed out after {args.timeout} s")
                if code != GUEST_DONE_STATUS:
                    raise ValueError(f"exit status {code}, not {GUEST_DONE_STATUS}")
                r = parse_exit_run(out, host_tsc_hz)
            except ValueError as ex:
                reason = str(ex)
                errline = err.strip().splitlines()
                e["failures"].append({"run": rep, "reason": reason,
                                      "stderr": err.strip()[-2000:], "stdout": out[-2000:]})
                log(f"exits {name} run {rep + 1}: FAILED: {reason}; stderr: "
                    f"{errline[-1] if errline else ''}")
                continue
            r["wall_seconds"] = secs
            r["load1"] = load[0] if load else None
            e["runs"].append(r)
            log(f"exits {name} run {rep + 1}: port0 {r['loops']['port0']['ns_per_exit']:.0f} ns,"
                f" port3 {r['loops']['port3']['ns_per_exit']:.0f} ns ({secs:.1f} s)")
    for name, e in result["engines"].items():
        summary = {}
        for cpl in ("0", "3"):
            summary["loop" + cpl] = stats([r["loops"]["loop" + cpl]["ns_per_iteration"]
                                           for r in e["runs"]])
            for kind, _ in EXIT_KINDS:
                summary[kind + cpl] = stats([r["loops"][kind + cpl]["ns_per_exit"]
                                             for r in e["runs"]])
        summary["tsc_hz"] = stats([r["tsc_hz"] for r in e["runs"]])
        e["summary"] = summary
        # A machine that could not run the guest at all: the reason is its first failure.
        if not e["runs"] and e["failures"] and not e["not_measurable"]:
            f = e["failures"][0]
            lines = f["stderr"].splitlines()
            e["not_measurable"] = f"{f['reason']}: {lines[-1] if lines else '(no stderr)'}"
    # tandem against QEMU (same engine kind, -M pc): <= 1 meets "no more than QEMU's".
    ratios = {}
    for ours, theirs in (("tandem kvm", "QEMU kvm pc"), ("tandem kvm", "QEMU kvm microvm"),
                         ("tandem tcg", "QEMU tcg pc")):
        a = result["engines"][ours]["summary"]
        b = result["engines"][theirs]["summary"]
        row = {}
        for key in a:
            if key == "tsc_hz" or key.startswith("loop"):
                continue
            if a[key] and b[key] and b[key]["median"] > 0:
                row[key] = a[key]["median"] / b[key]["median"]
        ratios[f"{ours} / {theirs}"] = row
    result["ratios"] = ratios
    result["load_end"] = loadavg()
    return result


# ---------------------------------------------------------------------------------------------
# compute


def exec_cmd(engine, code_hex, iters):
    return [TANDEM, "exec", "--accel", engine, "--code", code_hex,
            "--reg", f"rax={SEED:#x}", "--reg", f"rcx={iters}", "--reg", "r8=0",
            "--timeout", "600000"]


def exec_regs(out):
    regs = dict(re.findall(r"\b(r\w+)=([0-9a-f]{16})\b", out))
    return regs


def figure_compute(args, kvm_ok):
    engines = ["native", "tcg"] if kvm_ok is not True else ["native", "kvm", "tcg"]
    cli_engines = [e for e in engines if e != "native"]
    result = {
        "title": "CPL3 compute loop (xorshift64, serial ALU chain): ns per iteration",
        "iterations": args.iters,
        "load_start": loadavg(),
        "library": {e: [] for e in engines},
        "exec": {e: [] for e in cli_engines},
        "failures": [],
    }
    if kvm_ok is not True:
        result["not_measurable"] = {"kvm": kvm_ok}
    answer = None
    code_hex = None
    for rep in range(args.runs):
        load = loadavg()
        r = run_json([example("bench_compute"), "--iters", str(args.iters), "--runs", "1",
                      "--engines", ",".join(engines)], args.timeout * 3)
        code_hex = r["code_hex"]
        for e in engines:
            got = r["engines"][e]
            one = dict(got["runs"][0])
            one["load1"] = load[0] if load else None
            result["library"][e].append(one)
            if answer is None:
                answer = (got["rax"], got["r8"])
            elif (got["rax"], got["r8"]) != answer:
                result["failures"].append(f"library {e} run {rep + 1}: rax/r8 "
                                          f"{got['rax']}/{got['r8']}, native {answer}")
        log("compute run %d: library %s" % (rep + 1, ", ".join(
            f"{e} {r['engines'][e]['runs'][0]['ns_per_iteration']:.3f} ns" for e in engines)))
        for e in cli_engines:
            c0 = children_cpu()
            one_code, one_out, one_err, one_secs = run(exec_cmd(e, code_hex, 1), args.timeout)
            c1 = children_cpu()
            all_code, all_out, all_err, all_secs = run(exec_cmd(e, code_hex, args.iters),
                                                       args.timeout)
            c2 = children_cpu()
            if one_code != 0 or all_code != 0 or "end: completed" not in all_out:
                result["failures"].append(f"exec {e} run {rep + 1}: status {all_code}: "
                                          f"{(all_err or one_err).strip()[-300:]}")
                continue
            regs = exec_regs(all_out)
            got = (hex(int(regs.get("rax", "0"), 16)), hex(int(regs.get("r8", "0"), 16)))
            if answer and got != answer:
                result["failures"].append(f"exec {e} run {rep + 1}: rax/r8 {got}, "
                                          f"native {answer}")
            # CPU time of the whole process: every thread, the JIT's compiler thread too.
            result["exec"][e].append({
                "seconds": all_secs, "one_iteration_seconds": one_secs,
                "ns_per_iteration": (all_secs - one_secs) * 1e9 / (args.iters - 1),
                "cpu_seconds": c2 - c1, "one_iteration_cpu_seconds": c1 - c0,
                "cpu_ns_per_iteration": ((c2 - c1) - (c1 - c0)) * 1e9 / (args.iters - 1),
            })
            log(f"compute run {rep + 1}: tandem exec {e} "
                f"{result['exec'][e][-1]['ns_per_iteration']:.3f} ns/iteration")
    result["code_hex"] = code_hex
    result["answer"] = {"rax": answer[0], "r8": answer[1]} if answer else None
    summary = {}
    for where in ("library", "exec"):
        for e, runs in result[where].items():
            summary[f"{where} {e}"] = stats([x["ns_per_iteration"] for x in runs])
            summary[f"{where} {e} cpu"] = stats([x["cpu_ns_per_iteration"] for x in runs])
    result["summary"] = summary

    def reference(key):
        return summary.get("library native cpu" if key.endswith(" cpu") else "library native")

    # Speed relative to native: native ns / engine ns (1.0 = native speed; goal >= 0.99),
    # wall time against native's wall time, CPU time against native's CPU time.
    result["speed_vs_native"] = {
        k: reference(k)["median"] / v["median"]
        for k, v in summary.items() if v and reference(k) and v["median"] > 0
    }
    # The same from the fastest runs: the load here only ever slows a run down, so best
    # against best is the least load-sensitive reading.
    result["speed_vs_native_best"] = {
        k: reference(k)["min"] / v["min"]
        for k, v in summary.items() if v and reference(k) and v["min"] > 0
    }
    result["load_end"] = loadavg()
    return result


# ---------------------------------------------------------------------------------------------
# harness


def figure_harness(args, kvm_ok):
    engines = ["kvm", "tcg"] if kvm_ok is True else ["tcg"]
    result = {
        "title": "Instruction harness throughput: snippets per second",
        "count": args.snippets,
        "processes": args.processes,
        "load_start": loadavg(),
        "library": {e: {"new_seconds": [], "reuse_same": [], "reuse_distinct": [], "fresh": []}
                    for e in engines},
        "exec": {e: [] for e in engines},
        "failures": [],
    }
    if kvm_ok is not True:
        result["not_measurable"] = {"kvm": kvm_ok}
    for rep in range(args.runs):
        r = run_json([example("bench_harness"), "--runs", "1", "--count", str(args.snippets),
                      "--engines", ",".join(engines)], args.timeout)
        for e in engines:
            for k, v in r["engines"][e].items():
                result["library"][e][k].extend(v)
        for e in engines:
            cmd = [TANDEM, "exec", "--accel", e, "--code", "4801d8",
                   "--reg", "rax=1", "--reg", "rbx=2"]
            t = time.perf_counter()
            bad = None
            for _ in range(args.processes):
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True)
                if p.returncode != 0 or "rax=0000000000000003" not in p.stdout:
                    bad = f"status {p.returncode}: {p.stderr.strip()[-300:]}"
                    break
            secs = time.perf_counter() - t
            if bad:
                result["failures"].append(f"exec {e} run {rep + 1}: {bad}")
                continue
            result["exec"][e].append(args.processes / secs)
        log("harness run %d: %s" % (rep + 1, ", ".join(
            f"{e} library {result['library'][e]['reuse_same'][-1]:.0f}/s, "
            f"process {result['exec'][e][-1] if result['exec'][e] else float('nan'):.0f}/s"
            for e in engines)))
    summary = {}
    for e in engines:
        for k, v in result["library"][e].items():
            summary[f"library {e} {k}"] = stats(v)
        summary[f"exec process {e}"] = stats(result["exec"][e])
    result["summary"] = summary
    # How many times more snippets per second the library gives than a process per snippet.
    result["library_vs_process"] = {
        e: summary[f"library {e} reuse_same"]["median"] / summary[f"exec process {e}"]["median"]
        for e in engines
        if summary.get(f"exec process {e}") and summary.get(f"library {e} reuse_same")
    }
    result["load_end"] = loadavg()
    return result


# ---------------------------------------------------------------------------------------------
# report


def fmt_stat(s, digits=0, scale=1.0):
    if not s:
        return "—"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(s['median'] * scale)} "
            f"[{f.format(s['min'] * scale)}–{f.format(s['max'] * scale)}]")


def fmt_pct(v):
    return f"{v * 100:.1f}%" if v else "—"


def table(headers, rows):
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)


def report_text(res):
    out = []
    m = res["machine"]
    out.append(f"tandem micro-benchmarks — {m.get('cpu', '?')}, {m.get('cpus')} CPUs, "
               f"KVM backend {m.get('kvm_backend')}, {m.get('qemu', 'no QEMU')}")
    out.append(f"runs per figure: {res['runs']}; values are median [min–max]; "
               f"host TSC {res.get('host_tsc_hz', 0) / 1e9:.3f} GHz")
    ex = res["figures"].get("exits")
    if ex:
        names = list(ex["engines"])
        out.append("")
        out.append(f"{ex['title']}, N = {ex['n']}; load {fmt_load(ex)}")
        rows = []
        for cpl in ("0", "3"):
            for kind, label in EXIT_KINDS:
                rows.append([f"CPL{cpl} {label}"] + [
                    fmt_stat(ex["engines"][n]["summary"][kind + cpl]) for n in names])
            rows.append([f"CPL{cpl} empty loop iteration (subtracted)"] + [
                fmt_stat(ex["engines"][n]["summary"]["loop" + cpl], 1) for n in names])
        out.append(table(["ns"] + names, rows))
        for n in names:
            e = ex["engines"][n]
            if e["not_measurable"]:
                out.append(f"  {n}: not measurable here: {e['not_measurable']}")
            elif e["failures"]:
                out.append(f"  {n}: {len(e['failures'])} failed run(s): "
                           f"{e['failures'][0]['reason']}")
        out.append("  microvm has no port 0x61 (PIT channel 2 gate): its guest cannot calibrate "
                   "its TSC, so its cycles are converted at the host's TSC rate")
        for pair, row in ex["ratios"].items():
            if row:
                out.append(f"  {pair} (ratio of medians; <= 1.0 is no more than QEMU's): " +
                           ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    co = res["figures"].get("compute")
    if co:
        out.append("")
        out.append(f"{co['title']}, {co['iterations']:,} iterations; load {fmt_load(co)}")
        labels = {"library native": "native, in-process",
                  "library kvm": "tandem kvm, library (Harness::run)",
                  "library tcg": "tandem tcg, library (Harness::run)",
                  "exec kvm": "tandem kvm, `tandem exec` process",
                  "exec tcg": "tandem tcg, `tandem exec` process"}
        rows = []
        for k, label in labels.items():
            if k not in co["summary"]:
                continue
            sm, sp, best = co["summary"], co["speed_vs_native"], co["speed_vs_native_best"]
            rows.append([label, fmt_stat(sm[k], 3), fmt_pct(sp.get(k)), fmt_pct(best.get(k)),
                         fmt_stat(sm.get(k + " cpu"), 3), fmt_pct(sp.get(k + " cpu")),
                         fmt_pct(best.get(k + " cpu"))])
        out.append(table(["engine", "wall ns/iteration", "vs native", "(best runs)",
                          "CPU ns/iteration", "vs native", "(best runs)"], rows))
        for f in co["failures"]:
            out.append(f"  FAILED: {f}")
        for k, why in co.get("not_measurable", {}).items():
            out.append(f"  {k}: not measurable here: {why}")
    ha = res["figures"].get("harness")
    if ha:
        out.append("")
        out.append(f"{ha['title']}: library {ha['count']} snippets per run, "
                   f"{ha['processes']} processes per run; load {fmt_load(ha)}")
        rows = []
        for e in ha["library"]:
            s = ha["summary"]
            rows.append([e,
                         fmt_stat(s[f"library {e} reuse_same"]),
                         fmt_stat(s[f"library {e} reuse_distinct"]),
                         fmt_stat(s[f"library {e} fresh"]),
                         fmt_stat(s[f"exec process {e}"]),
                         fmt_stat(s[f"library {e} new_seconds"], 2, 1e3),
                         f"{ha['library_vs_process'].get(e, 0):.0f}x"])
        out.append(table(["engine", "library, one Harness", "…distinct snippets",
                          "library, new machine each", "process each (tandem exec)",
                          "Harness::new ms", "library/process"], rows))
        for f in ha["failures"]:
            out.append(f"  FAILED: {f}")
    return "\n".join(out)


def fmt_load(fig):
    a, b = fig.get("load_start"), fig.get("load_end")
    if not a or not b:
        return "unknown"
    return f"{a[0]:.2f} at start, {b[0]:.2f} at end (1-minute)"


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError as e:
        return f"/dev/kvm unavailable: {e.strerror}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--runs", type=int, help="repetitions per figure (default 5, --quick 2)")
    ap.add_argument("--quick", action="store_true",
                    help="2 runs, N = 10,000 exits, 10^8 loop iterations, 50 processes")
    ap.add_argument("--figures", default="exits,compute,harness",
                    help="comma-separated subset of exits,compute,harness")
    ap.add_argument("--exits-n", type=int, default=100_000, help="exits per loop (100,000)")
    ap.add_argument("--iters", type=int, default=600_000_000,
                    help="compute loop iterations (600,000,000: about 1 s natively here)")
    ap.add_argument("--snippets", type=int, default=5000,
                    help="snippets per library measurement (5000)")
    ap.add_argument("--processes", type=int, default=200,
                    help="`tandem exec` processes per measurement (200)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds before a run is killed")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"),
                    help="QEMU binary (default: qemu-system-x86_64 on PATH)")
    ap.add_argument("--no-build", action="store_true",
                    help="use target/release as it is (no cargo build)")
    args = ap.parse_args()
    if args.quick:
        args.exits_n, args.iters, args.processes = 10_000, 100_000_000, 50
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    if args.qemu and not shutil.which(args.qemu):
        log(f"{args.qemu}: not found; the QEMU columns will say so")
        args.qemu = None
    figures = [f for f in args.figures.split(",") if f]
    for f in figures:
        if f not in ("exits", "compute", "harness"):
            ap.error(f"unknown figure {f}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if not args.no_build:
        build()
    kvm_ok = kvm_usable()
    res = {
        "tool": "bench/micro.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": args.runs,
        "machine": machine_info(args.qemu),
        "load_start": loadavg(),
        "figures": {},
    }
    # The host's TSC rate: the fallback for guests that cannot calibrate their own (the KVM
    # guests read the host's TSC).
    tsc = run_json([example("bench_compute"), "--tsc"], 60)["host_tsc_hz"]
    res["host_tsc_hz"] = statistics.median(tsc)
    if "exits" in figures:
        res["figures"]["exits"] = figure_exits(args, args.qemu, kvm_ok, res["host_tsc_hz"])
    if "compute" in figures:
        res["figures"]["compute"] = figure_compute(args, kvm_ok)
    if "harness" in figures:
        res["figures"]["harness"] = figure_harness(args, kvm_ok)
    res["load_end"] = loadavg()
    text = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text if args.json else report_text(res))


if __name__ == "__main__":
    main()
