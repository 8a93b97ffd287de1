#!/usr/bin/env python3
"""Disk figures: tandem against QEMU 7.2 on virtio-blk, and `tandem img convert` against
`qemu-img convert`. Standard library only (plus gcc, mkfs.ext4 and qemu-img on the host).

  guest    the Linux fixture with `tandem.bench=disk` (fixtures/init.sh): /dev/vdb is a small
           ext4 image holding bench/iobench.c built statically and a run.sh; /init mounts it and
           runs iobench against /dev/vda, a 512 MiB scratch image on the host's disk (random
           data, so nothing is a hole). With O_DIRECT in the guest (every request reaches the
           device): sequential read of 256 MiB in 1 MiB requests twice (the first pass while
           tandem's JIT still warms up to the guest's I/O path, then the steady state), a
           sequential write of the same, the fdatasync after the writes, and 20,000 random 4 KiB reads at queue depth 1 and at queue depth 8
           (8 threads). Each timed by the guest's CLOCK_MONOTONIC and by the host (arrival of
           the start and end markers on the console). Configurations (--configs): raw with
           cache=none, raw with the default cache=writeback, qcow2 (every cluster allocated)
           with cache=writeback. tandem: -accel tcg; QEMU: -accel tcg -cpu qemu64 (the fair
           model, bench/README.md), both -m 512 with the same -drive options.
  convert  a 1 GiB qcow2 holding 512 MiB of random data in 64 pieces of 8 MiB at random 8 MiB
           slots (the rest holes), converted to raw (`-O raw`), and its raw twin (sparse)
           converted to qcow2 (`-O qcow2`): wall clock and CPU time of `tandem img convert`
           against `qemu-img convert`, the output deleted and `sync` run (untimed) before each
           run. The first round checks that both tools wrote the same data.

Engines alternate within each round (tandem, QEMU, tandem, ...); every figure is the median,
min and max of --runs rounds (default 5, --quick 2 with smaller sizes). Prints Markdown, or
with --json one JSON object; --out FILE also writes the JSON there. bench/run's `disk` figure
calls measure() and markdown() below.
"""

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.path.join(ROOT, "target", "release", "tandem")
IOBENCH_C = os.path.join(ROOT, "bench", "iobench.c")
# Images and the built program; under target/ so git ignores them.
WORK = os.path.join(ROOT, "target", "bench", "disk")
MEMORY = "512"
APPEND = "console=ttyS0 tandem.bench=disk"

SCRATCH_MIB = 512
CONVERT_GIB = 1
CONVERT_PIECE_MIB = 8
CONVERT_PIECES = 64

# (key, image format, cache mode)
ALL_CONFIGS = [("raw-none", "raw", "none"), ("raw-writeback", "raw", "writeback"),
               ("qcow2-writeback", "qcow2", "writeback")]
# Guest figures: (name iobench prints, metric key, label, unit)
GUEST_FIGS = [("seq-read-first", "seq_read_first_mbs",
               "sequential read, 1 MiB requests, first pass", "MB/s"),
              ("seq-read", "seq_read_mbs", "sequential read, 1 MiB requests, again", "MB/s"),
              ("seq-write", "seq_write_mbs", "sequential write, 1 MiB requests", "MB/s"),
              ("flush", "flush_ms", "fdatasync after the writes", "ms"),
              ("rand-read", "rand_read_iops", "4 KiB random read, QD 1", "IOPS"),
              ("rand-read-qd8", "rand_read_qd8_iops", "4 KiB random read, QD 8 (8 threads)",
               "IOPS")]
CONVERT_CASES = [("qcow2-to-raw", "qcow2", "raw"), ("raw-to-qcow2", "raw", "qcow2")]


def say(msg):
    print(f"disk: {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(msg)
    sys.exit(1)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, **kw)
    if r.returncode != 0:
        die(f"{' '.join(cmd)} failed (status {r.returncode})")
    return r


# ---------------------------------------------------------------------------------------------
# Preparation


# /dev/vda's request queue limits (the guest splits requests to fit them) and its request
# counts before and after (/proc/diskstats: reads completed, merged, sectors, ms, writes ...).
RUN_SH = """q=/sys/block/vda/queue
echo "TANDEM-DISK-QUEUE max_segments=$(cat $q/max_segments)\
 max_segment_size=$(cat $q/max_segment_size) max_sectors_kb=$(cat $q/max_sectors_kb)\
 max_hw_sectors_kb=$(cat $q/max_hw_sectors_kb) nr_requests=$(cat $q/nr_requests)\
 hw_queues=$(ls /sys/block/vda/mq | wc -l)"
echo "TANDEM-DISK-STATS $(grep ' vda ' /proc/diskstats)"
/mnt/iobench /dev/vda {args} || exit 1
echo "TANDEM-DISK-STATS $(grep ' vda ' /proc/diskstats)"
"""


def prepare_guest_images(iobench_args, qemu_img):
    """The vdb image (iobench and run.sh) and the scratch images; their paths."""
    os.makedirs(WORK, exist_ok=True)
    tree = os.path.join(WORK, "vdb")
    os.makedirs(tree, exist_ok=True)
    binary = os.path.join(tree, "iobench")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(IOBENCH_C):
        say("gcc -O2 -static -pthread bench/iobench.c")
        run(["gcc", "-O2", "-static", "-pthread", "-o", binary, IOBENCH_C])
    with open(os.path.join(tree, "run.sh"), "w") as f:
        f.write(RUN_SH.format(args=iobench_args))
    vdb = os.path.join(WORK, "vdb.img")
    if os.path.exists(vdb):
        os.unlink(vdb)
    with open(vdb, "wb") as f:
        f.truncate(16 << 20)
    run(["mkfs.ext4", "-q", "-F", "-d", tree, vdb], stdout=subprocess.DEVNULL)
    raw = os.path.join(WORK, "scratch.raw")
    if not os.path.exists(raw) or os.path.getsize(raw) != SCRATCH_MIB << 20:
        say(f"writing a {SCRATCH_MIB} MiB scratch image of random data")
        with open(raw + ".tmp", "wb") as f:
            for _ in range(SCRATCH_MIB):
                f.write(os.urandom(1 << 20))
        os.replace(raw + ".tmp", raw)
        if os.path.exists(raw[:-4] + ".qcow2"):
            os.unlink(raw[:-4] + ".qcow2")
    qcow2 = os.path.join(WORK, "scratch.qcow2")
    if not os.path.exists(qcow2):
        # Every cluster allocated (the raw image has no zero runs): the guest's reads and
        # writes go through the cluster tables, never the allocation path.
        run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2])
    return vdb, {"raw": raw, "qcow2": qcow2}


def prepare_convert_images(qemu_img):
    """A 1 GiB sparse raw image with 64 pieces of 8 MiB of random data at random 8 MiB slots,
    and its qcow2 twin (written by qemu-img, so neither tool converts its own output)."""
    raw = os.path.join(WORK, "convert-src.raw")
    qcow2 = os.path.join(WORK, "convert-src.qcow2")
    size = CONVERT_GIB << 30
    if not os.path.exists(raw) or os.path.getsize(raw) != size:
        say(f"writing a {CONVERT_GIB} GiB image: {CONVERT_PIECES} pieces of "
            f"{CONVERT_PIECE_MIB} MiB of random data, the rest holes")
        slots = random.Random(5).sample(range(size // (CONVERT_PIECE_MIB << 20)),
                                        CONVERT_PIECES)
        with open(raw + ".tmp", "wb") as f:
            f.truncate(size)
            for s in sorted(slots):
                f.seek(s * (CONVERT_PIECE_MIB << 20))
                for _ in range(CONVERT_PIECE_MIB):
                    f.write(os.urandom(1 << 20))
        os.replace(raw + ".tmp", raw)
        if os.path.exists(qcow2):
            os.unlink(qcow2)
    if not os.path.exists(qcow2):
        run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2])
    return {"raw": raw, "qcow2": qcow2}


# ---------------------------------------------------------------------------------------------
# The guest figures


def guest_argv(kind, tandem, qemu, vmlinuz, initramfs, image, fmt, cache, vdb):
    common = ["-m", MEMORY, "-kernel", vmlinuz, "-initrd", initramfs, "-append", APPEND,
              "-nographic", "-no-reboot",
              "-drive", f"file={image},format={fmt},if=virtio,cache={cache}",
              "-drive", f"file={vdb},format=raw,if=virtio,readonly=on"]
    if kind == "tandem":
        return [tandem, "-accel", "tcg"] + common
    return [qemu, "-accel", "tcg", "-cpu", "qemu64"] + common


def spawn(argv, timeout):
    """Runs argv: console lines stamped with their arrival, stderr, wall clock, CPU time."""
    start = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    reader.start()
    killed = []
    timer = threading.Timer(timeout, lambda: (killed.append(1), p.kill()))
    timer.start()
    lines = [(time.monotonic() - start, raw) for raw in iter(p.stdout.readline, b"")]
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    timer.cancel()
    reader.join()
    return {"lines": lines, "stderr": b"".join(err).decode("utf-8", "replace"),
            "killed": bool(killed), "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "exit": os.waitstatus_to_exitcode(status)}


def guest_run(argv, timeout):
    os.sync()
    load = os.getloadavg()[0]
    got = spawn(argv, timeout)
    r = {"wall_s": got["wall_s"], "cpu_s": got["cpu_s"], "exit": got["exit"],
         "load_1min": load, "figures": {}}
    starts, problem, done = {}, None, False
    for t, raw in got["lines"]:
        text = raw.decode("utf-8", "replace")
        at = text.find("TANDEM-")
        if at < 0:
            continue
        word, _, rest = text[at:].strip().partition(" ")
        if word == "TANDEM-DISK-START":
            starts[rest] = t
        elif word == "TANDEM-DISK":
            name, ops, nbytes, secs = rest.split()
            ops, nbytes, secs = int(ops), int(nbytes), float(secs)
            host = t - starts[name] if name in starts else None
            r["figures"][name] = {"ops": ops, "bytes": nbytes, "guest_s": secs, "host_s": host}
        elif word in ("TANDEM-DISK-FAIL", "TANDEM-BENCH-FAIL"):
            problem = problem or f"{word} {rest}"
        elif word == "TANDEM-BENCH-DONE":
            done = True
        elif word == "TANDEM-DISK-QUEUE":
            r["queue"] = dict(kv.split("=", 1) for kv in rest.split())
        elif word == "TANDEM-DISK-STATS":
            r.setdefault("diskstats", []).append(rest)
        elif word == "TANDEM-UPTIME":
            r["uptime_init_s"] = float(rest.split()[0])
    if len(r.get("diskstats", [])) == 2:
        # Requests completed during iobench: fields 4 and 8 of a /proc/diskstats line.
        a, b = (line.split() for line in r["diskstats"])
        r["requests"] = {"reads": int(b[3]) - int(a[3]), "writes": int(b[7]) - int(a[7])}
    if got["killed"]:
        problem = f"killed after the {timeout} s timeout"
    elif got["exit"] != 0:
        problem = problem or f"exit status {got['exit']}"
    elif not done:
        problem = problem or "no TANDEM-BENCH-DONE"
    # The figures, guest-timed and host-timed.
    for name, key, _, unit in GUEST_FIGS:
        if name == "rand-read-qd8":
            name = next((n for n in r["figures"] if n.startswith("rand-read-qd")), name)
        fig = r["figures"].get(name)
        if not fig:
            continue
        for clock in ("guest_s", "host_s"):
            s = fig[clock]
            if s is None or s <= 0:
                continue
            suffix = "" if clock == "guest_s" else "_host"
            if unit == "MB/s":
                r[key + suffix] = fig["bytes"] / s / 1e6
            elif unit == "IOPS":
                r[key + suffix] = fig["ops"] / s
            else:
                r[key + suffix] = s * 1000
    if problem:
        r["problem"] = problem
        r["console_tail"] = [raw.decode("utf-8", "replace").rstrip()
                             for _, raw in got["lines"][-15:]]
        r["stderr_tail"] = got["stderr"][-2000:]
    return r


# ---------------------------------------------------------------------------------------------
# img convert


def convert_run(argv, out):
    if os.path.exists(out):
        os.unlink(out)
    os.sync()
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    r = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
         "exit": os.waitstatus_to_exitcode(status), "load_1min": load}
    if r["exit"] != 0:
        r["problem"] = f"exit status {r['exit']}: {err.decode('utf-8', 'replace')[-500:]}"
    elif os.path.exists(out):
        st = os.stat(out)
        r["out_bytes"] = st.st_size
        r["out_allocated_mib"] = st.st_blocks * 512 / (1 << 20)
    return r


def same_data(qemu_img, a, b):
    """Whether two images hold the same guest-visible data (qemu-img compare)."""
    r = subprocess.run([qemu_img, "compare", "-q", a, b], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


# ---------------------------------------------------------------------------------------------
# Summaries


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize(data):
    g = data.get("guest")
    if g:
        metrics = [k for _, k, _, _ in GUEST_FIGS] + [k + "_host" for _, k, _, _ in GUEST_FIGS]
        metrics += ["wall_s", "cpu_s", "uptime_init_s"]
        g["summary"], g["ratios"] = {}, {}
        for cfg, engines in g["runs"].items():
            g["summary"][cfg] = {
                e: {m: summary([r.get(m) for r in runs if "problem" not in r]) for m in metrics}
                for e, runs in engines.items()}
            s = g["summary"][cfg]
            g["ratios"][cfg] = {m: ratio(s["tandem"][m], s["qemu"][m]) for m in metrics}
    c = data.get("convert")
    if c:
        c["summary"], c["ratios"] = {}, {}
        for case, engines in c["runs"].items():
            c["summary"][case] = {
                e: {m: summary([r.get(m) for r in runs if "problem" not in r])
                    for m in ("wall_s", "cpu_s", "out_allocated_mib")}
                for e, runs in engines.items()}
            s = c["summary"][case]
            c["ratios"][case] = {m: ratio(s["tandem"][m], s["qemu-img"][m])
                                 for m in ("wall_s", "cpu_s")}


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(tandem, qemu, qemu_img, vmlinuz, initramfs, runs, quick, timeout=600,
            parts=("guest", "convert"), configs=None):
    """Every disk figure, engines alternating within each round; the results (summarized)."""
    seq_mib, rand_count, qd = (128, 5000, 8) if quick else (256, 20000, 8)
    max_seconds = 20
    configs = [c for c in ALL_CONFIGS if configs is None or c[0] in configs]
    data = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "runs": runs, "quick": quick}
    if "guest" in parts:
        vdb, images = prepare_guest_images(f"{seq_mib} {rand_count} {qd} {max_seconds}",
                                           qemu_img)
        g = data["guest"] = {
            "seq_mib": seq_mib, "rand_count": rand_count, "qd": qd,
            "scratch_mib": SCRATCH_MIB,
            "configs": [{"key": k, "format": f, "cache": c} for k, f, c in configs],
            "commands": {}, "runs": {k: {"tandem": [], "qemu": []} for k, _, _ in configs}}
        for i in range(runs):
            for key, fmt, cache in configs:
                for kind in ("tandem", "qemu"):
                    argv = guest_argv(kind, tandem, qemu, vmlinuz, initramfs, images[fmt], fmt,
                                      cache, vdb)
                    g["commands"].setdefault(f"{key} {kind}", " ".join(argv))
                    r = guest_run(argv, timeout)
                    g["runs"][key][kind].append(r)
                    say(f"{key} {i + 1}/{runs} {kind}: "
                        + ", ".join(f"{n} {r[k]:.0f} {u}" for n, k, _, u in GUEST_FIGS
                                    if k in r)
                        + f", {r['wall_s']:.1f} s wall, load {r['load_1min']:.2f}"
                        + (f" — FAILED: {r['problem']}" if "problem" in r else ""))
    if "convert" in parts:
        src = prepare_convert_images(qemu_img)
        c = data["convert"] = {
            "size_gib": CONVERT_GIB, "data_mib": CONVERT_PIECES * CONVERT_PIECE_MIB,
            "piece_mib": CONVERT_PIECE_MIB, "commands": {}, "checks": {},
            "runs": {k: {"tandem": [], "qemu-img": []} for k, _, _ in CONVERT_CASES}}
        for i in range(runs):
            for case, sfmt, ofmt in CONVERT_CASES:
                outs = {}
                for kind, tool in (("tandem", [tandem, "img"]), ("qemu-img", [qemu_img])):
                    out = os.path.join(WORK, f"convert-out-{kind}.{ofmt}")
                    argv = tool + ["convert", "-f", sfmt, "-O", ofmt, src[sfmt], out]
                    c["commands"].setdefault(f"{case} {kind}", " ".join(argv))
                    r = convert_run(argv, out)
                    c["runs"][case][kind].append(r)
                    outs[kind] = out
                    say(f"convert {case} {i + 1}/{runs} {kind}: {r['wall_s']:.2f} s wall, "
                        f"{r['cpu_s']:.2f} s CPU, load {r['load_1min']:.2f}"
                        + (f" — FAILED: {r['problem']}" if "problem" in r else ""))
                if i == 0 and all(os.path.exists(o) for o in outs.values()):
                    c["checks"][case] = (same_data(qemu_img, outs["tandem"], src[sfmt])
                                         and same_data(qemu_img, outs["qemu-img"], src[sfmt]))
                for o in outs.values():
                    if os.path.exists(o):
                        os.unlink(o)
    summarize(data)
    return data


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x):
    if x is None:
        return "—"
    if abs(x) < 1:
        return f"{x:.3f}"
    if abs(x) < 100:
        return f"{x:.2f}"
    return f"{x:.0f}"


def cell(s):
    return "—" if s is None else f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def markdown(data, heading="##"):
    L = [f"{heading} Disk: virtio-blk in the guest, and img convert ({data['date']})", ""]
    g = data.get("guest")
    if g:
        loads = [r["load_1min"] for e in g["runs"].values() for runs in e.values()
                 for r in runs]
        L.append(f"`bench/disk.py` (`bench/run --figures disk`): the Linux guest with "
                 f"`tandem.bench=disk` runs `bench/iobench.c` (static, from an ext4 /dev/vdb) "
                 f"against /dev/vda, a {g['scratch_mib']} MiB image of random data on the host's "
                 f"disk, with O_DIRECT: {g['seq_mib']} MiB read twice (the first pass while the "
                 f"JIT warms up, then again) then written in 1 MiB requests, "
                 f"one fdatasync, {g['rand_count']:,} random 4 KiB reads at queue depth 1 and at "
                 f"{g['qd']} (threads). tandem `-accel tcg`, QEMU `-accel tcg -cpu qemu64`, both "
                 f"`-m {MEMORY}` and `-drive file=IMG,format=FMT,if=virtio,cache=MODE`. "
                 f"{data['runs']} runs of each, alternating; guest-timed (CLOCK_MONOTONIC); "
                 f"MB = 10⁶ bytes. Ratio: tandem / QEMU of the medians (above 1: tandem is "
                 f"faster, except for the flush time)"
                 + (f"; load (1 min) {min(loads):.2f}–{max(loads):.2f}." if loads else "."))
        L.append("")
        L.append("| image, cache | figure | tandem tcg | QEMU tcg -cpu qemu64 | tandem / QEMU |")
        L.append("| --- | --- | --- | --- | --- |")
        for cfg in g["configs"]:
            k = cfg["key"]
            s, rt = g["summary"][k], g["ratios"][k]
            for _, m, lab, unit in GUEST_FIGS:
                if m == "rand_read_qd8_iops":
                    lab = lab.replace("8", str(g["qd"]))
                L.append(f"| {cfg['format']}, cache={cfg['cache']} | {lab} ({unit}) | "
                         f"{cell(s['tandem'][m])} | {cell(s['qemu'][m])} | "
                         f"{fmt_ratio(rt[m])} |")
        L.append("")
        L.append("The same figures timed by the host (between the arrivals of each figure's "
                 "start and end markers on the console), medians, tandem / QEMU:")
        L.append("")
        L.append("| image, cache | " + " | ".join(
            f"{lab.split(',')[0]}{', first pass' if 'first' in m else ''}"
            f"{', QD ' + str(g['qd']) if 'qd8' in m else ''}"
            for _, m, lab, _ in GUEST_FIGS if m != "flush_ms") + " |")
        L.append("| --- |" + " --- |" * (len(GUEST_FIGS) - 1))
        for cfg in g["configs"]:
            k = cfg["key"]
            s, rt = g["summary"][k], g["ratios"][k]
            cells = []
            for _, m, _, _ in GUEST_FIGS:
                if m == "flush_ms":
                    continue
                a, b = s["tandem"][m + "_host"], s["qemu"][m + "_host"]
                cells.append(f"{fmt(a and a['median'])} / {fmt(b and b['median'])} "
                             f"({fmt_ratio(rt[m + '_host'])})")
            L.append(f"| {cfg['format']}, cache={cfg['cache']} | " + " | ".join(cells) + " |")
        L.append("")
        # What the guest's block layer made of the 1 MiB writes (the device's limits split them).
        notes = []
        for e, lab in (("tandem", "tandem"), ("qemu", "QEMU")):
            runs = [r for es in g["runs"].values() for r in es[e] if "requests" in r]
            if runs:
                q = runs[0].get("queue", {})
                notes.append(f"{lab}: {runs[0]['requests']['writes'] / g['seq_mib']:.1f} "
                             f"write requests per MiB written; queue limits "
                             + ", ".join(f"{k} {v}" for k, v in q.items()))
        if notes:
            L += ["Requests as the guest sent them (/proc/diskstats, /sys/block/vda/queue): "
                  + "; ".join(notes) + ".", ""]
        problems = [f"{k} {e} run {i + 1}: {r['problem']}" for k, es in g["runs"].items()
                    for e, runs in es.items() for i, r in enumerate(runs) if "problem" in r]
        if problems:
            L += ["Runs that did not count: " + "; ".join(problems), ""]
    c = data.get("convert")
    if c:
        L.append(f"`img convert` of a {c['size_gib']} GiB image holding {c['data_mib']} MiB of "
                 f"random data in {c['piece_mib']} MiB pieces at random places (the rest "
                 f"holes): the qcow2 (written by qemu-img) to raw, and the sparse raw to qcow2; "
                 f"`tandem img convert -f FMT -O FMT` against `qemu-img convert` (QEMU 7.2) "
                 f"with the same arguments, output deleted and `sync` before each run, "
                 f"{data['runs']} runs each, alternating. Seconds; ratio tandem / qemu-img "
                 f"(below 1: tandem is faster).")
        L.append("")
        L.append("| conversion | | tandem img | qemu-img | tandem / qemu-img | "
                 "output allocated, MiB (tandem / qemu-img) |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for case, _, _ in CONVERT_CASES:
            s, rt = c["summary"][case], c["ratios"][case]
            alloc = (f"{fmt(s['tandem']['out_allocated_mib'] and s['tandem']['out_allocated_mib']['median'])}"
                     f" / {fmt(s['qemu-img']['out_allocated_mib'] and s['qemu-img']['out_allocated_mib']['median'])}")
            for m, lab in (("wall_s", "wall clock"), ("cpu_s", "CPU time")):
                L.append(f"| {case} | {lab} | {cell(s['tandem'][m])} | {cell(s['qemu-img'][m])} "
                         f"| {fmt_ratio(rt[m])} | {alloc if m == 'wall_s' else ''} |")
        L.append("")
        if c["checks"]:
            bad = [k for k, ok in c["checks"].items() if not ok]
            L.append("✗ `qemu-img compare` found different data in: " + ", ".join(bad) if bad
                     else "Both tools' outputs hold the source's data (`qemu-img compare`, "
                          "first round).")
            L.append("")
        problems = [f"{k} {e} run {i + 1}: {r['problem']}" for k, es in c["runs"].items()
                    for e, runs in es.items() for i, r in enumerate(runs) if "problem" in r]
        if problems:
            L += ["Runs that did not count: " + "; ".join(problems), ""]
    return L


def goal_rows(data):
    """(goal, read against, measured, verdict) rows for bench/run's goals table."""
    out = []
    g = data.get("guest")
    if g:
        parts, ok = [], True
        for cfg in g["configs"]:
            rt = g["ratios"][cfg["key"]]
            vals = [rt.get(m) for m in ("seq_read_mbs", "seq_write_mbs", "rand_read_iops")]
            parts.append(f"{cfg['format']} cache={cfg['cache']} "
                         + " / ".join(fmt_ratio(v) for v in vals))
            ok = ok and all(v is not None and v >= 1 for v in vals)
        out.append(("Disk sequential read/write and 4K random read at least QEMU's",
                    "`disk`, tandem / QEMU tcg -cpu qemu64 of the medians (guest-timed), "
                    "seq read / seq write / 4K random read QD 1", "; ".join(parts),
                    "met" if ok else "not yet"))
    c = data.get("convert")
    if c:
        parts, ok = [], True
        for case, _, _ in CONVERT_CASES:
            v = c["ratios"][case].get("wall_s")
            parts.append(f"{case} {fmt_ratio(v)}")
            ok = ok and v is not None and v <= 1
        out.append(("`tandem img convert` no slower than `qemu-img convert`",
                    "`disk`, 1 GiB image with 512 MiB of data, tandem / qemu-img wall clock",
                    "; ".join(parts), "met" if ok else "not yet"))
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, help="rounds (default 5, --quick 2)")
    ap.add_argument("--quick", action="store_true",
                    help="2 rounds, 128 MiB sequential, 5,000 random reads")
    ap.add_argument("--parts", default="guest,convert", help="guest,convert or one of them")
    ap.add_argument("--configs", default=",".join(k for k, _, _ in ALL_CONFIGS),
                    help="guest configurations (default all: "
                         + ", ".join(k for k, _, _ in ALL_CONFIGS) + ")")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before a run is killed")
    ap.add_argument("--no-build", action="store_true", help="use target/release/tandem as is")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--out", help="also write the JSON to this file")
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    if not args.no_build:
        say("cargo build --release")
        run(["cargo", "build", "--release"], cwd=ROOT)
    qemu = shutil.which("qemu-system-x86_64")
    qemu_img = shutil.which("qemu-img")
    if not qemu or not qemu_img:
        die("qemu-system-x86_64 and qemu-img are needed (Debian: qemu-system-x86, qemu-utils; "
            "bench/run installs them)")
    r = run(["bash", os.path.join(ROOT, "fixtures", "fetch.sh")], cwd=ROOT,
            stdout=subprocess.PIPE, text=True)
    vmlinuz, initramfs = r.stdout.split()[-3:-1]
    parts = [p for p in args.parts.split(",") if p]
    data = measure(TANDEM, qemu, qemu_img, vmlinuz, initramfs, runs, args.quick, args.timeout,
                   parts, [c for c in args.configs.split(",") if c])
    data["command"] = "bench/disk.py " + " ".join(sys.argv[1:])
    text = json.dumps(data, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        print(text)
    else:
        print("\n".join(markdown(data)))
        for goal, against, measured, verdict in goal_rows(data):
            print(f"- {goal}: {measured} ({verdict})")


if __name__ == "__main__":
    main()
