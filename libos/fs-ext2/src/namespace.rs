//! Namespace operations: lookup, create (files, directories, symlinks), link, unlink, rmdir
//! and rename, with the link counts ext2 keeps (a directory has 2 plus one per subdirectory,
//! whose `..` points at it).
//!
//! Each operation does everything that can fail for lack of space first (reserving room for a
//! directory entry, allocating the inode and its first block) and only then makes the change
//! visible, undoing its allocations if a later step runs out. So `ENOSPC` leaves the volume as
//! it was, and e2fsck clean.

use crate::fs::{Inner, State};
use crate::inode::{Inode, LINK_MAX};
use libos_core::{Errno, Result};
use libos_vfs::{FileType, NewNode, Owner, Timestamp};

impl Inner {
    /// Directory `ino`, which must still exist (a removed directory has no links: `ENOENT`).
    pub fn live_dir(&self, st: &State, ino: u32) -> Result<Inode> {
        let dir = self.read_inode(st, ino)?;
        if dir.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if dir.links == 0 {
            return Err(Errno::ENOENT);
        }
        Ok(dir)
    }

    /// The inode a name refers to, checked to be in use.
    fn entry_target(&self, st: &State, ino: u32) -> Result<Inode> {
        let inode = self.read_inode(st, ino)?;
        if inode.links == 0 || inode.mode == 0 {
            log::warn!("ext2: a directory entry names free inode {ino}");
            return Err(Errno::EUCLEAN);
        }
        Ok(inode)
    }

    /// The entry `name` of directory `dir_ino` (`..`: its parent; the root's is itself).
    pub fn lookup(&self, st: &mut State, dir_ino: u32, name: &str) -> Result<(u32, FileType)> {
        let dir = self.live_dir(st, dir_ino)?;
        let found = self.dir_find(st, dir_ino, &dir, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        // As `entry_target`, without copying the inode.
        let file_type = self.with_inode(st, found.ino, |inode| {
            if inode.links == 0 || inode.mode == 0 {
                log::warn!("ext2: a directory entry names free inode {}", found.ino);
                return Err(Errno::EUCLEAN);
            }
            inode.file_type()
        })??;
        Ok((found.ino, file_type))
    }

    /// Creates `name` in directory `dir_ino`.
    pub fn create(&self, st: &mut State, dir_ino: u32, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<(u32, FileType)> {
        self.writable()?;
        let mut dir = self.live_dir(st, dir_ino)?;
        if self.dir_find(st, dir_ino, &dir, name.as_bytes())?.is_some() {
            return Err(Errno::EEXIST);
        }
        let file_type = kind.file_type();
        let is_dir = file_type == FileType::Directory;
        if is_dir && dir.links >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        if let NewNode::Symlink(target) = kind {
            if target.len() >= self.geo.block_size as usize {
                return Err(Errno::ENAMETOOLONG);
            }
        }
        // Room for the entry first: the directory may grow by a block, which is consistent on
        // its own (an empty entry spanning the block).
        let slot = self.dir_reserve(st, dir_ino, &mut dir, name.len())?;
        self.write_inode(st, dir_ino, &dir)?;
        let ino = self.alloc_inode(st, dir_ino, is_dir)?;
        let now = self.now();
        let mut inode = Inode::new(file_type, perm, owner, now);
        let filled = match kind {
            NewNode::File | NewNode::Fifo | NewNode::Socket => Ok(()),
            NewNode::CharDevice(rdev) | NewNode::BlockDevice(rdev) => {
                inode.set_rdev(rdev);
                Ok(())
            }
            NewNode::Directory => self.init_dir(st, ino, &mut inode, dir_ino),
            NewNode::Symlink(target) => self.write_symlink(st, ino, &mut inode, target.as_bytes()),
        };
        if let Err(errno) = filled {
            // Give back what was taken; the on-disk inode was never written.
            let mut undo = Ok(());
            if inode.blocks > 0 {
                undo = self.free_blocks_from(st, &mut inode, 0);
            }
            undo.and(self.free_inode_bit(st, ino, is_dir))?;
            return Err(errno);
        }
        self.write_new_inode(st, ino, &inode)?;
        self.dir_insert(st, dir_ino, slot, name.as_bytes(), ino, file_type)?;
        if is_dir {
            dir.links += 1;
        }
        dir.mtime = now;
        dir.ctime = now;
        self.write_inode(st, dir_ino, &dir)?;
        Ok((ino, file_type))
    }

    /// An unnamed regular file (`O_TMPFILE`) near directory `dir_ino`: an inode with no links,
    /// written as allocated; the caller makes its node and marks it an orphan
    /// ([`Inner::adopt_unnamed`]) so that it is freed with its last node.
    pub fn create_unnamed(&self, st: &mut State, dir_ino: u32, perm: u32, owner: Owner) -> Result<u32> {
        self.writable()?;
        self.live_dir(st, dir_ino)?;
        let ino = self.alloc_inode(st, dir_ino, false)?;
        let mut inode = Inode::new(FileType::Regular, perm, owner, self.now());
        inode.links = 0;
        if let Err(errno) = self.write_new_inode(st, ino, &inode) {
            self.free_inode_bit(st, ino, false)?;
            return Err(errno);
        }
        Ok(ino)
    }

    /// Gives the new directory `inode` its first block with `.` and `..`.
    fn init_dir(&self, st: &mut State, ino: u32, inode: &mut Inode, parent: u32) -> Result<()> {
        let group = (ino - 1) / self.geo.inodes_per_group;
        let (block, _) = self.bmap_alloc(st, inode, 0, self.geo.group_first_block(group))?;
        self.dir_init_block(u64::from(block), ino, parent)?;
        inode.size = u64::from(self.geo.block_size);
        inode.links = 2;
        Ok(())
    }

    /// Adds the name `name` in `dir_ino` for the existing non-directory `target_ino`.
    pub fn link(&self, st: &mut State, dir_ino: u32, name: &str, target_ino: u32) -> Result<()> {
        self.writable()?;
        let mut dir = self.live_dir(st, dir_ino)?;
        let mut target = self.read_inode(st, target_ino)?;
        let file_type = target.file_type()?;
        if file_type == FileType::Directory {
            return Err(Errno::EPERM);
        }
        if target.links == 0 && !self.take_linkable(target_ino) {
            return Err(Errno::ENOENT);
        }
        if target.links >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        if self.dir_find(st, dir_ino, &dir, name.as_bytes())?.is_some() {
            return Err(Errno::EEXIST);
        }
        let slot = self.dir_reserve(st, dir_ino, &mut dir, name.len())?;
        let now = self.now();
        target.links += 1;
        target.ctime = now;
        self.write_inode(st, target_ino, &target)?;
        self.dir_insert(st, dir_ino, slot, name.as_bytes(), target_ino, file_type)?;
        dir.mtime = now;
        dir.ctime = now;
        self.write_inode(st, dir_ino, &dir)
    }

    /// Removes the non-directory entry `name` of `dir_ino`.
    pub fn unlink(&self, st: &mut State, dir_ino: u32, name: &str) -> Result<()> {
        self.writable()?;
        let mut dir = self.live_dir(st, dir_ino)?;
        let found = self.dir_find(st, dir_ino, &dir, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        let target = self.entry_target(st, found.ino)?;
        if target.file_type()? == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        self.dir_remove(st, dir_ino, &mut dir, &found, name.as_bytes())?;
        let now = self.now();
        dir.mtime = now;
        dir.ctime = now;
        self.write_inode(st, dir_ino, &dir)?;
        self.drop_link(st, found.ino, target)
    }

    /// Removes the empty directory `name` of `dir_ino`.
    pub fn rmdir(&self, st: &mut State, dir_ino: u32, name: &str) -> Result<()> {
        self.writable()?;
        let mut dir = self.live_dir(st, dir_ino)?;
        let found = self.dir_find(st, dir_ino, &dir, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        let target = self.entry_target(st, found.ino)?;
        if target.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !self.dir_is_empty(st, found.ino, &target)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_remove(st, dir_ino, &mut dir, &found, name.as_bytes())?;
        // The child's `..` no longer counts as a link of this directory.
        dir.links = dir.links.checked_sub(1).ok_or(Errno::EUCLEAN)?;
        let now = self.now();
        dir.mtime = now;
        dir.ctime = now;
        self.write_inode(st, dir_ino, &dir)?;
        self.drop_directory(st, found.ino, target)
    }

    /// Moves `old_name` of `old_dir_ino` to `new_name` of `new_dir_ino`, replacing what is
    /// there when `replace`, else failing with `EEXIST` if something is (the VFS has checked
    /// the types fit and that no directory moves into itself).
    pub fn rename(&self, st: &mut State, old_dir_ino: u32, old_name: &str, new_dir_ino: u32, new_name: &str, replace: bool) -> Result<()> {
        self.writable()?;
        let mut old_dir = self.live_dir(st, old_dir_ino)?;
        let mut other_dir = if new_dir_ino == old_dir_ino { None } else { Some(self.live_dir(st, new_dir_ino)?) };
        let source = self.dir_find(st, old_dir_ino, &old_dir, old_name.as_bytes())?.ok_or(Errno::ENOENT)?;
        let mut moved = self.entry_target(st, source.ino)?;
        let moved_type = moved.file_type()?;
        let new_dir = other_dir.as_mut().unwrap_or(&mut old_dir);
        let target = self.dir_find(st, new_dir_ino, new_dir, new_name.as_bytes())?;
        if target.is_some() && !replace {
            return Err(Errno::EEXIST);
        }
        let replaced = match target {
            // Two names of one inode: POSIX says do nothing.
            Some(t) if t.ino == source.ino => return Ok(()),
            Some(t) => Some((t, self.entry_target(st, t.ino)?)),
            None => None,
        };
        let moves_dir = moved_type == FileType::Directory;
        if let Some((entry, inode)) = &replaced {
            match (moves_dir, inode.file_type()? == FileType::Directory) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.dir_is_empty(st, entry.ino, inode)? => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let reparent = moves_dir && other_dir.is_some();
        if reparent && replaced.is_none() && other_dir.as_ref().is_some_and(|d| d.links >= LINK_MAX) {
            return Err(Errno::EMLINK);
        }

        // 1. The new name: point an existing entry at the source, or fill reserved room.
        let new_dir = other_dir.as_mut().unwrap_or(&mut old_dir);
        match &replaced {
            Some((entry, _)) => self.dir_retarget(st, new_dir_ino, new_dir, entry, new_name.as_bytes(), source.ino, moved_type)?,
            None => {
                let slot = self.dir_reserve(st, new_dir_ino, new_dir, new_name.len())?;
                self.write_inode(st, new_dir_ino, new_dir)?;
                self.dir_insert(st, new_dir_ino, slot, new_name.as_bytes(), source.ino, moved_type)?;
            }
        }
        // 2. The old name goes (its predecessor in the block, which absorbs it, is found at
        //    removal: an insertion into the same block may have split it).
        self.dir_remove(st, old_dir_ino, &mut old_dir, &source, old_name.as_bytes())?;
        let now = self.now();
        // 3. A directory moving to a new parent: its `..` and both parents' link counts.
        if reparent {
            let dotdot = self.dir_find(st, source.ino, &moved, b"..")?.ok_or(Errno::EUCLEAN)?;
            self.dir_retarget(st, source.ino, &mut moved, &dotdot, b"..", new_dir_ino, FileType::Directory)?;
            old_dir.links = old_dir.links.checked_sub(1).ok_or(Errno::EUCLEAN)?;
            if let Some(dir) = other_dir.as_mut() {
                dir.links += 1;
            }
        }
        moved.ctime = now;
        self.write_inode(st, source.ino, &moved)?;
        // 4. The replaced node loses its name.
        let new_dir = other_dir.as_mut().unwrap_or(&mut old_dir);
        let mut result = Ok(());
        if let Some((entry, inode)) = replaced {
            if inode.file_type()? == FileType::Directory {
                new_dir.links = new_dir.links.checked_sub(1).ok_or(Errno::EUCLEAN)?;
                result = self.drop_directory(st, entry.ino, inode);
            } else {
                result = self.drop_link(st, entry.ino, inode);
            }
        }
        self.write_parents(st, (old_dir_ino, &mut old_dir), other_dir.as_mut().map(|dir| (new_dir_ino, dir)), now)?;
        result
    }

    /// After a rename: the parent directories (the second only if it is another one) changed
    /// now; their inodes are written.
    fn write_parents(&self, st: &State, old: (u32, &mut Inode), other: Option<(u32, &mut Inode)>, now: Timestamp) -> Result<()> {
        for (ino, dir) in [Some(old), other].into_iter().flatten() {
            dir.mtime = now;
            dir.ctime = now;
            self.write_inode(st, ino, dir)?;
        }
        Ok(())
    }

    /// `renameat2` with `RENAME_EXCHANGE`: entry `old_name` of `old_dir_ino` and entry
    /// `new_name` of `new_dir_ino` swap inodes (and file-type bytes). A directory that changes
    /// parent gets its `..` retargeted and moves one link from its old parent's count to the
    /// new one's (`EMLINK` if that count is full).
    pub fn exchange(&self, st: &mut State, old_dir_ino: u32, old_name: &str, new_dir_ino: u32, new_name: &str) -> Result<()> {
        self.writable()?;
        let mut old_dir = self.live_dir(st, old_dir_ino)?;
        let mut other_dir = if new_dir_ino == old_dir_ino { None } else { Some(self.live_dir(st, new_dir_ino)?) };
        let source = self.dir_find(st, old_dir_ino, &old_dir, old_name.as_bytes())?.ok_or(Errno::ENOENT)?;
        let new_dir = other_dir.as_ref().unwrap_or(&old_dir);
        let target = self.dir_find(st, new_dir_ino, new_dir, new_name.as_bytes())?.ok_or(Errno::ENOENT)?;
        if source.ino == target.ino {
            return Ok(());
        }
        let mut source_inode = self.entry_target(st, source.ino)?;
        let mut target_inode = self.entry_target(st, target.ino)?;
        let (source_type, target_type) = (source_inode.file_type()?, target_inode.file_type()?);
        let (source_is_dir, target_is_dir) = (source_type == FileType::Directory, target_type == FileType::Directory);
        if let Some(new_dir) = other_dir.as_mut() {
            // Directory links move with the directories: to the new parent for the source, to
            // the old one for the target.
            let gain = i32::from(source_is_dir) - i32::from(target_is_dir);
            let (gainer, loser) = if gain > 0 { (&mut *new_dir, &mut old_dir) } else { (&mut old_dir, &mut *new_dir) };
            if gain != 0 {
                if gainer.links >= LINK_MAX {
                    return Err(Errno::EMLINK);
                }
                gainer.links += 1;
                loser.links = loser.links.checked_sub(1).ok_or(Errno::EUCLEAN)?;
            }
        }
        self.dir_retarget(st, old_dir_ino, &mut old_dir, &source, old_name.as_bytes(), target.ino, target_type)?;
        let new_dir = other_dir.as_mut().unwrap_or(&mut old_dir);
        self.dir_retarget(st, new_dir_ino, new_dir, &target, new_name.as_bytes(), source.ino, source_type)?;
        let now = self.now();
        if other_dir.is_some() {
            for (ino, inode, parent) in [(source.ino, &mut source_inode, new_dir_ino), (target.ino, &mut target_inode, old_dir_ino)] {
                if inode.file_type()? == FileType::Directory {
                    let dotdot = self.dir_find(st, ino, inode, b"..")?.ok_or(Errno::EUCLEAN)?;
                    self.dir_retarget(st, ino, inode, &dotdot, b"..", parent, FileType::Directory)?;
                }
            }
        }
        for (ino, inode) in [(source.ino, &mut source_inode), (target.ino, &mut target_inode)] {
            inode.ctime = now;
            self.write_inode(st, ino, inode)?;
        }
        self.write_parents(st, (old_dir_ino, &mut old_dir), other_dir.as_mut().map(|dir| (new_dir_ino, dir)), now)
    }

    /// One name of non-directory `ino` is gone: count it, and free the inode if that was the
    /// last name and nobody has it open.
    fn drop_link(&self, st: &mut State, ino: u32, mut inode: Inode) -> Result<()> {
        inode.links = inode.links.checked_sub(1).ok_or(Errno::EUCLEAN)?;
        inode.ctime = self.now();
        self.write_inode(st, ino, &inode)?;
        if inode.links == 0 && !self.keep_if_open(ino) {
            self.release_inode(st, ino, inode)?;
        }
        Ok(())
    }

    /// Empty directory `ino` lost its name: it has no links and no contents from now on (its
    /// block is freed at once, as Linux truncates it); the inode goes when nobody has it open.
    fn drop_directory(&self, st: &mut State, ino: u32, mut inode: Inode) -> Result<()> {
        st.dirs.forget(ino);
        let freed = self.free_blocks_from(st, &mut inode, 0);
        inode.size = 0;
        inode.links = 0;
        inode.ctime = self.now();
        self.write_inode(st, ino, &inode)?;
        let open = self.keep_if_open(ino);
        freed?;
        if !open {
            self.release_inode(st, ino, inode)?;
        }
        Ok(())
    }
}
