//! Where `AF_UNIX` names live, and what each is bound to.
//!
//! - An **abstract** name (leading NUL) is a key of its own, free again once its socket closes.
//! - A **path** name is a socket file, as on Linux (images with `fs`): `bind` creates it
//!   (`S_IFSOCK`, mode `0777` less the umask; `EADDRINUSE` when the path exists, so programs
//!   unlink first), and `connect`/`sendto` find the socket through the file: the path is walked
//!   (relative to the current directory, symlinks followed) and needs write permission
//!   (`EACCES`), a file that is not a socket or has no socket bound to it is `ECONNREFUSED`.
//!   The table is keyed by the file's device and inode, so a hard link or a rename of the file
//!   reaches the same socket, an unlinked file reaches nothing, and closing the socket leaves
//!   the file behind (connecting gives `ECONNREFUSED` until it is unlinked and bound again).
//!   Without `fs` there are no files: path names are keys as abstract names are.
//!
//! Entries remember which socket made them ([`Owner`]): a socket file unlinked while its socket
//! stays open can have its inode number reused by a new socket file, whose `bind` then takes
//! the key over; the old socket's close must not remove the new entry.

use crate::sockaddr::UnixName;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use libos::sync::Mutex;
use libos::{Errno, Result};

/// A socket's identity in the table (unique per socket for the program's life).
pub(super) type Owner = u64;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A fresh [`Owner`].
pub(super) fn new_owner() -> Owner {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// What a name is keyed by in the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    /// An abstract name.
    Abstract(Vec<u8>),
    /// A path name, in an image without files.
    #[cfg_attr(feature = "fs", allow(dead_code))]
    Path(Vec<u8>),
    /// A socket file: its device and inode.
    #[cfg_attr(not(feature = "fs"), allow(dead_code))]
    File { dev: u64, ino: u64 },
}

struct Entry<B> {
    owner: Owner,
    bound: B,
}

/// The table: each key to what its socket is (`B`: the socket module's `Bound`).
pub(super) struct Names<B> {
    entries: Mutex<BTreeMap<Key, Entry<B>>>,
}

impl<B: Clone> Names<B> {
    /// An empty table.
    pub const fn new() -> Names<B> {
        Names { entries: Mutex::new(BTreeMap::new()) }
    }

    /// Binds `name` for socket `owner`: creates the socket file of a path name, and returns
    /// the key to [`Names::release`] when the socket closes. `EADDRINUSE` when the name is
    /// taken.
    pub fn bind(&self, name: &UnixName, owner: Owner, bound: B) -> Result<Key> {
        let key = match name {
            UnixName::Unnamed => return Err(Errno::EINVAL),
            UnixName::Abstract(bytes) => Key::Abstract(bytes.clone()),
            UnixName::Path(path) => create_socket_file(path)?,
        };
        let mut entries = self.entries.lock();
        // A socket file was just created, so an entry under its key belongs to a file that no
        // longer exists (the module docs): the new one takes over.
        if !matches!(key, Key::File { .. }) && entries.contains_key(&key) {
            return Err(Errno::EADDRINUSE);
        }
        entries.insert(key.clone(), Entry { owner, bound });
        Ok(key)
    }

    /// Changes what `owner`'s entry under `key` is bound to (a socket starting to listen).
    pub fn rebind(&self, key: &Key, owner: Owner, bound: B) {
        if let Some(entry) = self.entries.lock().get_mut(key).filter(|e| e.owner == owner) {
            entry.bound = bound;
        }
    }

    /// What `name` reaches (`connect`, `sendto`): `ENOENT`, `EACCES`, ... from the walk to a
    /// socket file, `ECONNREFUSED` when nothing is bound there.
    pub fn find(&self, name: &UnixName) -> Result<B> {
        let key = match name {
            UnixName::Unnamed => return Err(Errno::EINVAL),
            UnixName::Abstract(bytes) => Key::Abstract(bytes.clone()),
            UnixName::Path(path) => find_socket_file(path)?,
        };
        let missing = if matches!(key, Key::Path(_)) { Errno::ENOENT } else { Errno::ECONNREFUSED };
        self.entries.lock().get(&key).map(|e| e.bound.clone()).ok_or(missing)
    }

    /// Removes `owner`'s entry under `key` (its socket closed); a newer socket's entry under
    /// the same key stays.
    pub fn release(&self, key: &Key, owner: Owner) {
        let mut entries = self.entries.lock();
        if entries.get(key).is_some_and(|e| e.owner == owner) {
            entries.remove(key);
        }
    }
}

#[cfg(feature = "fs")]
fn path_str(path: &[u8]) -> Result<&str> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    core::str::from_utf8(path).map_err(|_| Errno::EINVAL)
}

/// Creates the socket file at `path`; its key.
#[cfg(feature = "fs")]
fn create_socket_file(path: &[u8]) -> Result<Key> {
    use libos::fs::vfs::NewNode;
    let path = path_str(path)?;
    let vfs = crate::files::vfs()?;
    let perm = 0o777 & !crate::dispatch::umask_value();
    vfs.mknod(path, NewNode::Socket, perm).map_err(|e| if e == Errno::EEXIST { Errno::EADDRINUSE } else { e })?;
    let meta = vfs.symlink_metadata(path)?;
    Ok(Key::File { dev: meta.dev, ino: meta.ino })
}

/// The key of the socket file `path` names, as `connect` finds it.
#[cfg(feature = "fs")]
fn find_socket_file(path: &[u8]) -> Result<Key> {
    use libos::fs::vfs::{Access, FileType};
    let path = path_str(path)?;
    let vfs = crate::files::vfs()?;
    let meta = vfs.metadata(path)?;
    if meta.file_type != FileType::Socket {
        return Err(Errno::ECONNREFUSED);
    }
    // Write permission on the socket file, judged on the metadata just read (no second walk).
    if !vfs.credentials().permits(&meta, Access::WRITE) {
        return Err(Errno::EACCES);
    }
    Ok(Key::File { dev: meta.dev, ino: meta.ino })
}

#[cfg(not(feature = "fs"))]
fn create_socket_file(path: &[u8]) -> Result<Key> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    Ok(Key::Path(path.to_vec()))
}

#[cfg(not(feature = "fs"))]
fn find_socket_file(path: &[u8]) -> Result<Key> {
    create_socket_file(path)
}
