//! Shared fixtures for the system-instruction and delivery tests: a flat identity-mapped
//! memory (linear = physical, anything past its end raises #PF), a recording bus, a GDT, IDT
//! and TSS builder, and one-instruction assembly with iced's CodeAssembler.

#![allow(dead_code)]

use iced_x86::code_asm::CodeAssembler;
use iced_x86::{Decoder, DecoderOptions, Encoder, Instruction};
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::exception::Fault;
use tandem_target_x86_64::memory::{LinearMemory, SystemBus};
use tandem_target_x86_64::system::{self, SystemOutcome};
use tandem_target_x86_64::{CpuState, DescriptorTable, Segment, X86Context};

/// Size of the flat memory.
pub const MEM: usize = 1 << 20;
pub const GDT: u64 = 0x1000;
pub const IDT: u64 = 0x2000;
pub const TSS: u64 = 0x3000;
pub const STACK: u64 = 0x8000;
pub const RSP0: u64 = 0x9000;
pub const IST1: u64 = 0xa000;
pub const CODE: u64 = 0x5_0000;

/// Selectors of the fixture GDT.
pub const KCODE64: u16 = 0x08;
pub const KDATA: u16 = 0x10;
pub const UCODE32: u16 = 0x18;
pub const UDATA: u16 = 0x20;
pub const UCODE64: u16 = 0x28;
pub const TSS_SEL: u16 = 0x30;
pub const KCODE32: u16 = 0x40;
pub const NOT_PRESENT_DATA: u16 = 0x48;

/// Flat memory: linear = physical; accesses past the end raise #PF (error code: W bit).
pub struct FlatMem {
    pub bytes: Vec<u8>,
}

impl FlatMem {
    pub fn new() -> Self {
        Self {
            bytes: vec![0; MEM],
        }
    }
    pub fn u64_at(&self, a: u64) -> u64 {
        let a = a as usize;
        u64::from_le_bytes(self.bytes[a..a + 8].try_into().unwrap())
    }
    pub fn u32_at(&self, a: u64) -> u32 {
        let a = a as usize;
        u32::from_le_bytes(self.bytes[a..a + 4].try_into().unwrap())
    }
    pub fn u16_at(&self, a: u64) -> u16 {
        let a = a as usize;
        u16::from_le_bytes(self.bytes[a..a + 2].try_into().unwrap())
    }
    pub fn put(&mut self, a: u64, data: &[u8]) {
        self.bytes[a as usize..a as usize + data.len()].copy_from_slice(data);
    }
    pub fn put_u64(&mut self, a: u64, v: u64) {
        self.put(a, &v.to_le_bytes());
    }
    pub fn put_u32(&mut self, a: u64, v: u32) {
        self.put(a, &v.to_le_bytes());
    }
    pub fn put_u16(&mut self, a: u64, v: u16) {
        self.put(a, &v.to_le_bytes());
    }
}

impl LinearMemory for FlatMem {
    fn read_linear(&mut self, addr: u64, buf: &mut [u8], _s: bool) -> Result<(), Fault> {
        let end = addr
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= MEM as u64);
        match end {
            Some(_) => {
                buf.copy_from_slice(&self.bytes[addr as usize..addr as usize + buf.len()]);
                Ok(())
            }
            None => Err(Fault::page_fault(addr, 0)),
        }
    }
    fn write_linear(&mut self, addr: u64, data: &[u8], _s: bool) -> Result<(), Fault> {
        let end = addr
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MEM as u64);
        match end {
            Some(_) => {
                self.put(addr, data);
                Ok(())
            }
            None => Err(Fault::page_fault(addr, 2)),
        }
    }
}

/// A bus that records port writes and answers reads with a fixed pattern.
#[derive(Default)]
pub struct FakeBus {
    pub outs: Vec<(u16, Vec<u8>)>,
    pub ins: Vec<(u16, usize)>,
}

impl SystemBus for FakeBus {
    fn port_in(&mut self, port: u16, data: &mut [u8]) {
        self.ins.push((port, data.len()));
        for (k, b) in data.iter_mut().enumerate() {
            *b = 0xa0 + k as u8;
        }
    }
    fn port_out(&mut self, port: u16, data: &[u8]) {
        self.outs.push((port, data.to_vec()));
    }
    fn cpuid(&mut self, function: u32, index: u32) -> [u32; 4] {
        [
            function ^ 0x1111_0000,
            index ^ 0x2222_0000,
            0x6c65_746e,
            0x4965_6e69,
        ]
    }
    fn tsc(&mut self) -> u64 {
        0x1122_3344_5566_7788
    }
}

/// Decodes the first instruction `build` assembles at `ip` in `bitness`-bit code.
pub fn asm(bitness: u32, ip: u64, build: impl FnOnce(&mut CodeAssembler)) -> Instruction {
    let mut a = CodeAssembler::new(bitness).unwrap();
    build(&mut a);
    let bytes = a.assemble(ip).unwrap();
    Decoder::with_ip(bitness, &bytes, ip, DecoderOptions::NONE).decode()
}

/// Encodes and decodes a hand-built instruction (far pointers, which CodeAssembler lacks).
pub fn encoded(bitness: u32, ip: u64, i: Instruction) -> Instruction {
    let mut e = Encoder::new(bitness);
    e.encode(&i, ip).unwrap();
    let bytes = e.take_buffer();
    Decoder::with_ip(bitness, &bytes, ip, DecoderOptions::NONE).decode()
}

/// Runs one instruction at ctx.cpu.rip.
pub fn exec(
    ctx: &mut X86Context,
    mem: &mut FlatMem,
    bus: &mut FakeBus,
    build: impl FnOnce(&mut CodeAssembler),
) -> Result<SystemOutcome, Fault> {
    let bitness = match ctx.cpu.mode() {
        tandem_target_x86_64::CpuMode::Long64 => 64,
        tandem_target_x86_64::CpuMode::Protected32 | tandem_target_x86_64::CpuMode::Compat32 => 32,
        _ => 16,
    };
    let i = asm(bitness, ctx.cpu.rip, build);
    assert!(
        system::handles_instruction(&i),
        "{i} not a system instruction"
    );
    system::execute(ctx, &i, mem, bus)
}

/// An 8-byte code/data descriptor.
pub fn seg_desc(base: u32, limit: u32, type_: u8, dpl: u8, l: bool, db: bool) -> u64 {
    Segment {
        base: u64::from(base),
        limit,
        type_,
        present: true,
        dpl,
        db,
        s: true,
        l,
        g: limit > 0xfffff,
        ..Segment::default()
    }
    .to_descriptor()
}

/// Writes a 16-byte 64-bit IDT gate.
pub fn gate64(mem: &mut FlatMem, vector: u8, offset: u64, sel: u16, ist: u8, type_: u8, dpl: u8) {
    let lo = (offset & 0xffff)
        | (u64::from(sel) << 16)
        | (u64::from(ist) << 32)
        | (u64::from(type_) << 40)
        | (u64::from(dpl) << 45)
        | (1 << 47)
        | (((offset >> 16) & 0xffff) << 48);
    let at = IDT + 16 * u64::from(vector);
    mem.put_u64(at, lo);
    mem.put_u64(at + 8, offset >> 32);
}

/// Writes an 8-byte 32-bit IDT gate.
pub fn gate32(mem: &mut FlatMem, vector: u8, offset: u32, sel: u16, type_: u8, dpl: u8) {
    let lo = u64::from(offset & 0xffff)
        | (u64::from(sel) << 16)
        | (u64::from(type_) << 40)
        | (u64::from(dpl) << 45)
        | (1 << 47)
        | (u64::from(offset >> 16) << 48);
    mem.put_u64(IDT + 8 * u64::from(vector), lo);
}

/// The fixture GDT: null, kernel code64, kernel data, user code32, user data, user code64,
/// a 16-byte available 64-bit TSS, kernel code32, a not-present data segment.
pub fn write_gdt(mem: &mut FlatMem) {
    mem.put_u64(GDT, 0);
    mem.put_u64(GDT + 0x08, seg_desc(0, 0xffff_ffff, 0xb, 0, true, false));
    mem.put_u64(GDT + 0x10, seg_desc(0, 0xffff_ffff, 0x3, 0, false, true));
    mem.put_u64(GDT + 0x18, seg_desc(0, 0xffff_ffff, 0xb, 3, false, true));
    mem.put_u64(GDT + 0x20, seg_desc(0, 0xffff_ffff, 0x3, 3, false, true));
    mem.put_u64(GDT + 0x28, seg_desc(0, 0xffff_ffff, 0xb, 3, true, false));
    // Available 64-bit TSS (type 9), limit 0x67 (no I/O bitmap), base TSS.
    let tss_lo = 0x67u64 | ((TSS & 0xff_ffff) << 16) | (0x89u64 << 40) | ((TSS >> 24) << 56);
    mem.put_u64(GDT + 0x30, tss_lo);
    mem.put_u64(GDT + 0x38, TSS >> 32);
    mem.put_u64(GDT + 0x40, seg_desc(0, 0xffff_ffff, 0xb, 0, false, true));
    let mut np = seg_desc(0, 0xffff_ffff, 0x3, 0, false, true);
    np &= !(1 << 47);
    mem.put_u64(GDT + 0x48, np);
}

/// A 64-bit kernel at CPL 0: paging and long mode on, fixture GDT/IDT/TSS (RSP0, IST1, I/O
/// map base past the limit), RSP = STACK, IF set.
pub fn long_mode() -> (X86Context, FlatMem, FakeBus) {
    let mut mem = FlatMem::new();
    write_gdt(&mut mem);
    mem.put_u64(TSS + 4, RSP0);
    mem.put_u64(TSS + 36, IST1);
    mem.put_u16(TSS + 0x66, 0x68);
    let mut cpu = CpuState {
        rip: CODE,
        rflags: bits::RFLAGS_FIXED | bits::RFLAGS_IF,
        cr0: bits::CR0_PE | bits::CR0_PG | bits::CR0_ET | bits::CR0_NE,
        cr4: bits::CR4_PAE,
        efer: bits::EFER_LME | bits::EFER_LMA | bits::EFER_SCE | bits::EFER_NXE,
        gdt: DescriptorTable {
            base: GDT,
            limit: 0x4f,
        },
        idt: DescriptorTable {
            base: IDT,
            limit: 0xfff,
        },
        ..CpuState::default()
    };
    cpu.seg = [Segment::flat(KDATA, false, false); 6];
    cpu.seg[sreg::CS] = Segment::flat(KCODE64, true, true);
    cpu.tr = Segment::tss(TSS_SEL, TSS, 0x67);
    cpu.gpr[reg::RSP] = STACK;
    (X86Context::new(cpu), mem, FakeBus::default())
}

/// Drops `ctx` to CPL 3 in 64-bit user code (RSP = 0x7000).
pub fn to_user64(ctx: &mut X86Context) {
    let mut cs = Segment::flat(UCODE64 | 3, true, true);
    cs.dpl = 3;
    let mut ss = Segment::flat(UDATA | 3, false, false);
    ss.dpl = 3;
    ctx.cpu.seg[sreg::CS] = cs;
    ctx.cpu.seg[sreg::SS] = ss;
    ctx.cpu.gpr[reg::RSP] = 0x7000;
}
