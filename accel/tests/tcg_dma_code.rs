//! The JIT engine alone, below the machine: RAM written behind the vCPU's back (as device DMA
//! writes it, from another thread) drops the translations of the code it overwrites.

#![cfg(feature = "tcg")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use iced_x86::code_asm::*;
use tandem_accel::tcg::TcgAccelerator;
use tandem_accel::{Accelerator, TcgConfig, Tier, VcpuExit};
use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpaceBuilder, MachineRequest, PortBus, RunControl};
use tandem_target_x86_64::cpu_state::reg;

/// Assembles `f` at `at` (32-bit code).
fn asm(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    f(&mut a).unwrap();
    a.assemble(at).unwrap()
}

#[test]
fn dma_into_compiled_code_is_seen() {
    const FUNC: u64 = 0x3000;
    // Calls FUNC until it returns 2, counting the calls in ebx; FUNC returns 1 until the "DMA"
    // below rewrites it.
    let main = asm(0x1000, |a| {
        let mut top = a.create_label();
        a.mov(esp, 0x8000u32)?;
        a.xor(ebx, ebx)?;
        a.set_label(&mut top)?;
        a.inc(ebx)?;
        a.mov(ecx, FUNC as u32)?;
        a.call(ecx)?;
        a.cmp(eax, 2)?;
        a.jne(top)?;
        a.hlt()
    });
    let returns = |v: u32| {
        asm(FUNC, move |a| {
            a.mov(eax, v)?;
            a.ret()
        })
    };
    let mem = Arc::new(HostMemory::anonymous(2 << 20).unwrap());
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, mem, 0, 2 << 20).unwrap();
    let space = Arc::new(b.build());
    space.load(0x1000, &main).unwrap();
    space.load(FUNC, &returns(1)).unwrap();
    let control = Arc::new(RunControl::new());
    let bus = common::bus(space.clone(), PortBus::new(), control.clone());
    let mut accel = TcgAccelerator::new(TcgConfig {
        tier: Tier::Jit,
        ..TcgConfig::default()
    })
    .unwrap();
    accel.attach(&bus).unwrap();
    let mut vcpu = accel.create_vcpu(0, &bus).unwrap();
    let s = common::flat32(0x1000);
    vcpu.set_state(&s).unwrap();
    let runner = std::thread::spawn(move || {
        let exit = vcpu.run();
        (exit, vcpu.state())
    });
    // Let the loop run compiled and chained, then write FUNC as a disk read would.
    std::thread::sleep(Duration::from_millis(300));
    space.write(FUNC, &returns(2)).unwrap();
    let watchdog = {
        let control = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            control.request(MachineRequest::Quit);
        })
    };
    let (exit, state) = runner.join().unwrap();
    drop(watchdog);
    assert!(
        matches!(exit, Ok(VcpuExit::Halted { .. })),
        "the loop never saw the new code: {exit:?}"
    );
    let state = state.unwrap();
    assert_eq!(state.gpr[reg::RAX], 2);
    assert!(
        state.gpr[reg::RBX] > 1000,
        "ran {} times",
        state.gpr[reg::RBX]
    );
}
