//! Confinement to the shared directory, in two steps around opening what must be opened from
//! outside it (the socket, `/proc/self/fd`):
//!
//! 1. [`enter_namespaces`] (`--sandbox namespace`): new mount, PID and network namespaces. A
//!    PID namespace applies to children only, so the process forks: the parent waits and exits
//!    with the child's status; the child (PID 1 of the new namespace) gets SIGKILL when the
//!    parent dies (so killing the PID a launcher knows still ends the daemon), and makes every
//!    mount private so nothing it does reaches the host's mount table.
//! 2. [`confine`]: `namespace` bind-mounts the shared directory on itself (read-only with
//!    `--readonly`), `pivot_root`s into it and detaches the old root, so no path leads out of
//!    the share any more; `chroot` chroots into it (weaker: a root process can break out of a
//!    chroot with a directory fd from before, and the daemon keeps one: `/proc/self/fd`).

use crate::args::Sandbox;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, chdir, chroot, fork, pivot_root};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Step 1 for `--sandbox namespace`: returns in the child, inside the new namespaces; the parent
/// never returns. Must run before any thread is started.
pub fn enter_namespaces() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot create namespaces ({e}; they need root or user namespaces): use --sandbox chroot (root) or none")
    })?;
    // The child learns that the parent died before it set its death signal from this pair:
    // the parent's end closes when it exits.
    let (mut child_end, parent_end) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    // SAFETY: the daemon has not started any thread yet (main calls this first), so the child
    // is a complete copy of a single-threaded process and may do anything afterwards.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => {
            drop(child_end);
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        log::error!("waiting for the sandboxed daemon: {e}");
                        break 1;
                    }
                }
            };
            drop(parent_end);
            std::process::exit(code);
        }
        ForkResult::Child => {
            drop(parent_end);
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
            // Nothing is ever written: a read that does not block means the parent is gone.
            child_end.set_nonblocking(true).map_err(|e| e.to_string())?;
            if let Ok(0) = child_end.read(&mut [0u8]) {
                std::process::exit(1);
            }
            // Our mounts stay ours (the default propagation of / is shared on systemd hosts).
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(|e| format!("making the mounts private: {e}"))?;
            Ok(())
        }
    }
}

/// Step 2: confines the process to `dir` (absolute, a directory) as `sandbox` says; the
/// working directory is then the share's root, `/`.
pub fn confine(sandbox: Sandbox, dir: &Path, readonly: bool) -> Result<(), String> {
    match sandbox {
        Sandbox::None => Ok(()),
        Sandbox::Chroot => {
            chroot(dir).map_err(|e| format!("chroot {}: {e}", dir.display()))?;
            chdir("/").map_err(|e| format!("chdir /: {e}"))
        }
        Sandbox::Namespace => {
            let fail = |what: &str, e: nix::errno::Errno| format!("{what} ({}): {e}", dir.display());
            // pivot_root needs the new root to be a mount point.
            mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(|e| fail("bind-mounting the share", e))?;
            if readonly {
                let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
                mount(None::<&str>, dir, None::<&str>, flags, None::<&str>).map_err(|e| fail("remounting the share read-only", e))?;
            }
            chdir(dir).map_err(|e| fail("chdir", e))?;
            // The old root goes on top of the new one at "." and is detached at once.
            pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
            umount2(".", MntFlags::MNT_DETACH).map_err(|e| fail("detaching the old root", e))?;
            chdir("/").map_err(|e| fail("chdir /", e))
        }
    }
}
