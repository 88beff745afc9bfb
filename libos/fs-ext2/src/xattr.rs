//! Extended attributes on disk, as Linux's ext2 keeps them: one attribute block per inode
//! (`i_file_acl`), shared by reference count, holding a header, a sorted table of entries
//! (name index, name, value offset and size, hash) and the values packed at the block's end.
//! Large inodes may also hold attributes in their tail (ext4 and `mke2fs -d` write them
//! there); they are read, and the first change moves them into the block, as a driver without
//! in-inode attributes must, so the set never splits between two places this driver writes.
//!
//! What e2fsck checks is kept: the magic, `h_blocks` 1, entries and values inside the block
//! without overlap, each entry's hash, the block's reference count, `i_blocks` counting the
//! block, and the superblock's `ext_attr` feature (set on first use, as Linux does).

use crate::disk::RawSuperblock;
use crate::fs::{Inner, State};
use crate::inode::Inode;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::XattrSet;
use zerocopy::{FromBytes, IntoBytes};

/// `h_magic` of an attribute block and of an inode's attribute area.
const MAGIC: u32 = 0xEA02_0000;
/// Bytes of the block header.
const HEADER: usize = 32;
/// Bytes of an entry before its name.
const ENTRY: usize = 16;
/// `s_feature_compat`: the volume may hold extended attributes.
const COMPAT_EXT_ATTR: u32 = 0x0008;
/// Where an inode's attribute area starts: after the 128 base bytes and `i_extra_isize`.
const INODE_BASE: usize = 128;

/// Name indexes and the prefixes they stand for (Linux's `EXT2_XATTR_INDEX_*`). Indexes 2
/// and 3 (POSIX ACLs) name a whole attribute; the VFS never asks for them (no ACLs), but
/// they are listed when a host put them there.
const PREFIXES: [(u8, &str); 6] = [
    (1, "user."),
    (2, "system.posix_acl_access"),
    (3, "system.posix_acl_default"),
    (4, "trusted."),
    (6, "security."),
    (7, "system."),
];

/// One attribute: its name index, the name after the prefix, its value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attr {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Attr {
    /// The full name (`user.colour`); `None` for an index this driver does not know.
    fn full_name(&self) -> Option<String> {
        let (_, prefix) = PREFIXES.iter().find(|(index, _)| *index == self.index)?;
        let mut name = String::from(*prefix);
        name.push_str(core::str::from_utf8(&self.name).ok()?);
        Some(name)
    }

    /// The index and stored name of `full` (the longest prefix wins, so `system.posix_acl_*`
    /// are whole names of their own).
    fn split(full: &str) -> Result<(u8, &[u8])> {
        PREFIXES
            .iter()
            .filter(|(_, prefix)| full.starts_with(prefix))
            .max_by_key(|(_, prefix)| prefix.len())
            .map(|&(index, prefix)| (index, &full.as_bytes()[prefix.len()..]))
            .ok_or(Errno::EOPNOTSUPP)
    }

    /// Bytes of its entry, name padded to 4.
    fn entry_len(&self) -> usize {
        (ENTRY + self.name.len()).next_multiple_of(4)
    }

    /// The order Linux keeps entries in: index, name length, name.
    fn order(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), &self.name)
    }
}

fn u16_at(data: &[u8], at: usize) -> Result<u16> {
    data.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or(Errno::EUCLEAN)
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(Errno::EUCLEAN)
}

/// The entries of `region` from byte `first` to the terminating zero word; value offsets
/// count from `values_base`. `EUCLEAN` for anything outside the region.
fn parse_entries(region: &[u8], first: usize, values_base: usize) -> Result<Vec<Attr>> {
    let mut attrs = Vec::new();
    let mut at = first;
    while u32_at(region, at)? != 0 {
        let name_len = usize::from(region[at]);
        let index = region[at + 1];
        let value_offs = usize::from(u16_at(region, at + 2)?);
        let value_inum = u32_at(region, at + 4)?;
        let value_size = u32_at(region, at + 8)? as usize;
        let name = region.get(at + ENTRY..at + ENTRY + name_len).ok_or(Errno::EUCLEAN)?;
        if name_len == 0 || value_inum != 0 {
            return Err(Errno::EUCLEAN);
        }
        let value = match value_size {
            0 => &[][..],
            _ => {
                let start = values_base.checked_add(value_offs).ok_or(Errno::EUCLEAN)?;
                region.get(start..start.checked_add(value_size).ok_or(Errno::EUCLEAN)?).ok_or(Errno::EUCLEAN)?
            }
        };
        attrs.push(Attr { index, name: name.to_vec(), value: value.to_vec() });
        at += (ENTRY + name_len).next_multiple_of(4);
    }
    Ok(attrs)
}

/// An attribute block's entries and reference count.
fn decode_block(data: &[u8]) -> Result<(Vec<Attr>, u32)> {
    if u32_at(data, 0)? != MAGIC || u32_at(data, 8)? != 1 {
        log::warn!("ext2: bad extended-attribute block header");
        return Err(Errno::EUCLEAN);
    }
    Ok((parse_entries(data, HEADER, 0)?, u32_at(data, 4)?))
}

/// The attributes in an inode's tail (`inode` is the whole on-disk inode), if it has any.
fn decode_in_inode(inode: &[u8]) -> Result<Vec<Attr>> {
    let Some(start) = in_inode_area(inode) else { return Ok(Vec::new()) };
    if u32_at(inode, start)? != MAGIC {
        return Ok(Vec::new());
    }
    // Value offsets count from the first entry, right after the magic word.
    let area = &inode[start..];
    parse_entries(area, 4, 4)
}

/// Where an inode's attribute area starts, if the inode has one.
fn in_inode_area(inode: &[u8]) -> Option<usize> {
    let extra_isize = usize::from(u16_at(inode, INODE_BASE).ok()?);
    let start = INODE_BASE + extra_isize;
    (inode.len() > INODE_BASE && start + 4 <= inode.len()).then_some(start)
}

/// Linux's entry hash: the name (bytes as signed chars, as x86's kernel and e2fsprogs
/// compute it) rotated in 5 bits at a time, then the value's 32-bit words 16 bits at a time.
fn entry_hash(attr: &Attr) -> u32 {
    let mut hash = 0u32;
    for &byte in &attr.name {
        hash = (hash << 5) ^ (hash >> 27) ^ (i32::from(byte as i8) as u32);
    }
    // The value's words, the last one padded with zeros (as stored).
    for chunk in attr.value.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes(word);
    }
    hash
}

/// A block holding `attrs` (sorted as Linux keeps them) with reference count 1; `ENOSPC`
/// when they do not fit.
fn encode_block(attrs: &mut [Attr], block_size: usize) -> Result<Vec<u8>> {
    attrs.sort_by(|a, b| a.order().cmp(&b.order()));
    let table: usize = attrs.iter().map(Attr::entry_len).sum();
    let values: usize = attrs.iter().map(|a| a.value.len().next_multiple_of(4)).sum();
    if HEADER + table + 4 + values > block_size {
        return Err(Errno::ENOSPC);
    }
    let mut data = vec![0u8; block_size];
    data[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    data[4..8].copy_from_slice(&1u32.to_le_bytes());
    data[8..12].copy_from_slice(&1u32.to_le_bytes());
    let (mut at, mut value_end) = (HEADER, block_size);
    let mut hashes = Vec::with_capacity(attrs.len());
    for attr in attrs.iter() {
        let offs = if attr.value.is_empty() {
            0
        } else {
            value_end -= attr.value.len().next_multiple_of(4);
            data[value_end..value_end + attr.value.len()].copy_from_slice(&attr.value);
            value_end
        };
        let hash = entry_hash(attr);
        data[at] = attr.name.len() as u8;
        data[at + 1] = attr.index;
        data[at + 2..at + 4].copy_from_slice(&(offs as u16).to_le_bytes());
        data[at + 8..at + 12].copy_from_slice(&(attr.value.len() as u32).to_le_bytes());
        data[at + 12..at + 16].copy_from_slice(&hash.to_le_bytes());
        data[at + ENTRY..at + ENTRY + attr.name.len()].copy_from_slice(&attr.name);
        at += attr.entry_len();
        hashes.push(hash);
    }
    // Linux's block hash (for sharing equal blocks); an entry hash of zero makes it zero.
    let block_hash = if hashes.contains(&0) { 0 } else { hashes.iter().fold(0u32, |h, &e| (h << 16) ^ (h >> 16) ^ e) };
    data[12..16].copy_from_slice(&block_hash.to_le_bytes());
    Ok(data)
}

impl Inner {
    /// Every attribute of inode `ino`: the inode's tail first, then its block.
    fn xattrs(&self, st: &State, ino: u32, inode: &Inode) -> Result<Vec<Attr>> {
        let (block, offset) = self.inode_location(st, ino)?;
        let size = self.geo.inode_size as usize;
        let mut attrs = self.cache.with_block(block, |data| decode_in_inode(&data[offset..offset + size]))??;
        if inode.file_acl != 0 {
            let block = self.check_block(inode.file_acl)?;
            attrs.extend(self.cache.with_block(block, decode_block)??.0);
        }
        Ok(attrs)
    }

    /// `getxattr` of inode `ino`.
    pub fn get_xattr(&self, st: &State, ino: u32, inode: &Inode, name: &str) -> Result<Vec<u8>> {
        let (index, stored) = Attr::split(name)?;
        let attrs = self.xattrs(st, ino, inode)?;
        let attr = attrs.into_iter().find(|a| a.index == index && a.name == stored).ok_or(Errno::ENODATA)?;
        Ok(attr.value)
    }

    /// `listxattr` of inode `ino` (names of unknown indexes are left out).
    pub fn list_xattr(&self, st: &State, ino: u32, inode: &Inode) -> Result<Vec<String>> {
        Ok(self.xattrs(st, ino, inode)?.iter().filter_map(Attr::full_name).collect())
    }

    /// `setxattr` (`value` given) or `removexattr` (`None`) of inode `ino`; the change time
    /// becomes now and the inode is written.
    pub fn change_xattr(&self, st: &mut State, ino: u32, inode: &mut Inode, name: &str, value: Option<&[u8]>, how: XattrSet) -> Result<()> {
        self.writable()?;
        let (index, stored) = Attr::split(name)?;
        let mut attrs = self.xattrs(st, ino, inode)?;
        let found = attrs.iter().position(|a| a.index == index && a.name == stored);
        match (value, found, how) {
            (Some(_), Some(_), XattrSet::Create) => return Err(Errno::EEXIST),
            (Some(_), None, XattrSet::Replace) | (None, None, _) => return Err(Errno::ENODATA),
            (Some(value), Some(at), _) => attrs[at].value = value.to_vec(),
            (Some(value), None, _) => attrs.push(Attr { index, name: stored.to_vec(), value: value.to_vec() }),
            (None, Some(at), _) => drop(attrs.remove(at)),
        }
        self.store_xattrs(st, ino, inode, attrs)?;
        inode.ctime = self.now();
        self.write_inode(st, ino, inode)
    }

    /// Makes `attrs` the inode's whole set: in its own block (rewritten in place when only
    /// this inode uses it, else a new one), none left in the inode's tail, no block when the
    /// set is empty. Changes `inode` (`file_acl`, `blocks`); the caller writes it.
    fn store_xattrs(&self, st: &mut State, ino: u32, inode: &mut Inode, mut attrs: Vec<Attr>) -> Result<()> {
        let block_size = self.geo.block_size as usize;
        let encoded = if attrs.is_empty() { None } else { Some(encode_block(&mut attrs, block_size)?) };
        let old = match inode.file_acl {
            0 => None,
            block => Some((block, self.cache.with_block(self.check_block(block)?, decode_block)??.1)),
        };
        match (encoded, old) {
            (None, Some(_)) => self.release_xattr_block(st, inode)?,
            (None, None) => {}
            (Some(data), Some((block, 1))) => self.cache.write(u64::from(block), 0, &data)?,
            (Some(data), old) => {
                let goal = self.geo.group_first_block(ino.saturating_sub(1) / self.geo.inodes_per_group % self.geo.groups);
                let block = self.alloc_block(st, goal)?;
                if let Err(e) = self.cache.write(u64::from(block), 0, &data) {
                    self.free_block(st, block)?;
                    return Err(e);
                }
                if old.is_some() {
                    self.release_xattr_block(st, inode)?;
                }
                self.mark_ext_attr_feature()?;
                inode.file_acl = block;
                inode.blocks = inode.blocks.saturating_add(self.geo.sectors_per_block());
            }
        }
        self.clear_in_inode_xattrs(st, ino)
    }

    /// Removes the attributes from inode `ino`'s tail (its magic word), if there were any.
    fn clear_in_inode_xattrs(&self, st: &State, ino: u32) -> Result<()> {
        let (block, offset) = self.inode_location(st, ino)?;
        let size = self.geo.inode_size as usize;
        let start = self.cache.with_block(block, |data| {
            let inode = &data[offset..offset + size];
            in_inode_area(inode).filter(|&start| u32_at(inode, start) == Ok(MAGIC))
        })?;
        match start {
            Some(start) => self.cache.write(block, offset + start, &[0; 4]),
            None => Ok(()),
        }
    }

    /// Sets the superblock's `ext_attr` feature if it is not set yet (e2fsck drops attribute
    /// blocks of a volume without it).
    fn mark_ext_attr_feature(&self) -> Result<()> {
        let (block, offset) = self.geo.superblock_location();
        let size = size_of::<RawSuperblock>();
        self.cache.with_block_mut(block, |data| {
            let bytes = &mut data[offset..offset + size];
            let mut raw = RawSuperblock::read_from_bytes(bytes).map_err(|_| Errno::EUCLEAN)?;
            if raw.feature_compat.get() & COMPAT_EXT_ATTR == 0 {
                raw.feature_compat.set(raw.feature_compat.get() | COMPAT_EXT_ATTR);
                raw.write_to(bytes).map_err(|_| Errno::EUCLEAN)?;
            }
            Ok(())
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(index: u8, name: &str, value: &[u8]) -> Attr {
        Attr { index, name: name.as_bytes().to_vec(), value: value.to_vec() }
    }

    #[test]
    fn blocks_round_trip_sorted_with_linux_hashes() {
        let mut attrs = vec![attr(1, "zz", b"last"), attr(6, "selinux", b"label"), attr(1, "a", b""), attr(1, "b", &[7; 100])];
        let data = encode_block(&mut attrs, 1024).unwrap();
        let (decoded, refs) = decode_block(&data).unwrap();
        assert_eq!(refs, 1);
        let order: Vec<&[u8]> = decoded.iter().map(|a| &a.name[..]).collect();
        assert_eq!(order, [&b"a"[..], b"b", b"zz", b"selinux"]);
        assert_eq!(decoded, attrs);
        // The hash of "a" with no value is the byte itself; e2fsck recomputes the same.
        assert_eq!(u32_at(&data, HEADER + 12).unwrap(), u32::from(b'a'));
    }

    #[test]
    fn a_full_block_is_enospc_and_damage_is_euclean() {
        let mut big = vec![attr(1, "big", &[1; 1000])];
        assert_eq!(encode_block(&mut big, 1024).map(|_| ()), Err(Errno::ENOSPC));
        let mut one = vec![attr(1, "x", b"value")];
        let mut data = encode_block(&mut one, 1024).unwrap();
        data[HEADER + 2] = 0xff; // value offset past the block
        data[HEADER + 3] = 0xff;
        assert_eq!(decode_block(&data).map(|_| ()), Err(Errno::EUCLEAN));
        data[0] = 0;
        assert_eq!(decode_block(&data).map(|_| ()), Err(Errno::EUCLEAN));
    }

    #[test]
    fn names_split_into_index_and_stored_name() {
        assert_eq!(Attr::split("user.colour"), Ok((1, &b"colour"[..])));
        assert_eq!(Attr::split("system.posix_acl_access"), Ok((2, &b""[..])));
        assert_eq!(Attr::split("security.selinux"), Ok((6, &b"selinux"[..])));
        assert_eq!(Attr::split("other.x"), Err(Errno::EOPNOTSUPP));
        assert_eq!(attr(4, "t", b"").full_name().as_deref(), Some("trusted.t"));
        assert_eq!(attr(9, "t", b"").full_name(), None);
    }
}
