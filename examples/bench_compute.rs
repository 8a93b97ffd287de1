//! The CPL3 compute loop of `bench/micro.py` (issue 5: "a CPL3 compute loop vs native"): one
//! piece of machine code — an xorshift64 generator summed into an accumulator — run natively in
//! this process and as a harness snippet on each engine, so every column executes the same
//! bytes.
//!
//! `cargo run --release --example bench_compute -- [--iters N] [--runs R] [--engines LIST]`
//! prints one JSON object: per engine, the seconds of every run and the per-iteration time.
//! `--tsc` instead prints the host's TSC frequency (micro.py's fallback for turning guest TSC
//! cycles into seconds where the guest cannot calibrate its own).
//!
//! Each run times `n` iterations and 1 iteration the same way and takes the difference, so
//! what is left is the loop itself, not the harness's per-run work (loading the snippet,
//! setting the state, the watchdog thread, and for the JIT translating the loop again if
//! reloading the code dropped its translation). The default `n` makes the native run last
//! about a second on this machine. The engines alternate (native, kvm, tcg, native, ...) so
//! a change in the machine's load hits them alike.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use tandem::harness::{Harness, Limits, Snippet, SnippetEnd};
use tandem::AccelKind;

/// The loop's registers (CpuState / encoding order).
const RAX: usize = 0;
const RCX: usize = 1;
const R8: usize = 8;
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// xorshift64 (13, 7, 17) with the value summed into R8, RCX iterations: a serial dependency
/// chain of plain ALU operations, no memory access, so any engine overhead shows in full.
/// Ends by falling off its last byte (the harness's completion point; natively a `ret` is
/// appended).
fn loop_code() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut top = a.create_label();
    a.set_label(&mut top)?;
    a.mov(rdx, rax)?;
    a.shl(rdx, 13)?;
    a.xor(rax, rdx)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 7)?;
    a.xor(rax, rdx)?;
    a.mov(rdx, rax)?;
    a.shl(rdx, 17)?;
    a.xor(rax, rdx)?;
    a.add(r8, rax)?;
    a.dec(rcx)?;
    a.jnz(top)?;
    // Relative jumps only: the same bytes run at any address.
    a.assemble(tandem::harness::CODE_ADDR)
}

/// The loop mapped executable in this process.
struct Native {
    code: *mut libc::c_void,
    len: usize,
}

impl Native {
    fn new(loop_bytes: &[u8]) -> Result<Self, String> {
        let mut bytes = loop_bytes.to_vec();
        bytes.push(0xc3); // ret
        let len = bytes.len().next_multiple_of(4096);
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let code = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if code == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `code` is a writable mapping of `len >= bytes.len()` bytes that nothing else
        // refers to.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), code.cast::<u8>(), bytes.len()) };
        // SAFETY: `code`/`len` are exactly the mapping made above.
        if unsafe { libc::mprotect(code, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(format!("mprotect: {}", std::io::Error::last_os_error()));
        }
        Ok(Self { code, len })
    }

    /// Runs `n` iterations from SEED; returns (rax, r8).
    fn run(&self, n: u64) -> (u64, u64) {
        let (mut value, mut sum) = (SEED, 0u64);
        // SAFETY: the mapping holds the loop followed by `ret`; the loop reads and writes only
        // RAX, RCX, RDX, R8 and the flags, all declared here, and touches no memory; the call
        // pushes its return address below RSP, which is why the stack is not marked unused.
        unsafe {
            std::arch::asm!(
                "call {f}",
                f = in(reg) self.code,
                inout("rax") value,
                inout("rcx") n => _,
                out("rdx") _,
                inout("r8") sum,
            );
        }
        (value, sum)
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.code, self.len) };
    }
}

/// A wall-clock and a CPU-time reading of this thread.
#[derive(Clone, Copy)]
struct Stamp {
    wall: Instant,
    cpu: Duration,
}

impl Stamp {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux has.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Self {
            wall: Instant::now(),
            cpu: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
        }
    }

    /// The time since `self`.
    fn elapsed(self) -> Times {
        let now = Self::now();
        Times {
            wall: now.wall - self.wall,
            cpu: now.cpu.saturating_sub(self.cpu),
        }
    }
}

/// How long a run took, by the wall clock and in this thread's CPU time.
#[derive(Clone, Copy)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

/// The loop's results: (rax, r8).
type Answer = (u64, u64);

/// One engine's runner: native, or a harness machine reused from run to run.
enum Runner {
    Native(Native),
    Harness(Box<Harness>, Vec<u8>),
}

impl Runner {
    /// Runs `n` iterations; returns the wall and CPU time of this thread and (rax, r8). The
    /// harness runs the vCPU on the calling thread, and on PVM the guest's CPL3 code executes
    /// in that thread's time slice, so the CPU time covers the guest as it does native code;
    /// unlike wall time it does not count waiting for a core on a busy machine.
    fn time(&mut self, n: u64) -> Result<(Times, Answer), String> {
        match self {
            Runner::Native(native) => {
                let t = Stamp::now();
                let r = native.run(n);
                Ok((t.elapsed(), r))
            }
            Runner::Harness(h, code) => {
                let mut s = Snippet::new(code.clone())
                    .with_gpr(RAX, SEED)
                    .with_gpr(RCX, n)
                    .with_gpr(R8, 0);
                s.limits = Limits {
                    timeout: Duration::from_secs(600),
                };
                let t = Stamp::now();
                let r = h.run(&s).map_err(|e| e.to_string())?;
                let elapsed = t.elapsed();
                if r.end != SnippetEnd::Completed {
                    return Err(format!("the snippet ended with {:?}", r.end));
                }
                Ok((elapsed, (r.state.gpr[RAX], r.state.gpr[R8])))
            }
        }
    }
}

/// Host TSC ticks per second, against CLOCK_MONOTONIC over `window`.
fn host_tsc_hz(window: Duration) -> f64 {
    // SAFETY: RDTSC has no memory effects; x86_64 always has it.
    let tsc = || unsafe { std::arch::x86_64::_rdtsc() };
    let (t0, c0) = (Instant::now(), tsc());
    std::thread::sleep(window);
    let (c1, t1) = (tsc(), Instant::now());
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

struct Args {
    iters: u64,
    runs: usize,
    engines: Vec<String>,
    tsc: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        iters: 600_000_000,
        runs: 5,
        engines: vec!["native".into(), "kvm".into(), "tcg".into()],
        tsc: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--iters" => {
                args.iters = value("--iters")?
                    .parse()
                    .map_err(|e| format!("--iters: {e}"))?
            }
            "--runs" => {
                args.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--engines" => {
                args.engines = value("--engines")?.split(',').map(str::to_string).collect()
            }
            "--tsc" => args.tsc = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.iters < 2 {
        return Err("--iters must be at least 2".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_compute: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if args.tsc {
        let runs: Vec<String> = (0..3)
            .map(|_| format!("{:.0}", host_tsc_hz(Duration::from_millis(200))))
            .collect();
        println!("{{\"host_tsc_hz\": [{}]}}", runs.join(", "));
        return Ok(());
    }
    let code = loop_code().map_err(|e| e.to_string())?;
    let mut runners = Vec::new();
    for name in &args.engines {
        let runner = match name.as_str() {
            "native" => Runner::Native(Native::new(&code)?),
            "kvm" | "tcg" => {
                let kind = if name == "kvm" {
                    AccelKind::Kvm
                } else {
                    AccelKind::Tcg
                };
                let h = Harness::new(kind).map_err(|e| format!("{name}: {e}"))?;
                Runner::Harness(Box::new(h), code.clone())
            }
            other => return Err(format!("unknown engine {other}")),
        };
        runners.push((name.clone(), runner));
    }
    // Warm-up: page in the code and the harness machine, let the JIT translate and compile.
    for (name, r) in &mut runners {
        r.time(1_000_000).map_err(|e| format!("{name}: {e}"))?;
    }
    let mut results: Vec<Vec<String>> = vec![Vec::new(); runners.len()];
    let mut answers: Vec<Option<Answer>> = vec![None; runners.len()];
    for _ in 0..args.runs {
        for (i, (name, r)) in runners.iter_mut().enumerate() {
            let (one, _) = r.time(1).map_err(|e| format!("{name}: {e}"))?;
            let (all, answer) = r.time(args.iters).map_err(|e| format!("{name}: {e}"))?;
            answers[i] = Some(answer);
            let per = |all: Duration, one: Duration| {
                all.saturating_sub(one).as_secs_f64() * 1e9 / (args.iters - 1) as f64
            };
            results[i].push(format!(
                "{{\"seconds\": {:.9}, \"one_iteration_seconds\": {:.9}, \"ns_per_iteration\": {:.6}, \
                 \"cpu_seconds\": {:.9}, \"cpu_ns_per_iteration\": {:.6}}}",
                all.wall.as_secs_f64(),
                one.wall.as_secs_f64(),
                per(all.wall, one.wall),
                all.cpu.as_secs_f64(),
                per(all.cpu, one.cpu)
            ));
            eprintln!(
                "bench_compute: {name}: {:.3} s ({:.3} s CPU) for {} iterations",
                all.wall.as_secs_f64(),
                all.cpu.as_secs_f64(),
                args.iters
            );
        }
    }
    let engines: Vec<String> = runners
        .iter()
        .zip(&results)
        .zip(&answers)
        .map(|(((name, _), runs), answer)| {
            let (value, sum) = answer.unwrap_or_default();
            format!(
                "\"{name}\": {{\"runs\": [{}], \"rax\": \"{value:#x}\", \"r8\": \"{sum:#x}\"}}",
                runs.join(", ")
            )
        })
        .collect();
    println!(
        "{{\"iterations\": {}, \"code_hex\": \"{}\", \"engines\": {{{}}}}}",
        args.iters,
        code.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        engines.join(", ")
    );
    Ok(())
}
