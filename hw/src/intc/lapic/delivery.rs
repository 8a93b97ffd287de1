//! Interrupt messages between APICs: what an ICR write or an I/O APIC redirection entry sends,
//! and how a local APIC decides whether a message is for it (SDM Vol. 3A 11.6.1 "Interrupt
//! Command Register", 11.6.2 "Determining IPI Destination", 11.12.10 x2APIC logical mode).
//!
//! There is no APIC bus here: a sender produces an [`Ipi`] (or an [`ApicMessage`] from the
//! I/O APIC) and hands it to an [`ApicBus`], which the machine implements by asking every local
//! APIC [`Lapic::accepts`](super::Lapic::accepts) and calling
//! [`Lapic::deliver`](super::Lapic::deliver) on the chosen ones ([`super::ApicRouter`] does this).
//!
//! Warts: lowest-priority arbitration is left to the bus (the router picks the lowest
//! [`Lapic::arbitration_priority`](super::Lapic::arbitration_priority), first on ties; focus
//! processor checking is not modelled); an 8-bit destination of 0xff is a broadcast even to
//! x2APIC-mode local APICs, as KVM does for I/O APIC messages without interrupt remapping.

use super::Lapic;

/// How the receiving local APIC acts on a message (ICR / LVT / redirection bits 8-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// The vector goes to IRR.
    Fixed,
    /// Fixed, to the lowest-priority processor among the destinations.
    LowestPriority,
    /// System management interrupt (not modelled by the receivers: an event only).
    Smi,
    /// Non-maskable interrupt; the vector is ignored.
    Nmi,
    /// INIT: the receiving processor resets and waits for a start-up IPI.
    Init,
    /// Start-up IPI: a processor waiting after INIT starts at `vector << 12`.
    StartUp,
    /// The vector comes from an external 8259A-compatible controller (an INTA cycle).
    ExtInt,
}

impl DeliveryMode {
    /// Decodes a 3-bit field; 0b011 is reserved and gives None.
    pub fn from_bits(bits: u32) -> Option<Self> {
        Some(match bits & 7 {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            4 => Self::Nmi,
            5 => Self::Init,
            6 => Self::StartUp,
            7 => Self::ExtInt,
            _ => return None,
        })
    }

    /// The 3-bit encoding.
    pub fn bits(self) -> u32 {
        match self {
            Self::Fixed => 0,
            Self::LowestPriority => 1,
            Self::Smi => 2,
            Self::Nmi => 4,
            Self::Init => 5,
            Self::StartUp => 6,
            Self::ExtInt => 7,
        }
    }
}

/// How the destination field is interpreted (ICR / redirection bit 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestMode {
    /// The destination is an APIC ID.
    Physical,
    /// The destination is matched against each LDR (flat or cluster model).
    Logical,
}

/// ICR bits 18-19: a destination that ignores the destination field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shorthand {
    /// Use the destination field.
    None,
    /// Only the sender.
    SelfOnly,
    /// Every local APIC, the sender included.
    AllIncludingSelf,
    /// Every local APIC but the sender.
    AllExcludingSelf,
}

/// Edge or level triggered (ICR / LVT / redirection bit 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerMode {
    /// One-shot request.
    Edge,
    /// Held request: the receiver reports its EOI so the source can clear Remote-IRR.
    Level,
}

/// One interrupt message as the APIC bus (or a system bus write to 0xfeexxxxx) carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApicMessage {
    /// Destination: 8 bits in xAPIC mode and from the I/O APIC, 32 bits from an x2APIC.
    pub dest: u32,
    /// How `dest` is matched.
    pub dest_mode: DestMode,
    /// What the receiver does.
    pub delivery_mode: DeliveryMode,
    /// The vector (Fixed, LowestPriority; the start page for StartUp).
    pub vector: u8,
    /// Level bit: false only for the obsolete INIT level de-assert.
    pub level: bool,
    /// Edge or level.
    pub trigger: TriggerMode,
}

/// An inter-processor interrupt: a message from a local APIC's ICR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipi {
    /// APIC ID of the sender (what [`Shorthand::SelfOnly`] and `AllExcludingSelf` refer to).
    pub source: u32,
    /// A shorthand overriding `message.dest`.
    pub shorthand: Shorthand,
    /// The message.
    pub message: ApicMessage,
}

impl From<ApicMessage> for Ipi {
    /// A message with no shorthand (an I/O APIC or MSI message); `source` is then unused.
    fn from(message: ApicMessage) -> Self {
        Self {
            source: u32::MAX,
            shorthand: Shorthand::None,
            message,
        }
    }
}

impl Ipi {
    /// Whether the local APIC with ID `id` is selected by the shorthand, or None if the
    /// destination field decides (ask [`Lapic::accepts`](super::Lapic::accepts)).
    pub fn shorthand_selects(&self, id: u32) -> Option<bool> {
        match self.shorthand {
            Shorthand::None => None,
            Shorthand::SelfOnly => Some(id == self.source),
            Shorthand::AllIncludingSelf => Some(true),
            Shorthand::AllExcludingSelf => Some(id != self.source),
        }
    }

    /// Decodes an ICR value written by local APIC `source`. `x2apic` selects the 32-bit
    /// destination in bits 32-63 (else bits 56-63). None for the reserved delivery mode and for
    /// INIT level de-assert, which modern processors ignore (SDM 11.6.1).
    pub fn from_icr(source: u32, icr: u64, x2apic: bool) -> Option<Self> {
        let lo = icr as u32;
        let hi = (icr >> 32) as u32;
        let delivery_mode = DeliveryMode::from_bits(lo >> 8)?;
        let level = lo & (1 << 14) != 0;
        let trigger = if lo & (1 << 15) != 0 {
            TriggerMode::Level
        } else {
            TriggerMode::Edge
        };
        if delivery_mode == DeliveryMode::Init && !level && trigger == TriggerMode::Level {
            return None;
        }
        let shorthand = match (lo >> 18) & 3 {
            0 => Shorthand::None,
            1 => Shorthand::SelfOnly,
            2 => Shorthand::AllIncludingSelf,
            _ => Shorthand::AllExcludingSelf,
        };
        Some(Self {
            source,
            shorthand,
            message: ApicMessage {
                dest: if x2apic { hi } else { hi >> 24 },
                dest_mode: if lo & (1 << 11) != 0 {
                    DestMode::Logical
                } else {
                    DestMode::Physical
                },
                delivery_mode,
                vector: lo as u8,
                level,
                trigger,
            },
        })
    }
}

/// Where local APICs and the I/O APIC send their messages: the machine's APIC bus.
///
/// Implementations must not hold a local APIC's lock while calling into another (a self-IPI
/// re-enters the sender); [`super::UserspaceLapic`] calls these with no lock held.
pub trait ApicBus: Send + Sync {
    /// Delivers `ipi` to every local APIC it selects.
    fn send(&self, ipi: Ipi);
    /// A local APIC ended a level-triggered interrupt: I/O APICs clear Remote-IRR for `vector`.
    fn eoi(&self, vector: u8);
}

/// Whether an APIC with the given identity accepts `dest` in `mode` (SDM 11.6.2.1-11.6.2.2).
///
/// `ldr` and `dfr` are the raw registers (xAPIC) or the derived x2APIC LDR (`dfr` ignored).
pub(crate) fn dest_matches(
    id: u32,
    ldr: u32,
    dfr: u32,
    x2apic: bool,
    dest: u32,
    mode: DestMode,
) -> bool {
    if dest == 0xff || (x2apic && dest == u32::MAX) {
        return true;
    }
    match (mode, x2apic) {
        (DestMode::Physical, true) => dest == id,
        (DestMode::Physical, false) => dest == id & 0xff,
        (DestMode::Logical, true) => dest >> 16 == ldr >> 16 && dest & ldr & 0xffff != 0,
        (DestMode::Logical, false) => {
            let logical = ldr >> 24;
            let dest = dest & 0xff;
            if dfr >> 28 == 0xf {
                // Flat model: a bit per processor, eight at most.
                logical & dest != 0
            } else {
                // Cluster model: cluster in the high nibble (0xf: all), member bits below.
                (dest >> 4 == logical >> 4 || dest >> 4 == 0xf) && dest & logical & 0xf != 0
            }
        }
    }
}

/// What a register write asks the owner to send out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapicOutput {
    /// An ICR write: route it on the [`ApicBus`].
    Ipi(Ipi),
    /// An EOI ended level-triggered `vector`: tell the I/O APICs ([`ApicBus::eoi`]).
    Eoi(u8),
}

/// Requests for the vCPU itself rather than for its interrupt flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApicEvents {
    /// An NMI is pending.
    pub nmi: bool,
    /// An SMI is pending (no SMM is modelled: owners may ignore it).
    pub smi: bool,
    /// INIT was received: the local APIC has reset; the vCPU resets and waits for a SIPI.
    pub init: bool,
    /// A start-up IPI with this vector (start at `vector << 12`), for a vCPU waiting after INIT.
    pub sipi: Option<u8>,
}

impl ApicEvents {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Lapic {
    /// Whether this APIC is a destination of `dest` in `mode` (the destination field only;
    /// shorthands are the bus's business through [`Lapic::selected_by`]).
    pub fn accepts(&self, dest: u32, mode: DestMode) -> bool {
        self.hw_enabled() && dest_matches(self.id, self.ldr, self.dfr, self.x2apic(), dest, mode)
    }

    /// Whether `ipi` selects this APIC, shorthand included.
    pub fn selected_by(&self, ipi: &Ipi) -> bool {
        match ipi.shorthand_selects(self.id) {
            Some(sel) => sel && self.hw_enabled(),
            None => self.accepts(ipi.message.dest, ipi.message.dest_mode),
        }
    }

    /// Accepts a message the bus chose this APIC for.
    pub fn deliver(&mut self, msg: &ApicMessage) {
        match msg.delivery_mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.set_irr(msg.vector, msg.trigger == TriggerMode::Level)
            }
            DeliveryMode::Nmi => self.events.nmi = true,
            DeliveryMode::Smi => self.events.smi = true,
            DeliveryMode::Init => {
                self.reset();
                self.events.init = true;
            }
            DeliveryMode::StartUp => self.events.sipi = Some(msg.vector),
            // Only LINT0 reaches the PIC; an ExtINT message has no INTA cycle to answer.
            DeliveryMode::ExtInt => {}
        }
    }
}
