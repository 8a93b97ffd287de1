//! The architectural state of one x86_64 CPU, shared by every engine.
//!
//! `#[repr(C)]` so that compiled code can address fields by offset. Register order follows the
//! instruction encoding (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15; es, cs, ss, ds, fs, gs).
//! `Default` is the state after RESET (Intel SDM Vol. 3A 9.1.1, Table 9-1).

use crate::segment::Segment;

/// Index of each general-purpose register in [`CpuState::gpr`].
pub mod reg {
    #![allow(missing_docs)]
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R8: usize = 8;
    pub const R15: usize = 15;
    /// Names, in index order.
    pub const NAMES: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
}

/// Index of each segment register in [`CpuState::seg`].
pub mod sreg {
    #![allow(missing_docs)]
    pub const ES: usize = 0;
    pub const CS: usize = 1;
    pub const SS: usize = 2;
    pub const DS: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
    /// Names, in index order.
    pub const NAMES: [&str; 6] = ["es", "cs", "ss", "ds", "fs", "gs"];
}

/// Control-register, EFER and RFLAGS bits the machine refers to.
pub mod bits {
    #![allow(missing_docs)]
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_MP: u64 = 1 << 1;
    pub const CR0_EM: u64 = 1 << 2;
    pub const CR0_TS: u64 = 1 << 3;
    pub const CR0_ET: u64 = 1 << 4;
    pub const CR0_NE: u64 = 1 << 5;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_NW: u64 = 1 << 29;
    pub const CR0_CD: u64 = 1 << 30;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const CR4_OSFXSR: u64 = 1 << 9;
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    pub const EFER_SCE: u64 = 1 << 0;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_NXE: u64 = 1 << 11;
    pub const RFLAGS_FIXED: u64 = 1 << 1;
    pub const RFLAGS_IF: u64 = 1 << 9;
}

/// GDTR or IDTR.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Linear base.
    pub base: u64,
    /// Limit in bytes.
    pub limit: u16,
}

/// x87, MMX and SSE state in the FXSAVE memory layout (Intel SDM Vol. 1, Table 10-2).
#[repr(C, align(16))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FxsaveArea(pub [u8; 512]);

impl Default for FxsaveArea {
    /// The state after FNINIT and reset: FCW 0x37f, MXCSR 0x1f80, all registers zero.
    fn default() -> Self {
        let mut a = FxsaveArea([0; 512]);
        a.set_fcw(0x37f);
        a.set_mxcsr(0x1f80);
        a
    }
}

impl std::fmt::Debug for FxsaveArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FxsaveArea")
            .field("fcw", &self.fcw())
            .field("fsw", &self.fsw())
            .field("mxcsr", &self.mxcsr())
            .finish_non_exhaustive()
    }
}

impl FxsaveArea {
    fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.0[off], self.0[off + 1]])
    }
    fn set_u16_at(&mut self, off: usize, v: u16) {
        self.0[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    /// x87 control word.
    pub fn fcw(&self) -> u16 {
        self.u16_at(0)
    }
    /// Sets the x87 control word.
    pub fn set_fcw(&mut self, v: u16) {
        self.set_u16_at(0, v)
    }
    /// x87 status word.
    pub fn fsw(&self) -> u16 {
        self.u16_at(2)
    }
    /// Sets the x87 status word.
    pub fn set_fsw(&mut self, v: u16) {
        self.set_u16_at(2, v)
    }
    /// Abridged tag word (one bit per register, 1 = valid).
    pub fn ftw(&self) -> u8 {
        self.0[4]
    }
    /// Sets the abridged tag word.
    pub fn set_ftw(&mut self, v: u8) {
        self.0[4] = v
    }
    /// Last x87 opcode.
    pub fn fop(&self) -> u16 {
        self.u16_at(6)
    }
    /// Sets the last x87 opcode.
    pub fn set_fop(&mut self, v: u16) {
        self.set_u16_at(6, v)
    }
    /// Last x87 instruction pointer (64-bit form).
    pub fn fip(&self) -> u64 {
        u64::from_le_bytes(self.0[8..16].try_into().unwrap_or_default())
    }
    /// Sets the last x87 instruction pointer.
    pub fn set_fip(&mut self, v: u64) {
        self.0[8..16].copy_from_slice(&v.to_le_bytes())
    }
    /// Last x87 data pointer (64-bit form).
    pub fn fdp(&self) -> u64 {
        u64::from_le_bytes(self.0[16..24].try_into().unwrap_or_default())
    }
    /// Sets the last x87 data pointer.
    pub fn set_fdp(&mut self, v: u64) {
        self.0[16..24].copy_from_slice(&v.to_le_bytes())
    }
    /// SSE control and status.
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes(self.0[24..28].try_into().unwrap_or_default())
    }
    /// Sets MXCSR.
    pub fn set_mxcsr(&mut self, v: u32) {
        self.0[24..28].copy_from_slice(&v.to_le_bytes())
    }
    /// x87 register ST(i)/MMi as 10 significant bytes (80-bit extended).
    pub fn st(&self, i: usize) -> [u8; 10] {
        let off = 32 + 16 * (i & 7);
        self.0[off..off + 10].try_into().unwrap_or_default()
    }
    /// Sets ST(i).
    pub fn set_st(&mut self, i: usize, v: [u8; 10]) {
        let off = 32 + 16 * (i & 7);
        self.0[off..off + 10].copy_from_slice(&v)
    }
    /// XMMi (i < 16).
    pub fn xmm(&self, i: usize) -> [u8; 16] {
        let off = 160 + 16 * (i & 15);
        self.0[off..off + 16].try_into().unwrap_or_default()
    }
    /// Sets XMMi.
    pub fn set_xmm(&mut self, i: usize, v: [u8; 16]) {
        let off = 160 + 16 * (i & 15);
        self.0[off..off + 16].copy_from_slice(&v)
    }
}

/// Exceptions and interrupts caught between delivery steps, and interrupt blocking.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingEvents {
    /// An exception is being delivered (injected) or pending.
    pub exception_pending: bool,
    /// It was injected: delivery had begun.
    pub exception_injected: bool,
    /// Its vector.
    pub exception_vector: u8,
    /// It carries an error code.
    pub exception_has_error_code: bool,
    /// The error code.
    pub exception_error_code: u32,
    /// An external interrupt is being injected.
    pub interrupt_injected: bool,
    /// Its vector.
    pub interrupt_vector: u8,
    /// It came from INT n (software).
    pub interrupt_soft: bool,
    /// Interrupts blocked for one instruction (after STI or MOV SS).
    pub interrupt_shadow: u8,
    /// An NMI is pending.
    pub nmi_pending: bool,
    /// An NMI is being injected.
    pub nmi_injected: bool,
    /// NMIs are blocked (inside an NMI handler).
    pub nmi_masked: bool,
}

/// The operating mode of the CPU, derived from CR0, EFER and CS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// Real-address mode.
    Real,
    /// Protected mode with 16-bit code.
    Protected16,
    /// Protected mode with 32-bit code (also compatibility mode's 32-bit code is Compat32).
    Protected32,
    /// Long mode, 32-bit compatibility code.
    Compat32,
    /// Long mode, 16-bit compatibility code.
    Compat16,
    /// 64-bit mode.
    Long64,
}

/// The whole architectural state of one vCPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuState {
    /// General-purpose registers, encoding order (see [`reg`]).
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// Flags.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS (see [`sreg`]).
    pub seg: [Segment; 6],
    /// Local descriptor table register.
    pub ldt: Segment,
    /// Task register.
    pub tr: Segment,
    /// GDTR.
    pub gdt: DescriptorTable,
    /// IDTR.
    pub idt: DescriptorTable,
    /// CR0.
    pub cr0: u64,
    /// CR2 (page-fault linear address).
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (task priority).
    pub cr8: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// XCR0.
    pub xcr0: u64,
    /// DR0-DR3.
    pub dr: [u64; 4],
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// IA32_STAR.
    pub star: u64,
    /// IA32_LSTAR.
    pub lstar: u64,
    /// IA32_CSTAR.
    pub cstar: u64,
    /// IA32_FMASK.
    pub sfmask: u64,
    /// IA32_KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// IA32_SYSENTER_CS.
    pub sysenter_cs: u64,
    /// IA32_SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// IA32_SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// IA32_TSC.
    pub tsc: u64,
    /// IA32_TSC_AUX.
    pub tsc_aux: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_APIC_BASE.
    pub apic_base: u64,
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    /// x87/MMX/SSE state.
    pub fx: FxsaveArea,
    /// Events in flight and interrupt blocking.
    pub events: PendingEvents,
    /// The CPU is halted (HLT), waiting for an interrupt.
    pub halted: bool,
}

impl Default for CpuState {
    fn default() -> Self {
        let mut gpr = [0u64; 16];
        // EDX after reset holds the processor signature (family 6).
        gpr[reg::RDX] = 0x600;
        let mut cs = Segment::real_mode(0xf000, true);
        cs.base = 0xffff_0000;
        let data = Segment::real_mode(0, false);
        Self {
            gpr,
            rip: 0xfff0,
            rflags: bits::RFLAGS_FIXED,
            seg: [data, cs, data, data, data, data],
            ldt: Segment::null_ldt(),
            tr: Segment {
                type_: 0xb,
                present: true,
                limit: 0xffff,
                ..Segment::default()
            },
            gdt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            idt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: bits::CR0_ET | bits::CR0_NW | bits::CR0_CD,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            xcr0: 1,
            dr: [0; 4],
            dr6: 0xffff_0ff0,
            dr7: 0x400,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            tsc: 0,
            tsc_aux: 0,
            pat: 0x0007_0406_0007_0406,
            apic_base: 0xfee0_0000 | (1 << 11) | (1 << 8),
            misc_enable: 1,
            fx: FxsaveArea::default(),
            events: PendingEvents::default(),
            halted: false,
        }
    }
}

impl CpuState {
    /// The current operating mode.
    pub fn mode(&self) -> CpuMode {
        let cs = &self.seg[sreg::CS];
        if self.cr0 & bits::CR0_PE == 0 {
            CpuMode::Real
        } else if self.efer & bits::EFER_LMA != 0 {
            if cs.l {
                CpuMode::Long64
            } else if cs.db {
                CpuMode::Compat32
            } else {
                CpuMode::Compat16
            }
        } else if cs.db {
            CpuMode::Protected32
        } else {
            CpuMode::Protected16
        }
    }

    /// Current privilege level (CS.DPL outside real mode; SS.DPL is the architectural CPL but
    /// they agree except mid-transition).
    pub fn cpl(&self) -> u8 {
        if self.cr0 & bits::CR0_PE == 0 {
            0
        } else {
            self.seg[sreg::SS].dpl & 3
        }
    }

    /// A one-screen register dump in the style of QEMU's `info registers`.
    pub fn dump(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for (i, name) in reg::NAMES.iter().enumerate() {
            let _ = write!(s, "{:>3}={:016x}", name.to_uppercase(), self.gpr[i]);
            s.push(if i % 4 == 3 { '\n' } else { ' ' });
        }
        let _ = writeln!(
            s,
            "RIP={:016x} RFL={:08x} CPL={} mode={:?} halted={}",
            self.rip,
            self.rflags,
            self.cpl(),
            self.mode(),
            self.halted
        );
        for (i, name) in sreg::NAMES.iter().enumerate() {
            let g = &self.seg[i];
            let _ = writeln!(
                s,
                "{} ={:04x} {:016x} {:08x} type={:x} s={} dpl={} p={} db={} l={} g={}",
                name.to_uppercase(),
                g.selector,
                g.base,
                g.limit,
                g.type_,
                g.s as u8,
                g.dpl,
                g.present as u8,
                g.db as u8,
                g.l as u8,
                g.g as u8
            );
        }
        let _ = writeln!(
            s,
            "LDT={:04x} {:016x} {:08x}  TR={:04x} {:016x} {:08x}",
            self.ldt.selector,
            self.ldt.base,
            self.ldt.limit,
            self.tr.selector,
            self.tr.base,
            self.tr.limit
        );
        let _ = writeln!(
            s,
            "GDT={:016x} {:04x}  IDT={:016x} {:04x}",
            self.gdt.base, self.gdt.limit, self.idt.base, self.idt.limit
        );
        let _ = writeln!(
            s,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x}",
            self.cr0, self.cr2, self.cr3, self.cr4, self.efer
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state_is_real_mode_at_the_reset_vector() {
        let s = CpuState::default();
        assert_eq!(s.mode(), CpuMode::Real);
        assert_eq!(s.seg[sreg::CS].base + s.rip, 0xffff_fff0);
        assert_eq!(s.cr0, 0x6000_0010);
        assert_eq!(s.fx.mxcsr(), 0x1f80);
        assert_eq!(s.cpl(), 0);
    }

    #[test]
    fn mode_follows_cr0_efer_and_cs() {
        let mut s = CpuState::default();
        s.cr0 |= bits::CR0_PE;
        s.seg[sreg::CS] = Segment::flat(8, true, false);
        assert_eq!(s.mode(), CpuMode::Protected32);
        s.efer = bits::EFER_LME | bits::EFER_LMA;
        s.seg[sreg::CS] = Segment::flat(8, true, true);
        assert_eq!(s.mode(), CpuMode::Long64);
        assert!(s.dump().contains("mode=Long64"));
    }

    #[test]
    fn fxsave_accessors_round_trip() {
        let mut f = FxsaveArea::default();
        f.set_xmm(15, [7; 16]);
        f.set_st(3, [1; 10]);
        assert_eq!(f.xmm(15), [7; 16]);
        assert_eq!(f.st(3), [1; 10]);
        assert_eq!(f.fcw(), 0x37f);
    }
}
