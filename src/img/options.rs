//! Image creation options (`-o key=value,...`) for raw and qcow2, with qemu-img's names, and
//! the "Formatting 'FILE', fmt=..." line qemu-img prints for them.

use tandem_block::CreateOptions;

use super::units::parse_size;
use super::ImgError;

/// The `-o` options of one format, as given (unset ones take the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// `raw` or `qcow2`.
    pub format: String,
    /// `size=`.
    pub size: Option<u64>,
    /// `cluster_size=` (qcow2).
    pub cluster_size: Option<u64>,
    /// `compat=` as written (`0.10`, `1.1`, `v2`, `v3`).
    pub compat: Option<String>,
    /// `lazy_refcounts=`.
    pub lazy_refcounts: Option<bool>,
    /// `refcount_bits=`.
    pub refcount_bits: Option<u32>,
    /// `backing_file=`.
    pub backing_file: Option<String>,
    /// `backing_fmt=`.
    pub backing_fmt: Option<String>,
}

/// The `-o help` text for `format`.
pub fn help(format: &str) -> String {
    let qcow2 = "Supported options:\n  \
        backing_file=<str>     - File name of a base image\n  \
        backing_fmt=<str>      - Image format of the base image\n  \
        cluster_size=<size>    - qcow2 cluster size\n  \
        compat=<str>           - Compatibility level (v2 [0.10], v3 [1.1])\n  \
        lazy_refcounts=<bool (on/off)> - Postpone refcount updates\n  \
        refcount_bits=<num>    - Width of a reference count entry in bits\n  \
        size=<size>            - Virtual disk size\n";
    let raw = "Supported options:\n  size=<size>            - Virtual disk size\n";
    if format == "qcow2" { qcow2 } else { raw }.to_string()
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ImgError> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(ImgError::usage(format!(
            "Parameter '{key}' expects 'on' or 'off'"
        ))),
    }
}

impl ImageOptions {
    /// Parses the `-o` strings (each comma-separated `key=value` pairs) for `format`.
    pub fn parse(format: &str, opts: &[String]) -> Result<Self, ImgError> {
        if format != "raw" && format != "qcow2" {
            return Err(ImgError::usage(format!(
                "Unknown file format '{format}' (raw or qcow2)"
            )));
        }
        let mut o = ImageOptions {
            format: format.to_string(),
            ..Default::default()
        };
        for pair in opts
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let invalid = || ImgError::usage(format!("Invalid parameter '{key}'"));
            let bad_value =
                || ImgError::usage(format!("Parameter '{key}' has an invalid value '{value}'"));
            let qcow2 = format == "qcow2";
            match key {
                "size" => o.size = Some(parse_size(value).ok_or_else(bad_value)?),
                "preallocation" if value == "off" => {}
                "cluster_size" if qcow2 => {
                    o.cluster_size = Some(parse_size(value).ok_or_else(bad_value)?)
                }
                "compat" if qcow2 => match value {
                    "0.10" | "v2" | "1.1" | "v3" => o.compat = Some(value.to_string()),
                    _ => {
                        return Err(ImgError::usage(format!(
                            "Invalid compatibility level: '{value}'"
                        )))
                    }
                },
                "lazy_refcounts" if qcow2 => o.lazy_refcounts = Some(parse_bool(key, value)?),
                "refcount_bits" if qcow2 => {
                    o.refcount_bits = Some(value.parse().map_err(|_| bad_value())?)
                }
                "backing_file" if qcow2 => o.backing_file = Some(value.to_string()),
                "backing_fmt" if qcow2 => o.backing_fmt = Some(value.to_string()),
                "compression_type" if qcow2 && value == "zlib" => {}
                "extended_l2" if qcow2 && matches!(value, "off" | "false") => {}
                "preallocation" | "compression_type" | "extended_l2" => {
                    return Err(ImgError::usage(format!(
                        "{key}={value} is not supported (tandem writes sparse, zlib, \
                         standard-L2 images)"
                    )))
                }
                _ => return Err(invalid()),
            }
        }
        Ok(o)
    }

    /// The qcow2 version `compat` asks for (3 when unset).
    pub fn version(&self) -> u32 {
        match self.compat.as_deref() {
            Some("0.10" | "v2") => 2,
            _ => 3,
        }
    }

    /// The block layer's creation options for a disk of `size` bytes.
    pub fn to_create(&self, size: Option<u64>) -> Result<CreateOptions, ImgError> {
        let d = CreateOptions::default();
        let cluster_size = match self.cluster_size {
            None => d.cluster_size,
            Some(c) => u32::try_from(c)
                .map_err(|_| ImgError::usage(format!("Invalid cluster size {c}")))?,
        };
        Ok(CreateOptions {
            format: self.format.clone(),
            size,
            cluster_size,
            version: self.version(),
            lazy_refcounts: self.lazy_refcounts.unwrap_or(false),
            refcount_bits: self.refcount_bits.unwrap_or(16),
            backing_file: self.backing_file.clone(),
            backing_fmt: self.backing_fmt.clone(),
        })
    }

    /// qemu-img's "Formatting 'FILE', fmt=..." line (without the newline).
    pub fn formatting_line(&self, file: &str, size: u64) -> String {
        if self.format != "qcow2" {
            return format!("Formatting '{file}', fmt={} size={size}", self.format);
        }
        let mut s = format!(
            "Formatting '{file}', fmt=qcow2 cluster_size={} extended_l2=off \
             compression_type=zlib size={size}",
            self.cluster_size.unwrap_or(65536)
        );
        if let Some(c) = &self.compat {
            s += &format!(" compat={c}");
        }
        if let Some(b) = &self.backing_file {
            s += &format!(" backing_file={b}");
        }
        if let Some(f) = &self.backing_fmt {
            s += &format!(" backing_fmt={f}");
        }
        let on_off = |b: bool| if b { "on" } else { "off" };
        s += &format!(
            " lazy_refcounts={} refcount_bits={}",
            on_off(self.lazy_refcounts.unwrap_or(false)),
            self.refcount_bits.unwrap_or(16)
        );
        s
    }
}
