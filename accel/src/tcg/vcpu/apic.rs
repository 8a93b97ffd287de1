//! The vCPU's side of its local APIC under the JIT: the APIC MSRs, CR8, and the events the
//! APIC raises for the CPU itself (SDM Vol. 3A 10.4.4 / 11.4.4 APIC base, 11.12 x2APIC MSRs,
//! 11.5.4.1 IA32_TSC_DEADLINE, 11.8.6 CR8, 9.4 INIT and start-up).
//!
//! RDMSR/WRMSR of IA32_APIC_BASE (0x1b), IA32_TSC_DEADLINE (0x6e0) and 0x800-0x8ff are the
//! APIC's, after the CPL check every RDMSR/WRMSR makes; the APIC's refusal is #GP(0). Setting
//! x2APIC mode (APIC base bit 10) also needs CPUID.1:ECX.x2APIC, as on hardware. CR8 is kept
//! in the APIC's TPR: the engine loads the TPR into `CpuState::cr8` before a MOV from CR8 and
//! stores it back after a MOV to CR8, so control_regs keeps the architectural checks.
//!
//! Warts: IA32_TSC_DEADLINE works whether or not CPUID advertises it; SMI events are dropped
//! (no SMM).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use tandem_softmmu::irq::{CpuEvents, LocalApic, LocalApicMsrError};
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::cpuid::leaf1;
use tandem_target_x86_64::{CpuState, CpuidTable, Fault, Segment, X86Context};

/// IA32_APIC_BASE.
const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_APIC_BASE bit 10: x2APIC mode.
const APIC_BASE_EXTD: u64 = 1 << 10;

/// Whether MSR `index` belongs to the local APIC.
pub(super) fn is_apic_msr(index: u32) -> bool {
    matches!(index, MSR_APIC_BASE | 0x6e0 | 0x800..=0x8ff)
}

/// What an RDMSR or WRMSR did at the local APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MsrOutcome {
    /// Not an APIC MSR (or not an MSR instruction): the CPU's MSR model runs it.
    NotApic,
    /// Done, RIP past the instruction; `base_written` if IA32_APIC_BASE changed (the APIC
    /// page may have moved).
    Done {
        /// IA32_APIC_BASE was written.
        base_written: bool,
    },
    /// The instruction raises this fault (RIP and registers untouched).
    Fault(Fault),
}

/// Runs `insn` at `lapic` if it is an RDMSR or WRMSR of an APIC MSR.
pub(super) fn msr_instruction(
    ctx: &mut X86Context,
    insn: &Instruction,
    lapic: &dyn LocalApic,
    cpuid: &CpuidTable,
) -> MsrOutcome {
    let read = match insn.mnemonic() {
        Mnemonic::Rdmsr => true,
        Mnemonic::Wrmsr => false,
        _ => return MsrOutcome::NotApic,
    };
    let index = ctx.cpu.gpr[reg::RCX] as u32;
    if !is_apic_msr(index) {
        return MsrOutcome::NotApic;
    }
    let gp = MsrOutcome::Fault(Fault::gp(0));
    if ctx.cpu.cpl() != 0 {
        return gp;
    }
    let result = if read {
        lapic.read_msr(index).map(|v| {
            ctx.cpu.gpr[reg::RAX] = v & 0xffff_ffff;
            ctx.cpu.gpr[reg::RDX] = v >> 32;
        })
    } else {
        let v = (ctx.cpu.gpr[reg::RDX] << 32) | (ctx.cpu.gpr[reg::RAX] & 0xffff_ffff);
        let x2apic = cpuid
            .lookup(1, 0)
            .is_some_and(|l| l.ecx & leaf1::ECX_X2APIC != 0);
        if index == MSR_APIC_BASE && v & APIC_BASE_EXTD != 0 && !x2apic {
            return gp;
        }
        lapic.write_msr(index, v)
    };
    match result {
        Ok(()) => {
            ctx.cpu.rip = insn.next_ip();
            if let Ok(base) = lapic.read_msr(MSR_APIC_BASE) {
                ctx.cpu.apic_base = base;
            }
            MsrOutcome::Done {
                base_written: !read && index == MSR_APIC_BASE,
            }
        }
        Err(LocalApicMsrError::NotApic(_)) => MsrOutcome::NotApic,
        Err(LocalApicMsrError::Refused(_)) => gp,
    }
}

/// Which way a MOV moves CR8, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cr8Move {
    /// MOV from CR8.
    Read,
    /// MOV to CR8.
    Write,
}

/// Whether `insn` is a MOV to or from CR8.
pub(super) fn cr8_move(insn: &Instruction) -> Option<Cr8Move> {
    let is_cr8 = |n| insn.op_kind(n) == OpKind::Register && insn.op_register(n) == Register::CR8;
    if insn.mnemonic() != Mnemonic::Mov {
        None
    } else if is_cr8(0) {
        Some(Cr8Move::Write)
    } else if is_cr8(1) {
        Some(Cr8Move::Read)
    } else {
        None
    }
}

/// What the events ask of the vCPU beyond the pending NMI they set in `cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct EventActions {
    /// INIT reached the bootstrap processor: with no firmware to run, the machine resets.
    pub reset_machine: bool,
}

/// Applies `events` to the CPU: an NMI becomes pending; INIT puts an application processor in
/// wait-for-SIPI (`waiting`) with its reset state; a start-up IPI starts a waiting one in real
/// mode at `vector << 12`.
pub(super) fn apply_events(
    cpu: &mut CpuState,
    waiting: &mut bool,
    bsp: bool,
    events: CpuEvents,
) -> EventActions {
    let mut actions = EventActions::default();
    if events.init {
        if bsp {
            actions.reset_machine = true;
        } else {
            *cpu = CpuState {
                apic_base: cpu.apic_base,
                ..CpuState::default()
            };
            *waiting = true;
        }
    }
    if let Some(vector) = events.sipi.filter(|_| *waiting) {
        let page = u16::from(vector) << 8;
        cpu.seg[tandem_target_x86_64::cpu_state::sreg::CS] = Segment::real_mode(page, true);
        cpu.rip = 0;
        cpu.halted = false;
        *waiting = false;
    }
    if events.nmi {
        cpu.events.nmi_pending = true;
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use iced_x86::code_asm::*;
    use tandem_softmmu::InterruptAcknowledge;
    use tandem_target_x86_64::CpuidEntry;

    use super::*;

    /// An APIC that records MSR writes and answers reads with `index + 1`.
    #[derive(Default)]
    struct FakeApic {
        writes: Mutex<Vec<(u32, u64)>>,
        cr8: Mutex<u64>,
    }

    impl InterruptAcknowledge for FakeApic {
        fn acknowledge(&self) -> Option<u8> {
            None
        }
    }

    impl LocalApic for FakeApic {
        fn mmio_page(&self) -> Option<u64> {
            Some(0xfee0_0000)
        }
        fn mmio_read(&self, _: u64, _: &mut [u8]) {}
        fn mmio_write(&self, _: u64, _: &[u8]) {}
        fn read_msr(&self, index: u32) -> Result<u64, LocalApicMsrError> {
            if index == 0x8ff {
                return Err(LocalApicMsrError::Refused(index));
            }
            Ok(u64::from(index) + 1 + (1 << 40))
        }
        fn write_msr(&self, index: u32, value: u64) -> Result<(), LocalApicMsrError> {
            self.writes.lock().unwrap().push((index, value));
            Ok(())
        }
        fn cr8(&self) -> u64 {
            *self.cr8.lock().unwrap()
        }
        fn set_cr8(&self, value: u64) {
            *self.cr8.lock().unwrap() = value;
        }
        fn take_events(&self) -> CpuEvents {
            CpuEvents::default()
        }
        fn now_ns(&self) -> u64 {
            0
        }
        fn next_deadline_ns(&self) -> Option<u64> {
            None
        }
        fn tick(&self) -> Option<u64> {
            None
        }
    }

    fn insn(build: impl FnOnce(&mut CodeAssembler)) -> Instruction {
        let mut a = CodeAssembler::new(64).unwrap();
        build(&mut a);
        let bytes = a.assemble(0x1000).unwrap();
        iced_x86::Decoder::with_ip(64, &bytes, 0x1000, 0).decode()
    }

    fn cpuid(x2apic: bool) -> CpuidTable {
        CpuidTable {
            entries: vec![CpuidEntry {
                function: 1,
                ecx: if x2apic { leaf1::ECX_X2APIC } else { 0 },
                ..Default::default()
            }],
        }
    }

    /// A context with ECX = `index` and EDX:EAX = `value`.
    fn ctx(index: u64, high: u64, low: u64) -> X86Context {
        let mut c = X86Context::new(CpuState::default());
        c.cpu.gpr[reg::RCX] = index;
        c.cpu.gpr[reg::RDX] = high;
        c.cpu.gpr[reg::RAX] = low;
        c
    }

    #[test]
    fn apic_msrs_go_to_the_apic_and_others_do_not() {
        let apic = FakeApic::default();
        let rdmsr = insn(|a| a.rdmsr().unwrap());
        let wrmsr = insn(|a| a.wrmsr().unwrap());
        let mut c = ctx(0x802, 0, 0);
        let done = MsrOutcome::Done {
            base_written: false,
        };
        assert_eq!(msr_instruction(&mut c, &rdmsr, &apic, &cpuid(true)), done);
        assert_eq!((c.cpu.gpr[reg::RAX], c.cpu.gpr[reg::RDX]), (0x803, 0x100));
        assert_eq!(c.cpu.rip, rdmsr.next_ip());
        let mut c = ctx(0x6e0, 0x12, 0x3456_789a);
        assert_eq!(msr_instruction(&mut c, &wrmsr, &apic, &cpuid(true)), done);
        assert_eq!(*apic.writes.lock().unwrap(), vec![(0x6e0, 0x12_3456_789a)]);
        for other in [0x10, 0x1a, 0x7ff, 0x900, 0xc000_0080] {
            let mut c = ctx(other, 0, 0);
            assert_eq!(
                msr_instruction(&mut c, &rdmsr, &apic, &cpuid(true)),
                MsrOutcome::NotApic
            );
        }
        let nop = insn(|a| a.nop().unwrap());
        assert_eq!(
            msr_instruction(&mut ctx(0x1b, 0, 0), &nop, &apic, &cpuid(true)),
            MsrOutcome::NotApic
        );
    }

    #[test]
    fn refusals_cpl3_and_x2apic_without_cpuid_are_gp() {
        let apic = FakeApic::default();
        let rdmsr = insn(|a| a.rdmsr().unwrap());
        let wrmsr = insn(|a| a.wrmsr().unwrap());
        let gp = MsrOutcome::Fault(Fault::gp(0));
        let mut c = ctx(0x8ff, 0, 0);
        assert_eq!(msr_instruction(&mut c, &rdmsr, &apic, &cpuid(true)), gp);
        assert_eq!(c.cpu.rip, CpuState::default().rip, "RIP unchanged on #GP");
        let mut user = ctx(0x1b, 0, 0);
        user.cpu.seg[tandem_target_x86_64::cpu_state::sreg::CS].dpl = 3;
        user.cpu.seg[tandem_target_x86_64::cpu_state::sreg::CS].selector = 3;
        user.cpu.seg[tandem_target_x86_64::cpu_state::sreg::SS].dpl = 3;
        user.cpu.seg[tandem_target_x86_64::cpu_state::sreg::SS].selector = 3;
        user.cpu.cr0 |= 1;
        assert_eq!(msr_instruction(&mut user, &rdmsr, &apic, &cpuid(true)), gp);
        let x2 = 0xfee0_0000 | 1 << 11 | 1 << 10;
        let mut c = ctx(0x1b, 0, x2);
        assert_eq!(msr_instruction(&mut c, &wrmsr, &apic, &cpuid(false)), gp);
        assert!(apic.writes.lock().unwrap().is_empty());
        assert_eq!(
            msr_instruction(&mut c, &wrmsr, &apic, &cpuid(true)),
            MsrOutcome::Done { base_written: true }
        );
        assert_eq!(*apic.writes.lock().unwrap(), vec![(0x1b, x2)]);
    }

    #[test]
    fn cr8_moves_are_recognised() {
        assert_eq!(
            cr8_move(&insn(|a| a.mov(cr8, rax).unwrap())),
            Some(Cr8Move::Write)
        );
        assert_eq!(
            cr8_move(&insn(|a| a.mov(rbx, cr8).unwrap())),
            Some(Cr8Move::Read)
        );
        assert_eq!(cr8_move(&insn(|a| a.mov(cr3, rax).unwrap())), None);
        assert_eq!(cr8_move(&insn(|a| a.mov(rax, rbx).unwrap())), None);
    }

    #[test]
    fn init_waits_for_sipi_which_starts_in_real_mode() {
        let mut cpu = CpuState {
            rip: 0x1234,
            apic_base: 0xfee0_0800,
            ..CpuState::default()
        };
        let mut waiting = false;
        let init = CpuEvents {
            init: true,
            ..Default::default()
        };
        // The bootstrap processor has no firmware to go back to: the machine resets.
        let a = apply_events(&mut cpu, &mut waiting, true, init);
        assert!(a.reset_machine && !waiting);
        assert_eq!(cpu.rip, 0x1234);
        // A start-up IPI is ignored unless the CPU waits for one.
        let sipi = CpuEvents {
            sipi: Some(0x9a),
            ..Default::default()
        };
        apply_events(&mut cpu, &mut waiting, false, sipi);
        assert_eq!(cpu.rip, 0x1234);
        apply_events(&mut cpu, &mut waiting, false, init);
        assert!(waiting);
        assert_eq!(cpu.apic_base, 0xfee0_0800);
        apply_events(&mut cpu, &mut waiting, false, sipi);
        assert!(!waiting);
        let code = cpu.seg[tandem_target_x86_64::cpu_state::sreg::CS];
        assert_eq!((code.selector, code.base, cpu.rip), (0x9a00, 0x9_a000, 0));
        apply_events(
            &mut cpu,
            &mut waiting,
            false,
            CpuEvents {
                nmi: true,
                ..Default::default()
            },
        );
        assert!(cpu.events.nmi_pending);
    }
}
