//! The interpreter's environment: the vCPU's context block and its guest memory.

use tandem_target_x86_64::exception::vector;
use tandem_target_x86_64::memory::Access;
use tandem_target_x86_64::{Fault, X86Context};
use tandem_tcg::{InterpEnv, InterpTrap, Width};

use super::memory::Linear;

/// One vCPU's context with its memory, for the duration of a block.
pub struct TcgEnv<'a, 'b> {
    /// Registers, lazy flags, helper records.
    pub ctx: &'b mut X86Context,
    /// Guest memory.
    pub mem: &'b mut Linear<'a>,
}

fn trap(f: Fault, last_cr2: &mut Option<u64>) -> InterpTrap {
    if f.vector == vector::PF {
        *last_cr2 = f.cr2;
    }
    InterpTrap::Exception {
        vector: f.vector,
        error_code: f.error_code,
    }
}

impl InterpEnv for TcgEnv<'_, '_> {
    fn context(&mut self) -> &mut [u8] {
        self.ctx.as_bytes_mut()
    }

    fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap> {
        let mut b = [0u8; 8];
        // Borrowed, not copied: CpuState is large (a copy per access was the boot's memmove).
        self.mem
            .read(&self.ctx.cpu, addr, &mut b[..w.bytes()], false)
            .map_err(|f| trap(f, &mut self.mem.state.last_cr2))?;
        Ok(u64::from_le_bytes(b))
    }

    fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap> {
        self.mem
            .write(&self.ctx.cpu, addr, &v.to_le_bytes()[..w.bytes()], false)
            .map_err(|f| trap(f, &mut self.mem.state.last_cr2))
    }

    fn take_helper_exception(&mut self) -> Option<InterpTrap> {
        let v = std::mem::take(&mut self.ctx.helper_vector);
        if v == 0 {
            return None;
        }
        let code = std::mem::replace(&mut self.ctx.helper_error, u64::MAX);
        Some(InterpTrap::Exception {
            vector: (v - 1) as u8,
            error_code: (code != u64::MAX).then_some(code as u32),
        })
    }
}

/// Reads instruction bytes at linear `addr` (fetch permission), up to `buf.len()`; returns how
/// many could be read before a fault (0 means the first byte faulted, with that fault).
/// `frames` gets the physical frame of each page read (the first, then the next one).
pub fn fetch(
    mem: &mut Linear<'_>,
    ctx: &X86Context,
    addr: u64,
    buf: &mut [u8],
    frames: &mut [Option<u64>; 2],
) -> Result<usize, Fault> {
    let mut done = 0;
    let mut page = 0;
    while done < buf.len() {
        let a = addr.wrapping_add(done as u64);
        let n = (buf.len() - done).min(4096 - (a & 0xfff) as usize);
        match mem.translate(&ctx.cpu, a, Access::Execute, false) {
            Ok(phys) => {
                if mem.space.read(phys, &mut buf[done..done + n]).is_err() {
                    // Executing from MMIO or unassigned space: what a PC bus returns.
                    buf[done..done + n].fill(0xff);
                }
                if let Some(f) = frames.get_mut(page) {
                    *f = Some(phys >> 12);
                }
            }
            Err(f) if done == 0 => return Err(f),
            Err(_) => break,
        }
        done += n;
        page += 1;
    }
    Ok(done)
}
