//! The JIT engine's softmmu TLB: lookups per second in its software TLB (linear to physical
//! page) for hits and misses, and guest loads through the engine's memory path (`Linear`) when
//! they hit the fast TLB and when they miss every TLB and walk 4-level page tables.
//!
//! The TLB and memory modules are private to the accel crate, so this bench compiles their
//! source files into itself (`#[path]` below): it measures the engine's own code.
//!
//! `cargo bench -p tandem-accel --bench tlb`.

// Only part of each module is used, and `cargo test` builds compile their unit-test modules
// without the tests (harness = false): hence the allows.
#[allow(dead_code, unused_imports)]
#[path = "../src/tcg/code_watch.rs"]
mod code_watch;
#[allow(dead_code, unused_imports)]
#[path = "../src/tcg/fast_hash.rs"]
mod fast_hash;
#[allow(dead_code, unused_imports)]
#[path = "../src/tcg/memory.rs"]
mod memory;
#[allow(dead_code, unused_imports)]
#[path = "../src/tcg/tlb.rs"]
mod tlb;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpace, AddressSpaceBuilder};
use tandem_target_x86_64::cpu_state::bits;
use tandem_target_x86_64::memory::Access;
use tandem_target_x86_64::CpuState;

use memory::{Linear, MemoryState};
use tlb::Tlb;

/// Entries of the engine's TLBs (both are direct-mapped by linear page number).
const ENTRIES: u64 = 1024;
/// Guest RAM: the mapped pages, then the page tables.
const MAPPED: u64 = 2 * ENTRIES * 4096;
const PML4: u64 = MAPPED;

/// RAM whose first [`MAPPED`] bytes are identity-mapped by 4 KiB pages through 4-level page
/// tables at [`PML4`], and a 64-bit supervisor CPU using them.
fn paged_machine() -> (AddressSpace, CpuState) {
    let tables = 3 + MAPPED / (512 * 4096);
    let mem = HostMemory::anonymous(MAPPED + tables * 4096).expect("guest RAM");
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, Arc::new(mem), 0, MAPPED + tables * 4096)
        .expect("map RAM");
    let space = b.build();
    let entry = |at: u64, value: u64| space.write(at, &value.to_le_bytes()).expect("RAM");
    // Present, writable, user.
    const FLAGS: u64 = 0b111;
    let (pdpt, pd, pt) = (PML4 + 0x1000, PML4 + 0x2000, PML4 + 0x3000);
    entry(PML4, pdpt | FLAGS);
    entry(pdpt, pd | FLAGS);
    for page in 0..MAPPED / 4096 {
        let table = pt + page / 512 * 4096;
        if page % 512 == 0 {
            entry(pd + page / 512 * 8, table | FLAGS);
        }
        entry(table + page % 512 * 8, (page * 4096) | FLAGS);
    }
    let mut cpu = CpuState::default();
    cpu.cr0 |= bits::CR0_PE | bits::CR0_PG;
    cpu.cr4 |= bits::CR4_PAE;
    cpu.efer |= bits::EFER_LME | bits::EFER_LMA;
    cpu.cr3 = PML4;
    (space, cpu)
}

/// One address in each of `pages` pages from `first`, in a scattered order (a stride coprime
/// to the count) so the hardware prefetcher does not make the table walk sequential.
fn addresses(first: u64, pages: u64) -> Vec<u64> {
    (0..pages)
        .map(|i| (first + (i * 389) % pages) * 4096 + 0x18)
        .collect()
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();

    // The software TLB alone: every entry holds a page; the misses are the other page of the
    // same entries (a tag mismatch, what a conflict looks like).
    let hits = addresses(0, ENTRIES);
    let misses = addresses(ENTRIES, ENTRIES);
    let mut t = Tlb::default();
    let fill = |t: &mut Tlb| {
        for &a in &hits {
            t.fill(black_box(a), a & !0xfff, false, true, false);
        }
    };
    fill(&mut t);
    let probe = |t: &mut Tlb, addrs: &[u64]| {
        addrs
            .iter()
            .filter(|&&a| t.lookup(black_box(a), false, false).is_some())
            .count()
    };
    assert_eq!(probe(&mut t, &hits), hits.len());
    assert_eq!(probe(&mut t, &misses), 0);
    let mut g = c.benchmark_group("softmmu_tlb");
    g.throughput(Throughput::Elements(ENTRIES));
    g.bench_function("lookup hit", |b| b.iter(|| probe(&mut t, &hits)));
    g.bench_function("lookup miss", |b| b.iter(|| probe(&mut t, &misses)));
    g.bench_function("fill", |b| b.iter(|| fill(&mut t)));
    g.finish();

    // Guest loads through the engine's memory path, as the interpreter and the compiled
    // code's slow path make them.
    let (space, cpu) = paged_machine();
    let mut state = MemoryState::default();
    let mut linear = Linear {
        space: &space,
        state: &mut state,
    };
    let read = |l: &mut Linear<'_>, addrs: &[u64]| {
        let mut sum = 0u64;
        for &a in addrs {
            let mut b = [0u8; 8];
            l.read(&cpu, black_box(a), &mut b, false).expect("mapped");
            sum = sum.wrapping_add(u64::from_le_bytes(b));
        }
        sum
    };
    // Two pages per entry of both TLBs, visited in turn: every load evicts the page the next
    // visit of its entry wants, so each one misses and walks the page tables.
    let walks = addresses(0, 2 * ENTRIES);
    read(&mut linear, &hits);
    // Checked, not assumed: after one pass to settle, a pass over `walks` misses every time.
    read(&mut linear, &walks);
    let before = linear.state.tlb.stats();
    read(&mut linear, &walks);
    let after = linear.state.tlb.stats();
    assert_eq!((after.0 - before.0, after.1 - before.1), (0, 2 * ENTRIES));
    let mut g = c.benchmark_group("softmmu_load");
    g.throughput(Throughput::Elements(ENTRIES));
    g.bench_function("fast TLB hit", |b| b.iter(|| read(&mut linear, &hits)));
    g.bench_function("TLB hit (Linear::translate)", |b| {
        b.iter(|| {
            hits.iter()
                .map(|&a| linear.translate(&cpu, black_box(a), Access::Read, false))
                .filter(Result::is_ok)
                .count()
        })
    });
    g.throughput(Throughput::Elements(2 * ENTRIES));
    g.bench_function("miss, page walk", |b| b.iter(|| read(&mut linear, &walks)));
    g.finish();
    c.final_summary();
}
