//! `CpuState` to and from KVM's register structures.
//!
//! Pure conversions, unit-tested without /dev/kvm; the vCPU moves the structures with ioctls.

use kvm_bindings::{
    kvm_debugregs, kvm_dtable, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs, kvm_vcpu_events,
    kvm_xsave, KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SHADOW,
};
use tandem_target_x86_64::cpu_state::{reg, sreg};
use tandem_target_x86_64::{CpuState, DescriptorTable, Segment};

/// General registers.
pub fn to_regs(s: &CpuState) -> kvm_regs {
    let g = &s.gpr;
    kvm_regs {
        rax: g[reg::RAX],
        rbx: g[reg::RBX],
        rcx: g[reg::RCX],
        rdx: g[reg::RDX],
        rsi: g[reg::RSI],
        rdi: g[reg::RDI],
        rsp: g[reg::RSP],
        rbp: g[reg::RBP],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        rip: s.rip,
        rflags: s.rflags,
    }
}

/// Reads general registers into `s`.
pub fn from_regs(s: &mut CpuState, r: &kvm_regs) {
    s.gpr = [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ];
    s.rip = r.rip;
    s.rflags = r.rflags;
}

fn to_seg(g: &Segment) -> kvm_segment {
    kvm_segment {
        base: g.base,
        limit: g.limit,
        selector: g.selector,
        type_: g.type_,
        present: g.present.into(),
        dpl: g.dpl,
        db: g.db.into(),
        s: g.s.into(),
        l: g.l.into(),
        g: g.g.into(),
        avl: g.avl.into(),
        unusable: g.unusable.into(),
        padding: 0,
    }
}

fn from_seg(k: &kvm_segment) -> Segment {
    Segment {
        base: k.base,
        limit: k.limit,
        selector: k.selector,
        type_: k.type_,
        present: k.present != 0,
        dpl: k.dpl,
        db: k.db != 0,
        s: k.s != 0,
        l: k.l != 0,
        g: k.g != 0,
        avl: k.avl != 0,
        unusable: k.unusable != 0,
    }
}

fn to_dtable(d: &DescriptorTable) -> kvm_dtable {
    kvm_dtable {
        base: d.base,
        limit: d.limit,
        padding: [0; 3],
    }
}

fn from_dtable(d: &kvm_dtable) -> DescriptorTable {
    DescriptorTable {
        base: d.base,
        limit: d.limit,
    }
}

/// Segment, descriptor-table and control registers. `interrupt_bitmap` is left empty: pending
/// external interrupts travel in the vcpu events instead.
pub fn to_sregs(s: &CpuState) -> kvm_sregs {
    kvm_sregs {
        cs: to_seg(&s.seg[sreg::CS]),
        ds: to_seg(&s.seg[sreg::DS]),
        es: to_seg(&s.seg[sreg::ES]),
        fs: to_seg(&s.seg[sreg::FS]),
        gs: to_seg(&s.seg[sreg::GS]),
        ss: to_seg(&s.seg[sreg::SS]),
        tr: to_seg(&s.tr),
        ldt: to_seg(&s.ldt),
        gdt: to_dtable(&s.gdt),
        idt: to_dtable(&s.idt),
        cr0: s.cr0,
        cr2: s.cr2,
        cr3: s.cr3,
        cr4: s.cr4,
        cr8: s.cr8,
        efer: s.efer,
        apic_base: s.apic_base,
        interrupt_bitmap: [0; 4],
    }
}

/// Reads segment and control registers into `s`.
pub fn from_sregs(s: &mut CpuState, k: &kvm_sregs) {
    s.seg[sreg::CS] = from_seg(&k.cs);
    s.seg[sreg::DS] = from_seg(&k.ds);
    s.seg[sreg::ES] = from_seg(&k.es);
    s.seg[sreg::FS] = from_seg(&k.fs);
    s.seg[sreg::GS] = from_seg(&k.gs);
    s.seg[sreg::SS] = from_seg(&k.ss);
    s.tr = from_seg(&k.tr);
    s.ldt = from_seg(&k.ldt);
    s.gdt = from_dtable(&k.gdt);
    s.idt = from_dtable(&k.idt);
    s.cr0 = k.cr0;
    s.cr2 = k.cr2;
    s.cr3 = k.cr3;
    s.cr4 = k.cr4;
    s.cr8 = k.cr8;
    s.efer = k.efer;
    s.apic_base = k.apic_base;
}

/// x87/SSE state from the FXSAVE image.
pub fn to_fpu(s: &CpuState) -> kvm_fpu {
    let mut f = kvm_fpu {
        fcw: s.fx.fcw(),
        fsw: s.fx.fsw(),
        ftwx: s.fx.ftw(),
        last_opcode: s.fx.fop(),
        last_ip: s.fx.fip(),
        last_dp: s.fx.fdp(),
        mxcsr: s.fx.mxcsr(),
        ..Default::default()
    };
    for i in 0..8 {
        f.fpr[i][..10].copy_from_slice(&s.fx.st(i));
    }
    for i in 0..16 {
        f.xmm[i] = s.fx.xmm(i);
    }
    f
}

/// Bytes of the XSAVE area's legacy region, which is the FXSAVE layout.
const XSAVE_LEGACY: usize = 512;
/// XSTATE_BV bits of the x87 and SSE components.
const XSTATE_X87_SSE: u64 = 0b11;

fn xsave_bytes(x: &kvm_xsave) -> Vec<u8> {
    x.region.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Reads x87/SSE state from an XSAVE image: unlike KVM_GET_FPU this includes MXCSR.
pub fn fx_from_xsave(s: &mut CpuState, x: &kvm_xsave) {
    s.fx.0.copy_from_slice(&xsave_bytes(x)[..XSAVE_LEGACY]);
}

/// Writes the x87/SSE state of `s` into the XSAVE image `x` (taken from the vCPU, so the other
/// components stay), marking both components as in use: KVM_SET_FPU alone neither sets MXCSR
/// nor, where the XSAVE header says SSE is in its initial state, the XMM registers.
pub fn fx_into_xsave(s: &CpuState, x: &mut kvm_xsave) {
    let mut bytes = xsave_bytes(x);
    // MXCSR_MASK (28..32) is the CPU's, not state.
    bytes[..28].copy_from_slice(&s.fx.0[..28]);
    bytes[32..XSAVE_LEGACY].copy_from_slice(&s.fx.0[32..XSAVE_LEGACY]);
    let bv_at = XSAVE_LEGACY..XSAVE_LEGACY + 8;
    let bv = u64::from_le_bytes(bytes[bv_at.clone()].try_into().unwrap_or_default());
    bytes[bv_at].copy_from_slice(&(bv | XSTATE_X87_SSE).to_le_bytes());
    for (w, c) in x.region.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes(c.try_into().unwrap_or_default());
    }
}

/// Reads x87/SSE state into the FXSAVE image of `s`.
pub fn from_fpu(s: &mut CpuState, f: &kvm_fpu) {
    s.fx.set_fcw(f.fcw);
    s.fx.set_fsw(f.fsw);
    s.fx.set_ftw(f.ftwx);
    s.fx.set_fop(f.last_opcode);
    s.fx.set_fip(f.last_ip);
    s.fx.set_fdp(f.last_dp);
    s.fx.set_mxcsr(f.mxcsr);
    for i in 0..8 {
        let mut st = [0u8; 10];
        st.copy_from_slice(&f.fpr[i][..10]);
        s.fx.set_st(i, st);
    }
    for i in 0..16 {
        s.fx.set_xmm(i, f.xmm[i]);
    }
}

/// Debug registers.
pub fn to_debugregs(s: &CpuState) -> kvm_debugregs {
    kvm_debugregs {
        db: s.dr,
        dr6: s.dr6,
        dr7: s.dr7,
        ..Default::default()
    }
}

/// Reads debug registers into `s`.
pub fn from_debugregs(s: &mut CpuState, d: &kvm_debugregs) {
    s.dr = d.db;
    s.dr6 = d.dr6;
    s.dr7 = d.dr7;
}

/// Events in flight.
pub fn to_events(s: &CpuState) -> kvm_vcpu_events {
    let e = &s.events;
    let mut k = kvm_vcpu_events::default();
    k.exception.injected = e.exception_injected.into();
    k.exception.pending = e.exception_pending.into();
    k.exception.nr = e.exception_vector;
    k.exception.has_error_code = e.exception_has_error_code.into();
    k.exception.error_code = e.exception_error_code;
    k.interrupt.injected = e.interrupt_injected.into();
    k.interrupt.nr = e.interrupt_vector;
    k.interrupt.soft = e.interrupt_soft.into();
    k.interrupt.shadow = e.interrupt_shadow;
    k.nmi.injected = e.nmi_injected.into();
    k.nmi.pending = e.nmi_pending.into();
    k.nmi.masked = e.nmi_masked.into();
    k.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    k
}

/// Reads events in flight into `s`.
pub fn from_events(s: &mut CpuState, k: &kvm_vcpu_events) {
    let e = &mut s.events;
    e.exception_injected = k.exception.injected != 0;
    e.exception_pending = k.exception.pending != 0;
    e.exception_vector = k.exception.nr;
    e.exception_has_error_code = k.exception.has_error_code != 0;
    e.exception_error_code = k.exception.error_code;
    e.interrupt_injected = k.interrupt.injected != 0;
    e.interrupt_vector = k.interrupt.nr;
    e.interrupt_soft = k.interrupt.soft != 0;
    e.interrupt_shadow = k.interrupt.shadow;
    e.nmi_injected = k.nmi.injected != 0;
    e.nmi_pending = k.nmi.pending != 0;
    e.nmi_masked = k.nmi.masked != 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CpuState {
        let mut s = CpuState::default();
        for (i, r) in s.gpr.iter_mut().enumerate() {
            *r = 0x1111_0000 + i as u64;
        }
        s.rip = 0xdead;
        s.rflags = 0x246;
        s.seg[sreg::CS] = Segment::flat(8, true, true);
        s.seg[sreg::FS].base = 0x7000_0000;
        s.tr = Segment::tss(0x20, 0x1800, 0x67);
        s.gdt = DescriptorTable {
            base: 0x1000,
            limit: 0x2f,
        };
        s.cr3 = 0x2000;
        s.efer = 0x500;
        s.fx.set_xmm(7, [0x5a; 16]);
        s.fx.set_st(2, [3; 10]);
        s.fx.set_mxcsr(0x1fa0);
        s.dr[1] = 0x4000;
        s.dr7 = 0x401;
        s.events.interrupt_shadow = 1;
        s.events.nmi_masked = true;
        s.events.exception_pending = true;
        s.events.exception_vector = 14;
        s
    }

    #[test]
    fn every_converted_field_round_trips() {
        let s = sample();
        let mut back = CpuState::default();
        from_regs(&mut back, &to_regs(&s));
        from_sregs(&mut back, &to_sregs(&s));
        from_fpu(&mut back, &to_fpu(&s));
        from_debugregs(&mut back, &to_debugregs(&s));
        from_events(&mut back, &to_events(&s));
        // MSRs, xcr0 and halted travel through other ioctls.
        back.xcr0 = s.xcr0;
        assert_eq!(back, s);
    }

    #[test]
    fn kvm_register_names_map_to_encoding_order() {
        let s = sample();
        let r = to_regs(&s);
        assert_eq!(r.rbx, s.gpr[reg::RBX]);
        assert_eq!(r.rsp, s.gpr[reg::RSP]);
        assert_eq!(r.r15, s.gpr[reg::R15]);
        assert_eq!(to_sregs(&s).cs.l, 1);
    }

    #[test]
    fn fx_goes_through_the_xsave_legacy_region() {
        let mut s = CpuState::default();
        s.fx.set_mxcsr(0x1fc0);
        s.fx.set_xmm(3, [9; 16]);
        let mut x = kvm_xsave::default();
        x.region[7] = 0xffff; // MXCSR_MASK, kept
        fx_into_xsave(&s, &mut x);
        assert_eq!(x.region[6], 0x1fc0);
        assert_eq!(x.region[7], 0xffff);
        assert_eq!(x.region[128] & 3, 3);
        let mut back = CpuState::default();
        fx_from_xsave(&mut back, &x);
        assert_eq!(back.fx.xmm(3), [9; 16]);
        assert_eq!(back.fx.mxcsr(), 0x1fc0);
    }
}
