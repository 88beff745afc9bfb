//! Process credentials (feature `fs`): the `get*id`/`set*id` family, `getgroups`/`setgroups`
//! and `capget`/`capset`. The credentials themselves live in the VFS
//! ([`libos::fs::vfs::Credentials`]), which checks every file operation with them; the rules
//! of each change (who may set what, which capabilities go when uid 0 is left) are there too,
//! host-tested. A program starts as root with every capability.
//!
//! One program per image, so the credentials are per process as musl expects after its
//! all-threads `setxid` broadcast (each thread's call sets the same values again: harmless).

use crate::user;
use libos::fs::vfs::Credentials;
use libos::fs::vfs::cred::{KEEP_ID, NGROUPS_MAX};
use libos::{Errno, Result};

fn creds() -> Result<alloc::sync::Arc<Credentials>> {
    Ok(libos::fs::vfs()?.credentials())
}

fn update<T>(f: impl FnOnce(&mut Credentials) -> Result<T>) -> Result<T> {
    libos::fs::vfs()?.update_credentials(f)
}

/// An id argument: the low 32 bits (`uid_t`), with -1 as [`KEEP_ID`].
fn id(arg: u64) -> u32 {
    arg as u32
}

/// `getuid`, `geteuid`, `getgid`, `getegid`.
pub fn get_id(pick: fn(&Credentials) -> u32) -> Result<u64> {
    Ok(u64::from(pick(&*creds()?)))
}

/// `getresuid(ruid, euid, suid)` / `getresgid`.
pub fn getres(real: u64, effective: u64, saved: u64, groups: bool) -> Result<u64> {
    let c = creds()?;
    let ids = if groups { [c.rgid, c.egid, c.sgid] } else { [c.ruid, c.euid, c.suid] };
    for (addr, value) in [real, effective, saved].into_iter().zip(ids) {
        // SAFETY: checked by `user::write`; the program passed `uid_t *`.
        unsafe { user::write(addr, value)? };
    }
    Ok(0)
}

/// `setuid(uid)`.
pub fn setuid(uid: u64) -> Result<u64> {
    update(|c| c.setuid(id(uid))).map(|()| 0)
}

/// `setgid(gid)`.
pub fn setgid(gid: u64) -> Result<u64> {
    update(|c| c.setgid(id(gid))).map(|()| 0)
}

/// `setreuid(ruid, euid)`.
pub fn setreuid(ruid: u64, euid: u64) -> Result<u64> {
    update(|c| c.setreuid(id(ruid), id(euid))).map(|()| 0)
}

/// `setregid(rgid, egid)`.
pub fn setregid(rgid: u64, egid: u64) -> Result<u64> {
    update(|c| c.setregid(id(rgid), id(egid))).map(|()| 0)
}

/// `setresuid(ruid, euid, suid)`.
pub fn setresuid(ruid: u64, euid: u64, suid: u64) -> Result<u64> {
    update(|c| c.setresuid(id(ruid), id(euid), id(suid))).map(|()| 0)
}

/// `setresgid(rgid, egid, sgid)`.
pub fn setresgid(rgid: u64, egid: u64, sgid: u64) -> Result<u64> {
    update(|c| c.setresgid(id(rgid), id(egid), id(sgid))).map(|()| 0)
}

/// `setfsuid(uid)`: the previous fsuid, whether or not the change was allowed (-1 only
/// queries).
pub fn setfsuid(uid: u64) -> Result<u64> {
    update(|c| Ok(if id(uid) == KEEP_ID { c.fsuid } else { c.setfsuid(id(uid)) })).map(u64::from)
}

/// `setfsgid(gid)`, as `setfsuid`.
pub fn setfsgid(gid: u64) -> Result<u64> {
    update(|c| Ok(if id(gid) == KEEP_ID { c.fsgid } else { c.setfsgid(id(gid)) })).map(u64::from)
}

/// `getgroups(size, list)`: with `size` 0 only the count; `EINVAL` if `size` is too small.
pub fn getgroups(size: u64, list: u64) -> Result<u64> {
    let c = creds()?;
    let groups = c.groups();
    let size = size as i32;
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    for (i, gid) in groups.iter().enumerate() {
        // SAFETY: checked by `user::write`; the program passed `gid_t list[size]`.
        unsafe { user::write(list + 4 * i as u64, *gid)? };
    }
    Ok(groups.len() as u64)
}

/// `setgroups(size, list)`: needs `CAP_SETGID`.
pub fn setgroups(size: u64, list: u64) -> Result<u64> {
    if size as usize > NGROUPS_MAX {
        return Err(Errno::EINVAL);
    }
    // SAFETY: checked by `user::slice`; the program passed `const gid_t list[size]`.
    let bytes = unsafe { user::slice(list, size * 4)? };
    let groups: alloc::vec::Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    update(|c| c.setgroups(&groups)).map(|()| 0)
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;
const CAP_VERSION_2: u32 = 0x2007_1026;
const CAP_VERSION_1: u32 = 0x1998_0330;

/// Reads a `cap_user_header_t` and checks its version: an unknown one is written back as
/// version 3 with `EINVAL` (so libcap learns the kernel's), a pid other than 0 or ours is
/// `ESRCH`. Returns how many 32-bit words each set has.
fn cap_header(header: u64) -> Result<usize> {
    // SAFETY: checked by `user::read`: `struct { u32 version; int pid; }`.
    let [version, pid]: [u32; 2] = unsafe { user::read(header)? };
    let words = match version {
        CAP_VERSION_1 => 1,
        CAP_VERSION_2 | CAP_VERSION_3 => 2,
        _ => {
            // SAFETY: as above.
            unsafe { user::write(header, CAP_VERSION_3)? };
            return Err(Errno::EINVAL);
        }
    };
    if pid != 0 && u64::from(pid) != crate::process::pid() {
        return Err(Errno::ESRCH);
    }
    Ok(words)
}

/// `capget(header, data)`: the effective, permitted and inheritable sets. A null `data`
/// only checks (and reports) the version.
pub fn capget(header: u64, data: u64) -> Result<u64> {
    let words = cap_header(header)?;
    if data == 0 {
        return Ok(0);
    }
    let c = creds()?;
    for word in 0..words {
        let part = |set: u64| (set >> (32 * word)) as u32;
        let entry = [part(c.cap_effective), part(c.cap_permitted), part(c.cap_inheritable)];
        // SAFETY: checked by `user::write`: `struct __user_cap_data_struct[words]`.
        unsafe { user::write(data + 12 * word as u64, entry)? };
    }
    Ok(0)
}

/// `capset(header, data)`: sets may only shrink (see [`Credentials::capset`]).
pub fn capset(header: u64, data: u64) -> Result<u64> {
    let words = cap_header(header)?;
    let (mut effective, mut permitted, mut inheritable) = (0u64, 0u64, 0u64);
    for word in 0..words {
        // SAFETY: checked by `user::read`.
        let [e, p, i]: [u32; 3] = unsafe { user::read(data + 12 * word as u64)? };
        effective |= u64::from(e) << (32 * word);
        permitted |= u64::from(p) << (32 * word);
        inheritable |= u64::from(i) << (32 * word);
    }
    if words == 1 {
        // A version-1 caller cannot see the upper capabilities: keep them as they are.
        let c = creds()?;
        let high = !0xffff_ffffu64;
        effective |= c.cap_effective & high;
        permitted |= c.cap_permitted & high;
        inheritable |= c.cap_inheritable & high;
    }
    update(|c| c.capset(effective, permitted, inheritable)).map(|()| 0)
}
