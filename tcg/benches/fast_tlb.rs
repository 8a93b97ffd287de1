//! The TLB compiled code probes inline ([`FastTlb`]): lookups per second for hits (loads and
//! stores) and misses, and fills per second (what the engine's slow path does after a walk).
//!
//! `cargo bench -p tandem-tcg --bench fast_tlb`. Every iteration touches all 1,024 entries in
//! a fixed scattered order, so the figures are per lookup over a whole table, not one hot line.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use tandem_tcg::jit::fast_tlb::{FastTlb, ENTRIES};

/// The linear addresses probed: one in each page of a 4 MiB range, each page in its own entry,
/// visited in a scattered order (a stride coprime to the table size) so the hardware
/// prefetcher does not turn the table walk into a sequential read.
fn addresses(base: u64) -> Vec<u64> {
    (0..ENTRIES as u64)
        .map(|i| base + ((i * 389) % ENTRIES as u64) * 4096 + 0x18)
        .collect()
}

/// Looks every address up; returns how many hit (so the work cannot be optimized away).
fn probe(t: &FastTlb, addrs: &[u64], write: bool) -> usize {
    addrs
        .iter()
        .filter(|&&a| t.lookup(black_box(a), 8, write).is_some())
        .count()
}

fn main() {
    const BASE: u64 = 0x7f00_0000_0000;
    // Host memory behind the guest pages (only addresses are computed from it).
    let mut ram = vec![0u8; ENTRIES * 4096];
    let host = ram.as_mut_ptr();
    let hits = addresses(BASE);
    let pages: Vec<*mut u8> = hits
        .iter()
        // SAFETY: page (a - BASE) >> 12 < ENTRIES of the allocation above.
        .map(|a| unsafe { host.add(((a - BASE) >> 12) as usize * 4096) })
        .collect();
    let fill = |t: &mut FastTlb| {
        for (&a, &page) in hits.iter().zip(&pages) {
            t.fill(black_box(a), page, true, false);
        }
    };
    let mut tlb = Box::<FastTlb>::default();
    fill(&mut tlb);
    // The same entries, other pages: a tag mismatch in every entry probed.
    let misses = addresses(BASE + (ENTRIES as u64) * 4096);
    assert_eq!(probe(&tlb, &hits, true), ENTRIES);
    assert_eq!(probe(&tlb, &misses, false), 0);

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    let mut g = c.benchmark_group("fast_tlb");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("lookup hit load", |b| b.iter(|| probe(&tlb, &hits, false)));
    g.bench_function("lookup hit store", |b| b.iter(|| probe(&tlb, &hits, true)));
    g.bench_function("lookup miss", |b| b.iter(|| probe(&tlb, &misses, false)));
    g.bench_function("fill", |b| b.iter(|| fill(&mut tlb)));
    g.finish();
    c.final_summary();
}
