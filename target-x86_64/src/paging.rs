//! The page walk: linear to physical through the guest's page tables (Intel SDM Vol. 3A,
//! chapter 4), with permission checks, accessed/dirty updates and #PF error codes.
//!
//! Modes: paging off, 32-bit (2-level, 4 MiB pages with CR4.PSE), PAE (3-level) and 4-level
//! (IA-32e). Known warts: no 5-level paging, no SMEP/SMAP/PKE (CPUID does not advertise them),
//! reserved-bit checks only for the NX bit when EFER.NXE is clear and for PS in a PML4E.

use crate::cpu_state::{bits, CpuState};
use crate::exception::Fault;
use crate::memory::{Access, PhysicalMemory};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const G: u64 = 1 << 8;
const XD: u64 = 1 << 63;
/// Physical-address bits of an entry (52-bit physical addresses).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const CR4_PSE: u64 = 1 << 4;

/// #PF error code bits.
pub mod pf {
    #![allow(missing_docs)]
    pub const PRESENT: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const USER: u32 = 1 << 2;
    pub const RSVD: u32 = 1 << 3;
    pub const FETCH: u32 = 1 << 4;
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub phys: u64,
    /// Size of the page that mapped it.
    pub page_size: u64,
    /// Writes are allowed (for the access's privilege).
    pub writable: bool,
    /// The mapping is global (CR4.PGE).
    pub global: bool,
}

/// Who makes the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// CPL 3 data or code access.
    User,
    /// CPL 0-2, or an implicit supervisor access (descriptor tables, delivery).
    Supervisor,
}

/// Translates `linear` for `access` by `who`, setting accessed/dirty bits in the tables.
pub fn translate(
    cpu: &CpuState,
    mem: &mut dyn PhysicalMemory,
    linear: u64,
    access: Access,
    who: Privilege,
) -> Result<Translation, Fault> {
    if cpu.cr0 & bits::CR0_PG == 0 {
        return Ok(Translation {
            phys: linear & 0xffff_ffff_ffff,
            page_size: 4096,
            writable: true,
            global: false,
        });
    }
    let walk = Walk {
        cpu,
        linear,
        access,
        user: who == Privilege::User,
        nxe: cpu.efer & bits::EFER_NXE != 0,
    };
    if cpu.efer & bits::EFER_LMA != 0 {
        walk.run(mem, cpu.cr3 & ADDR_MASK, &[39, 30, 21, 12], 8)
    } else if cpu.cr4 & bits::CR4_PAE != 0 {
        // PAE: the 4 PDPTEs are indexed by bits 31:30 of a 32-byte aligned table.
        walk.run(mem, cpu.cr3 & 0xffff_ffe0, &[30, 21, 12], 8)
    } else {
        walk.run(mem, cpu.cr3 & 0xffff_f000, &[22, 12], 4)
    }
}

struct Walk<'a> {
    cpu: &'a CpuState,
    linear: u64,
    access: Access,
    user: bool,
    nxe: bool,
}

impl Walk<'_> {
    fn fault(&self, present: bool, rsvd: bool) -> Fault {
        let mut code = 0;
        if present {
            code |= pf::PRESENT;
        }
        if self.access == Access::Write {
            code |= pf::WRITE;
        }
        if self.user {
            code |= pf::USER;
        }
        if rsvd {
            code |= pf::RSVD | pf::PRESENT;
        }
        if self.access == Access::Execute && self.nxe {
            code |= pf::FETCH;
        }
        Fault::page_fault(self.linear, code)
    }

    fn read_entry(&self, mem: &mut dyn PhysicalMemory, addr: u64, size: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        mem.read_phys(addr, &mut b[..size])
            .then(|| u64::from_le_bytes(b))
    }

    /// Walks levels whose index fields start at the bits in `shifts` (top first), with
    /// entries of `entry_size` bytes (4 in 32-bit paging, 8 otherwise).
    fn run(
        &self,
        mem: &mut dyn PhysicalMemory,
        mut table: u64,
        shifts: &[u32],
        entry_size: usize,
    ) -> Result<Translation, Fault> {
        let index_bits = if entry_size == 4 { 10 } else { 9 };
        let pae_pdpt = entry_size == 8 && shifts.len() == 3;
        let mut writable = true;
        let mut user_ok = true;
        let mut executable = true;
        let mut entries: Vec<(u64, u64)> = Vec::with_capacity(4);
        for (level, &shift) in shifts.iter().enumerate() {
            let bits_here = if pae_pdpt && level == 0 {
                2
            } else {
                index_bits
            };
            let index = (self.linear >> shift) & ((1 << bits_here) - 1);
            let addr = table + index * entry_size as u64;
            let entry = self
                .read_entry(mem, addr, entry_size)
                .ok_or_else(|| self.fault(false, false))?;
            if entry & P == 0 {
                return Err(self.fault(false, false));
            }
            if entry_size == 8 && entry & XD != 0 && !self.nxe {
                return Err(self.fault(true, true));
            }
            // PAE PDPTEs carry no permission bits.
            if !(pae_pdpt && level == 0) {
                writable &= entry & RW != 0;
                user_ok &= entry & US != 0;
                executable &= !(self.nxe && entry & XD != 0);
            }
            entries.push((addr, entry));
            let last = level == shifts.len() - 1;
            let large = !last && entry & PS != 0 && self.large_allowed(level, shifts.len());
            if last || large {
                let page_size = 1u64 << shift;
                let base = if entry_size == 4 && large {
                    // 4 MiB page: bits 31:22, plus PSE-36 bits 39:32 from entry bits 20:13.
                    (entry & 0xffc0_0000) | ((entry >> 13) & 0xff) << 32
                } else {
                    entry & ADDR_MASK & !(page_size - 1)
                };
                self.check(writable, user_ok, executable)?;
                self.mark(mem, &entries, entry_size);
                return Ok(Translation {
                    phys: base | (self.linear & (page_size - 1)),
                    page_size,
                    writable: writable || (!self.user && self.cpu.cr0 & bits::CR0_WP == 0),
                    // G means something only with CR4.PGE (bit 7).
                    global: entry & G != 0 && self.cpu.cr4 & (1 << 7) != 0,
                });
            }
            table = entry
                & if entry_size == 4 {
                    0xffff_f000
                } else {
                    ADDR_MASK
                };
        }
        Err(self.fault(false, false))
    }

    fn large_allowed(&self, level: usize, levels: usize) -> bool {
        match levels {
            // 4-level: PDPTE (1 GiB) and PDE (2 MiB); a PS bit in a PML4E is reserved.
            4 => level == 1 || level == 2,
            3 => level == 1,
            _ => self.cpu.cr4 & CR4_PSE != 0 && level == 0,
        }
    }

    fn check(&self, writable: bool, user_ok: bool, executable: bool) -> Result<(), Fault> {
        if self.user && !user_ok {
            return Err(self.fault(true, false));
        }
        let wp = self.cpu.cr0 & bits::CR0_WP != 0;
        if self.access == Access::Write && !writable && (self.user || wp) {
            return Err(self.fault(true, false));
        }
        if self.access == Access::Execute && !executable {
            return Err(self.fault(true, false));
        }
        Ok(())
    }

    /// Sets A in every entry used, and D in the leaf on a write (as the CPU does, only when not
    /// already set, so read-only page tables in ROM are left alone).
    fn mark(&self, mem: &mut dyn PhysicalMemory, entries: &[(u64, u64)], size: usize) {
        let pae_pdpt = size == 8 && entries.len() <= 3 && self.cpu.efer & bits::EFER_LMA == 0;
        for (i, &(addr, entry)) in entries.iter().enumerate() {
            if pae_pdpt && i == 0 && self.cpu.cr4 & bits::CR4_PAE != 0 {
                continue;
            }
            let leaf = i == entries.len() - 1;
            let mut new = entry | A;
            if leaf && self.access == Access::Write {
                new |= D;
            }
            if new != entry {
                mem.write_phys(addr, &new.to_le_bytes()[..size]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flat(Vec<u8>);
    impl PhysicalMemory for Flat {
        fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
            let a = gpa as usize;
            match self.0.get(a..a + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
        fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool {
            let a = gpa as usize;
            match self.0.get_mut(a..a + data.len()) {
                Some(s) => {
                    s.copy_from_slice(data);
                    true
                }
                None => false,
            }
        }
    }

    fn put(m: &mut Flat, addr: u64, v: u64) {
        m.write_phys(addr, &v.to_le_bytes());
    }

    fn get(m: &mut Flat, addr: u64) -> u64 {
        let mut b = [0u8; 8];
        m.read_phys(addr, &mut b);
        u64::from_le_bytes(b)
    }

    /// 4-level tables at 0x1000.. mapping 0x40_0000 (4K page, user, read-only, NX) -> 0x9000,
    /// and 0x20_0000 (2 MiB page, supervisor, writable) -> 0x60_0000.
    fn long_mode() -> (CpuState, Flat) {
        let mut m = Flat(vec![0; 0x80_0000]);
        put(&mut m, 0x1000, 0x2000 | P | RW | US); // PML4[0]
        put(&mut m, 0x2000, 0x3000 | P | RW | US); // PDPT[0]
        put(&mut m, 0x3000 + 2 * 8, 0x4000 | P | RW | US); // PD[2] -> PT (0x40_0000)
        put(&mut m, 0x3000 + 8, 0x60_0000 | P | RW | PS); // PD[1]: 2 MiB at 0x20_0000
        put(&mut m, 0x4000, 0x9000 | P | US | XD); // PT[0]
        let cpu = CpuState {
            cr0: bits::CR0_PE | bits::CR0_PG | bits::CR0_WP,
            cr4: bits::CR4_PAE,
            efer: bits::EFER_LME | bits::EFER_LMA | bits::EFER_NXE,
            cr3: 0x1000,
            ..CpuState::default()
        };
        (cpu, m)
    }

    #[test]
    fn four_level_walk_with_small_and_large_pages() {
        let (cpu, mut m) = long_mode();
        let t = translate(&cpu, &mut m, 0x40_0123, Access::Read, Privilege::User).unwrap();
        assert_eq!(t.phys, 0x9123);
        assert!(!t.writable);
        let t = translate(
            &cpu,
            &mut m,
            0x21_2345,
            Access::Write,
            Privilege::Supervisor,
        )
        .unwrap();
        assert_eq!(t.phys, 0x61_2345);
        assert_eq!(t.page_size, 2 << 20);
        assert_ne!(get(&mut m, 0x3008) & D, 0, "dirty set on write");
        assert_ne!(get(&mut m, 0x1000) & A, 0, "accessed set");
    }

    #[test]
    fn permission_faults_have_the_sdm_error_codes() {
        let (cpu, mut m) = long_mode();
        // User write to a read-only user page: P|W|U.
        let f = translate(&cpu, &mut m, 0x40_0000, Access::Write, Privilege::User).unwrap_err();
        assert_eq!(f, Fault::page_fault(0x40_0000, 0b111));
        // User read of a supervisor page: P|U.
        let f = translate(&cpu, &mut m, 0x20_0000, Access::Read, Privilege::User).unwrap_err();
        assert_eq!(f.error_code, Some(0b101));
        // Fetch from an NX page: P|I.
        let f = translate(&cpu, &mut m, 0x40_0000, Access::Execute, Privilege::User).unwrap_err();
        assert_eq!(f.error_code, Some(0b10101));
        // Not present, supervisor read: 0; CR2 is the address.
        let f = translate(
            &cpu,
            &mut m,
            0x8000_0000,
            Access::Read,
            Privilege::Supervisor,
        )
        .unwrap_err();
        assert_eq!(f, Fault::page_fault(0x8000_0000, 0));
    }

    #[test]
    fn supervisor_writes_to_read_only_pages_follow_cr0_wp() {
        let (mut cpu, mut m) = long_mode();
        assert!(translate(
            &cpu,
            &mut m,
            0x40_0000,
            Access::Write,
            Privilege::Supervisor
        )
        .is_err());
        cpu.cr0 &= !bits::CR0_WP;
        let t = translate(
            &cpu,
            &mut m,
            0x40_0000,
            Access::Write,
            Privilege::Supervisor,
        )
        .unwrap();
        assert_eq!(t.phys, 0x9000);
    }

    #[test]
    fn nx_bit_without_nxe_is_reserved() {
        let (mut cpu, mut m) = long_mode();
        cpu.efer &= !bits::EFER_NXE;
        let f = translate(&cpu, &mut m, 0x40_0000, Access::Read, Privilege::User).unwrap_err();
        assert_eq!(f.error_code, Some(pf::RSVD | pf::PRESENT | pf::USER));
    }

    #[test]
    fn paging_off_is_identity_and_32_bit_paging_walks_two_levels() {
        let mut cpu = CpuState::default();
        let mut m = Flat(vec![0; 0x80_0000]);
        let t = translate(&cpu, &mut m, 0x1234_5678, Access::Write, Privilege::User).unwrap();
        assert_eq!(t.phys, 0x1234_5678);
        cpu.cr0 = bits::CR0_PE | bits::CR0_PG;
        cpu.cr3 = 0x1000;
        cpu.cr4 = CR4_PSE;
        m.write_phys(0x1000 + 4, &(0x2000u32 | 7).to_le_bytes()); // PDE[1] -> PT
        m.write_phys(0x2000 + 3 * 4, &(0x7000u32 | 7).to_le_bytes()); // PTE[3]
        m.write_phys(0x1000 + 2 * 4, &(0x40_0000u32 | 0x83).to_le_bytes()); // 4 MiB page
        let t = translate(&cpu, &mut m, 0x40_3abc, Access::Read, Privilege::User).unwrap();
        assert_eq!(t.phys, 0x7abc);
        let t = translate(&cpu, &mut m, 0x80_1234, Access::Read, Privilege::Supervisor).unwrap();
        assert_eq!(t.phys, 0x40_1234);
    }

    #[test]
    fn pae_walks_three_levels() {
        let mut cpu = CpuState::default();
        let mut m = Flat(vec![0; 0x80_0000]);
        cpu.cr0 = bits::CR0_PE | bits::CR0_PG;
        cpu.cr4 = bits::CR4_PAE;
        cpu.cr3 = 0x1000;
        put(&mut m, 0x1000 + 8, 0x2000 | P); // PDPTE[1] (0x4000_0000..)
        put(&mut m, 0x2000, 0x3000 | P | RW); // PDE[0]
        put(&mut m, 0x3000 + 8, 0x5000 | P | RW); // PTE[1]
        let t = translate(
            &cpu,
            &mut m,
            0x4000_1010,
            Access::Write,
            Privilege::Supervisor,
        )
        .unwrap();
        assert_eq!(t.phys, 0x5010);
        assert_eq!(
            get(&mut m, 0x1008) & A,
            0,
            "PDPTEs have no accessed bit in PAE mode"
        );
    }
}
