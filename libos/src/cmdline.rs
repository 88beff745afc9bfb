//! The kernel command line: `[OPTION ...] [-- APP-ARG ...]`.
//!
//! Options configure libos; everything after `--` goes to the app as its arguments. Words are
//! separated by spaces; double quotes group a word with spaces (`-- "two words"`), and a
//! backslash escapes the next character inside or outside quotes.
//!
//! Known options (an unknown one stops the boot with a message, so a typo never goes unnoticed):
//!
//! | option | meaning |
//! |---|---|
//! | `loglevel=off\|error\|warn\|info\|debug\|trace` | kernel log level (default `warn`) |
//! | `bootstats` | print `[boot-stats]` lines at `main` and at exit |
//! | `root=FS` | the root file system (default `ramfs` when the image has it; `virtiofs:TAG` for a host share) |
//! | `mount=FS:/PATH` | mount a new `FS` at `/PATH` (created if missing); repeatable, in order; `virtiofs:TAG:/PATH` |
//! | `virtiofs_timeout=SECONDS` | how long a virtio-fs reply may take before the device is declared dead (default 30, 0 = forever; images with `fs-virtiofs`) |
//! | `blk_cache=BYTES` | buffer cache of each disk file system, 64K to 4G, suffix K/M/G (default 8M; images with `blk`) |
//! | `blk_timeout=SECONDS` | how long a disk request may take before the device is declared dead (default 30, 0 = forever; images with `blk`) |
//! | `sched=coop\|rr` | scheduling policy (needs the matching `sched-*` feature; default: `rr` if compiled in, else `coop`) |
//! | `timeslice=MS` | time slice of preemptive policies, 1..=10000 ms (default 10) |
//! | `ip=dhcp\|none\|ADDR/PREFIX[,gw=ADDR][,dns=ADDR]` | IPv4 of the NIC (default `dhcp`; images with `net`) |
//! | `ip6=ADDR/PREFIX` | a static IPv6 address besides the link-local one (images with `net`) |
//! | `tcp_buffer=BYTES` | TCP buffer per direction and connection, 4K to 16M (default 128K; images with `net`) |
//! | `walltime=SECONDS` | the wall clock at boot, in seconds since 1970-01-01 00:00:00 UTC, 0 to 9223372036 (2262); wins over the real-time clock (for VMMs without one) |
//! | `env=NAME=VALUE` | an environment variable of the app (repeatable) |
//! | `smp=N` | use at most N CPUs, 1 to 64 (default: every CPU the firmware reports; more than it reports is capped with a log line) |
//! | `heap_cache=on\|off` | the kernel heap's per-CPU caches of small blocks (default `on`; `off` sends every allocation to the allocator's one lock, for comparison; images without the `smp` feature have no caches) |
//!
//! File-system names are checked at boot against those the image was built with (`ramfs`,
//! `devfs`, `virtiofs:TAG`); an unknown one, or a tag no virtio-fs device has, stops the boot
//! like an unknown option.
//!
//! `sched=` and `timeslice=` exist only in images with a scheduler feature; elsewhere they are
//! unknown options (the boot stops, exit code 103).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use log::LevelFilter;

/// Kernel options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `loglevel=`.
    pub log_level: LevelFilter,
    /// `bootstats`.
    pub boot_stats: bool,
    /// `root=`: the root file system's name, if given.
    pub root: Option<String>,
    /// `mount=FS:/PATH`, in order: `(file system name, absolute path)`.
    pub mounts: Vec<(String, String)>,
    /// `env=NAME=VALUE`, in order: the app's environment ([`crate::env::vars`]).
    pub env: Vec<String>,
    /// `walltime=`: the wall clock at boot, in seconds since the Unix epoch.
    pub wall_time_secs: Option<u64>,
    /// `smp=`: the most CPUs to start, the boot CPU included.
    pub smp: Option<usize>,
    /// `heap_cache=`: whether the heap keeps per-CPU caches of small blocks.
    pub heap_cache: bool,
    /// `sched=`: the policy's name (`None`: the default of the image).
    #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
    pub sched: Option<&'static str>,
    /// `timeslice=` in milliseconds.
    #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
    pub time_slice_ms: Option<u32>,
    /// `virtiofs_timeout=` in seconds.
    #[cfg(any(test, feature = "fs-virtiofs"))]
    pub virtiofs_timeout_secs: Option<u32>,
    /// `blk_cache=` in bytes.
    #[cfg(any(test, feature = "blk"))]
    pub blk_cache_bytes: Option<u64>,
    /// `blk_timeout=` in seconds.
    #[cfg(any(test, feature = "blk"))]
    pub blk_timeout_secs: Option<u32>,
    /// The network options `ip=`, `ip6=`, `tcp_buffer=` as written (checked by `libos-net`
    /// when the NIC comes up, which stops the boot on a bad value).
    #[cfg(any(test, feature = "net"))]
    pub net: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: LevelFilter::Warn,
            boot_stats: false,
            root: None,
            mounts: Vec::new(),
            env: Vec::new(),
            wall_time_secs: None,
            smp: None,
            heap_cache: true,
            #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
            sched: None,
            #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
            time_slice_ms: None,
            #[cfg(any(test, feature = "fs-virtiofs"))]
            virtiofs_timeout_secs: None,
            #[cfg(any(test, feature = "blk"))]
            blk_cache_bytes: None,
            #[cfg(any(test, feature = "blk"))]
            blk_timeout_secs: None,
            #[cfg(any(test, feature = "net"))]
            net: Vec::new(),
        }
    }
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmdline {
    /// The kernel options.
    pub options: Options,
    /// The words after `--`.
    pub app_args: Vec<String>,
}

/// What is wrong with a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// An option libos does not know.
    UnknownOption(String),
    /// A known option with a value it does not accept.
    BadValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// A `"` without its closing partner.
    UnterminatedQuote,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::UnknownOption(option) => write!(
                f,
                "unknown kernel option `{option}` (known: loglevel=LEVEL, bootstats, root=FS, mount=FS:/PATH, env=NAME=VALUE, walltime=SECONDS, smp=N, heap_cache=on|off, sched=coop|rr, timeslice=MS, virtiofs_timeout=SECONDS, blk_timeout=SECONDS, blk_cache=BYTES, ip=dhcp|none|ADDR/PREFIX[,gw=ADDR][,dns=ADDR], ip6=ADDR/PREFIX, tcp_buffer=BYTES; app arguments go after `--`)"
            ),
            CmdlineError::BadValue { option, value, expected } => {
                write!(f, "kernel option `{option}` does not accept `{value}` (expected {expected})")
            }
            CmdlineError::UnterminatedQuote => write!(f, "kernel command line has an unterminated `\"`"),
        }
    }
}

/// Splits a command line into words (quotes and backslashes as described in the module docs).
/// Returns each word and whether it was written bare (so a quoted `"--"` is an argument, not the
/// separator).
fn words(text: &str) -> Result<Vec<(String, bool)>, CmdlineError> {
    let mut words = Vec::new();
    let mut chars = text.chars();
    let mut word: Option<(String, bool)> = None;
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let entry = word.get_or_insert_with(|| (String::new(), true));
                entry.1 = false;
                if let Some(next) = chars.next() {
                    entry.0.push(next);
                }
            }
            '"' => {
                let entry = word.get_or_insert_with(|| (String::new(), true));
                entry.1 = false;
                in_quotes = !in_quotes;
            }
            c if c.is_whitespace() && !in_quotes => words.extend(word.take()),
            c => word.get_or_insert_with(|| (String::new(), true)).0.push(c),
        }
    }
    if in_quotes {
        return Err(CmdlineError::UnterminatedQuote);
    }
    words.extend(word);
    Ok(words)
}

/// A device timeout option's value: seconds, 0 (forever) to 3600.
#[cfg(any(test, feature = "fs-virtiofs", feature = "blk"))]
fn timeout_secs(option: &'static str, secs: &str) -> Result<u32, CmdlineError> {
    secs.parse().ok().filter(|s| (0..=3600).contains(s)).ok_or_else(|| CmdlineError::BadValue {
        option,
        value: secs.into(),
        expected: "seconds, 0 (forever) to 3600",
    })
}

/// A size in bytes with an optional K, M or G suffix (powers of 1024).
#[cfg(any(test, feature = "blk"))]
fn parse_size(text: &str) -> Option<u64> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Parses a kernel command line.
pub fn parse(text: &str) -> Result<Cmdline, CmdlineError> {
    let mut options = Options::default();
    let mut words = words(text)?.into_iter();
    let mut app_args = Vec::new();
    for (word, bare) in words.by_ref() {
        if bare && word == "--" {
            app_args.extend(words.by_ref().map(|(w, _)| w));
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (word.as_str(), None),
        };
        match (name, value) {
            ("loglevel", Some(level)) => {
                options.log_level = level.parse().map_err(|_| CmdlineError::BadValue {
                    option: "loglevel",
                    value: level.into(),
                    expected: "off, error, warn, info, debug or trace",
                })?;
            }
            ("bootstats", None) => options.boot_stats = true,
            ("root", Some(fs)) => {
                // `FS`, or `FS:SOURCE` (virtiofs:TAG).
                if fs.is_empty() || fs.starts_with(':') || fs.ends_with(':') || fs.contains(":/") {
                    return Err(CmdlineError::BadValue {
                        option: "root",
                        value: fs.into(),
                        expected: "a file system such as ramfs or virtiofs:TAG",
                    });
                }
                options.root = Some(fs.into());
            }
            ("env", Some(var)) => {
                if var.split_once('=').is_none_or(|(name, _)| name.is_empty()) {
                    return Err(CmdlineError::BadValue { option: "env", value: var.into(), expected: "NAME=VALUE" });
                }
                options.env.push(var.into());
            }
            ("walltime", Some(secs)) => {
                // Up to where the wall clock ends (64-bit signed nanoseconds, as Linux's).
                let max = libos_core::time::SystemTime::MAX.unix_nanos() / 1_000_000_000;
                options.wall_time_secs =
                    Some(secs.parse().ok().filter(|s| *s <= max).ok_or_else(|| CmdlineError::BadValue {
                        option: "walltime",
                        value: secs.into(),
                        expected: "seconds since 1970-01-01 00:00:00 UTC, 0 to 9223372036",
                    })?);
            }
            ("smp", Some(count)) => {
                let max = libos_core::cpus::MAX_CPUS;
                options.smp = Some(count.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    CmdlineError::BadValue { option: "smp", value: count.into(), expected: "a number of CPUs, 1 to 64" }
                })?);
            }
            ("heap_cache", Some(value)) => {
                options.heap_cache = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(CmdlineError::BadValue { option: "heap_cache", value: value.into(), expected: "on or off" }),
                };
            }
            // The path is what follows the last ":/" (the file system may be `virtiofs:TAG`).
            ("mount", Some(spec)) => match spec.rfind(":/").map(|at| (&spec[..at], &spec[at + 1..])) {
                Some((fs, path)) if !fs.is_empty() && !fs.starts_with(':') && !fs.ends_with(':') => {
                    options.mounts.push((fs.into(), path.into()));
                }
                _ => {
                    return Err(CmdlineError::BadValue {
                        option: "mount",
                        value: spec.into(),
                        expected: "FS:/PATH, e.g. ramfs:/tmp",
                    });
                }
            },
            // Only images with a scheduler know these (elsewhere they are unknown options).
            #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
            ("sched", Some(policy)) => {
                options.sched = Some(match policy {
                    "coop" => "coop",
                    "rr" => "rr",
                    _ => {
                        return Err(CmdlineError::BadValue { option: "sched", value: policy.into(), expected: "coop or rr" });
                    }
                });
            }
            #[cfg(any(test, feature = "sched-coop", feature = "sched-preempt"))]
            ("timeslice", Some(ms)) => {
                options.time_slice_ms = Some(ms.parse().ok().filter(|ms| (1..=10_000).contains(ms)).ok_or_else(|| {
                    CmdlineError::BadValue { option: "timeslice", value: ms.into(), expected: "milliseconds, 1 to 10000" }
                })?);
            }
            #[cfg(any(test, feature = "fs-virtiofs"))]
            ("virtiofs_timeout", Some(secs)) => {
                options.virtiofs_timeout_secs = Some(timeout_secs("virtiofs_timeout", secs)?);
            }
            #[cfg(any(test, feature = "blk"))]
            ("blk_cache", Some(size)) => {
                options.blk_cache_bytes = Some(parse_size(size).filter(|b| (64 << 10..=4 << 30).contains(b)).ok_or_else(|| {
                    CmdlineError::BadValue { option: "blk_cache", value: size.into(), expected: "bytes, 64K to 4G (suffix K, M or G)" }
                })?);
            }
            #[cfg(any(test, feature = "blk"))]
            ("blk_timeout", Some(secs)) => {
                options.blk_timeout_secs = Some(timeout_secs("blk_timeout", secs)?);
            }
            #[cfg(any(test, feature = "net"))]
            (name @ ("ip" | "ip6" | "tcp_buffer"), Some(value)) => {
                let name = match name {
                    "ip" => "ip",
                    "ip6" => "ip6",
                    _ => "tcp_buffer",
                };
                options.net.push((name, value.into()));
            }
            _ => return Err(CmdlineError::UnknownOption(word)),
        }
    }
    Ok(Cmdline { options, app_args })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        parse(text).unwrap().app_args
    }

    #[test]
    fn empty_line_gives_defaults() {
        let parsed = parse("").unwrap();
        assert_eq!(parsed.options, Options::default());
        assert!(parsed.app_args.is_empty());
    }

    #[test]
    fn options_then_app_args() {
        let parsed = parse("loglevel=debug bootstats -- --exit 3").unwrap();
        assert_eq!(parsed.options.log_level, LevelFilter::Debug);
        assert!(parsed.options.boot_stats);
        assert_eq!(parsed.app_args, ["--exit", "3"]);
    }

    #[test]
    fn app_args_may_look_like_options() {
        assert_eq!(args("-- loglevel=nonsense -- x"), ["loglevel=nonsense", "--", "x"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(args(r#"-- "two words" a\ b "" x"y"z"#), ["two words", "a b", "", "xyz"]);
        assert_eq!(args(r#"-- "say \"hi\"""#), [r#"say "hi""#]);
        assert_eq!(args("--   spaced\t out  "), ["spaced", "out"]);
    }

    #[test]
    fn quoted_separator_is_not_a_separator() {
        assert_eq!(parse(r#""--""#).unwrap_err(), CmdlineError::UnknownOption("--".into()));
    }

    #[test]
    fn unknown_option_is_an_error() {
        assert_eq!(parse("bogus=1").unwrap_err(), CmdlineError::UnknownOption("bogus=1".into()));
        assert_eq!(parse("bootstats=yes").unwrap_err(), CmdlineError::UnknownOption("bootstats=yes".into()));
        assert!(parse("bogus").unwrap_err().to_string().contains("unknown kernel option `bogus`"));
    }

    #[test]
    fn bad_value_names_what_is_accepted() {
        let error = parse("loglevel=loud").unwrap_err();
        assert!(matches!(error, CmdlineError::BadValue { option: "loglevel", .. }));
        assert!(error.to_string().contains("off, error, warn, info, debug or trace"));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet = ['a', '=', '-', '"', '\\', ' ', '\t', 'é', 'l', 'o', 'g', 'v', 'e'];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (state % 24) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse(&text);
        }
    }

    #[test]
    fn root_and_mounts() {
        let parsed = parse("root=ramfs mount=ramfs:/tmp mount=devfs:/dev2 -- x").unwrap();
        assert_eq!(parsed.options.root.as_deref(), Some("ramfs"));
        assert_eq!(
            parsed.options.mounts,
            [("ramfs".to_string(), "/tmp".to_string()), ("devfs".to_string(), "/dev2".to_string())]
        );
        assert_eq!(parse("").unwrap().options.root, None);
        let parsed = parse("root=virtiofs:myfs mount=virtiofs:data:/mnt/data virtiofs_timeout=5").unwrap();
        assert_eq!(parsed.options.root.as_deref(), Some("virtiofs:myfs"));
        assert_eq!(parsed.options.mounts, vec![(String::from("virtiofs:data"), String::from("/mnt/data"))]);
        assert_eq!(parsed.options.virtiofs_timeout_secs, Some(5));
        assert_eq!(parse("virtiofs_timeout=0").unwrap().options.virtiofs_timeout_secs, Some(0), "0: no timeout");
        assert_eq!(parse("blk_timeout=7").unwrap().options.blk_timeout_secs, Some(7));
        assert!(parse("blk_timeout=3601").is_err());
        assert_eq!(parse("blk_cache=16M").unwrap().options.blk_cache_bytes, Some(16 << 20));
        assert_eq!(parse("blk_cache=65536").unwrap().options.blk_cache_bytes, Some(64 << 10));
        for bad in ["blk_cache=1K", "blk_cache=5G", "blk_cache=M", "blk_cache=12X", "blk_cache=99999999999999G"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for bad in ["mount=ramfs", "mount=ramfs:tmp", "mount=:/tmp", "mount=virtiofs::/x", "root=", "root=a:", "root=:a", "root=a:/b", "virtiofs_timeout=3601", "virtiofs_timeout=-1"] {
            assert!(matches!(parse(bad).unwrap_err(), CmdlineError::BadValue { .. }), "{bad}");
        }
        assert!(parse("mount=x").unwrap_err().to_string().contains("expected FS:/PATH"));
        assert_eq!(parse("mount").unwrap_err(), CmdlineError::UnknownOption("mount".into()));
    }

    #[test]
    fn environment_variables() {
        let parsed = parse("env=HOME=/root env=EMPTY= env=A=b=c -- x").unwrap();
        assert_eq!(parsed.options.env, ["HOME=/root", "EMPTY=", "A=b=c"]);
        assert_eq!(parsed.app_args, ["x"]);
        for bad in ["env=NOVALUE", "env==x", "env="] {
            assert!(matches!(parse(bad).unwrap_err(), CmdlineError::BadValue { option: "env", .. }), "{bad}");
        }
    }

    #[test]
    fn wall_time() {
        assert_eq!(parse("walltime=1750000000").unwrap().options.wall_time_secs, Some(1_750_000_000));
        assert_eq!(parse("walltime=0").unwrap().options.wall_time_secs, Some(0));
        assert_eq!(parse("walltime=9223372036").unwrap().options.wall_time_secs, Some(9_223_372_036));
        assert_eq!(parse("").unwrap().options.wall_time_secs, None);
        assert_eq!(parse("smp=4").unwrap().options.smp, Some(4));
        assert_eq!(parse("smp=64").unwrap().options.smp, Some(64));
        assert_eq!(parse("").unwrap().options.smp, None);
        for bad in ["smp=0", "smp=65", "smp=", "smp=-1", "smp=two", "smp=1.5"] {
            assert!(matches!(parse(bad).unwrap_err(), CmdlineError::BadValue { option: "smp", .. }), "{bad}");
        }
        assert!(parse("smp=0").unwrap_err().to_string().contains("1 to 64"));
        assert!(parse("").unwrap().options.heap_cache);
        assert!(!parse("heap_cache=off").unwrap().options.heap_cache);
        assert!(parse("heap_cache=off heap_cache=on").unwrap().options.heap_cache);
        for bad in ["heap_cache=", "heap_cache=yes", "heap_cache=OFF"] {
            assert!(matches!(parse(bad).unwrap_err(), CmdlineError::BadValue { option: "heap_cache", .. }), "{bad}");
        }
        for bad in ["walltime=", "walltime=-1", "walltime=1.5", "walltime=9223372037", "walltime=now", "walltime=99999999999999999999"] {
            assert!(matches!(parse(bad).unwrap_err(), CmdlineError::BadValue { option: "walltime", .. }), "{bad}");
        }
        assert!(parse("walltime=x").unwrap_err().to_string().contains("seconds since 1970"));
        assert_eq!(parse("walltime").unwrap_err(), CmdlineError::UnknownOption("walltime".into()));
    }

    #[test]
    fn scheduler_options() {
        let parsed = parse("sched=coop timeslice=5").unwrap();
        assert_eq!(parsed.options.sched, Some("coop"));
        assert_eq!(parsed.options.time_slice_ms, Some(5));
        assert_eq!(parse("sched=rr").unwrap().options.sched, Some("rr"));
        assert!(matches!(parse("sched=fifo").unwrap_err(), CmdlineError::BadValue { option: "sched", .. }));
        assert!(matches!(parse("timeslice=0").unwrap_err(), CmdlineError::BadValue { option: "timeslice", .. }));
        assert!(matches!(parse("timeslice=x").unwrap_err(), CmdlineError::BadValue { option: "timeslice", .. }));
        assert_eq!(parse("sched").unwrap_err(), CmdlineError::UnknownOption("sched".into()));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(parse(r#"-- "open"#).unwrap_err(), CmdlineError::UnterminatedQuote);
    }
}
