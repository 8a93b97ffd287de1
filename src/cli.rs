//! The command line, in QEMU's spellings where QEMU has one (`-accel`, `-m`, `-kernel`, ...).
//!
//! clap wants `--long` options; QEMU users type `-long`. [`normalize`] rewrites a single-dash
//! word that names one of our long options into its double-dash form before clap sees it, so
//! both spellings work and an unknown `-word` is still reported by name.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use tandem_hw::loader::{EntryMode, FlatSpec};

use crate::config::{AccelKind, MachineConfig, SerialConfig};

pub mod difftest;
pub mod drive;
pub mod exec;
pub mod img;
pub mod qemu_opts;

/// tandem: a full-system x86_64 emulator (a JIT and KVM behind one PC machine).
#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about,
    after_help = "Options may be written with one dash, as in QEMU (-accel kvm -m 256M)."
)]
struct Args {
    /// Engine: kvm or tcg (`-accel help` lists those built in).
    #[arg(long = "accel", value_name = "NAME[,PROP=VALUE...]")]
    accel: Option<String>,
    /// Same as -accel kvm.
    #[arg(long = "enable-kvm")]
    enable_kvm: bool,
    /// Guest RAM: a number of MiB, or with a K/M/G/T suffix (default 128M).
    #[arg(short = 'm', value_name = "SIZE")]
    memory: Option<String>,
    /// Back guest RAM with this file (shared mapping).
    #[arg(long = "mem-path", value_name = "FILE")]
    mem_path: Option<PathBuf>,
    /// Kernel image: multiboot, ELF64, ELF32, or a flat binary with --flat-addr.
    #[arg(long = "kernel", value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initial RAM disk (a multiboot module named "initrd").
    #[arg(long = "initrd", value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long = "append", value_name = "CMDLINE", allow_hyphen_values = true)]
    append: Option<String>,
    /// COM1: stdio, file:PATH, or none.
    #[arg(long = "serial", value_name = "DEV")]
    serial: Option<String>,
    /// No graphical output (the only kind tandem has); serial on stdio.
    #[arg(long = "nographic")]
    nographic: bool,
    /// The console's escape character, as a decimal or 0x-hex code (default 0x01, Ctrl-A;
    /// -echr 0x14 makes it Ctrl-T).
    #[arg(long = "echr", value_name = "CODE")]
    echr: Option<String>,
    /// Exit instead of rebooting on a triple fault or reset request.
    #[arg(long = "no-reboot")]
    no_reboot: bool,
    /// Machine: pc, with kernel-irqchip=on|off (`-machine help`).
    #[arg(short = 'M', long = "machine", value_name = "[TYPE][,PROP=VALUE...]")]
    machine: Option<String>,
    /// Load -kernel as a flat binary at this guest-physical address.
    #[arg(long = "flat-addr", value_name = "ADDR")]
    flat_addr: Option<String>,
    /// CPU mode at a flat binary's entry: real, protected or long (default long).
    #[arg(long = "entry-mode", value_name = "MODE", requires = "flat_addr")]
    entry_mode: Option<String>,
    /// Trace items, as QEMU's -d: in_asm, op, out_asm, cpu, exec, int, unimp (`-d help`).
    #[arg(short = 'd', value_name = "ITEM[,...]")]
    log: Option<String>,
    /// Write the -d trace to FILE instead of stderr.
    #[arg(short = 'D', value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// A disk image: file=PATH[,format=raw|qcow2|qed][,if=virtio|none][,id=ID][,cache=MODE]
    /// [,readonly=on][,snapshot=on].
    #[arg(long = "drive", value_name = "OPTIONS")]
    drive: Vec<String>,
    /// A device: NAME[,PROP=VALUE...] (`-device help` lists them, `-device NAME,help` their
    /// properties).
    #[arg(long = "device", value_name = "NAME[,PROP=VALUE...]")]
    device: Vec<String>,
    /// Write every disk's changes to a temporary overlay; the images stay unchanged.
    #[arg(long = "snapshot")]
    snapshot: bool,
}

/// Single-dash spellings accepted for long options.
const LONG_OPTIONS: &[&str] = &[
    "accel",
    "enable-kvm",
    "mem-path",
    "kernel",
    "initrd",
    "append",
    "serial",
    "nographic",
    "echr",
    "no-reboot",
    "machine",
    "flat-addr",
    "entry-mode",
    "drive",
    "device",
    "snapshot",
    "help",
    "version",
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a machine.
    Run(MachineConfig),
    /// Run an instruction snippet (`tandem exec ...`).
    Exec(Box<exec::ExecRequest>),
    /// Run the differential suite (`tandem difftest ...`).
    Difftest(Box<difftest::DiffRequest>),
    /// Run a disk image command (`tandem img ...`).
    Img(Box<crate::img::ImgCommand>),
    /// Print this text and exit 0 (help, version, `-accel help`).
    Print(String),
}

/// A command line that cannot be honoured; the message names the culprit.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Options that take a value (the next word is never an option).
const VALUE_OPTIONS: &[&str] = &[
    "accel",
    "mem-path",
    "kernel",
    "initrd",
    "append",
    "serial",
    "echr",
    "machine",
    "flat-addr",
    "entry-mode",
    "drive",
    "device",
    "m",
    "M",
    "d",
    "D",
];

/// Rewrites QEMU-style `-option` words into `--option`; a single-dash word that is no option
/// of ours is reported whole (clap would otherwise complain about its first letter only).
pub fn normalize(args: impl IntoIterator<Item = String>) -> Result<Vec<String>, CliError> {
    normalize_with(args, LONG_OPTIONS, VALUE_OPTIONS)
}

/// [`normalize`] for a command whose long options are `long_options`, of which
/// `value_options` take a value.
pub(crate) fn normalize_with(
    args: impl IntoIterator<Item = String>,
    long_options: &[&str],
    value_options: &[&str],
) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut expect_value = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || expect_value {
            expect_value = false;
            out.push(a);
            continue;
        }
        let long = a.strip_prefix("--");
        let single = a
            .strip_prefix('-')
            .filter(|n| !n.starts_with('-') && !n.is_empty());
        match (long, single) {
            (Some(n), _) => {
                expect_value = !n.contains('=') && value_options.contains(&n);
                out.push(a);
            }
            (None, Some(n)) if n.len() == 1 => {
                expect_value = value_options.contains(&n);
                out.push(a);
            }
            (None, Some(word)) => {
                let n = word.split('=').next().unwrap_or(word);
                if !long_options.contains(&n) {
                    return Err(CliError(format!("unknown option '{a}' (see --help)")));
                }
                expect_value = !word.contains('=') && value_options.contains(&n);
                out.push(format!("-{a}"));
            }
            (None, None) => out.push(a),
        }
    }
    Ok(out)
}

/// Parses a QEMU size: a plain number is MiB; suffixes K, M, G, T (binary), B for bytes.
pub fn parse_size(s: &str) -> Result<u64, CliError> {
    let bad = || CliError(format!("-m: invalid size '{s}'"));
    let s = s.strip_prefix("size=").unwrap_or(s);
    let (num, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'B' => 0,
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad()),
            };
            (&s[..i], shift)
        }
        _ => (s, 20),
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_accel(spec: &str) -> Result<Option<(AccelKind, tandem_accel::TcgConfig)>, CliError> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or("");
    let kind = match name {
        "help" => return Ok(None),
        "kvm" => AccelKind::Kvm,
        "tcg" => AccelKind::Tcg,
        other => {
            return Err(CliError(format!(
                "-accel: unknown accelerator '{other}' (try -accel help)"
            )))
        }
    };
    let mut tcg = tandem_accel::TcgConfig::default();
    for prop in parts {
        match (kind, prop.split_once('=')) {
            (AccelKind::Tcg, Some(("stats", v))) => {
                tcg.print_stats = match v {
                    "on" | "true" | "yes" => true,
                    "off" | "false" | "no" => false,
                    _ => {
                        return Err(CliError(format!(
                            "-accel tcg: invalid stats value '{v}' (on or off)"
                        )))
                    }
                }
            }
            (AccelKind::Tcg, Some(("tier", v))) => {
                tcg.tier = match v {
                    "auto" => tandem_accel::Tier::Auto,
                    "interp" => tandem_accel::Tier::Interp,
                    "jit" => tandem_accel::Tier::Jit,
                    _ => {
                        return Err(CliError(format!(
                            "-accel tcg: invalid tier '{v}' (auto, interp or jit)"
                        )))
                    }
                }
            }
            _ => {
                return Err(CliError(format!(
                    "-accel: unsupported property '{prop}' for '{name}'"
                )))
            }
        }
    }
    Ok(Some((kind, tcg)))
}

/// `-machine` result: Some(kernel_irqchip) or None for `help`.
fn parse_machine(spec: &str) -> Result<Option<bool>, CliError> {
    let mut irqchip = true;
    for (i, part) in spec.split(',').enumerate() {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None if i == 0 => ("type", Some(part)),
            None => (part, None),
        };
        match (key, value) {
            ("type", Some("help")) => return Ok(None),
            ("type", Some("pc" | "q35" | "")) => {}
            ("type", Some(t)) => {
                return Err(CliError(format!(
                    "-machine: unsupported machine type '{t}' (try -machine help)"
                )))
            }
            ("kernel-irqchip" | "kernel_irqchip", Some("on" | "true" | "yes")) => irqchip = true,
            ("kernel-irqchip" | "kernel_irqchip", Some("off" | "false" | "no")) => irqchip = false,
            ("kernel-irqchip" | "kernel_irqchip", v) => {
                return Err(CliError(format!(
                    "-machine: invalid kernel-irqchip value '{}' (on or off)",
                    v.unwrap_or("")
                )))
            }
            (k, _) => return Err(CliError(format!("-machine: unsupported property '{k}'"))),
        }
    }
    Ok(Some(irqchip))
}

/// `-echr`: a character code, decimal or 0x-hex, that fits a byte.
fn parse_echr(code: &str) -> Result<u8, CliError> {
    parse_u64(code)
        .and_then(|c| u8::try_from(c).ok())
        .ok_or_else(|| {
            CliError(format!(
                "-echr: invalid character code '{code}' (0 to 255, decimal or 0x-hex)"
            ))
        })
}

fn parse_serial(spec: &str) -> Result<SerialConfig, CliError> {
    match spec {
        "stdio" | "mon:stdio" => Ok(SerialConfig::Stdio),
        "none" | "null" => Ok(SerialConfig::None),
        s => match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SerialConfig::File(path.into())),
            _ => Err(CliError(format!(
                "-serial: unsupported device '{s}' (stdio, file:PATH or none)"
            ))),
        },
    }
}

/// The `-accel help` text.
pub fn accel_help() -> String {
    let mut s = String::from("Accelerators supported in this binary:\n");
    for (name, built, what) in tandem_accel::available_accelerators() {
        if built {
            s.push_str(&format!("{name:<5} {what}\n"));
        }
    }
    for (name, built, what) in tandem_accel::available_accelerators() {
        if !built {
            s.push_str(&format!("({name}: {what})\n"));
        }
    }
    s
}

/// Parses a whole command line (`args[0]` is the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let args: Vec<String> = args.into_iter().collect();
    match args.get(1).map(String::as_str) {
        Some("exec") => return exec::parse(args),
        Some("img") => return img::parse(args),
        Some("difftest") => return difftest::parse(args),
        _ => {}
    }
    let args = match Args::try_parse_from(normalize(args)?) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Command::Print(e.render().to_string()))
                }
                _ => Err(CliError(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    let mut accel = AccelKind::Kvm;
    let mut tcg = tandem_accel::TcgConfig::default();
    if let Some(spec) = &args.accel {
        match parse_accel(spec)? {
            Some((kind, options)) => {
                accel = kind;
                tcg = options;
            }
            None => return Ok(Command::Print(accel_help())),
        }
    }
    if let Some(items) = &args.log {
        if items == "help" {
            return Ok(Command::Print(tandem_accel::log::TraceFlags::help().into()));
        }
        tcg.trace = tandem_accel::log::TraceFlags::parse(items)
            .map_err(|item| CliError(format!("-d: unknown log item '{item}' (try -d help)")))?;
    }
    if let Some(path) = &args.log_file {
        tandem_accel::log::set_log_file(path)
            .map_err(|e| CliError(format!("-D: cannot open '{}': {e}", path.display())))?;
    }
    if args.enable_kvm {
        if args.accel.is_some() && accel != AccelKind::Kvm {
            return Err(CliError("-enable-kvm conflicts with -accel tcg".into()));
        }
        accel = AccelKind::Kvm;
    }
    let mut kernel_irqchip = true;
    if let Some(spec) = &args.machine {
        match parse_machine(spec)? {
            Some(on) => kernel_irqchip = on,
            None => {
                return Ok(Command::Print(
                    "Supported machines are:\npc                   Standard PC (the default)\n"
                        .into(),
                ))
            }
        }
    }
    let mut devices = Vec::new();
    for spec in &args.device {
        match drive::parse_device(spec)? {
            drive::DeviceArg::Device(d) => devices.push(d),
            drive::DeviceArg::Help(text) => return Ok(Command::Print(text)),
        }
    }
    let mut drives = args
        .drive
        .iter()
        .enumerate()
        .map(|(i, spec)| drive::parse_drive(spec, i))
        .collect::<Result<Vec<_>, _>>()?;
    drive::resolve(&mut drives, &mut devices, args.snapshot)?;
    let Some(kernel) = args.kernel else {
        let mut cmd = Args::command();
        return Err(CliError(format!(
            "no kernel given: use -kernel FILE\n\n{}",
            cmd.render_usage()
        )));
    };
    let mut config = MachineConfig::new(accel, kernel);
    config.kernel_irqchip = kernel_irqchip;
    config.tcg = tcg;
    config.drives = drives;
    config.devices = devices;
    if let Some(m) = &args.memory {
        config.ram_size = parse_size(m)?;
        if config.ram_size == 0 {
            return Err(CliError(format!(
                "-m: invalid size '{m}': RAM cannot be empty"
            )));
        }
    }
    config.mem_path = args.mem_path;
    config.initrd = args.initrd;
    config.append = args.append.unwrap_or_default();
    config.no_reboot = args.no_reboot;
    if let Some(s) = &args.serial {
        config.serial = parse_serial(s)?;
    }
    if let Some(code) = &args.echr {
        config.escape_char = parse_echr(code)?;
    }
    if let Some(addr) = &args.flat_addr {
        let addr = parse_u64(addr)
            .ok_or_else(|| CliError(format!("--flat-addr: invalid address '{addr}'")))?;
        let mode = match args.entry_mode.as_deref() {
            None | Some("long") => EntryMode::Long,
            Some("protected") => EntryMode::Protected,
            Some("real") => EntryMode::Real,
            Some(m) => {
                return Err(CliError(format!(
                    "--entry-mode: unknown mode '{m}' (real, protected or long)"
                )))
            }
        };
        config.flat = Some(FlatSpec { addr, mode });
    }
    Ok(Command::Run(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<MachineConfig, String> {
        let v = std::iter::once("tandem")
            .chain(args.iter().copied())
            .map(String::from);
        match parse(v) {
            Ok(Command::Run(c)) => Ok(c),
            Ok(Command::Print(p)) => Err(format!("print: {p}")),
            Ok(Command::Exec(_)) => Err("exec".into()),
            Ok(Command::Difftest(_)) => Err("difftest".into()),
            Ok(Command::Img(_)) => Err("img".into()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn qemu_spellings_parse() {
        let c = run(&[
            "-accel",
            "kvm",
            "-m",
            "256",
            "-kernel",
            "k.elf",
            "-append",
            "-v console=ttyS0",
            "-serial",
            "file:/tmp/out",
            "-no-reboot",
            "-machine",
            "pc,kernel-irqchip=off",
            "-nographic",
        ])
        .unwrap();
        assert_eq!(c.ram_size, 256 << 20);
        assert_eq!(c.append, "-v console=ttyS0");
        assert_eq!(c.serial, SerialConfig::File("/tmp/out".into()));
        assert!(c.no_reboot);
        assert!(!c.kernel_irqchip);
        assert_eq!(c.accel, AccelKind::Kvm);
        let c = run(&["--kernel=k", "-m", "1G", "-M", "kernel-irqchip=on"]).unwrap();
        assert_eq!(c.ram_size, 1 << 30);
        assert!(c.kernel_irqchip);
    }

    #[test]
    fn echr_takes_decimal_or_hex_codes() {
        assert_eq!(run(&["-kernel", "k"]).unwrap().escape_char, 0x01);
        assert_eq!(
            run(&["-kernel", "k", "-echr", "0x14"]).unwrap().escape_char,
            0x14
        );
        assert_eq!(
            run(&["-kernel", "k", "--echr", "20"]).unwrap().escape_char,
            20
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("64").unwrap(), 64 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096K").unwrap(), 4 << 20);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn errors_name_the_culprit() {
        assert!(run(&["-kernel", "k", "-m", "0"])
            .unwrap_err()
            .contains("-m"));
        assert!(run(&["-kernel", "k", "-frobnicate"])
            .unwrap_err()
            .contains("-frobnicate"));
        assert!(run(&["-kernel", "k", "-accel", "xen"])
            .unwrap_err()
            .contains("xen"));
        assert!(run(&["-kernel", "k", "-serial", "pty"])
            .unwrap_err()
            .contains("pty"));
        assert!(run(&["-kernel", "k", "-echr", "256"])
            .unwrap_err()
            .contains("-echr"));
        assert!(run(&["-kernel", "k", "-echr", "ctrl-t"])
            .unwrap_err()
            .contains("ctrl-t"));
        assert!(run(&["-kernel", "k", "-machine", "virt"])
            .unwrap_err()
            .contains("virt"));
        assert!(run(&["-kernel", "k", "--flat-addr", "zz"])
            .unwrap_err()
            .contains("zz"));
        assert!(run(&[]).unwrap_err().contains("-kernel"));
    }

    #[test]
    fn help_texts_are_printed_not_errors() {
        assert!(run(&["-accel", "help"])
            .unwrap_err()
            .starts_with("print: Accelerators"));
        assert!(run(&["-machine", "help"]).unwrap_err().contains("pc"));
        assert!(run(&["--help"]).unwrap_err().contains("-accel"));
    }

    #[test]
    fn flat_binaries() {
        let c = run(&[
            "-kernel",
            "f.bin",
            "--flat-addr",
            "0x7c00",
            "--entry-mode",
            "real",
        ])
        .unwrap();
        let f = c.flat.unwrap();
        assert_eq!(f.addr, 0x7c00);
        assert!(matches!(f.mode, EntryMode::Real));
    }
}
