//! `libos-virtiofsd-dax`: a vhost-user-fs daemon (the host side of virtio-fs) that can serve
//! the DAX window, for the QEMU that gets a `cache-size` on `vhost-user-fs-pci` (issue 19).
//!
//! Released virtiofsd answers FUSE_SETUPMAPPING with ENOSYS. This daemon passes
//! FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING to QEMU as the vhost-user backend requests
//! `SHMEM_MAP` (with the file's fd) / `SHMEM_UNMAP` on shared-memory region 0, which QEMU maps
//! into the device's window. Everything else is an ordinary passthrough share, usable with the
//! stock QEMU too (no window there), like virtiofsd.
//!
//! ```text
//! libos-virtiofsd-dax --socket-path PATH --shared-dir DIR [--dax-window SIZE]
//!     [--cache auto|never|always|metadata] [--readonly] [--xattr] [--sandbox namespace|chroot|none]
//!     [--log-level LEVEL]
//! ```
//!
//! It serves one frontend connection and exits when QEMU disconnects. `./x` runs it instead of
//! virtiofsd when `LIBOS_VIRTIOFSD` names it (`xtask/src/virtiofs.rs`).
//!
//! # Pieces
//! - [`args`]: the command line (virtiofsd's option names where they overlap).
//! - [`device`]: the vhost-user device on vhost-user-backend (`FsBackend`; 2 queues, hiprio and
//!   one request queue, up to 1024 entries; VERSION_1, INDIRECT_DESC, EVENT_IDX; protocol
//!   features MQ, REPLY_ACK, CONFIGURE_MEM_SLOTS, and with a window BACKEND_REQ,
//!   BACKEND_SEND_FD and SHMEM) and one chain's request through fuse-backend-rs's `Server` on a
//!   `PassthroughFs` (`Requests`). The device config space (tag, number of request queues)
//!   is QEMU's, not ours.
//! - [`fuse`]: what the daemon decides before the server (unknown opcodes, no window, read-only
//!   share) and what it adds to the server's FUSE_INIT reply (`MAX_PAGES`; with a window
//!   `MAP_ALIGNMENT` = log2 of the host page size, 12 on x86_64).
//! - [`dax`]: the window: every mapping checked (inside the window, page-aligned, no overflow,
//!   known flags; else EINVAL before anything reaches QEMU) and sent through `MapSender`, the
//!   vhost `Backend` channel in the daemon and a fake in the tests. FUSE_SETUPMAPPING_FLAG_WRITE
//!   makes a writable mapping (the passthrough opens the file read-write for it).
//! - [`share`]: the passthrough file system with READDIR's inode numbers corrected (it gave FUSE
//!   node ids where `stat` gives the host's `st_ino`).
//! - [`xattr`]: extended attributes, by the inode's descriptor under `/proc/self/fd`.
//! - [`sandbox`]: the confinement.
//!
//! # Sandbox
//! `--sandbox namespace` (default): before serving, new mount, PID and network namespaces
//! (root, or user namespaces), then `pivot_root` into the shared directory with the old root
//! detached (the share is bind-mounted read-only with `--readonly`). The vhost-user socket, a
//! handle on `/proc/self/fd` (the passthrough reopens its O_PATH inode fds through it; a
//! second one serves extended attributes) and
//! `/proc/self/mountinfo` are opened before, so the daemon needs nothing outside the share
//! afterwards; no `/proc` is mounted inside. `--sandbox chroot`: a chroot into the share, no
//! namespaces. `--sandbox none`: nothing, for debugging.
//!
//! Not done (virtiofsd does them): no seccomp filter, no dropping of capabilities (the daemon
//! keeps root's, so a code-execution bug is still root in a mount namespace confined to the
//! share, not a confined unprivileged process), no user namespace of its own, no
//! `--announce-submounts`, no POSIX ACL translation (`system.posix_acl_*` attributes are
//! stored as the host stores them), no device-state migration (`--migration-on-error` is
//! accepted and ignored), and FUSE requests are served by one thread. Extended attributes (with
//! `--xattr`) are served by [`xattr`] (fuse-backend-rs reaches them through `/proc/self/fd/N` paths, which
//! the `pivot_root` sandbox does not have); as root, `trusted.*` and `security.*` too.
//!
//! DAX caveats: the protocol feature is vhost 0.16's `SHMEM`, bit 21 (QEMU's drafts of the
//! series used bit 20; the frontend must agree). A mapping request holds the device while it
//! waits for QEMU's acknowledgement, so a frontend that sends a control message needing the
//! device (SET_FEATURES, ...) before it answers a SHMEM_MAP would wait for us while we wait for
//! it. Mappings are not tracked here: QEMU owns the window's contents.
//!
//! Never a panic on guest input: a descriptor chain that cannot be read completes with 0 bytes,
//! a request that cannot be decoded gets an error reply; both are logged.

mod args;
mod dax;
mod device;
mod fuse;
mod sandbox;
mod share;
mod xattr;

use args::{Command, Options, Sandbox};
use dax::{DaxMapper, Window};
use device::{FsBackend, Requests};
use share::ShareFs;
use xattr::Xattrs;
use fuse_backend_rs::passthrough::{CachePolicy, Config, PassthroughFs};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

/// Messages to stderr, `LEVEL target: text`.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[libos-virtiofsd-dax {} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

fn main() {
    let command = args::parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("libos-virtiofsd-dax: {e}\n\n{}", args::USAGE);
        std::process::exit(2);
    });
    let options = match command {
        Command::Help => {
            print!("{}", args::USAGE);
            return;
        }
        Command::Version => {
            println!("libos-virtiofsd-dax {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Command::Run(options) => options,
    };
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(options.log_level);
    }
    if let Err(e) = run(&options) {
        log::error!("{e}");
        eprintln!("libos-virtiofsd-dax: {e}");
        std::process::exit(1);
    }
}

/// The passthrough file system's configuration: virtiofsd's timeouts for each cache policy.
fn fs_config(options: &Options, root: &Path) -> Config {
    let timeout = match options.cache {
        CachePolicy::Never => Duration::ZERO,
        CachePolicy::Auto => Duration::from_secs(1),
        CachePolicy::Always | CachePolicy::Metadata => Duration::from_secs(86_400),
    };
    Config {
        root_dir: root.to_string_lossy().into_owned(),
        cache_policy: options.cache.clone(),
        entry_timeout: timeout,
        attr_timeout: timeout,
        inode_file_handles: options.inode_file_handles,
        // The root is opened at FUSE_INIT, inside the sandbox.
        do_import: true,
        writeback: false,
        xattr: false,
        ..Config::default()
    }
}

/// Binds the vhost-user socket, replacing a stale socket but nothing else.
fn listen(path: &Path) -> Result<Listener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("removing the old socket {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    Ok(Listener::from(listener))
}

/// Raises the soft limit on open files to the hard one (the passthrough keeps an fd for every
/// inode the guest knows).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            log::warn!("cannot raise the open-file limit to {hard}: {e}");
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let dir = options.shared_dir.canonicalize().map_err(|e| format!("shared directory {}: {e}", options.shared_dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    raise_fd_limit();
    let mut listener = listen(&options.socket_path)?;
    if options.sandbox == Sandbox::Namespace {
        sandbox::enter_namespaces()?;
    }
    // Opened before the confinement: /proc/self/fd and /proc/self/mountinfo.
    let root = if options.sandbox == Sandbox::None { dir.as_path() } else { Path::new("/") };
    let passthrough = PassthroughFs::new(fs_config(options, root)).map_err(|e| format!("passthrough file system: {e}"))?;
    let xattrs = match options.xattr {
        true => Some(Xattrs::open().map_err(|e| format!("/proc/self/fd for extended attributes: {e}"))?),
        false => None,
    };
    let fs = ShareFs(passthrough, xattrs);
    sandbox::confine(options.sandbox, &dir, options.readonly)?;

    let window = options.dax_window.map(Window::new);
    let policy = fuse::Policy { readonly: options.readonly, window };
    let requests = Requests::new(fs, policy, window.map(|w| DaxMapper::new(w, None)));
    let backend = Arc::new(RwLock::new(FsBackend::new(requests)));
    let memory = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let mut daemon = VhostUserDaemon::new("libos-virtiofsd-dax".into(), backend, memory)
        .map_err(|e| format!("vhost-user daemon: {e}"))?;
    log::info!(
        "serving {} on {} (sandbox {:?}, DAX window {})",
        dir.display(),
        options.socket_path.display(),
        options.sandbox,
        window.map_or("none".into(), |w| format!("{} bytes", w.size))
    );
    daemon.start(&mut listener).map_err(|e| format!("accepting the frontend: {e}"))?;
    log::info!("frontend connected");
    match daemon.wait() {
        Ok(()) => {}
        Err(vhost_user_backend::Error::HandleRequest(
            vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
        )) => {}
        Err(e) => return Err(format!("vhost-user: {e}")),
    }
    log::info!("frontend disconnected");
    Ok(())
}
