//! System instructions executed one at a time on a flat memory and a recording bus: port I/O,
//! CPUID/RDTSC, privilege checks, control registers and the long-mode activation sequence,
//! MSRs, descriptor tables, segment loads, SYSCALL/SYSRET/SWAPGS. Expected values are worked
//! out by hand from the Intel SDM.

mod system_support;

use iced_x86::code_asm::*;
use iced_x86::{Code, Instruction};
use system_support::*;
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::exception::Fault;
use tandem_target_x86_64::system::{self, SystemOutcome};
use tandem_target_x86_64::{CpuMode, DescriptorTable, Segment};

#[test]
fn port_io_reaches_the_bus_with_the_right_widths() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    ctx.cpu.gpr[reg::RAX] = 0xffff_ffff_1234_5678;
    ctx.cpu.gpr[reg::RDX] = 0x3f8;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.out(0x80, al).unwrap()).unwrap();
    assert_eq!(ctx.cpu.rip, CODE + 2);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.out(dx, eax).unwrap()).unwrap();
    exec(&mut ctx, &mut mem, &mut bus, |a| a.out(dx, ax).unwrap()).unwrap();
    assert_eq!(
        bus.outs,
        vec![
            (0x80, vec![0x78]),
            (0x3f8, vec![0x78, 0x56, 0x34, 0x12]),
            (0x3f8, vec![0x78, 0x56]),
        ]
    );
    // IN AL merges into RAX; IN EAX zero-extends (a 32-bit register write).
    exec(&mut ctx, &mut mem, &mut bus, |a| a.in_(al, dx).unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RAX], 0xffff_ffff_1234_56a0);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.in_(eax, 0x60).unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RAX], 0xa3a2_a1a0);
    assert_eq!(bus.ins, vec![(0x3f8, 1), (0x60, 4)]);
}

#[test]
fn in_at_cpl3_without_iopl_or_bitmap_is_gp0() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    to_user64(&mut ctx);
    let rip = ctx.cpu.rip;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.in_(al, 0x60).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    assert_eq!(ctx.cpu.rip, rip, "RIP stays on a fault");
    assert!(bus.ins.is_empty());
    // A TSS with an I/O bitmap clearing port 0x60 (and 0x61) lets the same IN through.
    ctx.cpu.tr.limit = 0x68 + 0x20;
    mem.put(TSS + 0x68 + 0x60 / 8, &[0b1111_1100, 0xff]);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.in_(ax, 0x60).unwrap()).unwrap();
    // Port 0x62 is still denied.
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.in_(ax, 0x61).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    // IOPL 3 allows everything.
    ctx.cpu.rflags |= 0x3000;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.out(0x70, al).unwrap()).unwrap();
}

#[test]
fn cpuid_and_tsc_zero_extend_into_the_registers() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    ctx.cpu.gpr[reg::RAX] = 0xdead_0000_0000_0001;
    ctx.cpu.gpr[reg::RCX] = 0xdead_0000_0000_0002;
    ctx.cpu.gpr[reg::RBX] = u64::MAX;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.cpuid().unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RAX], 0x1111_0001);
    assert_eq!(ctx.cpu.gpr[reg::RBX], 0x2222_0002);
    assert_eq!(ctx.cpu.gpr[reg::RCX], 0x6c65_746e);
    assert_eq!(ctx.cpu.gpr[reg::RDX], 0x4965_6e69);
    assert_eq!(ctx.cpu.rip, CODE + 2);
    ctx.cpu.tsc_aux = 7;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.rdtscp().unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RAX], 0x5566_7788);
    assert_eq!(ctx.cpu.gpr[reg::RDX], 0x1122_3344);
    assert_eq!(ctx.cpu.gpr[reg::RCX], 7);
    // CR4.TSD makes RDTSC privileged.
    ctx.cpu.cr4 |= 1 << 2;
    to_user64(&mut ctx);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.rdtsc().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
}

#[test]
fn cli_sti_need_cpl_at_most_iopl_and_sti_sets_the_shadow() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    to_user64(&mut ctx);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.cli().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.sti().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    assert_ne!(ctx.cpu.rflags & bits::RFLAGS_IF, 0);
    ctx.cpu.rflags |= 0x3000; // IOPL 3
    exec(&mut ctx, &mut mem, &mut bus, |a| a.cli().unwrap()).unwrap();
    assert_eq!(ctx.cpu.rflags & bits::RFLAGS_IF, 0);
    assert_eq!(ctx.cpu.events.interrupt_shadow, 0);
    let out = exec(&mut ctx, &mut mem, &mut bus, |a| a.sti().unwrap()).unwrap();
    assert_eq!(out, SystemOutcome::EndBlock);
    assert_ne!(ctx.cpu.rflags & bits::RFLAGS_IF, 0);
    assert_eq!(ctx.cpu.events.interrupt_shadow, 1);
    assert!(!tandem_target_x86_64::interrupt::interrupts_allowed(&ctx));
}

#[test]
fn long_mode_activation_sequence_sets_lma_and_ljmp_enters_64_bit_code() {
    let (_, mut mem, mut bus) = long_mode();
    // 32-bit protected mode, paging off, flat 32-bit kernel code.
    let mut ctx = tandem_target_x86_64::X86Context::new(tandem_target_x86_64::CpuState {
        rip: CODE,
        cr0: bits::CR0_PE | bits::CR0_ET,
        gdt: DescriptorTable {
            base: GDT,
            limit: 0x4f,
        },
        ..Default::default()
    });
    ctx.cpu.seg = [Segment::flat(KDATA, false, false); 6];
    ctx.cpu.seg[sreg::CS] = Segment::flat(KCODE32, true, false);
    assert_eq!(ctx.cpu.mode(), CpuMode::Protected32);
    // PG with LME but without PAE is #GP(0).
    ctx.cpu.gpr[reg::RCX] = 0xc000_0080;
    ctx.cpu.gpr[reg::RAX] = bits::EFER_LME;
    ctx.cpu.gpr[reg::RDX] = 0;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.wrmsr().unwrap()).unwrap();
    assert_eq!(ctx.cpu.efer, bits::EFER_LME);
    ctx.cpu.gpr[reg::RAX] = bits::CR0_PE | bits::CR0_PG | bits::CR0_ET;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr0, eax).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    // PAE, CR3, then PG: LMA comes on, and the CPU is in compatibility mode.
    ctx.cpu.gpr[reg::RAX] = bits::CR4_PAE;
    assert_eq!(
        exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr4, eax).unwrap()),
        Ok(SystemOutcome::FlushTlb)
    );
    ctx.cpu.gpr[reg::RAX] = 0x7_0000;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr3, eax).unwrap()).unwrap();
    assert_eq!(ctx.cpu.cr3, 0x7_0000);
    ctx.cpu.gpr[reg::RAX] = bits::CR0_PE | bits::CR0_PG | bits::CR0_ET;
    let out = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr0, eax).unwrap()).unwrap();
    assert_eq!(out, SystemOutcome::FlushTlb);
    assert_eq!(ctx.cpu.efer, bits::EFER_LME | bits::EFER_LMA);
    assert_eq!(ctx.cpu.mode(), CpuMode::Compat32);
    // EFER.LMA is read-only and LME cannot change under paging.
    exec(&mut ctx, &mut mem, &mut bus, |a| a.rdmsr().unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RAX], 0x500);
    ctx.cpu.gpr[reg::RAX] = 0;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.wrmsr().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    // Clearing PAE in IA-32e mode is #GP(0).
    ctx.cpu.gpr[reg::RAX] = 0;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr4, eax).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    // ljmp 0x08:0x60000 enters 64-bit mode.
    let ljmp = encoded(
        32,
        ctx.cpu.rip,
        Instruction::with_far_branch(Code::Jmp_ptr1632, KCODE64, 0x6_0000).unwrap(),
    );
    assert!(system::handles_instruction(&ljmp));
    system::execute(&mut ctx, &ljmp, &mut mem, &mut bus).unwrap();
    assert_eq!(ctx.cpu.mode(), CpuMode::Long64);
    assert_eq!(ctx.cpu.rip, 0x6_0000);
    assert_eq!(ctx.cpu.seg[sreg::CS].selector, KCODE64);
}

#[test]
fn control_register_checks() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    // Reserved CR4 bit (LA57 is not modelled) and CR0.PG without PE.
    ctx.cpu.gpr[reg::RAX] = bits::CR4_PAE | (1 << 12);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr4, rax).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    ctx.cpu.gpr[reg::RAX] = bits::CR0_PG;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr0, rax).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    // CR8 holds 4 bits.
    ctx.cpu.gpr[reg::RAX] = 0x10;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr8, rax).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    ctx.cpu.gpr[reg::RAX] = 0xf;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(cr8, rax).unwrap()).unwrap();
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(rbx, cr0).unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RBX], ctx.cpu.cr0);
    // DR7 keeps bit 10 set; INVLPG names its page.
    ctx.cpu.gpr[reg::RAX] = 0x1;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(dr7, rax).unwrap()).unwrap();
    assert_eq!(ctx.cpu.dr7, 0x401);
    ctx.cpu.gpr[reg::RAX] = 0x1234_5000;
    let out = exec(&mut ctx, &mut mem, &mut bus, |a| {
        a.invlpg(ptr(rax + 8)).unwrap()
    });
    assert_eq!(out, Ok(SystemOutcome::InvalidatePage(0x1234_5008)));
    // Everything here is CPL 0 only.
    to_user64(&mut ctx);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(rax, cr3).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.wbinvd().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
}

#[test]
fn msrs_round_trip_and_unknown_ones_fault() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    let wrmsr = |ctx: &mut tandem_target_x86_64::X86Context,
                 mem: &mut FlatMem,
                 bus: &mut FakeBus,
                 idx: u32,
                 v: u64| {
        ctx.cpu.gpr[reg::RCX] = u64::from(idx);
        ctx.cpu.gpr[reg::RAX] = v & 0xffff_ffff;
        ctx.cpu.gpr[reg::RDX] = v >> 32;
        exec(ctx, mem, bus, |a| a.wrmsr().unwrap())
    };
    let rdmsr = |ctx: &mut tandem_target_x86_64::X86Context,
                 mem: &mut FlatMem,
                 bus: &mut FakeBus,
                 idx: u32| {
        ctx.cpu.gpr[reg::RCX] = u64::from(idx);
        exec(ctx, mem, bus, |a| a.rdmsr().unwrap())
            .map(|_| (ctx.cpu.gpr[reg::RDX] << 32) | ctx.cpu.gpr[reg::RAX])
    };
    assert_eq!(
        wrmsr(&mut ctx, &mut mem, &mut bus, 0x1234, 1),
        Err(Fault::gp(0))
    );
    assert_eq!(
        rdmsr(&mut ctx, &mut mem, &mut bus, 0x1234),
        Err(Fault::gp(0))
    );
    wrmsr(
        &mut ctx,
        &mut mem,
        &mut bus,
        0xc000_0081,
        0x0023_0010_0000_0000,
    )
    .unwrap();
    assert_eq!(ctx.cpu.star, 0x0023_0010_0000_0000);
    assert_eq!(
        rdmsr(&mut ctx, &mut mem, &mut bus, 0xc000_0081),
        Ok(0x0023_0010_0000_0000)
    );
    // LSTAR must be canonical; GS_BASE lands in the GS segment.
    assert_eq!(
        wrmsr(
            &mut ctx,
            &mut mem,
            &mut bus,
            0xc000_0082,
            0x0000_8000_0000_0000
        ),
        Err(Fault::gp(0))
    );
    wrmsr(
        &mut ctx,
        &mut mem,
        &mut bus,
        0xc000_0101,
        0xffff_8880_0000_0000,
    )
    .unwrap();
    assert_eq!(ctx.cpu.seg[sreg::GS].base, 0xffff_8880_0000_0000);
    // MTRRs: capability, a variable range, a bad memory type.
    assert_eq!(rdmsr(&mut ctx, &mut mem, &mut bus, 0xfe), Ok(0x508));
    wrmsr(&mut ctx, &mut mem, &mut bus, 0x201, 0xf_c000_0800).unwrap();
    assert_eq!(
        rdmsr(&mut ctx, &mut mem, &mut bus, 0x201),
        Ok(0xf_c000_0800)
    );
    assert_eq!(
        wrmsr(&mut ctx, &mut mem, &mut bus, 0x2ff, 0x802),
        Err(Fault::gp(0))
    );
    wrmsr(&mut ctx, &mut mem, &mut bus, 0x2ff, 0xc06).unwrap();
    assert_eq!(ctx.mtrr_def_type, 0xc06);
    // EFER reserved bit 1.
    assert_eq!(
        wrmsr(&mut ctx, &mut mem, &mut bus, 0xc000_0080, 0xd03),
        Err(Fault::gp(0))
    );
    to_user64(&mut ctx);
    assert_eq!(
        rdmsr(&mut ctx, &mut mem, &mut bus, 0xc000_0081),
        Err(Fault::gp(0))
    );
}

#[test]
fn descriptor_tables_load_store_and_ltr_marks_busy() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    // LGDT from [rax]: limit 0x4f, base GDT; SGDT stores 10 bytes back.
    mem.put_u16(0x6000, 0x4f);
    mem.put_u64(0x6002, GDT);
    ctx.cpu.gdt = DescriptorTable::default();
    ctx.cpu.gpr[reg::RAX] = 0x6000;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.lgdt(ptr(rax)).unwrap()).unwrap();
    assert_eq!(
        ctx.cpu.gdt,
        DescriptorTable {
            base: GDT,
            limit: 0x4f
        }
    );
    ctx.cpu.gpr[reg::RBX] = 0x6100;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.sgdt(ptr(rbx)).unwrap()).unwrap();
    assert_eq!(
        &mem.bytes[0x6100..0x610a],
        &[0x4f, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]
    );
    // LTR: available TSS (0x89) becomes busy (0x8b) in memory and in TR.
    ctx.cpu.tr = Segment::default();
    ctx.cpu.gpr[reg::RCX] = u64::from(TSS_SEL);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.ltr(cx).unwrap()).unwrap();
    assert_eq!(mem.bytes[(GDT + 0x30 + 5) as usize], 0x8b);
    assert_eq!(
        (ctx.cpu.tr.base, ctx.cpu.tr.limit, ctx.cpu.tr.type_),
        (TSS, 0x67, 0xb)
    );
    // A busy TSS cannot be loaded again; a data segment is no TSS.
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.ltr(cx).unwrap());
    assert_eq!(r, Err(Fault::gp(u32::from(TSS_SEL))));
    exec(&mut ctx, &mut mem, &mut bus, |a| a.str(dx).unwrap()).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RDX] & 0xffff, u64::from(TSS_SEL));
    // LLDT 0 leaves the LDT unusable; past the GDT limit is #GP(selector).
    ctx.cpu.gpr[reg::RCX] = 0;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.lldt(cx).unwrap()).unwrap();
    assert!(ctx.cpu.ldt.unusable);
    ctx.cpu.gpr[reg::RCX] = 0x50;
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.lldt(cx).unwrap());
    assert_eq!(r, Err(Fault::gp(0x50)));
    to_user64(&mut ctx);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.lidt(ptr(rax)).unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
}

#[test]
fn segment_loads_check_descriptors() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    ctx.cpu.gpr[reg::RAX] = u64::from(UDATA | 3);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(ds, ax).unwrap()).unwrap();
    assert_eq!(ctx.cpu.seg[sreg::DS].selector, UDATA | 3);
    assert_eq!(ctx.cpu.seg[sreg::DS].dpl, 3);
    // Accessed bit set in memory (type 3 already has it; UDATA's type is 3).
    ctx.cpu.gpr[reg::RAX] = u64::from(NOT_PRESENT_DATA);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(es, ax).unwrap());
    assert_eq!(r, Err(Fault::with_code(11, u32::from(NOT_PRESENT_DATA))));
    // SS must be writable data at DPL = CPL: user data at CPL 0 is #GP(sel).
    ctx.cpu.gpr[reg::RAX] = u64::from(UDATA);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(ss, ax).unwrap());
    assert_eq!(r, Err(Fault::gp(u32::from(UDATA))));
    // Code is not loadable into SS; a null SS is fine in 64-bit mode at CPL 0.
    ctx.cpu.gpr[reg::RAX] = u64::from(KCODE64);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(ss, ax).unwrap());
    assert_eq!(r, Err(Fault::gp(u32::from(KCODE64))));
    ctx.cpu.gpr[reg::RAX] = 0;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.mov(ss, ax).unwrap()).unwrap();
    assert!(ctx.cpu.seg[sreg::SS].unusable);
    assert_eq!(ctx.cpu.events.interrupt_shadow, 1);
    // POP FS pops 8 bytes in 64-bit mode; PUSH GS pushes the selector.
    ctx.cpu.gpr[reg::RSP] = 0x7ff8;
    mem.put_u64(0x7ff8, u64::from(KDATA));
    exec(&mut ctx, &mut mem, &mut bus, |a| a.pop(fs).unwrap()).unwrap();
    assert_eq!(
        (ctx.cpu.seg[sreg::FS].selector, ctx.cpu.gpr[reg::RSP]),
        (KDATA, 0x8000)
    );
    exec(&mut ctx, &mut mem, &mut bus, |a| a.push(fs).unwrap()).unwrap();
    assert_eq!(
        (mem.u64_at(0x7ff8), ctx.cpu.gpr[reg::RSP]),
        (u64::from(KDATA), 0x7ff8)
    );
}

#[test]
fn syscall_sysret_and_swapgs() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    // STAR: SYSCALL CS 0x08/SS 0x10; SYSRET base 0x18: CS 0x2b (0x18 + 16 | 3), SS 0x23.
    ctx.cpu.star = 0x0018_0008_0000_0000;
    ctx.cpu.lstar = 0xffff_ffff_8100_0000;
    ctx.cpu.sfmask = bits::RFLAGS_IF | (1 << 10);
    to_user64(&mut ctx);
    ctx.cpu.rflags = 0x646; // IF, DF, ZF, PF
    exec(&mut ctx, &mut mem, &mut bus, |a| a.syscall().unwrap()).unwrap();
    assert_eq!(ctx.cpu.rip, 0xffff_ffff_8100_0000);
    assert_eq!(ctx.cpu.gpr[reg::RCX], CODE + 2);
    assert_eq!(ctx.cpu.gpr[11], 0x646);
    assert_eq!(ctx.cpu.rflags, 0x46);
    assert_eq!(
        (
            ctx.cpu.seg[sreg::CS].selector,
            ctx.cpu.seg[sreg::SS].selector
        ),
        (8, 0x10)
    );
    assert_eq!(ctx.cpu.cpl(), 0);
    ctx.cpu.kernel_gs_base = 0x1111;
    ctx.cpu.seg[sreg::GS].base = 0x2222;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.swapgs().unwrap()).unwrap();
    assert_eq!(
        (ctx.cpu.seg[sreg::GS].base, ctx.cpu.kernel_gs_base),
        (0x1111, 0x2222)
    );
    exec(&mut ctx, &mut mem, &mut bus, |a| a.sysretq().unwrap()).unwrap();
    assert_eq!(ctx.cpu.rip, CODE + 2);
    assert_eq!(ctx.cpu.rflags, 0x646);
    assert_eq!(
        (
            ctx.cpu.seg[sreg::CS].selector,
            ctx.cpu.seg[sreg::SS].selector
        ),
        (0x2b, 0x23)
    );
    assert_eq!((ctx.cpu.cpl(), ctx.cpu.mode()), (3, CpuMode::Long64));
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.swapgs().unwrap());
    assert_eq!(r, Err(Fault::gp(0)));
}

#[test]
fn handles_covers_shared_mnemonics_only_for_system_forms() {
    let mov_cr = asm(64, 0, |a| a.mov(cr3, rax).unwrap());
    let mov_gpr = asm(64, 0, |a| a.mov(rbx, rax).unwrap());
    let push_gpr = asm(64, 0, |a| a.push(rax).unwrap());
    let push_fs = asm(64, 0, |a| a.push(fs).unwrap());
    assert!(system::handles_instruction(&mov_cr));
    assert!(!system::handles_instruction(&mov_gpr));
    assert!(!system::handles_instruction(&push_gpr));
    assert!(system::handles_instruction(&push_fs));
    assert!(system::handles(iced_x86::Mnemonic::Cpuid));
    assert!(!system::handles(iced_x86::Mnemonic::Hlt));
}
