//! The KVM engine alone, below the machine: state in, port exits out, state back.

#![cfg(feature = "kvm")]

mod common;

use std::sync::{Arc, Mutex};

use iced_x86::code_asm::*;
use tandem_accel::kvm::KvmAccelerator;
use tandem_accel::{Accelerator, AcceleratorConfig, VcpuExit};
use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpaceBuilder, PortBus, PortDevice, RunControl};
use tandem_target_x86_64::cpu_state::reg;

#[derive(Default)]
struct Sink(Vec<u8>);
impl PortDevice for Sink {
    fn read(&mut self, _o: u16, d: &mut [u8]) {
        d.fill(0x5a);
    }
    fn write(&mut self, _o: u16, d: &[u8]) {
        self.0.extend_from_slice(d);
    }
}

#[test]
fn protected_mode_guest_does_port_io_and_halts() {
    if let Err(why) = tandem_accel::kvm::probe() {
        println!("SKIPPED protected_mode_guest_does_port_io_and_halts: {why}");
        return;
    }
    let mut a = CodeAssembler::new(32).unwrap();
    a.mov(dx, 0x3f8u32).unwrap();
    a.in_(al, dx).unwrap();
    a.add(al, 1).unwrap();
    a.out(dx, al).unwrap();
    a.mov(eax, 0x1234_5678u32).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x1000).unwrap();

    let mem = Arc::new(HostMemory::anonymous(2 << 20).unwrap());
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, mem, 0, 2 << 20).unwrap();
    let space = Arc::new(b.build());
    space.load(0x1000, &code).unwrap();
    let sink = Arc::new(Mutex::new(Sink::default()));
    let mut ports = PortBus::new();
    ports.register(0x3f8, 8, sink.clone()).unwrap();
    let bus = common::bus(space, ports, Arc::new(RunControl::new()));
    let mut accel = KvmAccelerator::new(AcceleratorConfig {
        kernel_irqchip: false,
        ..Default::default()
    })
    .unwrap();
    accel.attach(&bus).unwrap();
    let mut vcpu = accel.create_vcpu(0, &bus).unwrap();
    let s = common::flat32(0x1000);
    vcpu.set_state(&s).unwrap();
    let exit = vcpu.run().unwrap();
    assert_eq!(
        exit,
        VcpuExit::Halted {
            interrupts_enabled: false
        }
    );
    assert_eq!(sink.lock().unwrap().0, vec![0x5b]);
    let after = vcpu.state().unwrap();
    assert_eq!(after.gpr[reg::RAX], 0x1234_5678);
    assert_eq!(after.rip, 0x1000 + code.len() as u64);
}

#[derive(Default)]
struct Recorder(Vec<(u64, Vec<u8>)>);
impl tandem_softmmu::MmioDevice for Recorder {
    fn read(&mut self, _o: u64, d: &mut [u8]) {
        d.fill(0);
    }
    fn write(&mut self, o: u64, d: &[u8]) {
        self.0.push((o, d.to_vec()));
    }
}

/// A store to a doorbell's address rings it inside KVM: the device model never sees it, while
/// a store beside it is an ordinary MMIO exit.
#[test]
fn doorbell_stores_ring_without_reaching_the_device() {
    if let Err(why) = tandem_accel::kvm::probe() {
        println!("SKIPPED doorbell_stores_ring_without_reaching_the_device: {why}");
        return;
    }
    const MMIO: u64 = 0xd000_0000;
    let mut a = CodeAssembler::new(32).unwrap();
    a.mov(eax, 7u32).unwrap();
    a.mov(word_ptr(MMIO as u32 + 0x10), ax).unwrap();
    a.mov(word_ptr(MMIO as u32 + 0x20), ax).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x1000).unwrap();
    let mem = Arc::new(HostMemory::anonymous(2 << 20).unwrap());
    let dev = Arc::new(Mutex::new(Recorder::default()));
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, mem, 0, 2 << 20).unwrap();
    b.mmio(MMIO, 0x1000, dev.clone()).unwrap();
    let space = Arc::new(b.build());
    space.load(0x1000, &code).unwrap();
    let bus = common::bus(space, PortBus::new(), Arc::new(RunControl::new()));
    let mut accel = KvmAccelerator::new(AcceleratorConfig::default()).unwrap();
    accel.attach(&bus).unwrap();
    let bell = tandem_softmmu::Doorbell::new().unwrap();
    accel.register_doorbell(MMIO + 0x10, &bell).unwrap();
    let mut vcpu = accel.create_vcpu(0, &bus).unwrap();
    let s = common::flat32(0x1000);
    vcpu.set_state(&s).unwrap();
    assert!(matches!(vcpu.run().unwrap(), VcpuExit::Halted { .. }));
    assert!(bell.take(), "the doorbell did not ring");
    assert_eq!(dev.lock().unwrap().0, vec![(0x20, vec![7, 0])]);
}

/// A vCPU run on one thread, then (as after a guest reboot) on another: a stop request still
/// reaches it. The kicker must signal the thread running the vCPU now, not the first one (which
/// has ended: signalling its id is undefined behaviour, and the vCPU would spin on).
#[test]
fn a_vcpu_moved_to_a_new_thread_is_still_kicked() {
    if let Err(why) = tandem_accel::kvm::probe() {
        println!("SKIPPED a_vcpu_moved_to_a_new_thread_is_still_kicked: {why}");
        return;
    }
    let spin = {
        let mut a = CodeAssembler::new(32).unwrap();
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.jmp(top).unwrap();
        a.assemble(0x1000).unwrap()
    };
    let mem = Arc::new(HostMemory::anonymous(2 << 20).unwrap());
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, mem, 0, 2 << 20).unwrap();
    let space = Arc::new(b.build());
    space.load(0x1000, &spin).unwrap();
    let control = Arc::new(RunControl::new());
    let bus = common::bus(space, PortBus::new(), control.clone());
    let mut accel = KvmAccelerator::new(AcceleratorConfig::default()).unwrap();
    accel.attach(&bus).unwrap();
    let mut vcpu = accel.create_vcpu(0, &bus).unwrap();
    vcpu.set_state(&common::flat32(0x1000)).unwrap();
    let mut parked = Vec::new();
    for round in 0..2 {
        control.clear();
        // A live thread takes the ended runner's place in the C library's thread cache, so the
        // next runner gets another thread id.
        let (park_tx, park_rx) = std::sync::mpsc::channel::<()>();
        parked.push((park_tx, std::thread::spawn(move || park_rx.recv())));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let runner = std::thread::spawn(move || {
            let exit = vcpu.run();
            let _ = done_tx.send(());
            (vcpu, exit)
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        control.request(tandem_softmmu::MachineRequest::Quit);
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .is_ok(),
            "round {round}: the stop request never reached the vCPU's thread"
        );
        let (v, exit) = runner.join().unwrap();
        assert_eq!(exit.unwrap(), VcpuExit::Stopped, "round {round}");
        vcpu = v;
    }
    for (tx, t) in parked {
        drop(tx);
        let _ = t.join();
    }
}
