//! The Linux guest fixtures (fixtures/fetch.sh, through tests/common/fixtures.rs): fetched or
//! taken from the cache, then checked without booting them: the Debian kernel is a bzImage the
//! Linux loader accepts into a 512 MiB PC and fills boot_params for; the initramfs is a newc
//! archive with /init and busybox.
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
