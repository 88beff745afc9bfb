//! Initial files: the `newc` cpio format (what Linux initramfs uses), unpacked into a [`Vfs`]
//! at boot and written by build scripts.
//!
//! [`unpack`] creates directories, regular files and symlinks under a destination directory,
//! with their permission bits. Every header field is checked: a malformed archive gives
//! `EINVAL` (never a panic), and names with `..` components or absolute names are refused, so an
//! archive cannot write outside the destination. Hard links inside an archive are unpacked as
//! separate copies. Existing directories are reused; existing files are replaced.
//!
//! [`Builder`] writes an archive (used by app build scripts and by tests). We write the format
//! out here (about a hundred lines) rather than pull a cpio crate into a `no_std` kernel crate.

use crate::types::OpenFlags;
use crate::vfs::Vfs;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use libos_core::{Errno, Result};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// What [`unpack`] created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Directories created (existing ones are not counted).
    pub dirs: usize,
    /// Regular files written.
    pub files: usize,
    /// Symlinks created.
    pub symlinks: usize,
    /// Bytes of file data written.
    pub bytes: u64,
}

fn field(header: &[u8], index: usize) -> Result<u32> {
    let start = 6 + index * 8;
    let text = header.get(start..start + 8).ok_or(Errno::EINVAL)?;
    let text = core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    u32::from_str_radix(text, 16).map_err(|_| Errno::EINVAL)
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// One archive entry.
struct Entry<'a> {
    name: &'a str,
    mode: u32,
    data: &'a [u8],
}

/// Splits the archive into entries, checking every bound.
fn entries(archive: &[u8]) -> Result<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let header = archive.get(pos..pos + HEADER_LEN).ok_or(Errno::EINVAL)?;
        if &header[..6] != MAGIC {
            return Err(Errno::EINVAL);
        }
        let mode = field(header, 1)?;
        let file_size = field(header, 6)? as usize;
        let name_size = field(header, 11)? as usize;
        let name_start = pos + HEADER_LEN;
        let name_bytes =
            archive.get(name_start..name_start.checked_add(name_size).ok_or(Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
        // The name is NUL-terminated.
        let (&last, name) = name_bytes.split_last().ok_or(Errno::EINVAL)?;
        if last != 0 {
            return Err(Errno::EINVAL);
        }
        let name = core::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
        let data_start = align4(name_start + name_size);
        let data_end = data_start.checked_add(file_size).ok_or(Errno::EINVAL)?;
        let data = archive.get(data_start..data_end).ok_or(Errno::EINVAL)?;
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry { name, mode, data });
        pos = align4(data_end);
    }
}

/// The archive name as a path under `dest`, or `None` for the archive root (`.`).
fn target_path(dest: &str, name: &str) -> Result<Option<String>> {
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Errno::EINVAL),
            part => parts.push(part),
        }
    }
    if name.starts_with('/') {
        return Err(Errno::EINVAL);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("{}/{}", dest.trim_end_matches('/'), parts.join("/"))))
}

/// Unpacks the `newc` cpio `archive` into directory `dest` of `vfs`.
pub fn unpack(vfs: &Vfs, archive: &[u8], dest: &str) -> Result<Unpacked> {
    let mut done = Unpacked::default();
    if !vfs.metadata(dest)?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    for entry in entries(archive)? {
        let Some(path) = target_path(dest, entry.name)? else {
            continue;
        };
        let perm = entry.mode & 0o7777;
        match entry.mode & S_IFMT {
            S_IFDIR => match vfs.mkdir(&path, perm) {
                Ok(()) => done.dirs += 1,
                Err(Errno::EEXIST) if vfs.metadata(&path)?.is_dir() => {}
                Err(e) => return Err(e),
            },
            S_IFREG => {
                let flags = OpenFlags::CREAT | OpenFlags::WRONLY | OpenFlags::TRUNC | OpenFlags::NOFOLLOW;
                let file = vfs.open(&path, flags, perm)?;
                let mut written = 0;
                while let Some(rest) = entry.data.get(written..).filter(|rest| !rest.is_empty()) {
                    match file.write(rest)? {
                        0 => return Err(Errno::EIO),
                        n => written += n,
                    }
                }
                done.files += 1;
                done.bytes += written as u64;
            }
            S_IFLNK => {
                let target = core::str::from_utf8(entry.data).map_err(|_| Errno::EINVAL)?;
                vfs.symlink(target, &path)?;
                done.symlinks += 1;
            }
            _ => return Err(Errno::EINVAL), // devices, fifos, sockets: not in initial files
        }
    }
    Ok(done)
}

/// Writes a `newc` cpio archive.
#[derive(Debug, Default)]
pub struct Builder {
    out: Vec<u8>,
    ino: u32,
}

impl Builder {
    /// An empty archive.
    pub fn new() -> Builder {
        Builder::default()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name_size = name.len() + 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name_size as u32, 0];
        self.out.extend_from_slice(MAGIC);
        for value in fields {
            self.out.extend_from_slice(format!("{value:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.out.resize(align4(self.out.len()), 0);
        self.out.extend_from_slice(data);
        self.out.resize(align4(self.out.len()), 0);
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str, perm: u32) -> &mut Self {
        self.entry(name, S_IFDIR | (perm & 0o7777), &[]);
        self
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | (perm & 0o7777), data);
        self
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes());
        self
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut builder = Builder::new();
        builder.dir(".", 0o755).dir("etc", 0o755).file("etc/motd", 0o644, b"hello\n").symlink("motd", "etc/motd");
        builder.file("empty", 0o600, b"").file("odd", 0o644, b"abc");
        builder.finish()
    }

    #[test]
    fn entries_round_trip() {
        let archive = sample();
        let list = entries(&archive).unwrap();
        let names: Vec<&str> = list.iter().map(|e| e.name).collect();
        assert_eq!(names, [".", "etc", "etc/motd", "motd", "empty", "odd"]);
        assert_eq!(list[2].data, b"hello\n");
        assert_eq!(list[2].mode, S_IFREG | 0o644);
        assert_eq!(list[3].data, b"etc/motd");
        assert_eq!(archive.len() % 4, 0);
    }

    #[test]
    fn damaged_archives_are_einval_never_a_panic() {
        let archive = sample();
        for len in 0..archive.len() {
            assert_eq!(entries(&archive[..len]).err(), Some(Errno::EINVAL), "truncated to {len}");
        }
        let mut state = 0x1234_5678_9abc_def1u64;
        for _ in 0..20_000 {
            let mut damaged = archive.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % damaged.len() as u64) as usize;
                damaged[at] = (state >> 32) as u8;
            }
            let _ = entries(&damaged);
        }
    }

    #[test]
    fn names_cannot_escape_the_destination() {
        assert_eq!(target_path("/", "a/b").unwrap().as_deref(), Some("/a/b"));
        assert_eq!(target_path("/dest/", "./a//b/").unwrap().as_deref(), Some("/dest/a/b"));
        assert_eq!(target_path("/", ".").unwrap(), None);
        assert_eq!(target_path("/", "a/../../etc").unwrap_err(), Errno::EINVAL);
        assert_eq!(target_path("/", "/etc/passwd").unwrap_err(), Errno::EINVAL);
    }
}
