//! Host directories shared with a guest through virtio-fs: `./x run --share DIR[:TAG]`,
//! `./x run --root DIR`, and [`crate::qemu::VmConfig::shares`] for the integration tests.
//!
//! Each share gets its own `virtiofsd` (the Rust one, 1.14, which serves exactly one VM and
//! exits when it disconnects), listening on a vhost-user socket in a private temporary
//! directory. QEMU connects to it with `vhost-user-fs-device` (virtio-mmio: microvm, aarch64
//! `virt`) or `vhost-user-fs-pci` (q35). vhost-user needs guest RAM the daemon can map, so a
//! boot with shares gets a `memory-backend-memfd,share=on` backend; without `share=on` QEMU
//! starts fine and the guest's first FUSE request hangs.
//!
//! [`Daemons`] owns the processes: dropping it (guest exited, error, Ctrl-C through
//! [`kill_all`]) kills every daemon it started by PID and removes the sockets.
//!
//! virtiofsd is not packaged by Debian 12: [`ensure_virtiofsd`] installs it once with
//! `cargo install` into `/var/cache/libos/virtiofsd-VERSION-KEY/` (`KEY` hashes the Rust
//! compiler's version; two to four minutes of both cores here, so later clones on the same
//! machine reuse it), after the C libraries it links (`libseccomp`, `libcap-ng`). [`VIRTIOFSD_ENV`] names another daemon with the same
//! command line instead (e.g. `tools/virtiofsd-dax`, which serves the DAX window).

use crate::qemu::VirtioTransport;
use crate::{Result, root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtiofsd release `./x` installs (the notes and tests were checked against it).
pub const VIRTIOFSD_VERSION: &str = "1.14.0";

/// The longest tag virtio-fs can carry (`virtio_fs_config.tag` is 36 bytes).
pub const MAX_TAG_LEN: usize = 36;

/// The tag of the share `--root DIR` mounts as `/` (`root=virtiofs:root`).
pub const ROOT_TAG: &str = "root";

/// virtiofsd's caching policy (`--cache`): what the host lets the guest cache, reflected in
/// the entry and attribute timeouts of its replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cache {
    /// Timeouts of one second (virtiofsd's default).
    #[default]
    Auto,
    /// No caching: every lookup and stat goes to the host.
    Never,
    /// Long timeouts (the host promises nobody else changes the directory).
    Always,
    /// Metadata cached, data not.
    Metadata,
}

impl Cache {
    /// The value of virtiofsd's `--cache` option.
    pub fn name(self) -> &'static str {
        match self {
            Cache::Auto => "auto",
            Cache::Never => "never",
            Cache::Always => "always",
            Cache::Metadata => "metadata",
        }
    }
}

impl std::str::FromStr for Cache {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Cache, String> {
        [Cache::Auto, Cache::Never, Cache::Always, Cache::Metadata]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown cache policy `{s}` (expected auto, never, always or metadata)"))
    }
}

/// One host directory exported to the guest under a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The host directory (must exist).
    pub dir: PathBuf,
    /// The tag the guest mounts it by (`mount=virtiofs:TAG:/PATH`, `root=virtiofs:TAG`).
    pub tag: String,
    /// virtiofsd's caching policy.
    pub cache: Cache,
    /// Whether virtiofsd logs every FUSE request it receives (`--log-level=debug`, read back
    /// with [`Daemons::log`]): tests count what reached the host, e.g. a `FUSE_FSYNC`.
    pub log_requests: bool,
    /// A DAX window of this many bytes (`--dax SIZE`): the share is then served by our own
    /// daemon ([`ensure_dax_daemon`]) instead of virtiofsd, through the patched QEMU
    /// ([`crate::dax_qemu`]) whose `vhost-user-fs-pci` has the window as a PCI BAR.
    pub dax: Option<u64>,
}

impl Share {
    /// A share of `dir` as `tag` with the default cache policy.
    pub fn new(dir: impl Into<PathBuf>, tag: &str) -> Share {
        Share { dir: dir.into(), tag: tag.into(), cache: Cache::default(), log_requests: false, dax: None }
    }

    /// Parses `--share DIR[:TAG]`; the tag defaults to the directory's last component.
    pub fn parse(text: &str) -> Result<Share> {
        let (dir, tag) = match text.rsplit_once(':') {
            Some((dir, tag)) if !dir.is_empty() => (dir, tag.to_string()),
            _ => {
                let name = Path::new(text).canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
                (text, name.unwrap_or_else(|| "share".into()))
            }
        };
        let share = Share::new(dir, &tag);
        share.check()?;
        Ok(share)
    }

    /// Refuses what the device could not carry or the daemon could not serve.
    pub fn check(&self) -> Result<()> {
        if self.tag.is_empty() || self.tag.len() > MAX_TAG_LEN || self.tag.contains(['\n', ':', ' ', '\0']) {
            return Err(format!(
                "bad virtio-fs tag {:?}: it must be 1 to {MAX_TAG_LEN} bytes without spaces, colons or newlines",
                self.tag
            )
            .into());
        }
        if !self.dir.is_dir() {
            return Err(format!("cannot share {}: not a directory", self.dir.display()).into());
        }
        if let Some(size) = self.dax {
            check_dax_window(size)?;
        }
        Ok(())
    }
}

/// The smallest DAX window: one 2 MiB mapping, the unit the guest maps (as Linux does).
pub const MIN_DAX_WINDOW: u64 = 2 << 20;

/// Refuses a DAX window the guest could not use or QEMU could not place: it must be a power of
/// two (a PCI BAR is) of at least 2 MiB, and at most 64 GiB.
pub fn check_dax_window(size: u64) -> Result<()> {
    if size < MIN_DAX_WINDOW || !size.is_power_of_two() || size > 64 << 30 {
        return Err(format!("bad DAX window size {size}: it must be a power of two from 2M to 64G (a PCI BAR)").into());
    }
    Ok(())
}

/// Whether any of `shares` has a DAX window (the boot then needs the patched QEMU and PCI).
pub fn any_dax(shares: &[Share]) -> bool {
    shares.iter().any(|s| s.dax.is_some())
}

/// Checks that no two shares use the same tag (the guest could not tell them apart).
pub fn check_unique_tags(shares: &[Share]) -> Result<()> {
    for (i, share) in shares.iter().enumerate() {
        if shares[..i].iter().any(|s| s.tag == share.tag) {
            return Err(format!("two shares use the tag {:?}; give one another tag with DIR:TAG", share.tag).into());
        }
    }
    Ok(())
}

/// Where virtiofsd is installed: a machine cache outside the checkout, named by its version
/// and the Rust compiler that builds it.
fn virtiofsd_dir() -> Result<PathBuf> {
    let rustc = crate::linux::output_of(Command::new("/usr/bin/rustc").arg("-V"))?;
    let key = crate::dax_qemu::cache_key(&[rustc.as_bytes()], &[]);
    Ok(Path::new(crate::dax_qemu::CACHE_ROOT).join(format!("virtiofsd-{VIRTIOFSD_VERSION}-{key}")))
}

/// The environment variable that names the daemon to run instead of the installed virtiofsd
/// (it gets virtiofsd's options, see [`Daemons::start`]).
pub const VIRTIOFSD_ENV: &str = "LIBOS_VIRTIOFSD";

/// The virtiofsd binary: [`VIRTIOFSD_ENV`]'s if set, else the release, installed on first use.
pub fn ensure_virtiofsd() -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os(VIRTIOFSD_ENV).filter(|b| !b.is_empty()) {
        let binary = PathBuf::from(binary);
        if !binary.is_file() {
            return Err(format!("{VIRTIOFSD_ENV}={} is not a file", binary.display()).into());
        }
        return Ok(binary);
    }
    // Tests start boots from parallel threads: one check (and installation) at a time, and
    // once checked, not again for every boot of this process.
    static CHECKED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(binary) = checked.as_ref() {
        return Ok(binary.clone());
    }
    let dir = virtiofsd_dir()?;
    let binary = dir.join("bin/virtiofsd");
    if installed_version(&binary).as_deref() == Some(VIRTIOFSD_VERSION) {
        *checked = Some(binary.clone());
        return Ok(binary);
    }
    // Another ./x (another clone's tests) may be installing it: one at a time per machine.
    let _lock = crate::build::lock_file(&dir.with_file_name("virtiofsd.lock"))?;
    if installed_version(&binary).as_deref() == Some(VIRTIOFSD_VERSION) {
        *checked = Some(binary.clone());
        return Ok(binary);
    }
    let missing: Vec<&str> =
        [("libseccomp-dev", "/usr/include/seccomp.h"), ("libcap-ng-dev", "/usr/include/cap-ng.h"), ("pkg-config", "/usr/bin/pkg-config")]
            .into_iter()
            .filter(|(_, file)| !Path::new(file).exists())
            .map(|(package, _)| package)
            .collect();
    if !missing.is_empty() {
        eprintln!("==> first use of virtio-fs: installing {} (virtiofsd links them)", missing.join(" "));
        crate::linux::apt_install(&missing)?;
    }
    eprintln!("==> first use of virtio-fs: building virtiofsd {VIRTIOFSD_VERSION} into {} (a few minutes)", dir.display());
    crate::linux::run_step(
        Command::new(crate::build::cargo())
            .current_dir(root())
            .args(["install", "--quiet", "--locked", "virtiofsd", "--version", VIRTIOFSD_VERSION, "--root"])
            .arg(&dir),
    )?;
    match installed_version(&binary) {
        Some(v) if v == VIRTIOFSD_VERSION => {
            *checked = Some(binary.clone());
            Ok(binary)
        }
        other => Err(format!("{} reports version {other:?} after installing {VIRTIOFSD_VERSION}", binary.display()).into()),
    }
}

/// The package of our DAX-capable vhost-user-fs daemon (`tools/virtiofsd-dax/`).
pub const DAX_DAEMON: &str = "libos-virtiofsd-dax";

/// Our DAX-capable daemon, built from this workspace on first use (cargo's own up-to-date
/// check afterwards, once per `./x` process).
pub fn ensure_dax_daemon() -> Result<PathBuf> {
    static CHECKED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(binary) = checked.as_ref() {
        return Ok(binary.clone());
    }
    let target_dir = root().join("target/host");
    crate::linux::run_step(
        Command::new(crate::build::cargo())
            .current_dir(root())
            .args(["build", "--quiet", "--release", "-p", DAX_DAEMON, "--target-dir"])
            .arg(&target_dir),
    )?;
    let binary = target_dir.join("release").join(DAX_DAEMON);
    *checked = Some(binary.clone());
    Ok(binary)
}

/// The version `virtiofsd --version` prints (`virtiofsd 1.14.0`).
fn installed_version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").stderr(Stdio::null()).output().ok()?;
    String::from_utf8_lossy(&output.stdout).split_whitespace().nth(1).map(str::to_string)
}

/// The PIDs of every virtiofsd any [`Daemons`] of this process is running (for Ctrl-C).
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Kills every virtiofsd this program started and has not stopped yet.
pub fn kill_all() {
    let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        kill(pid);
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
}

/// One running virtiofsd.
struct Daemon {
    share: Share,
    socket: PathBuf,
    child: Child,
}

/// The virtiofsd processes of one boot, stopped when dropped.
pub struct Daemons {
    daemons: Vec<Daemon>,
    /// Sockets and logs: a fresh directory with an unpredictable name (mode 0700), never a
    /// fixed path in `/tmp` that someone else could have made a symlink first.
    dir: tempfile::TempDir,
}

/// How long a fresh virtiofsd may take to create its socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

impl Daemons {
    /// Starts one virtiofsd per share and waits until each listens on its socket.
    pub fn start(shares: &[Share]) -> Result<Daemons> {
        check_unique_tags(shares)?;
        for share in shares {
            share.check()?;
        }
        let virtiofsd = if shares.iter().any(|s| s.dax.is_none()) { Some(ensure_virtiofsd()?) } else { None };
        let dax_daemon = if any_dax(shares) { Some(ensure_dax_daemon()?) } else { None };
        let sandbox = sandbox()?;
        let dir = tempfile::Builder::new()
            .prefix("libos-virtiofs-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for virtiofsd's sockets: {e}"))?;
        let mut daemons = Daemons { daemons: Vec::new(), dir };
        for (index, share) in shares.iter().enumerate() {
            let socket = daemons.dir.path().join(format!("fs{index}.sock"));
            let log = std::fs::File::create(daemons.dir.path().join(format!("fs{index}.log")))?;
            let mut command;
            if let (Some(window), Some(binary)) = (share.dax, &dax_daemon) {
                command = Command::new(binary);
                command.arg(format!("--dax-window={window}")).arg("--xattr");
            } else {
                command = Command::new(virtiofsd.as_ref().expect("virtiofsd is installed for shares without DAX"));
                command
                    .arg("--inode-file-handles=never")
                    // A forked process's VM takes over its parent's open files through
                    // vhost-user's device-state transfer (`crate::process`); an inode the parent
                    // still knows but whose path is gone (a deleted file) becomes an error for
                    // the child instead of failing the whole fork.
                    .arg("--migration-on-error=guest-error")
                    // Extended attributes pass through to the host file system (both daemons).
                    .arg("--xattr");
            }
            let binary = PathBuf::from(command.get_program());
            let child = command
                .arg(format!("--socket-path={}", socket.display()))
                .arg(format!("--shared-dir={}", share.dir.display()))
                .arg(format!("--cache={}", share.cache.name()))
                .arg(format!("--sandbox={sandbox}"))
                .arg(if share.log_requests { "--log-level=debug" } else { "--log-level=error" })
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
            if let Ok(mut running) = RUNNING.lock() {
                running.push(child.id());
            }
            daemons.daemons.push(Daemon { share: share.clone(), socket, child });
        }
        for index in 0..daemons.daemons.len() {
            daemons.wait_for_socket(index)?;
        }
        Ok(daemons)
    }

    fn wait_for_socket(&mut self, index: usize) -> Result<()> {
        let started = Instant::now();
        loop {
            let daemon = &mut self.daemons[index];
            if daemon.socket.exists() {
                return Ok(());
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let dir = daemon.share.dir.display().to_string();
                return Err(format!("virtiofsd for {dir} exited ({status}): {}", self.log(index).trim()).into());
            }
            if started.elapsed() > SOCKET_TIMEOUT {
                return Err(format!("virtiofsd for {} did not create {} within {SOCKET_TIMEOUT:?}", daemon.share.dir.display(), daemon.socket.display()).into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What daemon `index` wrote to its error output so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("fs{index}.log"))).unwrap_or_default()
    }

    /// The PID of the daemon serving share `index` (tests count its open files, or kill it).
    pub fn pid(&self, index: usize) -> u32 {
        self.daemons[index].child.id()
    }

    /// The QEMU arguments that connect the guest to the daemons through `transport`;
    /// `memory` is the guest RAM (the shared memory backend replaces QEMU's default RAM).
    pub fn qemu_args(&self, transport: VirtioTransport, memory: &str) -> Vec<String> {
        let devices: Vec<Device<'_>> = self.daemons.iter().map(|d| Device { tag: &d.share.tag, socket: &d.socket, dax: d.share.dax }).collect();
        qemu_args(transport, memory, &devices)
    }

    /// Stops every daemon (they normally exit by themselves when QEMU disconnects).
    pub fn stop(&mut self) {
        for daemon in &mut self.daemons {
            let pid = daemon.child.id();
            let deadline = Instant::now() + Duration::from_millis(500);
            while daemon.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if daemon.child.try_wait().ok().flatten().is_none() {
                kill(pid);
                let _ = daemon.child.wait();
            }
            if let Ok(mut running) = RUNNING.lock() {
                running.retain(|&p| p != pid);
            }
        }
        // The directory goes when `self.dir` is dropped.
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The QEMU arguments that put `memory` of guest RAM in a shared memory file
/// (`memfd:libos-mem`): vhost-user daemons map it, and the process host reads and writes it.
pub fn shared_memory_args(memory: &str) -> Vec<String> {
    vec![
        "-object".to_string(),
        format!("memory-backend-memfd,id=libos-mem,size={memory},share=on"),
        "-machine".into(),
        "memory-backend=libos-mem".into(),
    ]
}

/// A virtio-fs device as QEMU's command line names it.
struct Device<'a> {
    tag: &'a str,
    /// The daemon's vhost-user socket.
    socket: &'a Path,
    /// The DAX window's size (the patched QEMU's `cache-size`), if any.
    dax: Option<u64>,
}

/// The QEMU arguments for virtio-fs `devices` attached through `transport`, with `memory` of
/// guest RAM.
fn qemu_args(transport: VirtioTransport, memory: &str, devices: &[Device<'_>]) -> Vec<String> {
    if devices.is_empty() {
        return Vec::new();
    }
    let mut args = shared_memory_args(memory);
    let device = match transport {
        VirtioTransport::Pci => "vhost-user-fs-pci",
        VirtioTransport::Mmio => {
            // virtio-mmio version 2 (modern): VERSION_1 feature negotiation and the
            // shared-memory registers; QEMU's default is the legacy version 1.
            args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
            "vhost-user-fs-device"
        }
        VirtioTransport::MmioLegacy => "vhost-user-fs-device",
    };
    for (index, d) in devices.iter().enumerate() {
        args.push("-chardev".into());
        args.push(format!("socket,id=libos-fs{index},path={}", d.socket.display()));
        args.push("-device".into());
        let window = d.dax.map(|size| format!(",cache-size={size}")).unwrap_or_default();
        args.push(format!("{device},chardev=libos-fs{index},tag={},queue-size=1024{window}", d.tag));
    }
    args
}

/// The environment variable that allows an unsandboxed virtiofsd (see [`sandbox`]).
pub const ALLOW_UNSANDBOXED: &str = "LIBOS_VIRTIOFSD_UNSANDBOXED";

/// virtiofsd's sandbox: its own mount/PID/network namespaces where the kernel lets us create
/// them (root, or unprivileged user namespaces), which confines the daemon to the shared
/// directory; else a chroot (root only, said once). Without either, virtiofsd would run with
/// the user's whole file system in reach of a guest that escapes the shared directory through
/// a virtiofsd bug: refused with a message, unless [`ALLOW_UNSANDBOXED`] is `1`, and then said
/// loudly at every start.
fn sandbox() -> Result<&'static str> {
    static CHOSEN: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let unshare_works = Command::new("unshare")
            .args(["--mount", "--pid", "--net", "--fork", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if unshare_works {
            "namespace"
        } else if is_root() {
            eprintln!("==> virtiofsd: namespaces unavailable here, sandboxed with --sandbox=chroot instead");
            "chroot"
        } else {
            "none"
        }
    });
    sandbox_verdict(chosen, std::env::var(ALLOW_UNSANDBOXED).is_ok_and(|v| v == "1"))
}

/// [`sandbox`]'s decision for the sandbox that works here.
fn sandbox_verdict(works: &'static str, allow_none: bool) -> Result<&'static str> {
    match (works, allow_none) {
        ("none", false) => Err(format!(
            "virtiofsd cannot be sandboxed here (no namespaces: `unshare --mount --pid --net` fails, and \
             no root for a chroot), so a share would expose this user's whole file system to a \
             compromised virtiofsd; refusing. Run as root, enable unprivileged user namespaces, or \
             set {ALLOW_UNSANDBOXED}=1 to accept an unsandboxed virtiofsd"
        )
        .into()),
        ("none", true) => {
            eprintln!("./x: WARNING: virtiofsd runs UNSANDBOXED (--sandbox=none, {ALLOW_UNSANDBOXED}=1): it can reach every file this user can");
            Ok("none")
        }
        (sandbox, _) => Ok(sandbox),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_tags_parse_and_default_to_the_directory_name() {
        let dir = std::env::temp_dir();
        let name = dir.canonicalize().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(Share::parse(dir.to_str().unwrap()).unwrap().tag, name);
        let tagged = Share::parse(&format!("{}:data", dir.display())).unwrap();
        assert_eq!((tagged.dir, tagged.tag.as_str()), (dir.clone(), "data"));
    }

    #[test]
    fn bad_shares_are_refused() {
        let dir = std::env::temp_dir();
        let long = "t".repeat(MAX_TAG_LEN + 1);
        assert!(Share::parse(&format!("{}:{long}", dir.display())).unwrap_err().to_string().contains("bad virtio-fs tag"));
        assert!(Share::parse(&format!("{}:{}", dir.display(), "t".repeat(MAX_TAG_LEN))).is_ok());
        assert!(Share::parse("/no/such/dir:x").unwrap_err().to_string().contains("not a directory"));
        let twice = [Share::new(&dir, "a"), Share::new(&dir, "a")];
        assert!(check_unique_tags(&twice).is_err());
    }

    #[test]
    fn no_silent_unsandboxed_virtiofsd() {
        assert_eq!(sandbox_verdict("namespace", false).unwrap(), "namespace");
        assert_eq!(sandbox_verdict("chroot", false).unwrap(), "chroot");
        let refused = sandbox_verdict("none", false).unwrap_err().to_string();
        assert!(refused.contains("refusing") && refused.contains(ALLOW_UNSANDBOXED), "{refused}");
        assert_eq!(sandbox_verdict("none", true).unwrap(), "none");
    }

    #[test]
    fn qemu_gets_shared_memory_and_one_device_per_share() {
        assert!(qemu_args(VirtioTransport::Mmio, "64M", &[]).is_empty(), "no shares: plain RAM");
        let (a, b) = (Path::new("/tmp/a.sock"), Path::new("/tmp/b.sock"));
        let device = |tag, socket| Device { tag, socket, dax: None };
        let args = qemu_args(VirtioTransport::Mmio, "128M", &[device("root", a), device("data", b)]).join(" ");
        assert!(args.contains("memory-backend-memfd,id=libos-mem,size=128M,share=on"), "{args}");
        assert!(args.contains("-machine memory-backend=libos-mem"), "{args}");
        assert!(args.contains("vhost-user-fs-device,chardev=libos-fs0,tag=root"), "{args}");
        assert!(args.contains("socket,id=libos-fs1,path=/tmp/b.sock"), "{args}");
        assert!(args.contains("vhost-user-fs-device,chardev=libos-fs1,tag=data"), "{args}");
        let pci = qemu_args(VirtioTransport::Pci, "64M", &[device("root", a)]).join(" ");
        assert!(pci.contains("vhost-user-fs-pci,chardev=libos-fs0,tag=root") && !pci.contains("force-legacy"), "{pci}");
        let dax = qemu_args(VirtioTransport::Pci, "64M", &[Device { dax: Some(64 << 20), ..device("root", a) }]).join(" ");
        assert!(dax.contains("tag=root,queue-size=1024,cache-size=67108864"), "{dax}");
    }

    #[test]
    fn dax_windows_must_be_bars_of_at_least_one_chunk() {
        assert!(check_dax_window(2 << 20).is_ok());
        assert!(check_dax_window(256 << 20).is_ok());
        assert!(check_dax_window(1 << 20).is_err(), "smaller than one mapping");
        assert!(check_dax_window(3 << 20).is_err(), "not a power of two");
        assert!(check_dax_window(128 << 30).is_err());
    }
}
