//! A 16550A UART (the PC's COM port), after the TI/NS PC16550D datasheet.
//!
//! Register reads and writes come in through [`PortDevice`] at offsets 0..=7; transmitted bytes
//! go to an injected [`Write`]; received bytes are pushed by the host with
//! [`Serial16550::enqueue_input`]; the interrupt is an [`IrqLine`] whose level is recomputed
//! after every access from the IIR priorities (line status > received data / timeout > THR
//! empty > modem status).
//!
//! Transmission is instantaneous: a THR write reaches `out` at once (flushed, an I/O error is
//! counted and otherwise ignored), so THRE and TEMT read as set and the THRE interrupt comes back
//! right after every write. The host side never overruns the receiver: `enqueue_input` takes only
//! what fits (16 bytes with FIFOs enabled, the single holding register without) and the caller
//! retries the rest later. Only loopback can overrun (OE).
//!
//! Accesses wider than a byte are split into byte accesses at consecutive offsets, as the ISA
//! bus does for an 8-bit device; offsets past 7 read 0xff and ignore writes.
//!
//! A break from the host ([`Serial16550::enqueue_break`], the console's Ctrl-A b) arrives as a
//! received 0 byte with LSR.BI set, a line-status interrupt when IER enables it; Linux's 8250
//! driver turns it into a magic SysRq when a key follows within 5 s. It is taken only into an
//! empty receiver, so that BI belongs to the byte at the top of the FIFO, as on the chip.
//!
//! Warts: baud rate, word length, parity, stop bits and the transmitter's break (LCR bit 6)
//! are stored but have no effect; parity/framing errors never happen and LSR bit 7 (error in
//! the receive FIFO) is never set; the character timeout interrupt (IIR 0x0c) is
//! reported as soon as the FIFO holds data below the trigger level, since no character time is
//! modelled; DMA mode (FCR bit 3) is accepted and ignored; OUT2 does not gate the interrupt line
//! (it does on a PC board, but guests that matter set it anyway); with loopback off the modem
//! inputs are a connected peer: CTS, DSR and DCD asserted, RI not; in loopback the host's
//! input is held off (`rx_space` is 0), as the serial input is disconnected.

use std::collections::VecDeque;
use std::io::Write;

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::{IrqLine, PortDevice};

/// Depth of the receive FIFO.
pub const FIFO_LEN: usize = 16;

const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const IER_RLS: u8 = 0x04;
const IER_MSI: u8 = 0x08;

const IIR_NONE: u8 = 0x01;
const IIR_MSI: u8 = 0x00;
const IIR_THRE: u8 = 0x02;
const IIR_RDA: u8 = 0x04;
const IIR_RLS: u8 = 0x06;
const IIR_TIMEOUT: u8 = 0x0c;
const IIR_FIFO_ON: u8 = 0xc0;

const FCR_ENABLE: u8 = 0x01;
const FCR_RX_RESET: u8 = 0x02;
/// Bits of the FCR that stay set (the reset bits clear themselves).
const FCR_KEEP: u8 = 0xc9;

const LCR_DLAB: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const MCR_MASK: u8 = 0x1f;

const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_BI: u8 = 0x10;
const LSR_ERRORS: u8 = 0x1e;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

const MSR_DCTS: u8 = 0x01;
const MSR_DDSR: u8 = 0x02;
const MSR_TERI: u8 = 0x04;
const MSR_DDCD: u8 = 0x08;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;
const MSR_DELTAS: u8 = 0x0f;
/// Modem inputs when a peer is attached and loopback is off.
const MSR_PEER: u8 = MSR_DCD | MSR_DSR | MSR_CTS;

/// Plain-data snapshot of the UART's registers and receive FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial16550State {
    /// Divisor latch, low byte.
    pub dll: u8,
    /// Divisor latch, high byte.
    pub dlm: u8,
    /// Interrupt enable register.
    pub ier: u8,
    /// FIFO control (enable, DMA mode and trigger bits).
    pub fcr: u8,
    /// Line control register.
    pub lcr: u8,
    /// Modem control register.
    pub mcr: u8,
    /// Line status register.
    pub lsr: u8,
    /// Modem status register.
    pub msr: u8,
    /// Scratch register.
    pub scr: u8,
    /// A THR-empty interrupt is pending (cleared by an IIR read reporting it or a THR write).
    pub thre_pending: bool,
    /// Bytes waiting in the receiver, oldest first.
    pub rx: Vec<u8>,
}

/// A 16550A UART.
pub struct Serial16550 {
    dll: u8,
    dlm: u8,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    lsr: u8,
    msr: u8,
    scr: u8,
    thre_pending: bool,
    rx: VecDeque<u8>,
    irq: IrqLine,
    irq_level: bool,
    out: Box<dyn Write + Send>,
    tx_bytes: u64,
    tx_errors: u64,
}

impl Serial16550 {
    /// A UART in its reset state (9600 baud divisor), interrupts on `irq`, output to `out`.
    pub fn new(irq: IrqLine, out: Box<dyn Write + Send>) -> Self {
        Self {
            dll: 0x0c,
            dlm: 0,
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            lsr: LSR_THRE | LSR_TEMT,
            msr: MSR_PEER,
            scr: 0,
            thre_pending: false,
            rx: VecDeque::with_capacity(FIFO_LEN),
            irq,
            irq_level: false,
            out,
            tx_bytes: 0,
            tx_errors: 0,
        }
    }

    /// Pushes host input into the receiver; returns how many bytes were taken (the rest must be
    /// offered again later, nothing is dropped).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.rx_space());
        if n == 0 {
            return 0;
        }
        self.rx.extend(&bytes[..n]);
        self.lsr |= LSR_DR;
        self.update_irq();
        n
    }

    /// Receives a break: a 0 byte with LSR.BI set (a line-status interrupt if IER enables
    /// it). Taken only when the receiver is empty, so the guest sees BI with its own byte;
    /// returns false otherwise (or in loopback), and the caller retries later.
    pub fn enqueue_break(&mut self) -> bool {
        if !self.rx.is_empty() || self.rx_space() == 0 {
            return false;
        }
        self.rx.push_back(0);
        self.lsr |= LSR_DR | LSR_BI;
        self.update_irq();
        true
    }

    /// How many bytes [`Serial16550::enqueue_input`] would take now.
    pub fn rx_space(&self) -> usize {
        if self.loopback() {
            return 0;
        }
        self.rx_capacity().saturating_sub(self.rx.len())
    }

    /// Bytes written to `out` so far.
    pub fn tx_bytes(&self) -> u64 {
        self.tx_bytes
    }

    /// Output bytes whose write or flush failed.
    pub fn tx_errors(&self) -> u64 {
        self.tx_errors
    }

    /// Current level of the interrupt line.
    pub fn irq_level(&self) -> bool {
        self.irq_level
    }

    /// A snapshot of the registers and receive FIFO.
    pub fn state(&self) -> Serial16550State {
        Serial16550State {
            dll: self.dll,
            dlm: self.dlm,
            ier: self.ier,
            fcr: self.fcr,
            lcr: self.lcr,
            mcr: self.mcr,
            lsr: self.lsr,
            msr: self.msr,
            scr: self.scr,
            thre_pending: self.thre_pending,
            rx: self.rx.iter().copied().collect(),
        }
    }

    /// Guest read of the byte register at `offset` (0..=7).
    pub fn read_reg(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        let v = match offset {
            0 if dlab => self.dll,
            0 => self.read_rbr(),
            1 if dlab => self.dlm,
            1 => self.ier,
            2 => self.read_iir(),
            3 => self.lcr,
            4 => self.mcr,
            5 => {
                let v = self.lsr;
                self.lsr &= !(LSR_OE | LSR_ERRORS);
                v
            }
            6 => {
                let v = self.msr;
                self.msr &= !MSR_DELTAS;
                v
            }
            7 => self.scr,
            _ => 0xff,
        };
        self.update_irq();
        v
    }

    /// Guest write of `v` to the byte register at `offset` (0..=7).
    pub fn write_reg(&mut self, offset: u16, v: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll = v,
            0 => self.write_thr(v),
            1 if dlab => self.dlm = v,
            1 => self.write_ier(v),
            2 => self.write_fcr(v),
            3 => self.lcr = v,
            4 => self.write_mcr(v),
            // LSR and MSR are read-only; writes to them are for factory test only.
            5 | 6 => {}
            7 => self.scr = v,
            _ => {}
        }
        self.update_irq();
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_LEN
        } else {
            1
        }
    }

    fn rx_trigger(&self) -> usize {
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    fn read_rbr(&mut self) -> u8 {
        let v = self.rx.pop_front().unwrap_or(0);
        if self.rx.is_empty() {
            self.lsr &= !LSR_DR;
        }
        v
    }

    fn write_thr(&mut self, v: u8) {
        self.thre_pending = false;
        if self.loopback() {
            self.receive_looped(v);
        } else {
            self.tx_bytes += 1;
            if self
                .out
                .write_all(&[v])
                .and_then(|()| self.out.flush())
                .is_err()
            {
                self.tx_errors += 1;
            }
        }
        // The byte left the shift register at once: THR and the transmitter are empty again.
        self.lsr |= LSR_THRE | LSR_TEMT;
        self.thre_pending = true;
    }

    fn receive_looped(&mut self, v: u8) {
        if self.rx.len() >= self.rx_capacity() {
            // The FIFO keeps its contents; the character in the shift register is lost.
            self.lsr |= LSR_OE;
        } else {
            self.rx.push_back(v);
            self.lsr |= LSR_DR;
        }
    }

    fn write_ier(&mut self, v: u8) {
        let old = self.ier;
        self.ier = v & 0x0f;
        // Enabling THRE while THR is empty raises the interrupt even if an IIR read had
        // cleared it (Linux's UART_BUG_THRE probe and Windows rely on it); disabling drops it.
        if (old ^ self.ier) & IER_THRE != 0 {
            self.thre_pending = self.ier & IER_THRE != 0 && self.lsr & LSR_THRE != 0;
        }
    }

    fn write_fcr(&mut self, v: u8) {
        let was_enabled = self.fifo_enabled();
        let enable = v & FCR_ENABLE != 0;
        if enable != was_enabled {
            // Switching between 16450 and FIFO mode empties both FIFOs.
            self.clear_rx();
        }
        if !enable {
            // The other bits only take when FCR0 is written as 1.
            self.fcr = 0;
            return;
        }
        if v & FCR_RX_RESET != 0 {
            self.clear_rx();
        }
        // FCR_TX_RESET needs nothing: the transmitter never holds data.
        self.fcr = v & FCR_KEEP;
    }

    fn clear_rx(&mut self) {
        self.rx.clear();
        self.lsr &= !LSR_DR;
    }

    fn write_mcr(&mut self, v: u8) {
        self.mcr = v & MCR_MASK;
        let inputs = if self.loopback() {
            let m = self.mcr;
            let mut s = 0;
            if m & MCR_RTS != 0 {
                s |= MSR_CTS;
            }
            if m & MCR_DTR != 0 {
                s |= MSR_DSR;
            }
            if m & MCR_OUT1 != 0 {
                s |= MSR_RI;
            }
            if m & MCR_OUT2 != 0 {
                s |= MSR_DCD;
            }
            s
        } else {
            MSR_PEER
        };
        self.set_modem_inputs(inputs);
    }

    fn set_modem_inputs(&mut self, inputs: u8) {
        let old = self.msr;
        let changed = old ^ inputs;
        let mut deltas = old & MSR_DELTAS;
        if changed & MSR_CTS != 0 {
            deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            deltas |= MSR_DDSR;
        }
        // TERI flags only the trailing edge: RI going from on to off.
        if old & MSR_RI != 0 && inputs & MSR_RI == 0 {
            deltas |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            deltas |= MSR_DDCD;
        }
        self.msr = (inputs & !MSR_DELTAS) | deltas;
    }

    /// The highest-priority pending interrupt, as the IIR's low nibble.
    fn pending(&self) -> u8 {
        if self.ier & IER_RLS != 0 && self.lsr & (LSR_OE | LSR_ERRORS) != 0 {
            return IIR_RLS;
        }
        if self.ier & IER_RDA != 0 && !self.rx.is_empty() {
            if !self.fifo_enabled() || self.rx.len() >= self.rx_trigger() {
                return IIR_RDA;
            }
            return IIR_TIMEOUT;
        }
        if self.ier & IER_THRE != 0 && self.thre_pending {
            return IIR_THRE;
        }
        if self.ier & IER_MSI != 0 && self.msr & MSR_DELTAS != 0 {
            return IIR_MSI;
        }
        IIR_NONE
    }

    fn read_iir(&mut self) -> u8 {
        let id = self.pending();
        if id == IIR_THRE {
            self.thre_pending = false;
        }
        let fifo = if self.fifo_enabled() { IIR_FIFO_ON } else { 0 };
        id | fifo
    }

    fn update_irq(&mut self) {
        let level = self.pending() != IIR_NONE;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }
}

impl PortDevice for Serial16550 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        read_bytewise(offset, data, |off| self.read_reg(off));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |off, v| self.write_reg(off, v));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tandem_softmmu::IrqSink;

    use super::*;

    #[derive(Default)]
    struct Levels(Mutex<Vec<bool>>);
    impl IrqSink for Levels {
        fn set_irq(&self, _gsi: u32, level: bool) {
            self.0.lock().unwrap().push(level);
        }
    }
    impl Levels {
        fn last(&self) -> bool {
            self.0.lock().unwrap().last().copied().unwrap_or(false)
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("gone"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("gone"))
        }
    }

    fn uart() -> (Serial16550, Arc<Levels>, Sink) {
        let levels = Arc::new(Levels::default());
        let sink = Sink::default();
        let u = Serial16550::new(IrqLine::new(levels.clone(), 4), Box::new(sink.clone()));
        (u, levels, sink)
    }

    #[test]
    fn reset_values_match_datasheet() {
        let (mut u, levels, _) = uart();
        assert_eq!(u.read_reg(1), 0, "IER");
        assert_eq!(u.read_reg(2), 0x01, "IIR: no interrupt pending");
        assert_eq!(u.read_reg(3), 0, "LCR");
        assert_eq!(u.read_reg(4), 0, "MCR");
        assert_eq!(u.read_reg(5), 0x60, "LSR: THRE and TEMT");
        assert_eq!(u.read_reg(6) & 0xf0, 0xb0, "MSR: DCD DSR CTS from the peer");
        assert!(!levels.last());
    }

    #[test]
    fn thr_goes_to_output_and_dlab_selects_divisor() {
        let (mut u, _, sink) = uart();
        u.write(0, b"h");
        u.write_reg(0, b'i');
        assert_eq!(&*sink.0.lock().unwrap(), b"hi");
        u.write_reg(3, 0x83);
        u.write_reg(0, 0x01);
        u.write_reg(1, 0x00);
        assert_eq!(u.read_reg(0), 0x01);
        u.write_reg(3, 0x03);
        assert_eq!(
            &*sink.0.lock().unwrap(),
            b"hi",
            "divisor writes are not output"
        );
        assert_eq!(u.state().dll, 1);
        assert_eq!(u.read_reg(1), 0, "IER untouched by the DLM write");
        u.write_reg(7, 0x5a);
        assert_eq!(u.read_reg(7), 0x5a);
        assert_eq!(u.tx_bytes(), 2);
    }

    #[test]
    fn output_errors_are_counted_not_fatal() {
        let mut u = Serial16550::new(
            IrqLine::new(Arc::new(Levels::default()), 4),
            Box::new(Broken),
        );
        u.write_reg(0, b'x');
        u.write_reg(0, b'y');
        assert_eq!(u.tx_errors(), 2);
        assert_eq!(u.read_reg(5) & 0x60, 0x60);
    }

    #[test]
    fn thre_interrupt_on_enable_cleared_by_iir_read_and_rearmed_by_write() {
        let (mut u, levels, _) = uart();
        u.write_reg(1, IER_THRE);
        assert!(levels.last(), "enabling THRE with THR empty interrupts");
        assert_eq!(u.read_reg(2), 0x02);
        assert!(!levels.last(), "IIR read reporting THRE clears it");
        assert_eq!(u.read_reg(2), 0x01);
        u.write_reg(0, b'a');
        assert!(levels.last(), "THR empties again after the write");
        // Toggling IER re-samples THRE (Linux's UART_BUG_THRE probe expects this).
        u.read_reg(2);
        u.write_reg(1, 0);
        assert!(!levels.last());
        u.write_reg(1, IER_THRE);
        assert_eq!(u.read_reg(2) & 0x0f, 0x02);
    }

    #[test]
    fn received_data_interrupt_and_lsr_dr() {
        let (mut u, levels, _) = uart();
        u.write_reg(1, IER_RDA);
        assert!(!levels.last());
        assert_eq!(u.enqueue_input(b"ab"), 1, "16450 mode holds one byte");
        assert!(levels.last());
        assert_eq!(u.read_reg(2), 0x04);
        assert_eq!(u.read_reg(5) & LSR_DR, LSR_DR);
        assert_eq!(u.read_reg(0), b'a');
        assert!(!levels.last());
        assert_eq!(u.read_reg(5) & LSR_DR, 0);
        assert_eq!(u.rx_space(), 1);
    }

    #[test]
    fn fifo_takes_sixteen_and_never_overruns_from_host() {
        let (mut u, _, _) = uart();
        u.write_reg(2, 0xc7);
        assert_eq!(u.read_reg(2) & 0xc0, 0xc0, "FIFOs enabled in IIR");
        let data: Vec<u8> = (0..20).collect();
        assert_eq!(u.enqueue_input(&data), 16);
        assert_eq!(u.rx_space(), 0);
        assert_eq!(u.enqueue_input(&data[16..]), 0);
        assert_eq!(u.read_reg(5) & LSR_OE, 0);
        for i in 0..16 {
            assert_eq!(u.read_reg(0), i);
        }
        assert_eq!(u.enqueue_input(&data[16..]), 4);
        u.write_reg(2, 0xc3);
        assert_eq!(u.read_reg(5) & LSR_DR, 0, "RX FIFO reset");
        assert_eq!(u.rx_space(), 16);
    }

    #[test]
    fn fifo_trigger_level_and_timeout() {
        let (mut u, levels, _) = uart();
        u.write_reg(2, 0x41); // FIFO on, trigger at 4
        u.write_reg(1, IER_RDA);
        u.enqueue_input(b"ab");
        assert_eq!(u.read_reg(2), 0xcc, "below trigger: character timeout");
        u.enqueue_input(b"cd");
        assert_eq!(u.read_reg(2), 0xc4, "at trigger: data available");
        assert!(levels.last());
    }

    #[test]
    fn priorities_rls_over_rda_over_thre() {
        let (mut u, levels, _) = uart();
        u.write_reg(4, MCR_LOOP);
        u.read_reg(6);
        u.write_reg(1, IER_RDA | IER_THRE | IER_RLS | IER_MSI);
        u.write_reg(0, 1);
        u.write_reg(0, 2); // overruns the one-byte holding register
        assert_eq!(u.read_reg(2), 0x06);
        assert_eq!(u.read_reg(5) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(u.read_reg(2), 0x04, "OE cleared by the LSR read");
        assert_eq!(u.read_reg(0), 1);
        assert_eq!(u.read_reg(2), 0x02);
        assert_eq!(u.read_reg(2), 0x01);
        assert!(!levels.last());
    }

    #[test]
    fn a_break_is_a_zero_byte_with_bi_and_a_line_status_interrupt() {
        let (mut u, levels, _) = uart();
        u.write_reg(2, 0x01); // FIFO on, trigger at 1
        u.write_reg(1, IER_RDA | IER_RLS);
        u.enqueue_input(b"a");
        assert!(!u.enqueue_break(), "waits until the receiver is empty");
        assert_eq!(u.read_reg(0), b'a');
        assert!(u.enqueue_break());
        assert!(levels.last());
        assert_eq!(u.read_reg(2), 0xc6, "line status outranks received data");
        assert_eq!(
            u.enqueue_input(b"h"),
            1,
            "keys typed after the break queue behind it"
        );
        assert_eq!(u.read_reg(5) & (LSR_BI | LSR_DR), LSR_BI | LSR_DR);
        assert_eq!(u.read_reg(5) & LSR_BI, 0, "BI cleared by the LSR read");
        assert_eq!(u.read_reg(2), 0xc4);
        assert_eq!(u.read_reg(0), 0, "the break's byte");
        assert_eq!(u.read_reg(0), b'h');
        assert!(!levels.last());
        u.write_reg(4, MCR_LOOP);
        assert!(!u.enqueue_break(), "no host input in loopback");
    }

    #[test]
    fn loopback_routes_thr_and_modem_lines() {
        let (mut u, _, sink) = uart();
        u.write_reg(4, MCR_LOOP);
        // Leaving the peer's DCD/DSR/CTS for the loop's (all off) flags their changes.
        assert_eq!(u.read_reg(6), MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assert_eq!(u.rx_space(), 0, "host input held off in loopback");
        u.write_reg(0, 0x42);
        assert!(sink.0.lock().unwrap().is_empty());
        assert_eq!(u.read_reg(0), 0x42);
        u.write_reg(4, MCR_LOOP | MCR_RTS | MCR_OUT1);
        assert_eq!(u.read_reg(6), MSR_CTS | MSR_RI | MSR_DCTS);
        u.write_reg(4, MCR_LOOP | MCR_DTR | MCR_OUT2);
        assert_eq!(
            u.read_reg(6),
            MSR_DSR | MSR_DCD | MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD
        );
        assert_eq!(u.read_reg(4), MCR_LOOP | MCR_DTR | MCR_OUT2);
    }

    #[test]
    fn modem_status_interrupt() {
        let (mut u, levels, _) = uart();
        u.write_reg(1, IER_MSI);
        assert!(!levels.last());
        u.write_reg(4, MCR_LOOP);
        assert!(levels.last());
        assert_eq!(u.read_reg(2), 0x00);
        u.read_reg(6);
        assert!(!levels.last());
    }

    #[test]
    fn wide_and_out_of_range_accesses_are_harmless() {
        let (mut u, _, _) = uart();
        let mut d = [0u8; 4];
        u.read(6, &mut d);
        assert_eq!(d[1], 0, "scratch");
        assert_eq!(&d[2..], &[0xff, 0xff]);
        u.write(7, &[1, 2, 3, 4]);
        assert_eq!(u.read_reg(7), 1);
        u.write(u16::MAX, &[1, 2]);
        u.read(u16::MAX, &mut d);
        assert_eq!(d, [0xff; 4]);
    }
}
