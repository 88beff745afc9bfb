//! Advisory file locks within the image (feature `fs`): `flock` and `fcntl` record locks.
//!
//! - `flock` locks belong to the open file description (the descriptor's object, shared by
//!   `dup`): two descriptions of one file conflict even in one process, as on Linux; a
//!   description's lock goes when it is unlocked or its last descriptor closes. Blocking
//!   requests wait interruptibly (`EINTR` on a signal); `LOCK_NB` answers `EWOULDBLOCK`.
//! - `fcntl` (POSIX) record locks belong to the process. An image runs one process, and a
//!   process never conflicts with its own record locks, so `F_SETLK`/`F_SETLKW` only
//!   validate (type against the descriptor's access mode, `l_whence`, the range) and
//!   `F_GETLK` reports the range unlocked — exactly what Linux answers a single process.
//!   Locks between processes arrive with several processes (issue 17).

use crate::fd::{self, Object};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use alloc::collections::BTreeMap;
use libos::sync::{Mutex, WaitQueue};
use libos::{Errno, Result};

/// One description's `flock` lock on a file.
struct Held {
    /// The object's address: the open file description.
    owner: usize,
    exclusive: bool,
}

/// `(dev, ino)` -> the `flock` locks on that file.
static FLOCKS: Mutex<Option<BTreeMap<(u64, u64), Vec<Held>>>> = Mutex::new(None);
/// How many `flock` locks are held: a close with none held (nearly every close) returns at
/// once, without the file's metadata (a GETATTR on virtio-fs) or the table lock.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// Woken when a lock is released.
static RELEASED: WaitQueue = WaitQueue::new();

const LOCK_SH: u64 = 1;
const LOCK_EX: u64 = 2;
const LOCK_NB: u64 = 4;
const LOCK_UN: u64 = 8;

/// `flock(fd, operation)`.
pub fn flock(fd_number: u64, operation: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    let Object::File(file) = &*object else { return Err(Errno::EINVAL) };
    if file.flags().contains(libos::fs::vfs::OpenFlags::PATH) {
        return Err(Errno::EBADF); // an O_PATH handle takes no locks
    }
    let meta = file.metadata()?;
    let key = (meta.dev, meta.ino);
    let owner = &*object as *const Object as usize;
    let exclusive = match operation & !LOCK_NB {
        LOCK_SH => false,
        LOCK_EX => true,
        LOCK_UN => {
            release(key, owner);
            return Ok(0);
        }
        _ => return Err(Errno::EINVAL),
    };
    loop {
        {
            let mut table = FLOCKS.lock();
            let locks = table.get_or_insert_with(BTreeMap::new).entry(key).or_default();
            let conflict = locks.iter().any(|h| h.owner != owner && (exclusive || h.exclusive));
            if !conflict {
                // A conversion replaces the description's lock (not atomically on Linux
                // either: the old lock goes first).
                let before = locks.len();
                locks.retain(|h| h.owner != owner);
                locks.push(Held { owner, exclusive });
                HELD.fetch_add(locks.len() - before, Ordering::AcqRel);
                return Ok(0);
            }
            if operation & LOCK_NB != 0 {
                return Err(Errno::EWOULDBLOCK);
            }
            // Linux drops the old lock before waiting for the new one.
            let before = locks.len();
            locks.retain(|h| h.owner != owner);
            if locks.len() != before {
                HELD.fetch_sub(before - locks.len(), Ordering::AcqRel);
                RELEASED.wake_all();
            }
        }
        let free = || {
            FLOCKS.try_lock().is_none_or(|table| {
                table.as_ref().and_then(|t| t.get(&key)).is_none_or(|locks| !locks.iter().any(|h| h.owner != owner && (exclusive || h.exclusive)))
            })
        };
        crate::signal::wait_interruptible_timed(&RELEASED, free, None)?;
    }
}

fn release(key: (u64, u64), owner: usize) {
    let mut table = FLOCKS.lock();
    if let Some(locks) = table.as_mut().and_then(|t| t.get_mut(&key)) {
        let before = locks.len();
        locks.retain(|h| h.owner != owner);
        HELD.fetch_sub(before - locks.len(), Ordering::AcqRel);
        if locks.is_empty() {
            table.as_mut().map(|t| t.remove(&key));
        }
    }
    drop(table);
    RELEASED.wake_all();
}

/// The open file description `object` is going away: its `flock` locks go with it.
pub fn description_closed(object: &Object) {
    if HELD.load(Ordering::Acquire) == 0 {
        return;
    }
    let Object::File(file) = object else { return };
    let Ok(meta) = file.metadata() else { return };
    let owner = object as *const Object as usize;
    let held = FLOCKS.lock().as_ref().and_then(|t| t.get(&(meta.dev, meta.ino))).is_some_and(|l| l.iter().any(|h| h.owner == owner));
    if held {
        release((meta.dev, meta.ino), owner);
    }
}

/// `fcntl(F_SETLK/F_SETLKW/F_GETLK)` on `lock` (a `struct flock`): validates as Linux
/// does and, for `F_GETLK`, reports the range free (see the module docs).
pub fn record_lock(fd_number: u64, get: bool, lock: u64) -> Result<u64> {
    const F_RDLCK: i16 = 0;
    const F_WRLCK: i16 = 1;
    const F_UNLCK: i16 = 2;
    let object = fd::get(fd_number)?;
    let Object::File(file) = &*object else { return Err(Errno::EINVAL) };
    // struct flock: short l_type, short l_whence, (pad), off_t l_start, off_t l_len, pid_t l_pid.
    // SAFETY: checked by `user::read`; the program passed `struct flock *`.
    let mut raw: [u8; 32] = unsafe { crate::user::read(lock)? };
    let kind = i16::from_ne_bytes([raw[0], raw[1]]);
    let whence = i16::from_ne_bytes([raw[2], raw[3]]);
    let start = i64::from_ne_bytes(raw[8..16].try_into().unwrap_or_default());
    let len = i64::from_ne_bytes(raw[16..24].try_into().unwrap_or_default());
    if !(0..=2).contains(&whence) || !(F_RDLCK..=F_UNLCK).contains(&kind) {
        return Err(Errno::EINVAL);
    }
    let base = match whence {
        0 => 0,
        1 => crate::shared_offset::position(&object, file)? as i64,
        _ => file.metadata()?.size as i64,
    };
    let first = base.checked_add(start).ok_or(Errno::EOVERFLOW)?;
    let range_start = if len < 0 { first.checked_add(len).ok_or(Errno::EINVAL)? } else { first };
    if range_start < 0 {
        return Err(Errno::EINVAL);
    }
    if get {
        if kind == F_UNLCK {
            return Err(Errno::EINVAL);
        }
        raw[0..2].copy_from_slice(&F_UNLCK.to_ne_bytes());
        // SAFETY: as above.
        unsafe { crate::user::write(lock, raw)? };
        return Ok(0);
    }
    let flags = file.flags();
    if (kind == F_RDLCK && !flags.readable()) || (kind == F_WRLCK && !flags.writable()) {
        return Err(Errno::EBADF);
    }
    Ok(0)
}
