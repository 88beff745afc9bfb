//! `mount(2)` and `umount2(2)` (feature `fs`), over the VFS's mount table.
//!
//! - New file systems of the kinds the image carries ([`libos::fs::known_file_systems`]):
//!   `tmpfs` and `ramfs` (a new ramfs; `mode=`, `uid=`, `gid=` set its root, `size=` and
//!   `nr_inodes=` are accepted and not enforced: ramfs has no limits), `proc`, `sysfs`,
//!   `devtmpfs` (devfs), `ext2`/`ext3`/`ext4` on a disk named `/dev/vdX` (the ext2 driver,
//!   which refuses features it does not know), `virtiofs` with the share's tag as source.
//!   A kind the image lacks is `ENODEV`; a source that is not a disk, `ENOTBLK`; a volume
//!   the driver refuses, `EINVAL`.
//! - Bind mounts (`MS_BIND`, with `MS_REC` for `--rbind`) of directories.
//! - Options: `MS_RDONLY`, `MS_NOEXEC`, `MS_NODEV` and `MS_NOSUID` per mount, changed by
//!   `MS_REMOUNT` (with or without `MS_BIND`: both change the mount's options, as a
//!   per-mount remount does; the file systems have no options of their own to change).
//!   `MS_SILENT`, `MS_RELATIME`, `MS_STRICTATIME`, `MS_LAZYTIME`, `MS_I_VERSION`,
//!   `MS_MANDLOCK` (ignored by Linux since 5.15) are accepted: they ask for no more than the
//!   file systems do. Asking for what libos does not do is `EINVAL`: `MS_NOATIME`,
//!   `MS_NODIRATIME` (ramfs and ext2 update access times on every read), `MS_SYNCHRONOUS`,
//!   `MS_DIRSYNC`, `MS_NOSYMFOLLOW`, `MS_MOVE`.
//! - Propagation types (`MS_SHARED`, `MS_PRIVATE`, `MS_SLAVE`, `MS_UNBINDABLE`) of a mount
//!   point are accepted and change nothing: the VM has one mount namespace, so there is no
//!   other namespace to propagate to.
//! - `umount2` with `MNT_FORCE`, `MNT_DETACH`, `UMOUNT_NOFOLLOW`. Every unmount is lazy
//!   (what `MNT_DETACH` asks): files open on the file system keep working, where Linux
//!   refuses a plain `umount` of a busy mount with `EBUSY`. `MNT_EXPIRE` is `EINVAL`.
//!
//! Both calls need `CAP_SYS_ADMIN` (`EPERM`).
//!
//! **Processes share the mount table**, as Linux's do: each process is a VM of its own, so a
//! bind mount, remount or unmount is passed on to the other VMs through the process host
//! ([`share_change`], [`apply_shared_change`]), by absolute path. A new file system mounted
//! by one process stays its own (and its later children's): two VMs cannot share a ramfs, and
//! a disk belongs to one VM.

use crate::files::{PathArg, AT_FDCWD, vfs};
use crate::user::{self, StrBuffer};
use alloc::format;
use alloc::string::String;
use libos::fs::vfs::cred::Cap;
use libos::fs::vfs::MountFlags;
use libos::{Errno, Result};

const MS_RDONLY: u64 = 1;
const MS_NOSUID: u64 = 2;
const MS_NODEV: u64 = 4;
const MS_NOEXEC: u64 = 8;
const MS_SYNCHRONOUS: u64 = 16;
const MS_REMOUNT: u64 = 32;
const MS_MANDLOCK: u64 = 64;
const MS_DIRSYNC: u64 = 128;
const MS_NOSYMFOLLOW: u64 = 256;
const MS_NOATIME: u64 = 1 << 10;
const MS_NODIRATIME: u64 = 1 << 11;
const MS_BIND: u64 = 1 << 12;
const MS_MOVE: u64 = 1 << 13;
const MS_REC: u64 = 1 << 14;
const MS_SILENT: u64 = 1 << 15;
const MS_POSIXACL: u64 = 1 << 16;
const MS_UNBINDABLE: u64 = 1 << 17;
const MS_PRIVATE: u64 = 1 << 18;
const MS_SLAVE: u64 = 1 << 19;
const MS_SHARED: u64 = 1 << 20;
const MS_RELATIME: u64 = 1 << 21;
const MS_I_VERSION: u64 = 1 << 23;
const MS_STRICTATIME: u64 = 1 << 24;
const MS_LAZYTIME: u64 = 1 << 25;
/// The old magic number programs put in the top 16 bits (`MS_MGC_VAL`).
const MS_MGC_VAL: u64 = 0xc0ed_0000;
const MS_MGC_MSK: u64 = 0xffff_0000;

const PROPAGATION: u64 = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;
/// Options that ask for nothing beyond what the file systems already do.
const HARMLESS: u64 = MS_SILENT | MS_RELATIME | MS_STRICTATIME | MS_LAZYTIME | MS_I_VERSION | MS_MANDLOCK | MS_POSIXACL;
/// The per-mount options libos keeps.
const KEPT: u64 = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
/// Everything `mount` accepts besides the operation bits.
const ACCEPTED: u64 = KEPT | HARMLESS | MS_REC;
/// What libos does not do (`EINVAL`).
const UNSUPPORTED: u64 = MS_NOATIME | MS_NODIRATIME | MS_SYNCHRONOUS | MS_DIRSYNC | MS_NOSYMFOLLOW | MS_MOVE;

const MNT_FORCE: u64 = 1;
const MNT_DETACH: u64 = 2;
const MNT_EXPIRE: u64 = 4;
const UMOUNT_NOFOLLOW: u64 = 8;

/// The longest `fstype` and option string read.
const SHORT_STRING_MAX: usize = 4096;

fn require_admin() -> Result<()> {
    if vfs()?.credentials().capable(Cap::SysAdmin) { Ok(()) } else { Err(Errno::EPERM) }
}

/// A string argument that may be NULL.
fn optional_string(addr: u64, buffer: &mut StrBuffer) -> Result<Option<&str>> {
    if addr == 0 {
        return Ok(None);
    }
    // SAFETY: checked by `c_string`; the C program vouches for the rest (syscall contract).
    Ok(Some(unsafe { user::c_string(addr, SHORT_STRING_MAX, buffer)? }))
}

/// The kept options among `flags`.
fn mount_flags(flags: u64) -> MountFlags {
    MountFlags::from_bits_truncate((flags & KEPT) as u32)
}

/// `mount(source, target, fstype, flags, data)`.
pub fn mount(source: u64, target: u64, fstype: u64, flags: u64, data: u64) -> Result<u64> {
    require_admin()?;
    let flags = if flags & MS_MGC_MSK == MS_MGC_VAL { flags & !MS_MGC_MSK } else { flags };
    let mut target_arg = PathArg::new();
    let target = String::from(target_arg.read(AT_FDCWD as u64, target)?.path);
    let vfs = vfs()?;
    if flags & UNSUPPORTED != 0 {
        log::info!("posix-shim: mount {target}: options {:#x} are not supported", flags & UNSUPPORTED);
        return Err(Errno::EINVAL);
    }
    if flags & PROPAGATION != 0 {
        // One propagation type at a time, with nothing else but `MS_REC`/`MS_SILENT`.
        if (flags & PROPAGATION).count_ones() != 1 || flags & !(PROPAGATION | MS_REC | MS_SILENT) != 0 {
            return Err(Errno::EINVAL);
        }
        return if vfs.is_mount_point(&target)? { Ok(0) } else { Err(Errno::EINVAL) };
    }
    if flags & !(ACCEPTED | MS_REMOUNT | MS_BIND) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MS_REMOUNT != 0 {
        vfs.remount(&target, mount_flags(flags))?;
        // Done here whatever the other processes make of it.
        if let Ok(place) = vfs.directory_path(&target) {
            share_change(&[b"o", place.as_bytes(), format!("{}", mount_flags(flags).bits()).as_bytes()]);
        }
        return Ok(0);
    }
    if flags & MS_BIND != 0 {
        let mut source_arg = PathArg::new();
        let source = String::from(source_arg.read(AT_FDCWD as u64, source)?.path);
        let recursive = flags & MS_REC != 0;
        // Where both are, for the other processes (before the bind changes what paths lead to).
        let places = (vfs.directory_path(&source), vfs.directory_path(&target));
        vfs.bind(&source, &target, recursive)?;
        if let (Ok(source), Ok(target)) = places {
            share_change(&[b"b", source.as_bytes(), target.as_bytes(), if recursive { b"r" } else { b"-" }]);
        }
        return Ok(0);
    }
    let mut source_buffer = StrBuffer::new();
    let source = optional_string(source, &mut source_buffer)?;
    let mut type_buffer = StrBuffer::new();
    let fstype = optional_string(fstype, &mut type_buffer)?.ok_or(Errno::EINVAL)?;
    let mut data_buffer = StrBuffer::new();
    let options = if matches!(fstype, "tmpfs" | "ramfs") { optional_string(data, &mut data_buffer)?.unwrap_or("") } else { "" };
    let root = RootOptions::parse(options)?;
    let fs = libos::fs::new_file_system(&file_system_name(fstype, source)?).map_err(|e| {
        log::info!("posix-shim: mount {target}: {e}");
        Errno::EINVAL
    })?;
    vfs.mount_with(&target, fs, mount_flags(flags))?;
    root.apply(vfs, &target)?;
    Ok(0)
}

/// `umount2(target, flags)` (and `umount(target)`).
pub fn umount2(target: u64, flags: u64) -> Result<u64> {
    require_admin()?;
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0 || flags & MNT_EXPIRE != 0 {
        return Err(Errno::EINVAL);
    }
    let mut target_arg = PathArg::new();
    let target = String::from(target_arg.read(AT_FDCWD as u64, target)?.path);
    let follow = flags & UMOUNT_NOFOLLOW == 0;
    let vfs = vfs()?;
    // Where it is, for the other processes: known only while it is mounted.
    let place = if follow { vfs.directory_path(&target).ok() } else { None };
    vfs.unmount_at(&target, follow)?;
    if let Some(place) = place {
        share_change(&[b"u", place.as_bytes()]);
    }
    Ok(0)
}

/// Passes a change of the mount table (its fields: a kind letter, then absolute paths and
/// values) on to the other processes. One that does not fit a message is logged and stays
/// this VM's.
fn share_change(fields: &[&[u8]]) {
    let bytes = fields.join(&0u8);
    if !crate::process::report_namespace_change(&bytes) {
        log::warn!("posix-shim: a mount table change of {} bytes is too long to pass on to the other processes", bytes.len());
    }
}

/// Makes a change another process made to the mount table ([`share_change`]'s fields) in this
/// VM's. A change that does not apply here (a path this VM lacks) is logged.
#[cfg(feature = "processes")]
pub(crate) fn apply_shared_change(bytes: &[u8]) {
    let text = core::str::from_utf8(bytes).unwrap_or("");
    let fields: alloc::vec::Vec<&str> = text.split('\0').collect();
    let Ok(vfs) = vfs() else { return };
    let done = match fields.as_slice() {
        ["b", source, target, recursive] => vfs.bind(source, target, *recursive == "r"),
        ["u", target] => vfs.unmount(target),
        ["o", target, flags] => match flags.parse::<u32>() {
            Ok(flags) => vfs.remount(target, MountFlags::from_bits_truncate(flags)),
            Err(_) => Err(Errno::EINVAL),
        },
        _ => Err(Errno::EINVAL),
    };
    // Expected where this VM's tree differs (a ramfs root is each process's own copy).
    if let Err(e) = done {
        log::info!("posix-shim: another process's mount table change `{}` does not apply here ({e})", bytes.escape_ascii());
    }
}

/// The [`libos::fs::new_file_system`] name for `fstype` mounted from `source`.
fn file_system_name(fstype: &str, source: Option<&str>) -> Result<String> {
    let known = libos::fs::known_file_systems();
    let has = |name: &str| known.contains(&name);
    let name = match fstype {
        "tmpfs" | "ramfs" if has("ramfs") => String::from("ramfs"),
        "proc" => String::from("proc"),
        "sysfs" => String::from("sysfs"),
        "devtmpfs" => String::from("devfs"),
        "ext2" | "ext3" | "ext4" if has("ext2:DISK") => {
            let disk = source.and_then(|s| s.strip_prefix("/dev/")).filter(|d| !d.is_empty() && !d.contains('/')).ok_or(Errno::ENOTBLK)?;
            format!("ext2:{disk}")
        }
        "virtiofs" if has("virtiofs:TAG") => format!("virtiofs:{}", source.filter(|s| !s.is_empty()).ok_or(Errno::EINVAL)?),
        _ => return Err(Errno::ENODEV),
    };
    Ok(name)
}

/// `tmpfs` options for the new root directory (`mode=` octal, `uid=`, `gid=`); `size=`,
/// `nr_inodes=`, `nr_blocks=` are accepted (not enforced); anything else is `EINVAL`, as
/// Linux's tmpfs answers.
#[derive(Default)]
struct RootOptions {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl RootOptions {
    fn parse(options: &str) -> Result<RootOptions> {
        let mut root = RootOptions::default();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            let number = |radix| u32::from_str_radix(value, radix).map_err(|_| Errno::EINVAL);
            match key {
                "mode" => root.mode = Some(number(8)? & 0o7777),
                "uid" => root.uid = Some(number(10)?),
                "gid" => root.gid = Some(number(10)?),
                "size" | "nr_inodes" | "nr_blocks" if !value.is_empty() => {}
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(root)
    }

    fn apply(&self, vfs: &libos::fs::vfs::Vfs, target: &str) -> Result<()> {
        if let Some(mode) = self.mode {
            vfs.set_permissions(target, mode, true)?;
        }
        if self.uid.is_some() || self.gid.is_some() {
            vfs.set_owner(target, self.uid, self.gid, true)?;
        }
        Ok(())
    }
}
