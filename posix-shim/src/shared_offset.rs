//! File offsets shared between processes: after a fork, parent and child share each open file
//! description and its offset, as on Linux (`{ ls; ls; } > out` in a shell: the second child
//! writes where the first stopped, not over it).
//!
//! Each process is a VM of its own (see [`crate::process`]), so a description's offset lives
//! in every VM's copy of it. A fork registers every description of a regular file or a disk
//! with the process host first (`offset-new`, in [`share_for_fork`]); from then on a read, write or
//! seek through it ([`around`]) takes the host's offset (`offset-lock`, waiting while another
//! VM holds it), runs on the local description at that offset, and gives the new offset back
//! (`offset-unlock`): the host's lock plays the part of Linux's file position lock. Closing the
//! last descriptor of such a description tells the host (`offset-drop`, [`closed`]).
//!
//! Costs: nothing for a description no fork copied (one atomic load says none is shared); two
//! host round trips per read, write or seek of one that was. `pread`/`pwrite` never take it.
//! Directories keep their own listing position per VM (`getdents` is not shared), and devices
//! without a position (`/dev/null`, the console) are not registered.

#[cfg(all(not(feature = "processes"), feature = "fs"))]
use crate::fd::Object;
#[cfg(any(all(feature = "processes", not(feature = "fs")), all(not(feature = "processes"), feature = "fs")))]
use libos::Result;

#[cfg(all(feature = "processes", feature = "fs"))]
mod imp {
    use crate::fd::Object;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, Ordering};
    use libos::control;
    use libos::fs::vfs::{FileType, OpenFile, SeekFrom};
    use libos::sync::IrqSpinLock;
    use libos::{Errno, Result};
    use libos_process_protocol::{OffsetId, Reply, RequestKind};

    /// Whether any description was ever shared (the fast path's one check).
    static ANY: AtomicBool = AtomicBool::new(false);
    /// The shared descriptions: the address of their [`Object`] (inside its `Arc`, unique
    /// while it lives; removed when it is dropped) and the host's offset id.
    static SHARED: IrqSpinLock<Vec<(usize, OffsetId)>> = IrqSpinLock::new(Vec::new());
    /// The offsets this VM's threads hold now (thread id, offset): a thread that holds one
    /// and reaches it again (`sendfile` from a file to itself) goes on without asking twice.
    static HELD: IrqSpinLock<Vec<(u64, OffsetId)>> = IrqSpinLock::new(Vec::new());

    fn key(object: &Object) -> usize {
        object as *const Object as usize
    }

    fn lookup(object: &Object) -> Option<OffsetId> {
        if !ANY.load(Ordering::Acquire) {
            return None;
        }
        let key = key(object);
        SHARED.lock().iter().find(|(k, _)| *k == key).map(|&(_, id)| id)
    }

    /// Registers every description of a regular file or a disk this VM holds with the host
    /// (before a fork copies them).
    pub fn share_for_fork() -> Result<()> {
        let mut error = None;
        crate::fd::for_each_object(|object| {
            let Object::File(file) = object else { return };
            let positioned = matches!(file.node().file_type(), FileType::Regular | FileType::BlockDevice);
            if error.is_some() || !positioned || lookup(object).is_some() {
                return;
            }
            match control::call(RequestKind::OffsetNew { value: file.position() }) {
                Ok(Reply::Id { id }) => {
                    SHARED.lock().push((key(object), id));
                    ANY.store(true, Ordering::Release);
                }
                Ok(Reply::Error { errno }) => error = Some(Errno::from_raw(errno).unwrap_or(Errno::ENOMEM)),
                Ok(_) => error = Some(Errno::EIO),
                Err(e) => error = Some(e),
            }
        });
        error.map_or(Ok(()), Err)
    }

    /// Runs `op` (a read, write or seek of `file`, the description `object`) at the shared
    /// offset when `object` is shared, else as it is.
    pub fn around<T>(object: &Object, file: &OpenFile, op: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(id) = lookup(object) else { return op() };
        let me = crate::thread::gettid();
        if HELD.lock().contains(&(me, id)) {
            return op();
        }
        let value = match control::call(RequestKind::OffsetLock { offset: id })? {
            Reply::Count { bytes } => bytes,
            Reply::Error { errno } => return Err(Errno::from_raw(errno).unwrap_or(Errno::EIO)),
            _ => return Err(Errno::EIO),
        };
        // Any value another VM left is one its own seek accepted.
        let _ = file.seek(SeekFrom::Start(value));
        HELD.lock().push((me, id));
        let result = op();
        HELD.lock().retain(|&held| held != (me, id));
        if let Err(e) = control::call(RequestKind::OffsetUnlock { offset: id, value: file.position() }) {
            log::warn!("posix-shim: cannot give a shared file offset back to the host ({e})");
        }
        result
    }

    /// The offset of `file` (the description `object`) as a read or write would start from
    /// now: the host's when it is shared (`ioctl(FIONREAD)`, `fcntl` locks from `SEEK_CUR`).
    pub fn position(object: &Object, file: &OpenFile) -> Result<u64> {
        around(object, file, || Ok(file.position()))
    }

    /// The description `object` is going away: the host forgets this VM's hold on its offset.
    pub fn closed(object: &Object) {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let key = key(object);
        let id = {
            let mut shared = SHARED.lock();
            let Some(i) = shared.iter().position(|(k, _)| *k == key) else { return };
            shared.swap_remove(i).1
        };
        let _ = control::call(RequestKind::OffsetDrop { offset: id });
    }
}

#[cfg(all(feature = "processes", feature = "fs"))]
pub use imp::{around, closed, position, share_for_fork};

/// Without files there is no description to share.
#[cfg(all(feature = "processes", not(feature = "fs")))]
pub fn share_for_fork() -> Result<()> {
    Ok(())
}

/// Without processes `op` runs as it is.
#[cfg(all(not(feature = "processes"), feature = "fs"))]
pub fn around<T>(_object: &Object, _file: &libos::fs::vfs::OpenFile, op: impl FnOnce() -> Result<T>) -> Result<T> {
    op()
}

/// Without processes the offset is the description's own.
#[cfg(all(not(feature = "processes"), feature = "fs"))]
pub fn position(_object: &Object, file: &libos::fs::vfs::OpenFile) -> Result<u64> {
    Ok(file.position())
}

/// Without processes nothing is shared.
#[cfg(all(not(feature = "processes"), feature = "fs"))]
pub fn closed(_object: &Object) {}
