//! The machine's disks: each `-drive` opened through the block layer (with a temporary qcow2
//! overlay under `snapshot=on`), a virtio-blk-pci function for each disk device, its queues'
//! doorbells served by the I/O thread (and, under KVM, rung by ioeventfds), its interrupts by
//! MSI-X through the engine's or the board's local APICs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tandem_accel::Accelerator;
use tandem_block::{CreateOptions, OpenOptions};
use tandem_hw::pc::Pc;
use tandem_hw::virtio::{self, GuestMemory, VirtioPci};
use tandem_softmmu::{Doorbell, MsiSink};

use crate::cli::drive::parse_pci_addr;
use crate::config::{DeviceConfig, DriveConfig, MachineConfig};
use crate::error::Error;
use crate::iothread::{IoHandler, IoThread};

/// The disks of a running machine; dropping it stops their I/O thread (the images are flushed
/// when the devices holding them go).
pub struct Disks {
    /// The virtio-blk functions, by `-device` order.
    pub devices: Vec<Arc<Mutex<VirtioPci>>>,
    _io: IoThread,
}

fn pci_error(e: tandem_hw::pci::PciError) -> Error {
    Error::Board(e.into())
}

fn drive_error(d: &DriveConfig, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("-drive {}: {e}", d.id))
}

/// Opens `d`'s image; with `snapshot` a fresh qcow2 overlay over it takes the writes (deleted
/// at once: the open file keeps it alive, and nothing is left behind however tandem ends).
fn open_drive(d: &DriveConfig) -> Result<Box<dyn tandem_block::BlockDriver>, Error> {
    let options = |format: Option<String>, read_only: bool| OpenOptions {
        format,
        read_only,
        cache: d.cache,
    };
    if !d.snapshot {
        return tandem_block::open(&d.file, options(d.format.clone(), d.read_only))
            .map_err(|e| drive_error(d, e));
    }
    let base = tandem_block::open(&d.file, options(d.format.clone(), true))
        .map_err(|e| drive_error(d, e))?;
    let (format, size) = (base.format_name().to_string(), base.size());
    drop(base);
    let backing = std::fs::canonicalize(&d.file).map_err(|e| drive_error(d, e))?;
    let overlay = overlay_path(&d.id);
    tandem_block::create(
        &overlay,
        &CreateOptions {
            format: "qcow2".into(),
            size: Some(size),
            backing_file: Some(backing.display().to_string()),
            backing_fmt: Some(format),
            ..CreateOptions::default()
        },
    )
    .map_err(|e| drive_error(d, format!("snapshot overlay: {e}")))?;
    let opened = tandem_block::open(&overlay, options(Some("qcow2".into()), d.read_only));
    let _ = std::fs::remove_file(&overlay);
    opened.map_err(|e| drive_error(d, format!("snapshot overlay: {e}")))
}

/// A new file name for `id`'s overlay in the temporary directory.
fn overlay_path(id: &str) -> PathBuf {
    let dir = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        "tandem-snapshot-{}-{id}-{nanos}.qcow2",
        std::process::id()
    ))
}

/// The receiver of the devices' MSI-X messages: the engine's (KVM's in-kernel APICs) or the
/// board's local APICs; none with the 8259 alone (no APIC: guests use INTx).
fn msi_sink(pc: &Pc, accel: &dyn Accelerator) -> Option<Arc<dyn MsiSink>> {
    accel.msi_sink().or_else(|| {
        let apics = pc.userspace_irqchip.as_ref()?.apics.as_ref()?;
        Some(apics.router.clone() as Arc<dyn MsiSink>)
    })
}

/// Creates every disk device of `config` on `pc`'s PCI bus, places the BARs, and starts the
/// I/O thread serving their queues.
pub fn attach(config: &MachineConfig, pc: &Pc, accel: &dyn Accelerator) -> Result<Disks, Error> {
    let msi = msi_sink(pc, accel);
    let memory = GuestMemory::connected(&pc.memory);
    let mut devices = Vec::new();
    let mut slots = Vec::new();
    for dev in config
        .devices
        .iter()
        .filter(|d| d.driver == "virtio-blk-pci")
    {
        let drive = drive_of(config, dev)?;
        let image = open_drive(drive)?;
        let read_only = drive.read_only || image.is_read_only();
        let serial = dev.prop("serial").unwrap_or("");
        let function = virtio::blk_pci(image, serial, read_only, memory.clone(), msi.clone())
            .map_err(|e| drive_error(drive, e))?;
        let function = Arc::new(Mutex::new(function));
        let slot = match dev.prop("addr").and_then(parse_pci_addr) {
            Some((slot, 0)) => {
                pc.pci.add_at(slot, function.clone()).map_err(pci_error)?;
                slot
            }
            Some((_, f)) => {
                return Err(Error::Config(format!(
                    "-device virtio-blk-pci: function {f}: the bus has single-function slots"
                )))
            }
            None => pc.pci.add(function.clone()).map_err(pci_error)?,
        };
        devices.push(function);
        slots.push(slot);
    }
    pc.pci.assign_bars().map_err(pci_error)?;
    let mut handlers = Vec::new();
    for (function, &slot) in devices.iter().zip(&slots) {
        let mut f = function.lock().unwrap_or_else(|e| e.into_inner());
        for queue in 0..f.num_queues() {
            let bell = Doorbell::new().map_err(Error::Thread)?;
            f.set_doorbell(queue, bell.try_clone().map_err(Error::Thread)?);
            let (bar, offset) = f.notify_address(queue);
            if let Some(p) = pc
                .pci
                .placements()
                .iter()
                .find(|p| p.slot == slot && p.bar == bar)
            {
                accel.register_doorbell(p.address + offset, &bell)?;
            }
            let function = function.clone();
            handlers.push(IoHandler {
                bell,
                run: Box::new(move || serve(&function, queue)),
            });
        }
    }
    let io = IoThread::spawn(handlers).map_err(Error::Thread)?;
    Ok(Disks { devices, _io: io })
}

/// Processes `queue` of `function`; a device the guest broke says why, once.
fn serve(function: &Mutex<VirtioPci>, queue: u16) {
    let mut f = function.lock().unwrap_or_else(|e| e.into_inner());
    f.notify_queue(queue);
    if let Some(e) = f.take_error() {
        eprintln!("tandem: virtio-blk: {e}: the device needs a reset");
    }
}

fn drive_of<'a>(config: &'a MachineConfig, dev: &DeviceConfig) -> Result<&'a DriveConfig, Error> {
    let id = dev.prop("drive").unwrap_or("");
    config
        .drives
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| Error::Config(format!("-device virtio-blk-pci: no -drive with id '{id}'")))
}
