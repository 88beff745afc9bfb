//! The command line, virtiofsd's where they overlap (`--opt VALUE` and `--opt=VALUE`).

use fuse_backend_rs::passthrough::CachePolicy;
use std::path::PathBuf;

/// The usage text (`--help`).
pub const USAGE: &str = "\
usage: libos-virtiofsd-dax --socket-path PATH --shared-dir DIR [OPTIONS]

A vhost-user-fs daemon for one VM that serves DIR and, with --dax-window, the DAX window
(FUSE_SETUPMAPPING/REMOVEMAPPING sent to QEMU as vhost-user SHMEM_MAP/UNMAP).

  --socket-path PATH        the vhost-user socket to listen on (created; an old socket there
                            is replaced)
  --shared-dir DIR          the directory to share
  --dax-window SIZE         enable DAX with a window of SIZE bytes (suffixes K, M, G; the same
                            size as QEMU's cache-size); a multiple of the host page size
  --cache auto|never|always|metadata
                            what the guest may cache (default auto: 1 s timeouts)
  --readonly                refuse every change to the share (EROFS)
  --xattr, --no-xattr       serve extended attributes, or not (default: not, as virtiofsd;
                            without them the guest gets EOPNOTSUPP)
  --sandbox namespace|chroot|none
                            namespace (default): new mount, PID and network namespaces and
                            pivot_root into DIR; chroot: chroot into DIR; none: no confinement
                            (debugging only)
  --log-level off|error|warn|info|debug|trace
                            messages on stderr (default warn); debug logs every FUSE request
  --inode-file-handles never|prefer
                            identify inodes by O_PATH fds (never, default) or file handles
  --migration-on-error ANY  accepted for virtiofsd compatibility (no migration here)
  -V, --version             print the version
  -h, --help                print this text
";

/// Where the daemon confines itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sandbox {
    /// New mount, PID and network namespaces, pivot_root into the shared directory.
    Namespace,
    /// chroot into the shared directory (root only; no namespaces).
    Chroot,
    /// Nothing (debugging).
    None,
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// `--socket-path`.
    pub socket_path: PathBuf,
    /// `--shared-dir`.
    pub shared_dir: PathBuf,
    /// `--dax-window`, bytes.
    pub dax_window: Option<u64>,
    /// `--cache`.
    pub cache: CachePolicy,
    /// `--readonly`.
    pub readonly: bool,
    /// `--sandbox`.
    pub sandbox: Sandbox,
    /// `--log-level`.
    pub log_level: log::LevelFilter,
    /// `--inode-file-handles prefer`.
    pub inode_file_handles: bool,
    /// `--xattr` (`--no-xattr`: false, the default).
    pub xattr: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Serve.
    Run(Box<Options>),
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// Parses a size: decimal or `0x` hexadecimal bytes, or with a suffix K, M, G, T (powers of
/// 1024, `KiB`/`KB` spellings too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("bad size `{text}` (expected bytes, or a number with K, M, G or T)");
    let trimmed = text.trim();
    let (digits, shift) = match trimmed.find(|c: char| c.is_ascii_alphabetic() && !trimmed.starts_with("0x")) {
        Some(at) => {
            let shift = match trimmed[at..].to_ascii_uppercase().as_str() {
                "K" | "KB" | "KIB" => 10,
                "M" | "MB" | "MIB" => 20,
                "G" | "GB" | "GIB" => 30,
                "T" | "TB" | "TIB" => 40,
                _ => return Err(bad()),
            };
            (&trimmed[..at], shift)
        }
        None => (trimmed, 0),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    }
    .map_err(|_| bad())?;
    value.checked_mul(1u64 << shift).ok_or_else(bad)
}

fn parse_cache(text: &str) -> Result<CachePolicy, String> {
    match text {
        "auto" => Ok(CachePolicy::Auto),
        "never" | "none" => Ok(CachePolicy::Never),
        "always" => Ok(CachePolicy::Always),
        "metadata" => Ok(CachePolicy::Metadata),
        _ => Err(format!("unknown cache policy `{text}` (expected auto, never, always or metadata)")),
    }
}

fn parse_sandbox(text: &str) -> Result<Sandbox, String> {
    match text {
        "namespace" => Ok(Sandbox::Namespace),
        "chroot" => Ok(Sandbox::Chroot),
        "none" => Ok(Sandbox::None),
        _ => Err(format!("unknown sandbox `{text}` (expected namespace, chroot or none)")),
    }
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut socket_path, mut shared_dir, mut dax_window) = (None, None, None);
    let mut options = Options {
        socket_path: PathBuf::new(),
        shared_dir: PathBuf::new(),
        dax_window: None,
        cache: CachePolicy::Auto,
        readonly: false,
        sandbox: Sandbox::Namespace,
        log_level: log::LevelFilter::Warn,
        inode_file_handles: false,
        xattr: false,
    };
    let text = |parser: &mut lexopt::Parser| -> Result<String, String> {
        let value = parser.value().map_err(|e| e.to_string())?;
        value.into_string().map_err(|v| format!("not UTF-8: {v:?}"))
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("socket-path") => socket_path = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?)),
            Long("shared-dir") => shared_dir = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?)),
            Long("dax-window") => dax_window = Some(parse_size(&text(&mut parser)?)?),
            Long("cache") => options.cache = parse_cache(&text(&mut parser)?)?,
            Long("readonly") => options.readonly = true,
            Long("xattr") => options.xattr = true,
            Long("no-xattr") => options.xattr = false,
            Long("sandbox") => options.sandbox = parse_sandbox(&text(&mut parser)?)?,
            Long("log-level") => {
                let level = text(&mut parser)?;
                options.log_level = level.parse().map_err(|_| format!("unknown log level `{level}`"))?;
            }
            Long("inode-file-handles") => {
                options.inode_file_handles = match text(&mut parser)?.as_str() {
                    "never" => false,
                    "prefer" => true,
                    other => return Err(format!("unknown --inode-file-handles `{other}` (expected never or prefer)")),
                }
            }
            Long("migration-on-error") => {
                text(&mut parser)?;
            }
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    options.socket_path = socket_path.ok_or("--socket-path is required")?;
    options.shared_dir = shared_dir.ok_or("--shared-dir is required")?;
    if let Some(size) = dax_window {
        let page = crate::dax::host_page_size();
        if size == 0 || size % page != 0 {
            return Err(format!("--dax-window must be a non-zero multiple of the page size ({page} bytes), not {size}"));
        }
        options.dax_window = Some(size);
    }
    Ok(Command::Run(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn run(args: &[&str]) -> Options {
        match parse_strs(args) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert_eq!(parse_size("0x10000000"), Ok(1 << 28));
        for bad in ["", "M", "12Q", "-1", "1.5G", "99999999999T", "0x"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_minimal_command_line_and_the_defaults() {
        let options = run(&["--socket-path", "/tmp/fs.sock", "--shared-dir", "/srv"]);
        assert_eq!(options.socket_path, PathBuf::from("/tmp/fs.sock"));
        assert_eq!(options.shared_dir, PathBuf::from("/srv"));
        assert_eq!(options.dax_window, None);
        assert_eq!(options.cache, CachePolicy::Auto);
        assert!(!options.readonly && !options.inode_file_handles && !options.xattr);
        assert_eq!(options.sandbox, Sandbox::Namespace);
        assert_eq!(options.log_level, log::LevelFilter::Warn);
    }

    #[test]
    fn every_option_in_both_spellings() {
        let options = run(&[
            "--socket-path=/s",
            "--shared-dir=/d",
            "--dax-window=256M",
            "--cache",
            "never",
            "--readonly",
            "--sandbox=chroot",
            "--log-level=debug",
            "--inode-file-handles=prefer",
            "--migration-on-error=guest-error",
            "--xattr",
        ]);
        assert!(options.xattr);
        assert!(!run(&["--socket-path=/s", "--shared-dir=/d", "--xattr", "--no-xattr"]).xattr);
        assert_eq!(options.dax_window, Some(256 << 20));
        assert_eq!(options.cache, CachePolicy::Never);
        assert!(options.readonly && options.inode_file_handles);
        assert_eq!(options.sandbox, Sandbox::Chroot);
        assert_eq!(options.log_level, log::LevelFilter::Debug);
        assert_eq!(run(&["--socket-path=/s", "--shared-dir=/d", "--sandbox", "none"]).sandbox, Sandbox::None);
        assert_eq!(run(&["--socket-path=/s", "--shared-dir=/d", "--cache=always"]).cache, CachePolicy::Always);
        assert_eq!(run(&["--socket-path=/s", "--shared-dir=/d", "--cache=metadata"]).cache, CachePolicy::Metadata);
    }

    #[test]
    fn help_version_and_mistakes() {
        assert_eq!(parse_strs(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
        assert!(parse_strs(&["--shared-dir=/d"]).unwrap_err().contains("--socket-path"));
        assert!(parse_strs(&["--socket-path=/s"]).unwrap_err().contains("--shared-dir"));
        let base = ["--socket-path=/s", "--shared-dir=/d"];
        let with = |extra: &str| parse_strs(&[base[0], base[1], extra]).unwrap_err();
        assert!(with("--cache=sometimes").contains("cache policy"));
        assert!(with("--sandbox=jail").contains("sandbox"));
        assert!(with("--log-level=loud").contains("log level"));
        assert!(with("--dax-window=0").contains("page size"));
        assert!(with("--dax-window=1000").contains("page size"));
        assert!(with("--dax-window=lots").contains("bad size"));
        assert!(with("--bogus").contains("bogus"));
        assert!(with("stray").contains("stray"));
    }
}
