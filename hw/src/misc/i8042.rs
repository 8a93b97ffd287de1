//! The 8042 keyboard controller (ports 0x60 and 0x64), with no keyboard or mouse attached.
//!
//! Enough for a kernel to probe the controller and to reset the machine through it: the status
//! register (OBF, AUX OBF, system flag, command/data, keyboard not inhibited; IBF always clear
//! since commands complete at once), the command byte (0x20-0x3f read and 0x60-0x7f write the
//! controller's 32 bytes of RAM, byte 0 being the command byte), the self and interface tests
//! (0xaa -> 0x55, 0xab/0xa9 -> 0x00), keyboard and aux port disable/enable (0xad/0xae,
//! 0xa7/0xa8), the output port (0xd0 read, 0xd1 write: bit 0 clear resets the machine), the
//! output buffer loop-back writes (0xd2 keyboard, 0xd3 aux) and the pulse commands 0xf0-0xff
//! (bit 0 clear pulses the reset line: [`MachineRequest::Reset`]).
//!
//! The device sits at offsets 0 (port 0x60) and 4 (port 0x64) of a 5-port range; other offsets
//! read 0xff. Accesses wider than a byte are split into byte accesses at consecutive offsets.
//!
//! Warts: no keyboard and no mouse: bytes written to the data port for the keyboard, and to
//! the mouse through 0xd4, are dropped unanswered, as with nothing plugged in (a driver's
//! probe times out); there is no interrupt line, so IRQ 1 and IRQ 12 never fire even when the
//! command byte enables them; the A20 bit of the output port (and 0xdd/0xdf) is stored but A20
//! is always enabled; the input port (0xc0) reads 0xa0 (keyboard not inhibited, colour
//! display); unknown commands are ignored.

use std::collections::VecDeque;
use std::sync::Arc;

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::{MachineRequest, PortDevice, RunControl};

/// Offset of the command/status port (0x64) from the data port (0x60).
pub const COMMAND_OFFSET: u16 = 4;

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_CMD: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;
const STATUS_AUX_OBF: u8 = 0x20;

const CMD_BYTE_SYS: u8 = 0x04;
const CMD_BYTE_KBD_DISABLE: u8 = 0x10;
const CMD_BYTE_AUX_DISABLE: u8 = 0x20;

const OUTPORT_RESET: u8 = 0x01;
const OUTPORT_A20: u8 = 0x02;
const OUTPORT_KBD_OBF: u8 = 0x10;
const OUTPORT_AUX_OBF: u8 = 0x20;

/// Deepest the output queue gets (every answer is one byte; the guest reads them in turn).
const OUT_QUEUE_MAX: usize = 16;

/// What the next byte written to the data port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataTarget {
    Keyboard,
    Ram(u8),
    OutputPort,
    KeyboardBuffer,
    AuxBuffer,
    Aux,
}

/// The 8042 keyboard controller.
pub struct I8042 {
    /// The controller's RAM; byte 0 is the command byte.
    ram: [u8; 32],
    outport: u8,
    /// Bytes for the guest, each with whether it came from the aux port.
    out: VecDeque<(u8, bool)>,
    last_read: u8,
    last_was_command: bool,
    target: DataTarget,
    control: Arc<RunControl>,
}

impl I8042 {
    /// A controller after power-on self-test, posting resets to `control`.
    pub fn new(control: Arc<RunControl>) -> Self {
        let mut ram = [0u8; 32];
        // Keyboard interrupt, system flag (POST passed), scancode translation.
        ram[0] = 0x45;
        Self {
            ram,
            outport: OUTPORT_RESET | OUTPORT_A20,
            out: VecDeque::new(),
            last_read: 0,
            last_was_command: false,
            target: DataTarget::Keyboard,
            control,
        }
    }

    /// The status register (port 0x64).
    pub fn status(&self) -> u8 {
        let mut s = STATUS_UNLOCKED;
        if self.ram[0] & CMD_BYTE_SYS != 0 {
            s |= STATUS_SYS;
        }
        if self.last_was_command {
            s |= STATUS_CMD;
        }
        if let Some(&(_, aux)) = self.out.front() {
            s |= STATUS_OBF;
            if aux {
                s |= STATUS_AUX_OBF;
            }
        }
        s
    }

    /// The command byte.
    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    fn push(&mut self, v: u8, aux: bool) {
        if self.out.len() < OUT_QUEUE_MAX {
            self.out.push_back((v, aux));
        }
    }

    fn read_data(&mut self) -> u8 {
        // An empty buffer reads back whatever was last in it, as on the real part.
        if let Some((v, _)) = self.out.pop_front() {
            self.last_read = v;
        }
        self.last_read
    }

    fn output_port(&self) -> u8 {
        let mut v = self.outport & !(OUTPORT_KBD_OBF | OUTPORT_AUX_OBF);
        match self.out.front() {
            Some(&(_, false)) => v |= OUTPORT_KBD_OBF,
            Some(&(_, true)) => v |= OUTPORT_AUX_OBF,
            None => {}
        }
        v
    }

    fn write_output_port(&mut self, v: u8) {
        self.outport = v;
        if v & OUTPORT_RESET == 0 {
            self.control.request(MachineRequest::Reset);
        }
    }

    fn command(&mut self, cmd: u8) {
        self.last_was_command = true;
        self.target = DataTarget::Keyboard;
        match cmd {
            0x20..=0x3f => self.push(self.ram[usize::from(cmd & 0x1f)], false),
            0x60..=0x7f => self.target = DataTarget::Ram(cmd & 0x1f),
            0xa7 => self.ram[0] |= CMD_BYTE_AUX_DISABLE,
            0xa8 => self.ram[0] &= !CMD_BYTE_AUX_DISABLE,
            0xa9 | 0xab => self.push(0x00, false),
            0xaa => {
                self.ram[0] |= CMD_BYTE_SYS;
                self.push(0x55, false);
            }
            0xad => self.ram[0] |= CMD_BYTE_KBD_DISABLE,
            0xae => self.ram[0] &= !CMD_BYTE_KBD_DISABLE,
            0xc0 => self.push(0xa0, false),
            0xd0 => self.push(self.output_port(), false),
            0xd1 => self.target = DataTarget::OutputPort,
            0xd2 => self.target = DataTarget::KeyboardBuffer,
            0xd3 => self.target = DataTarget::AuxBuffer,
            0xd4 => self.target = DataTarget::Aux,
            0xdd => self.outport &= !OUTPORT_A20,
            0xdf => self.outport |= OUTPORT_A20,
            0xe0 => self.push(0x00, false),
            // Pulse output port bits 0-3 low for those clear in the command's low nibble.
            0xf0..=0xff if cmd & 0x01 == 0 => self.control.request(MachineRequest::Reset),
            _ => {}
        }
    }

    fn write_data(&mut self, v: u8) {
        self.last_was_command = false;
        let target = std::mem::replace(&mut self.target, DataTarget::Keyboard);
        match target {
            DataTarget::Ram(i) => self.ram[usize::from(i)] = v,
            DataTarget::OutputPort => self.write_output_port(v),
            DataTarget::KeyboardBuffer => self.push(v, false),
            DataTarget::AuxBuffer => self.push(v, true),
            // Nothing is plugged in to answer.
            DataTarget::Keyboard | DataTarget::Aux => {}
        }
    }
}

impl I8042 {
    fn read_byte(&mut self, offset: u16) -> u8 {
        match offset {
            0 => self.read_data(),
            COMMAND_OFFSET => self.status(),
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        match offset {
            0 => self.write_data(v),
            COMMAND_OFFSET => self.command(v),
            _ => {}
        }
    }
}

impl PortDevice for I8042 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        read_bytewise(offset, data, |off| self.read_byte(off));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |off, v| self.write_byte(off, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kbc() -> (I8042, Arc<RunControl>) {
        let rc = Arc::new(RunControl::new());
        (I8042::new(rc.clone()), rc)
    }

    fn cmd(k: &mut I8042, c: u8) {
        k.write(COMMAND_OFFSET, &[c]);
    }

    fn data(k: &mut I8042) -> u8 {
        let mut b = [0u8];
        k.read(0, &mut b);
        b[0]
    }

    fn status(k: &mut I8042) -> u8 {
        let mut b = [0u8];
        k.read(COMMAND_OFFSET, &mut b);
        b[0]
    }

    #[test]
    fn status_reflects_output_buffer_and_command_flag() {
        let (mut k, _) = kbc();
        assert_eq!(status(&mut k), STATUS_UNLOCKED | STATUS_SYS);
        cmd(&mut k, 0xaa);
        assert_eq!(
            status(&mut k),
            STATUS_UNLOCKED | STATUS_SYS | STATUS_CMD | STATUS_OBF
        );
        assert_eq!(data(&mut k), 0x55);
        assert_eq!(status(&mut k) & STATUS_OBF, 0);
        assert_eq!(data(&mut k), 0x55, "empty buffer reads stale");
    }

    #[test]
    fn command_byte_read_write_and_port_enables() {
        let (mut k, _) = kbc();
        cmd(&mut k, 0x20);
        assert_eq!(data(&mut k), 0x45);
        cmd(&mut k, 0x60);
        k.write(0, &[0x07]);
        assert_eq!(k.command_byte(), 0x07);
        cmd(&mut k, 0xad);
        cmd(&mut k, 0xa7);
        assert_eq!(k.command_byte(), 0x37);
        cmd(&mut k, 0xae);
        cmd(&mut k, 0xa8);
        cmd(&mut k, 0x20);
        assert_eq!(data(&mut k), 0x07);
        cmd(&mut k, 0xab);
        assert_eq!(data(&mut k), 0x00);
        // A data write with no command pending goes to the (absent) keyboard: no answer.
        k.write(0, &[0xff]);
        assert_eq!(status(&mut k) & STATUS_OBF, 0);
        assert_eq!(k.command_byte(), 0x07);
    }

    #[test]
    fn reset_through_pulse_command() {
        let (mut k, rc) = kbc();
        cmd(&mut k, 0xff);
        assert_eq!(rc.pending(), None, "0xff pulses nothing");
        cmd(&mut k, 0xfe);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
        let (mut k, rc) = kbc();
        cmd(&mut k, 0xf0);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
        let (mut k, rc) = kbc();
        cmd(&mut k, 0xf1);
        assert_eq!(rc.pending(), None, "bit 0 set: reset line not pulsed");
    }

    #[test]
    fn output_port_read_and_reset_write() {
        let (mut k, rc) = kbc();
        cmd(&mut k, 0xd0);
        assert_eq!(data(&mut k), 0x03);
        cmd(&mut k, 0xd1);
        k.write(0, &[0x03]);
        assert_eq!(rc.pending(), None);
        cmd(&mut k, 0xd1);
        k.write(0, &[0x02]);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
    }

    #[test]
    fn loopback_writes_mark_aux_data() {
        let (mut k, _) = kbc();
        cmd(&mut k, 0xd3);
        k.write(0, &[0x5a]);
        assert_eq!(status(&mut k) & 0x21, 0x21);
        assert_eq!(data(&mut k), 0x5a);
        cmd(&mut k, 0xd2);
        k.write(0, &[0x1c]);
        assert_eq!(status(&mut k) & 0x21, 0x01);
        assert_eq!(data(&mut k), 0x1c);
        cmd(&mut k, 0xd4);
        k.write(0, &[0xf2]);
        assert_eq!(status(&mut k) & STATUS_OBF, 0, "no mouse answers");
    }

    #[test]
    fn odd_offsets_and_floods_are_harmless() {
        let (mut k, _) = kbc();
        let mut d = [0u8; 4];
        k.read(1, &mut d);
        assert_eq!(&d[..3], &[0xff; 3]);
        for _ in 0..100 {
            cmd(&mut k, 0xaa);
        }
        let n = (0..100).take_while(|_| status(&mut k) & STATUS_OBF != 0 && data(&mut k) == 0x55);
        assert_eq!(n.count(), OUT_QUEUE_MAX);
        k.write(u16::MAX, &[1, 2]);
    }
}
