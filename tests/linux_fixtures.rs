//! The Linux guest fixtures (fixtures/fetch.sh, through tests/common/fixtures.rs): fetched or
//! taken from the cache, then checked without booting them: the Debian kernel is a bzImage the
//! Linux loader accepts into a 512 MiB PC and fills boot_params for; the initramfs is a newc
//! archive with /init and busybox, and the kernel package's virtio modules with an order to
//! load them in that puts every module after what its `depends=` names.
//! Without network (or apt) the fetch fails and the test reports itself skipped, never failed.

mod common;

use std::path::Path;
use std::process::Command;

use common::fixtures::fetch;

use tandem_hw::loader::linux::{CMDLINE_ADDR, ZERO_PAGE_ADDR};
use tandem_hw::loader::linux_header::{field, SetupHeader, XLF_KERNEL_64};
use tandem_hw::loader::linux_zeropage::offset;
use tandem_hw::loader::{load_kernel, BootMemory};
use tandem_hw::pc::{Pc, PcConfig};

const TEST: &str = "linux_fixtures";

/// One member of a newc archive: its name, mode and data.
struct Member {
    name: String,
    mode: u32,
    data: Vec<u8>,
}

/// Parses a newc archive up to its trailer, checking the magic and padding of every entry.
fn newc_members(a: &[u8]) -> Vec<Member> {
    let hex = |at: usize| {
        let s = std::str::from_utf8(&a[at..at + 8]).expect("ASCII header field");
        u32::from_str_radix(s, 16).expect("hex header field") as usize
    };
    let mut at = 0;
    let mut members = Vec::new();
    loop {
        assert_eq!(&a[at..at + 6], b"070701", "newc magic at {at:#x}");
        let (mode, size, namesize) = (hex(at + 14), hex(at + 54), hex(at + 94));
        let name_at = at + 110;
        let name = String::from_utf8(a[name_at..name_at + namesize - 1].to_vec()).unwrap();
        assert_eq!(a[name_at + namesize - 1], 0, "name NUL");
        let data_at = (name_at + namesize).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return members;
        }
        members.push(Member {
            name,
            mode: mode as u32,
            data: a[data_at..data_at + size].to_vec(),
        });
        at = (data_at + size).next_multiple_of(4);
    }
}

/// The NUL-separated `key=value` strings of an ELF64 module's `.modinfo` section, found through
/// the section headers.
fn modinfo(ko: &[u8]) -> Vec<(String, String)> {
    assert!(
        ko.starts_with(b"\x7fELF\x02\x01"),
        "a little-endian ELF64 file"
    );
    let u16_at = |at: usize| usize::from(u16::from_le_bytes(ko[at..at + 2].try_into().unwrap()));
    let u32_at = |at: usize| u32::from_le_bytes(ko[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(ko[at..at + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        (u32_at(h), u64_at(h + 0x18), u64_at(h + 0x20))
    };
    let (_, strtab, _) = section(shstrndx);
    let name_of = |at: usize| {
        let s = &ko[strtab + at..];
        String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
    };
    let (_, off, size) = (0..shnum)
        .map(section)
        .find(|&(name, _, _)| name_of(name) == ".modinfo")
        .expect("a .modinfo section");
    ko[off..off + size]
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `cpio -t` of the archive, installing cpio with apt-get when it is missing and we may.
fn cpio_list(archive: &Path) -> Result<Vec<String>, String> {
    let have = |_: ()| Command::new("cpio").arg("--version").output().is_ok();
    if !have(()) {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "cpio"])
            .output();
    }
    if !have(()) {
        return Err("cpio is not installed and apt-get could not install it".into());
    }
    let out = Command::new("cpio")
        .args(["-t", "--quiet", "-F"])
        .arg(archive)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "cpio -t failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect())
}

#[test]
fn debian_kernel_and_busybox_initramfs() {
    let f = match fetch() {
        Ok(f) => f,
        Err(why) => return common::skipped(TEST, &why),
    };
    let kernel = std::fs::read(&f.vmlinuz).unwrap();
    let initrd = std::fs::read(&f.initramfs).unwrap();

    // The kernel: a bzImage whose header the loader accepts, with the 64-bit entry.
    assert_eq!(&kernel[0x202..0x206], b"HdrS");
    let h = SetupHeader::parse(&kernel).expect("the loader accepts the Debian kernel's header");
    assert!(h.version >= 0x020c, "protocol {:#x}", h.version);
    assert_ne!(h.xloadflags & XLF_KERNEL_64, 0);
    assert!(std::fs::metadata(&f.system_map).unwrap().len() > 0);
    // The release the boot tests expect from `uname -r` is the one the package is named after.
    let release = f.kernel_release().unwrap();
    let versions = f.vmlinuz.with_file_name("versions.txt");
    let versions = std::fs::read_to_string(&versions).unwrap();
    assert!(
        versions.contains(&format!("kernel: linux-image-{release}-unsigned_")),
        "release {release:?} is not the package's: {versions}"
    );

    // Loaded into a 512 MiB PC.
    let pc = Pc::new(
        PcConfig {
            ram_size: 512 << 20,
            mem_path: None,
            serial_out: Box::new(std::io::sink()),
        },
        None,
    )
    .unwrap();
    let e820 = pc.e820();
    let mem = BootMemory {
        space: &pc.memory,
        e820: &e820,
        ram_size: 512 << 20,
    };
    let cmdline = "console=ttyS0 tandem.shell=1";
    let k = load_kernel(&mem, &kernel, cmdline, Some(&initrd), None).unwrap();
    assert_eq!(k.format, "bzimage");
    assert_eq!(k.entry, h.pref_address + 0x200);
    assert_eq!(k.state.gpr[6], ZERO_PAGE_ADDR, "RSI = boot_params");
    let read = |gpa: u64, len: usize| {
        let mut b = vec![0; len];
        pc.memory.read(gpa, &mut b).unwrap();
        b
    };
    let u32_at = |gpa: u64| u32::from_le_bytes(read(gpa, 4).try_into().unwrap());
    let zp = |off: u64| u32_at(ZERO_PAGE_ADDR + off);
    assert_eq!(read(ZERO_PAGE_ADDR + field::HEADER, 4), b"HdrS");
    assert_eq!(read(ZERO_PAGE_ADDR + field::TYPE_OF_LOADER, 1), [0xff]);
    assert_eq!(
        usize::from(read(ZERO_PAGE_ADDR + offset::E820_ENTRIES, 1)[0]),
        e820.len()
    );
    let first = ZERO_PAGE_ADDR + offset::E820_TABLE + 20 * 3;
    assert_eq!(u32_at(first), 0x10_0000, "e820 RAM from 1 MiB");
    assert_eq!(zp(field::CMD_LINE_PTR), CMDLINE_ADDR as u32);
    assert_eq!(
        read(CMDLINE_ADDR, cmdline.len() + 1),
        format!("{cmdline}\0").as_bytes()
    );
    let (at, size) = (zp(field::RAMDISK_IMAGE), zp(field::RAMDISK_SIZE));
    assert_eq!(size as usize, initrd.len());
    assert_eq!(at % 4096, 0);
    assert!(u64::from(at) + u64::from(size) <= 512 << 20);
    assert!(
        u64::from(at) >= k.end,
        "initrd above the kernel's init_size"
    );
    assert_eq!(read(at.into(), 4096), initrd[..4096]);
    assert_eq!(
        read(h.pref_address, 512),
        kernel[h.kernel_offset as usize..][..512]
    );

    // The initramfs: newc, with /init (our script), busybox and its applet links, a console.
    let members = newc_members(&initrd);
    let find = |n: &str| members.iter().find(|m| m.name == n);
    let init = find("init").expect("init in the archive");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/init.sh");
    assert_eq!(init.data, std::fs::read(script).unwrap());
    assert_eq!(init.mode & 0o170777, 0o100755);
    let busybox = find("bin/busybox").expect("bin/busybox in the archive");
    assert!(busybox.data.starts_with(b"\x7fELF"));
    assert_eq!(
        find("bin/sh").map(|m| m.data.as_slice()),
        Some(&b"/bin/busybox"[..])
    );
    assert!(find("sbin/poweroff").is_some());
    assert_eq!(
        find("dev/console").map(|m| m.mode & 0o170000),
        Some(0o020000)
    );
    assert!(members.len() > 100, "{} members", members.len());
    match cpio_list(&f.initramfs) {
        Ok(list) => {
            for want in ["init", "bin/busybox", "bin/sh", "dev/console"] {
                assert!(list.iter().any(|l| l == want), "cpio -t lists {want}");
            }
            assert_eq!(list.len(), members.len());
        }
        Err(why) => common::skipped(&format!("{TEST} [cpio -t]"), &why),
    }
}

/// The modules fixtures/fetch.sh must put in the initramfs (module names, as in `depends=`).
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_rng",
    "virtio_console",
];

#[test]
fn initramfs_has_virtio_modules_in_dependency_order() {
    let f = match fetch() {
        Ok(f) => f,
        Err(why) => return common::skipped(TEST, &why),
    };
    let release = f.kernel_release().unwrap();
    let initrd = std::fs::read(&f.initramfs).unwrap();
    let members = newc_members(&initrd);
    let find = |n: &str| members.iter().find(|m| m.name == n);
    let is_dir = |n: &str| find(n).is_some_and(|m| m.mode & 0o170000 == 0o040000);
    // Disk mode mounts the disk there.
    assert!(is_dir("mnt"), "/mnt in the archive");

    let order = find("lib/modules/load-order").expect("lib/modules/load-order in the archive");
    let order = String::from_utf8(order.data.clone()).unwrap();
    let dir = format!("/lib/modules/{release}/kernel/");
    // Module name -> position in the load order.
    let mut position = std::collections::HashMap::new();
    let mut depends = Vec::new();
    for (i, path) in order.lines().enumerate() {
        assert!(
            path.starts_with(&dir) && path.ends_with(".ko"),
            "load-order line {path:?}: want a .ko under {dir}"
        );
        let m = find(&path[1..]).unwrap_or_else(|| panic!("{path} is not in the archive"));
        assert_eq!(m.mode & 0o170777, 0o100644, "{path}: a plain file");
        // The kernel's unpacker makes no parent directories: each must be an entry of its own.
        let mut parent = Path::new(&path[1..]).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            assert!(
                is_dir(p.to_str().unwrap()),
                "directory {p:?} in the archive"
            );
            parent = p.parent();
        }
        let info = modinfo(&m.data);
        let field = |k: &str| {
            info.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{path}: no {k}= in .modinfo"))
        };
        let name = field("name");
        let file = path.rsplit('/').next().unwrap().trim_end_matches(".ko");
        assert_eq!(name, file.replace('-', "_"), "{path}: name=");
        assert_eq!(
            field("vermagic").split_whitespace().next(),
            Some(release.as_str()),
            "{path}: built for the fixture's kernel"
        );
        assert!(
            position.insert(name.clone(), i).is_none(),
            "{name} listed twice"
        );
        depends.push((name, field("depends")));
    }
    for (name, deps) in &depends {
        for dep in deps.split(',').filter(|d| !d.is_empty()) {
            match position.get(dep) {
                Some(&at) => assert!(
                    at < position[name],
                    "{dep} must load before {name}, which depends on it: {order}"
                ),
                None => panic!("{name} depends on {dep}, which is not in the load order"),
            }
        }
    }
    for want in MODULES {
        assert!(
            position.contains_key(*want),
            "{want} in the load order: {order}"
        );
    }
    // Every module in the archive is loaded.
    let kos = members.iter().filter(|m| m.name.ends_with(".ko")).count();
    assert_eq!(
        kos,
        position.len(),
        "modules in the archive vs. in load-order"
    );
}
