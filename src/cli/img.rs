//! `tandem img ...`: qemu-img's command lines, parsed as its getopt does (short options with
//! the value attached or in the next word, `--long=value` or `--long value`, options before or
//! after the file names, `--` ending them), into [`crate::img::ImgCommand`].
//!
//! A malformed command line becomes [`ImgCommand::Invalid`], so it is reported as every other
//! `tandem img` error is: one line, "tandem img: ...", exit status 1.

use tandem_block::Repair;

use super::{CliError, Command};
use crate::img::check::CheckRequest;
use crate::img::commit::CommitRequest;
use crate::img::convert::ConvertRequest;
use crate::img::create::CreateRequest;
use crate::img::info::InfoRequest;
use crate::img::map::MapRequest;
use crate::img::rebase::RebaseRequest;
use crate::img::resize::ResizeRequest;
use crate::img::snapshot::{SnapshotAction, SnapshotRequest};
use crate::img::units::parse_size;
use crate::img::{ImgCommand, OutputFormat};

/// The usage text (`tandem img --help`).
pub const USAGE: &str = "\
usage: tandem img COMMAND [OPTIONS] ...   (qemu-img's commands and options)

  create   [-q] [-f FMT] [-b BACKING -F BACKING_FMT] [-o OPTIONS] FILE [SIZE]
  info     [-f FMT] [--output=human|json] [--backing-chain] FILE
  check    [-q] [-f FMT] [-r leaks|all] [--output=human|json] FILE
  convert  [-q] [-p] [-c] [-f FMT] [-O OUTPUT_FMT] [-o OPTIONS] [-B BACKING [-F FMT]] SRC DST
  snapshot [-q] [-f FMT] [-l | -c NAME | -a NAME | -d NAME] FILE
  map      [-f FMT] [--output=human|json] [--start-offset=OFF] [--max-length=LEN] FILE
  resize   [-q] [-f FMT] [--shrink] FILE [+|-]SIZE
  commit   [-q] [-p] [-f FMT] FILE
  rebase   [-q] [-p] [-u] [-f FMT] -b BACKING [-F BACKING_FMT] FILE

Formats: raw, qcow2. Sizes take k, M, G, T, P or E suffixes. qcow2 options (-o): size,
cluster_size, compat=0.10|1.1|v2|v3, lazy_refcounts=on|off, refcount_bits, backing_file,
backing_fmt ('-o help' lists them).
Check exit status: 0 clean, 1 check not completed, 2 corruptions, 3 leaks only, 63 no checks
for the format.
";

/// Which options a command takes.
struct Spec {
    /// Short options that take a value.
    values: &'static str,
    /// Short options without one.
    flags: &'static str,
    /// Long options: name, the name they are recorded under, whether they take a value.
    long: &'static [(&'static str, &'static str, bool)],
}

/// Options (by recorded name, in order) and the other words.
type Parsed = (Vec<(String, Option<String>)>, Vec<String>);

fn getopt(args: &[String], spec: &Spec) -> Result<Parsed, String> {
    let (mut opts, mut words) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            words.extend(it.by_ref().cloned());
            break;
        }
        if let Some(l) = a.strip_prefix("--") {
            let (name, inline) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (l, None),
            };
            let Some((_, rec, takes)) = spec.long.iter().find(|(n, _, _)| *n == name) else {
                return Err(format!("unrecognized option '--{name}'"));
            };
            let value = match (takes, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    it.next()
                        .cloned()
                        .ok_or_else(|| format!("option '--{name}' requires an argument"))?,
                ),
                (false, None) => None,
                (false, Some(_)) => {
                    return Err(format!("option '--{name}' doesn't allow an argument"))
                }
            };
            opts.push((rec.to_string(), value));
        } else if a.len() > 1 && a.starts_with('-') {
            let body = &a[1..];
            for (i, c) in body.char_indices() {
                if spec.flags.contains(c) {
                    opts.push((c.to_string(), None));
                } else if spec.values.contains(c) {
                    let rest = &body[i + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        it.next()
                            .cloned()
                            .ok_or_else(|| format!("option requires an argument -- '{c}'"))?
                    } else {
                        rest.to_string()
                    };
                    opts.push((c.to_string(), Some(value)));
                    break;
                } else {
                    return Err(format!("invalid option -- '{c}'"));
                }
            }
        } else {
            words.push(a.clone());
        }
    }
    Ok((opts, words))
}

fn output_format(v: &str) -> Result<OutputFormat, String> {
    match v {
        "human" => Ok(OutputFormat::Human),
        "json" => Ok(OutputFormat::Json),
        _ => Err("--output must be used with human or json as argument.".into()),
    }
}

fn one_file(words: &[String]) -> Result<String, String> {
    match words {
        [f] => Ok(f.clone()),
        _ => Err("Expecting one image file name".into()),
    }
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).ok_or_else(|| {
        "Invalid image size specified. You may use k, M, G, T, P or E suffixes for kilobytes, \
         megabytes, gigabytes, terabytes, petabytes and exabytes."
            .into()
    })
}

/// Parses `tandem img ...` (`args[0]` the program, `args[1]` "img").
pub fn parse(args: Vec<String>) -> Result<Command, CliError> {
    let sub = args.get(2).map(String::as_str).unwrap_or("");
    let rest = args.get(3..).unwrap_or(&[]);
    if matches!(sub, "" | "-h" | "--help" | "help")
        || rest.iter().any(|a| a == "-h" || a == "--help")
    {
        return Ok(Command::Print(USAGE.into()));
    }
    let cmd = parse_command(sub, rest).unwrap_or_else(ImgCommand::Invalid);
    Ok(Command::Img(Box::new(cmd)))
}

fn parse_command(sub: &str, rest: &[String]) -> Result<ImgCommand, String> {
    const FORMAT: (&str, &str, bool) = ("format", "f", true);
    const OUTPUT: (&str, &str, bool) = ("output", "output", true);
    const SHARE: (&str, &str, bool) = ("force-share", "U", false);
    match sub {
        "create" => {
            let spec = Spec {
                values: "fFbo",
                flags: "qu",
                long: &[FORMAT],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = CreateRequest::default();
            for (k, v) in opts {
                let v = v.unwrap_or_default();
                match k.as_str() {
                    "f" => r.format = Some(v),
                    "F" => r.backing_fmt = Some(v),
                    "b" => r.backing = Some(v),
                    "o" => r.options.push(v),
                    "q" => r.quiet = true,
                    _ => {}
                }
            }
            match words.as_slice() {
                [f] => r.file = f.clone(),
                [f, s] => {
                    r.file = f.clone();
                    r.size = Some(size_arg(s)?);
                }
                _ if r.options.iter().any(|o| o == "help" || o == "?") => {}
                _ => return Err("Expecting image file name".into()),
            }
            Ok(ImgCommand::Create(r))
        }
        "info" => {
            let spec = Spec {
                values: "f",
                flags: "U",
                long: &[
                    FORMAT,
                    OUTPUT,
                    SHARE,
                    ("backing-chain", "backing-chain", false),
                ],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = InfoRequest {
                file: one_file(&words)?,
                ..Default::default()
            };
            for (k, v) in opts {
                match (k.as_str(), v) {
                    ("f", v) => r.format = v,
                    ("output", Some(v)) => r.output = output_format(&v)?,
                    ("backing-chain", _) => r.backing_chain = true,
                    _ => {}
                }
            }
            Ok(ImgCommand::Info(r))
        }
        "check" => {
            let spec = Spec {
                values: "fr",
                flags: "qU",
                long: &[FORMAT, OUTPUT, SHARE, ("repair", "r", true)],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = CheckRequest {
                file: one_file(&words)?,
                ..Default::default()
            };
            for (k, v) in opts {
                match (k.as_str(), v.as_deref()) {
                    ("f", v) => r.format = v.map(str::to_string),
                    ("output", Some(v)) => r.output = output_format(v)?,
                    ("r", Some("leaks")) => r.repair = Repair::Leaks,
                    ("r", Some("all")) => r.repair = Repair::All,
                    ("r", Some(v)) => {
                        return Err(format!(
                            "Unknown option value for -r (expecting 'leaks' or 'all'): {v}"
                        ))
                    }
                    ("q", _) => r.quiet = true,
                    _ => {}
                }
            }
            Ok(ImgCommand::Check(r))
        }
        "convert" => {
            let spec = Spec {
                values: "fOoBFtTSm",
                flags: "cpqnUW",
                long: &[SHARE],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let [src, dst] = words.as_slice() else {
                return Err("Expecting one source and one target image file name".into());
            };
            let mut r = ConvertRequest {
                src: src.clone(),
                dst: dst.clone(),
                ..Default::default()
            };
            for (k, v) in opts {
                match (k.as_str(), v) {
                    ("f", v) => r.src_format = v,
                    ("O", v) => r.out_format = v,
                    ("o", Some(v)) => r.options.push(v),
                    ("B", v) => r.backing = v,
                    ("F", v) => r.backing_fmt = v,
                    ("c", _) => r.compress = true,
                    ("p", _) => r.progress = true,
                    ("q", _) => r.quiet = true,
                    ("n", _) => {
                        return Err("-n (an existing target) is not supported: convert always \
                                    creates the target"
                            .into())
                    }
                    // Cache modes, sparse size, coroutines, out-of-order writes: tuning that
                    // does not change the result.
                    _ => {}
                }
            }
            Ok(ImgCommand::Convert(r))
        }
        "snapshot" => {
            let spec = Spec {
                values: "fcad",
                flags: "lqU",
                long: &[FORMAT, SHARE],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let (mut format, mut action, mut quiet) = (None, None, false);
            for (k, v) in opts {
                let v = v.unwrap_or_default();
                let a = match k.as_str() {
                    "f" => {
                        format = Some(v);
                        continue;
                    }
                    "q" => {
                        quiet = true;
                        continue;
                    }
                    "l" => SnapshotAction::List,
                    "c" => SnapshotAction::Create(v),
                    "a" => SnapshotAction::Apply(v),
                    "d" => SnapshotAction::Delete(v),
                    _ => continue,
                };
                if action.replace(a).is_some() {
                    return Err("Cannot mix '-l', '-a', '-c', '-d'".into());
                }
            }
            Ok(ImgCommand::Snapshot(SnapshotRequest {
                file: one_file(&words)?,
                format,
                action: action.unwrap_or(SnapshotAction::List),
                quiet,
            }))
        }
        "map" => {
            let spec = Spec {
                values: "fs",
                flags: "lU",
                long: &[
                    FORMAT,
                    OUTPUT,
                    SHARE,
                    ("start-offset", "s", true),
                    ("max-length", "l", true),
                ],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = MapRequest {
                file: one_file(&words)?,
                ..Default::default()
            };
            for (k, v) in opts {
                match (k.as_str(), v) {
                    ("f", v) => r.format = v,
                    ("output", Some(v)) => r.output = output_format(&v)?,
                    ("s", Some(v)) => r.start = size_arg(&v)?,
                    ("l", Some(v)) => r.max_length = Some(size_arg(&v)?),
                    _ => {}
                }
            }
            Ok(ImgCommand::Map(r))
        }
        "resize" => {
            // The size is the last word, taken before option parsing so that "-1G" is a size
            // (as qemu-img does).
            let Some((size, rest)) = rest.split_last() else {
                return Err("Expecting image file name and size".into());
            };
            let spec = Spec {
                values: "f",
                flags: "qU",
                long: &[FORMAT, ("shrink", "shrink", false)],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = ResizeRequest {
                file: one_file(&words)?,
                size: size.clone(),
                ..Default::default()
            };
            for (k, v) in opts {
                match k.as_str() {
                    "f" => r.format = v,
                    "q" => r.quiet = true,
                    "shrink" => r.shrink = true,
                    _ => {}
                }
            }
            Ok(ImgCommand::Resize(r))
        }
        "commit" => {
            let spec = Spec {
                values: "ftr",
                flags: "qdp",
                long: &[FORMAT],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = CommitRequest {
                file: one_file(&words)?,
                ..Default::default()
            };
            for (k, v) in opts {
                match k.as_str() {
                    "f" => r.format = v,
                    "q" => r.quiet = true,
                    "p" => r.progress = true,
                    _ => {}
                }
            }
            Ok(ImgCommand::Commit(r))
        }
        "rebase" => {
            let spec = Spec {
                values: "fFbtT",
                flags: "upqU",
                long: &[FORMAT],
            };
            let (opts, words) = getopt(rest, &spec)?;
            let mut r = RebaseRequest {
                file: one_file(&words)?,
                ..Default::default()
            };
            for (k, v) in opts {
                match k.as_str() {
                    "f" => r.format = v,
                    "F" => r.backing_fmt = v,
                    "b" => r.backing = v,
                    "u" => r.unsafe_mode = true,
                    "p" => r.progress = true,
                    "q" => r.quiet = true,
                    _ => {}
                }
            }
            Ok(ImgCommand::Rebase(r))
        }
        other => Err(format!("Command not found: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn getopt_forms() {
        let spec = Spec {
            values: "fo",
            flags: "q",
            long: &[("output", "output", true)],
        };
        let (opts, w) = getopt(
            &words("-fqcow2 x -q --output=json -o a=1 y --output human"),
            &spec,
        )
        .unwrap_or_default();
        assert_eq!(w, words("x y"));
        assert_eq!(opts.len(), 5);
        assert_eq!(opts[0], ("f".into(), Some("qcow2".into())));
        assert_eq!(opts[4], ("output".into(), Some("human".into())));
        assert!(getopt(&words("-z"), &spec).is_err());
        assert!(getopt(&words("-f"), &spec).is_err());
    }

    #[test]
    fn resize_takes_negative_sizes() {
        match parse_command("resize", &words("-f raw a.img -1G")) {
            Ok(ImgCommand::Resize(r)) => {
                assert_eq!((r.file.as_str(), r.size.as_str()), ("a.img", "-1G"))
            }
            other => panic!("{other:?}"),
        }
    }
}
