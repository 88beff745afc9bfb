//! [`Ext2Node`]: the VFS [`Node`] of an inode. It is a thin handle (volume, inode number,
//! type): every operation takes the volume lock, reads the inode through the cache and calls
//! the core in `file`, `namespace` and `dir`. Nodes count as "open" for the inode's lifetime
//! rules: a removed inode is freed when its last node is dropped.
//!
//! A lookup hands out the node of the name from the node cache (`node_cache`) when it is
//! there, so one node may serve several open files: its read state ([`Reader`]) follows
//! several readers at once.

use crate::fs::Inner;
use crate::inode::file_type_of_dirent;
use crate::read::Reader;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::{DirEntry, FileType, Metadata, NewNode, Node, Owner, SetAttr, XattrSet};

/// A file, directory, symlink or device of an ext2 volume.
pub struct Ext2Node {
    fs: Arc<Inner>,
    ino: u32,
    file_type: FileType,
    /// Read-ahead of this node's readers and the memo of its last read.
    reader: SpinLock<Reader>,
    /// Counted in the volume's live nodes (false once [`Ext2Node::retire`]d).
    counted: bool,
}

impl Ext2Node {
    pub(crate) fn new(fs: Arc<Inner>, ino: u32, file_type: FileType) -> Ext2Node {
        fs.node_opened(ino);
        Ext2Node { fs, ino, file_type, reader: SpinLock::new(Reader::default()), counted: true }
    }

    fn node(&self, (ino, file_type): (u32, FileType)) -> Arc<Ext2Node> {
        Arc::new(Ext2Node::new(self.fs.clone(), ino, file_type))
    }

    /// Drops the node without counting it gone: the node cache does that itself, under the
    /// volume lock (see [`Inner::uncache`]). Returns the inode number.
    pub(crate) fn retire(mut self) -> u32 {
        self.counted = false;
        self.ino
    }

    /// `other` as a node of the same volume, else `EXDEV`.
    fn same_volume<'a>(&self, other: &'a dyn Node) -> Result<&'a Ext2Node> {
        match other.as_any().downcast_ref::<Ext2Node>() {
            Some(node) if Arc::ptr_eq(&node.fs, &self.fs) => Ok(node),
            _ => Err(Errno::EXDEV),
        }
    }

    /// `rename` (`Move::Replace`), `rename_noreplace` and `rename_exchange`.
    fn move_entry(&self, old_name: &str, new_dir: &dyn Node, new_name: &str, how: Move) -> Result<()> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let new_dir = self.same_volume(new_dir)?;
        new_dir.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        self.fs.uncache(&mut st, self.ino, old_name);
        self.fs.uncache(&mut st, new_dir.ino, new_name);
        match how {
            Move::Exchange => self.fs.exchange(&mut st, self.ino, old_name, new_dir.ino, new_name),
            _ => self.fs.rename(&mut st, self.ino, old_name, new_dir.ino, new_name, how == Move::Replace),
        }
    }

    fn require(&self, file_type: FileType, otherwise: Errno) -> Result<()> {
        if self.file_type == file_type { Ok(()) } else { Err(otherwise) }
    }
}

/// What a rename does with the new name ([`Ext2Node::move_entry`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    /// Replace what it names.
    Replace,
    /// Fail with `EEXIST` if it names something.
    NoReplace,
    /// Swap it with the old name.
    Exchange,
}

impl Drop for Ext2Node {
    fn drop(&mut self) {
        if self.counted && self.fs.node_closed(self.ino) {
            self.fs.reclaim(self.ino);
        }
    }
}

impl Node for Ext2Node {
    fn ino(&self) -> u64 {
        u64::from(self.ino)
    }

    fn file_type(&self) -> FileType {
        self.file_type
    }

    fn metadata(&self) -> Result<Metadata> {
        let st = self.fs.state.lock();
        self.fs.with_inode(&st, self.ino, |inode| {
            let rdev = match self.file_type {
                FileType::CharDevice | FileType::BlockDevice => inode.rdev(),
                _ => 0,
            };
            Metadata {
                dev: 0,
                ino: u64::from(self.ino),
                file_type: self.file_type,
                perm: inode.perm(),
                uid: inode.uid,
                gid: inode.gid,
                nlink: u64::from(inode.links),
                size: inode.size,
                blocks: u64::from(inode.blocks),
                block_size: self.fs.geo.block_size,
                rdev,
                atime: inode.atime,
                mtime: inode.mtime,
                ctime: inode.ctime,
            }
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.require(FileType::Regular, Errno::EINVAL)?;
        let st = self.fs.state.lock();
        let mut reader = self.reader.lock();
        if let Some(done) = self.fs.read_remembered(&st, self.ino, &mut reader, offset, buf)? {
            return Ok(done);
        }
        self.fs.with_inode(&st, self.ino, |inode| self.fs.read_data(&st, self.ino, inode, offset, buf, &mut reader))?
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.require(FileType::Regular, Errno::EINVAL)?;
        let mut st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.write_data(&mut st, self.ino, &mut inode, offset, buf)
    }

    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        self.require(FileType::Regular, Errno::EINVAL)?;
        let mut st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        let offset = inode.size;
        Ok((offset, self.fs.write_data(&mut st, self.ino, &mut inode, offset, buf)?))
    }

    fn truncate(&self, size: u64) -> Result<()> {
        self.require(FileType::Regular, Errno::EINVAL)?;
        let mut st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.truncate_data(&mut st, self.ino, &mut inode, size)
    }

    fn sync(&self) -> Result<()> {
        let st = self.fs.state.lock();
        self.fs.sync_inode(&st, self.ino)
    }

    fn read_link(&self) -> Result<String> {
        self.require(FileType::Symlink, Errno::EINVAL)?;
        let st = self.fs.state.lock();
        let inode = self.fs.read_inode(&st, self.ino)?;
        let target = self.fs.read_symlink(&inode)?;
        Ok(String::from_utf8_lossy(&target).into_owned())
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        if let Some(node) = st.nodes.get(self.ino, name) {
            return Ok(node);
        }
        let node = self.node(self.fs.lookup(&mut st, self.ino, name)?);
        let evicted = st.nodes.insert(self.ino, name, &node);
        // Evicted nodes may be the last of an orphan, whose drop takes the lock.
        drop(st);
        drop(evicted);
        Ok(node)
    }

    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        let node = self.node(self.fs.create(&mut st, self.ino, name, kind, perm, owner)?);
        // The name did not exist (create fails with EEXIST otherwise): no entry for it either.
        let evicted = st.nodes.insert(self.ino, name, &node);
        // As in `lookup`: evicted nodes are dropped after the lock.
        drop(st);
        drop(evicted);
        Ok(node)
    }

    fn create_unnamed(&self, perm: u32, owner: Owner, linkable: bool) -> Result<Arc<dyn Node>> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        let node = self.node((self.fs.create_unnamed(&mut st, self.ino, perm, owner)?, FileType::Regular));
        self.fs.adopt_unnamed(node.ino, linkable);
        Ok(node)
    }

    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let target = self.same_volume(target)?;
        self.fs.link(&mut self.fs.state.lock(), self.ino, name, target.ino)
    }

    fn unlink(&self, name: &str) -> Result<()> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        self.fs.uncache(&mut st, self.ino, name);
        self.fs.unlink(&mut st, self.ino, name)
    }

    fn rmdir(&self, name: &str) -> Result<()> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let mut st = self.fs.state.lock();
        self.fs.uncache(&mut st, self.ino, name);
        self.fs.rmdir(&mut st, self.ino, name)
    }

    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, Move::Replace)
    }

    fn rename_noreplace(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, Move::NoReplace)
    }

    fn rename_exchange(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, Move::Exchange)
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        self.require(FileType::Directory, Errno::ENOTDIR)?;
        let st = self.fs.state.lock();
        let dir = self.fs.read_inode(&st, self.ino)?;
        if dir.links == 0 {
            return Ok(None);
        }
        let Some(listed) = self.fs.dir_next(&dir, cookie)? else { return Ok(None) };
        // Without the `filetype` feature (or with a bad type byte) the inode says.
        let file_type = match file_type_of_dirent(listed.file_type) {
            Some(file_type) if self.fs.geo.filetype => file_type,
            _ => self.fs.read_inode(&st, listed.ino)?.file_type()?,
        };
        Ok(Some(DirEntry {
            name: String::from_utf8_lossy(&listed.name).into_owned(),
            ino: u64::from(listed.ino),
            file_type,
            next_cookie: listed.next_cookie,
        }))
    }

    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        self.fs.writable()?;
        let st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        let now = self.fs.now();
        if let Some(perm) = attr.perm {
            inode.mode = (inode.mode & 0o170_000) | (perm & 0o7777) as u16;
        }
        inode.uid = attr.uid.unwrap_or(inode.uid);
        inode.gid = attr.gid.unwrap_or(inode.gid);
        attr.apply_times(now, &mut inode.atime, &mut inode.mtime);
        inode.ctime = now;
        self.fs.write_inode(&st, self.ino, &inode)
    }

    fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        let st = self.fs.state.lock();
        let inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.get_xattr(&st, self.ino, &inode, name)
    }

    fn set_xattr(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        let mut st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.change_xattr(&mut st, self.ino, &mut inode, name, Some(value), how)
    }

    fn remove_xattr(&self, name: &str) -> Result<()> {
        let mut st = self.fs.state.lock();
        let mut inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.change_xattr(&mut st, self.ino, &mut inode, name, None, XattrSet::Either)
    }

    fn list_xattr(&self) -> Result<Vec<String>> {
        let st = self.fs.state.lock();
        let inode = self.fs.read_inode(&st, self.ino)?;
        self.fs.list_xattr(&st, self.ino, &inode)
    }
}
