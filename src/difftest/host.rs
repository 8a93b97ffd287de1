//! The host CPU a run or a recording was made on, named as people recognise it (vendor,
//! brand string, family/model/stepping): recorded expectations carry it in their header, so a
//! stale recording says where it came from.

/// `vendor, brand (family F model M stepping S)` of the CPU this process runs on.
pub fn description() -> String {
    use std::arch::x86_64::__cpuid;
    let regs = |r: std::arch::x86_64::CpuidResult, order: [u32; 4]| -> Vec<u8> {
        order
            .iter()
            .flat_map(|&w| {
                match w {
                    0 => r.eax,
                    1 => r.ebx,
                    2 => r.ecx,
                    _ => r.edx,
                }
                .to_le_bytes()
            })
            .collect()
    };
    let leaf0 = __cpuid(0);
    let vendor = regs(leaf0, [1, 3, 2, 3]);
    let vendor = String::from_utf8_lossy(&vendor[..12]).into_owned();
    let mut brand = Vec::new();
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            brand.extend(regs(__cpuid(leaf), [0, 1, 2, 3]));
        }
    }
    let brand = String::from_utf8_lossy(&brand)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    let eax = __cpuid(1).eax;
    let base_family = (eax >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((eax >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        (((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf)
    } else {
        (eax >> 4) & 0xf
    };
    format!(
        "{vendor}, {brand} (family {family} model {model} stepping {})",
        eax & 0xf
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_vendor_and_model() {
        let d = super::description();
        let vendor = d.split(',').next().unwrap_or("");
        assert_eq!(vendor.len(), 12, "{d}");
        assert!(vendor.bytes().all(|b| b.is_ascii_graphic()), "{d}");
        assert!(d.contains(" model ") && d.ends_with(')'), "{d}");
    }
}
