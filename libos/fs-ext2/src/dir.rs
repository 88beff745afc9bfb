//! Directories: blocks of variable-length entries (`inode`, `rec_len`, `name_len`,
//! `file_type`, name), each block filled exactly by its entries' `rec_len`s.
//!
//! Every directory is read linearly. That includes hash-indexed (`dir_index`, "htree")
//! directories: their index blocks are disguised as one empty entry spanning the block, and the
//! root's index hides in the slack of the `..` entry, so a linear reader sees exactly the real
//! entries, which is how the format was designed to stay ext2-compatible. Before changing an
//! indexed directory this driver clears its index flag (as Linux does when it cannot keep the
//! index up to date); it is then an ordinary directory whose index blocks read as empty space.
//!
//! A `readdir` cookie is the byte offset of an entry within the directory plus one. Removing
//! an entry merges it into its predecessor and adding one splits an existing entry's slack, so
//! entries never move and cookies stay valid across changes.
//!
//! Lookups and changes go through an in-memory index of the directory (`dir_index`) when it
//! has one, so they touch one directory block instead of scanning them all; the format on
//! disk is the same either way.
//!
//! Every entry read from disk is checked (length, alignment, fits its block, name fits the
//! entry); a bad one makes the operation fail with `EUCLEAN`.

use crate::dir_index::{BlockInfo, DirIndex, Slot};
use crate::fs::{Inner, State};
use crate::inode::{INDEX_FL, Inode, dirent_type};
use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashMap;
use libos_core::{Errno, Result};
use libos_vfs::FileType;

const HEADER: usize = 8;

/// The space an entry with an `name_len`-byte name needs (header plus name, 4-byte aligned).
pub fn entry_len(name_len: usize) -> usize {
    (HEADER + name_len + 3) & !3
}

/// One entry as found in a block.
#[derive(Clone, Copy, Debug)]
struct RawEntry {
    offset: usize,
    ino: u32,
    rec_len: usize,
    name_len: usize,
    file_type: u8,
}

/// Reads the entry at `offset` of `block`, checking it.
fn entry_at(block: &[u8], offset: usize) -> Result<RawEntry> {
    let header = block.get(offset..offset + HEADER).ok_or(Errno::EUCLEAN)?;
    let ino = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let rec_len = decode_rec_len(u16::from_le_bytes([header[4], header[5]]), block.len());
    let name_len = usize::from(header[6]);
    let ok = rec_len >= HEADER
        && rec_len % 4 == 0
        && offset + rec_len <= block.len()
        && HEADER + name_len <= rec_len
        && (ino == 0 || name_len > 0);
    if !ok {
        log::warn!("ext2: corrupt directory entry at offset {offset} (rec_len {rec_len}, name_len {name_len})");
        return Err(Errno::EUCLEAN);
    }
    Ok(RawEntry { offset, ino, rec_len, name_len, file_type: header[7] })
}

/// 64 KiB blocks need a 65536-byte `rec_len`, which is stored as 65535 (or 0).
fn decode_rec_len(raw: u16, block_size: usize) -> usize {
    if block_size >= 65536 && (raw == 65535 || raw == 0) { 65536 } else { usize::from(raw) }
}

fn encode_rec_len(len: usize) -> u16 {
    if len >= 65536 { 65535 } else { len as u16 }
}

fn name_of<'a>(block: &'a [u8], entry: &RawEntry) -> &'a [u8] {
    &block[entry.offset + HEADER..entry.offset + HEADER + entry.name_len]
}

/// Writes an entry header and name at `offset`.
fn put_entry(block: &mut [u8], offset: usize, ino: u32, rec_len: usize, name: &[u8], file_type: u8) -> Result<()> {
    let end = offset.checked_add(HEADER + name.len()).ok_or(Errno::EUCLEAN)?;
    if end > block.len() || offset + rec_len > block.len() || name.len() > 255 {
        return Err(Errno::EUCLEAN);
    }
    block[offset..offset + 4].copy_from_slice(&ino.to_le_bytes());
    block[offset + 4..offset + 6].copy_from_slice(&encode_rec_len(rec_len).to_le_bytes());
    block[offset + 6] = name.len() as u8;
    block[offset + 7] = file_type;
    block[offset + HEADER..end].copy_from_slice(name);
    Ok(())
}

/// The largest entry (header and name, aligned) that fits in a block after `entry`: all of
/// an unused entry, the slack after a used one's name.
fn slack(entry: &RawEntry) -> usize {
    if entry.ino == 0 { entry.rec_len } else { entry.rec_len - entry_len(entry.name_len) }
}

/// The entry of `block` with the most room (the first of equals): (its room, its offset).
fn best_room(block: &[u8]) -> Result<(usize, usize)> {
    let mut best = (0, 0);
    let mut offset = 0;
    while offset < block.len() {
        let entry = entry_at(block, offset)?;
        let free = slack(&entry);
        if free > best.0 {
            best = (free, offset);
        }
        offset += entry.rec_len;
    }
    Ok(best)
}

/// The first entry of `block` with room for an entry of `needed` bytes: (its offset, the
/// length it keeps if it is split), and the block's room once the new entry is in it.
fn find_room(block: &[u8], needed: usize) -> Result<Option<(usize, Option<usize>, usize)>> {
    let mut offset = 0;
    let mut found = None;
    // The room the other entries leave.
    let mut room = 0;
    while offset < block.len() {
        let entry = entry_at(block, offset)?;
        let free = slack(&entry);
        if found.is_none() && free >= needed {
            let keep = (entry.ino != 0).then(|| entry_len(entry.name_len));
            // What stays free behind the new entry.
            room = room.max(free - needed);
            found = Some((offset, keep));
        } else {
            room = room.max(free);
        }
        offset += entry.rec_len;
    }
    Ok(found.map(|(offset, keep)| (offset, keep, room)))
}

/// A name found in a directory.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    /// The disk block holding the entry, and its logical index in the directory.
    pub block: u64,
    index: u64,
    offset: usize,
    pub ino: u32,
}

/// Room for a new entry, found by [`Inner::dir_reserve`].
#[derive(Clone, Copy, Debug)]
pub struct Reserved {
    block: u64,
    index: u64,
    offset: usize,
    /// If an existing entry is split: the length it keeps. Else the slot is an unused entry.
    keep: Option<usize>,
    /// The block's room once the entry is in (for the index).
    room_after: usize,
}

/// One entry listed by [`Inner::dir_next`].
pub struct Listed {
    pub name: Vec<u8>,
    pub ino: u32,
    pub file_type: u8,
    pub next_cookie: u64,
}

impl Inner {
    /// The number of blocks of directory `dir`; `EUCLEAN` unless its size is whole blocks.
    fn dir_len(&self, dir: &Inode) -> Result<u64> {
        let block_size = u64::from(self.geo.block_size);
        if dir.size % block_size != 0 {
            log::warn!("ext2: directory size {} is not a multiple of the block size", dir.size);
            return Err(Errno::EUCLEAN);
        }
        Ok(dir.size / block_size)
    }

    /// The disk block of directory block `index` (directories have no holes).
    fn dir_block(&self, dir: &Inode, index: u64) -> Result<u64> {
        match self.bmap(dir, index)? {
            Some(block) => Ok(u64::from(block)),
            None => {
                log::warn!("ext2: directory has a hole at block {index}");
                Err(Errno::EUCLEAN)
            }
        }
    }

    /// Directory `dir_ino`'s index, built from the disk on first use; `None` if the directory
    /// is not to be indexed (too big for the budget, or it names something twice).
    fn dir_index<'s>(&self, st: &'s mut State, dir_ino: u32, dir: &Inode) -> Result<Option<&'s mut DirIndex>> {
        if st.dirs.peek(dir_ino).is_some() {
            return Ok(st.dirs.get(dir_ino));
        }
        if !st.dirs.admits(dir.size) {
            return Ok(None);
        }
        let blocks = self.dir_len(dir)?;
        let mut map = Vec::new();
        self.bmap_run(dir, 0, blocks, &mut map)?;
        if map.len() as u64 != blocks {
            return Err(Errno::EUCLEAN);
        }
        let mut names = HashMap::new();
        let mut infos = Vec::with_capacity(map.len());
        let mut duplicate = false;
        for (index, block) in map.into_iter().enumerate() {
            let Some(block) = block else {
                log::warn!("ext2: directory has a hole at block {index}");
                return Err(Errno::EUCLEAN);
            };
            let block = u64::from(block);
            let (room, best) = self.cache.with_block(block, |data| -> Result<(usize, usize)> {
                let mut best = (0, 0);
                let mut offset = 0;
                while offset < data.len() {
                    let entry = entry_at(data, offset)?;
                    if slack(&entry) > best.0 {
                        best = (slack(&entry), offset);
                    }
                    if entry.ino != 0 {
                        let slot = Slot { index: index as u32, offset: offset as u32, ino: entry.ino };
                        if names.insert(Box::from(name_of(data, &entry)), slot).is_some() {
                            duplicate = true;
                        }
                    }
                    offset += entry.rec_len;
                }
                Ok(best)
            })??;
            infos.push(BlockInfo { disk: block, room: room as u32, best: best as u32, exact: true });
        }
        if duplicate {
            log::warn!("ext2: directory {dir_ino} names something twice; run e2fsck");
            return Ok(None);
        }
        Ok(Some(st.dirs.insert(dir_ino, dir.size, DirIndex::new(names, infos))))
    }

    /// Looks `name` up in directory `dir_ino` (`dir`).
    pub fn dir_find(&self, st: &mut State, dir_ino: u32, dir: &Inode, name: &[u8]) -> Result<Option<Found>> {
        if let Some(index) = self.dir_index(st, dir_ino, dir)? {
            return Ok(index.names.get(name).map(|slot| Found {
                block: index.blocks[slot.index as usize].disk,
                index: u64::from(slot.index),
                offset: slot.offset as usize,
                ino: slot.ino,
            }));
        }
        for index in 0..self.dir_len(dir)? {
            let block = self.dir_block(dir, index)?;
            let found = self.cache.with_block(block, |data| -> Result<Option<Found>> {
                let mut offset = 0;
                while offset < data.len() {
                    let entry = entry_at(data, offset)?;
                    if entry.ino != 0 && name_of(data, &entry) == name {
                        return Ok(Some(Found { block, index, offset, ino: entry.ino }));
                    }
                    offset += entry.rec_len;
                }
                Ok(None)
            })??;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The first entry (other than `.` and `..`) at or after `cookie`.
    pub fn dir_next(&self, dir: &Inode, cookie: u64) -> Result<Option<Listed>> {
        let block_size = u64::from(self.geo.block_size);
        let start = cookie.saturating_sub(1);
        for index in start / block_size..self.dir_len(dir)? {
            let block = self.dir_block(dir, index)?;
            let base = index * block_size;
            let from = start.saturating_sub(base) as usize;
            let listed = self.cache.with_block(block, |data| -> Result<Option<Listed>> {
                let mut offset = 0;
                while offset < data.len() {
                    let entry = entry_at(data, offset)?;
                    let name = name_of(data, &entry);
                    if offset >= from && entry.ino != 0 && name != b"." && name != b".." {
                        return Ok(Some(Listed {
                            name: name.to_vec(),
                            ino: entry.ino,
                            file_type: entry.file_type,
                            next_cookie: base + offset as u64 + 2,
                        }));
                    }
                    offset += entry.rec_len;
                }
                Ok(None)
            })??;
            if listed.is_some() {
                return Ok(listed);
            }
        }
        Ok(None)
    }

    /// True if directory `dir_ino` (`dir`) has no entries but `.` and `..`.
    pub fn dir_is_empty(&self, st: &mut State, dir_ino: u32, dir: &Inode) -> Result<bool> {
        if let Some(index) = st.dirs.peek(dir_ino) {
            return Ok(index.is_empty());
        }
        Ok(self.dir_next(dir, 0)?.is_none())
    }

    /// Finds room for an entry with a `name_len`-byte name in `dir` (inode `dir_ino`),
    /// appending a block if none has room. Updates `dir` (size, blocks, index flag); the
    /// caller writes it. Nothing is visible until [`Inner::dir_insert`].
    pub fn dir_reserve(&self, st: &mut State, dir_ino: u32, dir: &mut Inode, name_len: usize) -> Result<Reserved> {
        self.writable()?;
        let needed = entry_len(name_len);
        let blocks = self.dir_len(dir)?;
        if let Some(index) = self.dir_index(st, dir_ino, dir)? {
            // The index knows the block and the entry to split.
            if index.block_with_room(needed).is_none() {
                // Before growing the directory, learn the exact room of blocks filled since.
                for info in index.blocks.iter_mut().filter(|b| !b.exact) {
                    let (room, best) = self.cache.with_block(info.disk, best_room)??;
                    *info = BlockInfo { room: room as u32, best: best as u32, exact: true, ..*info };
                }
            }
            if let Some((index, info)) = index.block_with_room(needed) {
                let (block, offset) = (info.disk, info.best as usize);
                let slot = self.cache.with_block(block, |data| -> Result<Option<(Option<usize>, usize)>> {
                    let entry = entry_at(data, offset)?;
                    let free = slack(&entry);
                    Ok((free >= needed).then(|| ((entry.ino != 0).then(|| entry_len(entry.name_len)), free - needed)))
                })??;
                let Some((keep, room_after)) = slot else {
                    log::warn!("ext2: directory {dir_ino}: index out of step with block {block}");
                    st.dirs.forget(dir_ino);
                    return Err(Errno::EUCLEAN);
                };
                clear_index(dir);
                return Ok(Reserved { block, index, offset, keep, room_after });
            }
        } else {
            for index in 0..blocks {
                let block = self.dir_block(dir, index)?;
                let slot = self.cache.with_block(block, |data| find_room(data, needed))??;
                if let Some((offset, keep, room_after)) = slot {
                    clear_index(dir);
                    return Ok(Reserved { block, index, offset, keep, room_after });
                }
            }
        }
        // No room: a new block holding one unused entry that spans it.
        let block_size = u64::from(self.geo.block_size);
        let goal = match blocks.checked_sub(1) {
            Some(last) => self.bmap(dir, last)?.map_or(0, |b| b.saturating_add(1)),
            None => 0,
        };
        let size = dir.size.checked_add(block_size).filter(|&s| s <= u64::from(u32::MAX)).ok_or(Errno::EFBIG)?;
        let (block, _) = self.bmap_alloc(st, dir, blocks, goal)?;
        let block = u64::from(block);
        self.cache.zero(block)?;
        self.cache.with_block_mut(block, |data| put_entry(data, 0, 0, data.len(), b"", 0))??;
        dir.size = size;
        clear_index(dir);
        let needed_room = self.geo.block_size as usize;
        if let Some(index) = st.dirs.peek(dir_ino) {
            index.blocks.push(BlockInfo { disk: block, room: needed_room as u32, best: 0, exact: true });
            st.dirs.grew(dir_ino, size);
        }
        Ok(Reserved { block, index: blocks, offset: 0, keep: None, room_after: needed_room - needed })
    }

    /// Writes the entry `name` -> `ino` into the room `at` of directory `dir_ino`.
    pub fn dir_insert(&self, st: &mut State, dir_ino: u32, at: Reserved, name: &[u8], ino: u32, file_type: FileType) -> Result<()> {
        let type_byte = if self.geo.filetype { dirent_type(file_type) } else { 0 };
        let written = self.cache.with_block_mut(at.block, |data| {
            let entry = entry_at(data, at.offset)?;
            match at.keep {
                None if entry.ino != 0 || entry.rec_len < entry_len(name.len()) => Err(Errno::EUCLEAN),
                None => put_entry(data, at.offset, ino, entry.rec_len, name, type_byte).map(|()| at.offset),
                Some(keep) => {
                    // The block was checked when the room was found; a corrupt bitmap could
                    // have handed it out since, so check again rather than trust it.
                    let rest = entry.rec_len.checked_sub(keep).filter(|&r| r >= entry_len(name.len()));
                    let rest = rest.ok_or(Errno::EUCLEAN)?;
                    data[at.offset + 4..at.offset + 6].copy_from_slice(&encode_rec_len(keep).to_le_bytes());
                    put_entry(data, at.offset + keep, ino, rest, name, type_byte).map(|()| at.offset + keep)
                }
            }
        });
        match written.and_then(|r| r) {
            Ok(offset) => {
                if let Some(index) = st.dirs.peek(dir_ino) {
                    let slot = Slot { index: at.index as u32, offset: offset as u32, ino };
                    index.names.insert(Box::from(name), slot);
                    index.filled(at.index, offset, at.room_after);
                }
                Ok(())
            }
            Err(errno) => {
                st.dirs.forget(dir_ino);
                Err(errno)
            }
        }
    }

    /// Removes the entry `found` (of `name`) of directory `dir_ino` (`dir`, whose index flag
    /// is cleared).
    pub fn dir_remove(&self, st: &mut State, dir_ino: u32, dir: &mut Inode, found: &Found, name: &[u8]) -> Result<()> {
        self.writable()?;
        clear_index(dir);
        let removed = self.cache.with_block_mut(found.block, |data| {
            // The previous entry absorbs this one, so later entries keep their offsets.
            let mut offset = 0;
            let mut prev = None;
            while offset < found.offset {
                prev = Some(offset);
                offset += entry_at(data, offset)?.rec_len;
            }
            let entry = entry_at(data, found.offset)?;
            if offset != found.offset || entry.ino != found.ino {
                return Err(Errno::EUCLEAN);
            }
            match prev {
                Some(prev) => {
                    let prev_entry = entry_at(data, prev)?;
                    let merged = prev_entry.rec_len + entry.rec_len;
                    data[prev + 4..prev + 6].copy_from_slice(&encode_rec_len(merged).to_le_bytes());
                    Ok((prev, slack(&entry_at(data, prev)?)))
                }
                // The first entry of a block cannot merge backwards: mark it unused.
                None => {
                    data[found.offset..found.offset + 4].copy_from_slice(&0u32.to_le_bytes());
                    Ok((found.offset, entry.rec_len))
                }
            }
        });
        match removed.and_then(|r| r) {
            Ok((offset, freed)) => {
                if let Some(index) = st.dirs.peek(dir_ino) {
                    index.names.remove(name);
                    index.emptied(found.index, offset, freed);
                }
                Ok(())
            }
            Err(errno) => {
                st.dirs.forget(dir_ino);
                Err(errno)
            }
        }
    }

    /// Points the entry `found` (of `name`) of directory `dir_ino` at `ino` (rename over an
    /// existing name, or `..` of a moved directory).
    #[allow(clippy::too_many_arguments)]
    pub fn dir_retarget(&self, st: &mut State, dir_ino: u32, dir: &mut Inode, found: &Found, name: &[u8], ino: u32, file_type: FileType) -> Result<()> {
        self.writable()?;
        clear_index(dir);
        let type_byte = if self.geo.filetype { dirent_type(file_type) } else { 0 };
        let result = self.cache.with_block_mut(found.block, |data| {
            entry_at(data, found.offset)?;
            data[found.offset..found.offset + 4].copy_from_slice(&ino.to_le_bytes());
            data[found.offset + 7] = type_byte;
            Ok(())
        });
        match result.and_then(|r| r) {
            Ok(()) => {
                if let Some(slot) = st.dirs.peek(dir_ino).and_then(|index| index.names.get_mut(name)) {
                    slot.ino = ino;
                }
                Ok(())
            }
            Err(errno) => {
                st.dirs.forget(dir_ino);
                Err(errno)
            }
        }
    }

    /// Writes the first block of a new directory: `.` (itself) and `..` (its parent).
    pub fn dir_init_block(&self, block: u64, ino: u32, parent: u32) -> Result<()> {
        let type_byte = if self.geo.filetype { dirent_type(FileType::Directory) } else { 0 };
        self.cache.zero(block)?;
        self.cache.with_block_mut(block, |data| {
            let dot = entry_len(1);
            put_entry(data, 0, ino, dot, b".", type_byte)?;
            put_entry(data, dot, parent, data.len() - dot, b"..", type_byte)
        })?
    }
}

/// A directory about to change loses its hash index (see the module docs).
fn clear_index(dir: &mut Inode) {
    dir.flags &= !INDEX_FL;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let mut block = [0u8; 1024];
        put_entry(&mut block, 0, 2, 12, b".", 2).unwrap();
        put_entry(&mut block, 12, 2, 1012, b"..", 2).unwrap();
        assert_eq!(entry_at(&block, 12).unwrap().rec_len, 1012);
        block[12 + 4] = 3; // rec_len no longer 4-aligned
        assert_eq!(entry_at(&block, 12).unwrap_err(), Errno::EUCLEAN);
        block[12 + 4] = 0;
        block[12 + 5] = 0x10; // rec_len 4096: past the block
        assert_eq!(entry_at(&block, 12).unwrap_err(), Errno::EUCLEAN);
        assert_eq!(entry_at(&block, 1020).unwrap_err(), Errno::EUCLEAN, "header past the block");
        assert_eq!(entry_len(1), 12);
        assert_eq!(entry_len(255), 264);
        assert_eq!(decode_rec_len(encode_rec_len(65536), 65536), 65536);
    }
}
