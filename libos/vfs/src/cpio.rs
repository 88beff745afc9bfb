//! Initial files: the `newc` cpio format (what Linux initramfs uses), unpacked into a [`Vfs`]
//! at boot and written by build scripts.
//!
//! [`unpack`] creates directories, regular files and symlinks under a destination directory,
//! with their permission bits. Every header field is checked: a malformed archive gives
//! `EINVAL` (never a panic), and names with `..` components or absolute names are refused.
//! Hard links inside an archive are unpacked as separate copies. Existing directories are
//! reused; existing files are replaced.
//!
//! **Symlinks cannot carry writes out of the destination.** An archive may make `a -> /` or
//! `a -> ..` and then hold `a/x`. Linux's own initramfs unpacker follows such links (it always
//! unpacks at `/`, where nothing is outside); archivers that unpack anywhere refuse them (GNU
//! cpio since 2.13, bsdtar's default `--secure`). We do what `openat2(RESOLVE_BENEATH)` does:
//! the directories leading to an entry are resolved with every symlink followed (up to 40, then
//! `ELOOP`), and an entry whose directory ends up outside the destination is refused with
//! `EXDEV` (the whole unpack stops, as for a malformed archive). Links that stay inside (`lib ->
//! usr/lib`, then `lib/x`) work. The entry's own name is never followed: a file or directory
//! entry over an existing symlink is refused (`ELOOP` / `EEXIST`) rather than written through it.
//!
//! [`Builder`] writes an archive (used by app build scripts and by tests). We write the format
//! out here (about a hundred lines) rather than pull a cpio crate into a `no_std` kernel crate.

use crate::types::{FileType, OpenFlags};
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

/// Most symlinks followed while resolving one entry's directory (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// The path of the directory that will hold `path`'s last component, with every symlink on the
/// way resolved, as absolute components; `EXDEV` when it is not `dest_parts` or below it.
fn resolve_parent(vfs: &Vfs, dest_parts: &[&str], path: &str) -> Result<String> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let last = parts.pop().ok_or(Errno::EINVAL)?;
    // Components still to walk, in reverse order (so a link's target is pushed in front).
    let mut todo: Vec<String> = parts.iter().rev().map(|p| String::from(*p)).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let here = format!("/{}", resolved.iter().map(String::as_str).chain([part.as_str()]).collect::<Vec<_>>().join("/"));
        let meta = vfs.symlink_metadata(&here)?;
        if meta.file_type != FileType::Symlink {
            resolved.push(part);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        let target = vfs.read_link(&here)?;
        if target.starts_with('/') {
            resolved.clear();
        }
        todo.extend(target.split('/').rev().map(String::from));
    }
    // All of `resolved` are real directories (or will fail as such), so this comparison is
    // the file system's own idea of "below the destination".
    if resolved.len() < dest_parts.len() || resolved.iter().zip(dest_parts).any(|(a, b)| a != b) {
        return Err(Errno::EXDEV);
    }
    Ok(format!("/{}", resolved.iter().map(String::as_str).chain([last]).collect::<Vec<_>>().join("/")))
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
    let dest_parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    for entry in entries(archive)? {
        let Some(path) = target_path(dest, entry.name)? else {
            continue;
        };
        let path = resolve_parent(vfs, &dest_parts, &path)?;
        let perm = entry.mode & 0o7777;
        match entry.mode & S_IFMT {
            S_IFDIR => match vfs.mkdir(&path, perm) {
                Ok(()) => done.dirs += 1,
                // An existing directory, not a symlink to one (which could lead anywhere).
                Err(Errno::EEXIST) if vfs.symlink_metadata(&path)?.is_dir() => {}
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

    /// A ramfs with `/dest` and `/outside/secret`.
    fn tree() -> Vfs {
        let vfs = Vfs::new(alloc::sync::Arc::new(crate::conformance::TinyFs::new()));
        vfs.mkdir("/dest", 0o755).unwrap();
        vfs.mkdir("/outside", 0o755).unwrap();
        let secret = vfs.open("/outside/secret", OpenFlags::CREAT | OpenFlags::WRONLY, 0o600).unwrap();
        secret.write(b"secret").unwrap();
        vfs
    }

    fn secret(vfs: &Vfs) -> Vec<u8> {
        let file = vfs.open("/outside/secret", OpenFlags::RDONLY, 0).unwrap();
        let mut buf = [0u8; 32];
        let n = file.read(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn entries_are_never_written_through_a_symlink_out_of_the_destination() {
        let cases: [&dyn Fn(&mut Builder); 5] = [
            &|b| {
                b.symlink("a", "/").file("a/x", 0o644, b"escaped");
            },
            &|b| {
                b.symlink("a", "..").file("a/x", 0o644, b"escaped");
            },
            &|b| {
                b.symlink("a", "..").dir("a/d", 0o755);
            },
            &|b| {
                b.symlink("a", "/outside").file("a/secret", 0o644, b"overwritten");
            },
            &|b| {
                b.dir("d", 0o755).symlink("d/up", "../..").symlink("b", "d/up/outside").file("b/secret", 0o644, b"x");
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let vfs = tree();
            let mut builder = Builder::new();
            case(&mut builder);
            assert_eq!(unpack(&vfs, &builder.finish(), "/dest"), Err(Errno::EXDEV), "case {i}");
            let mut names: Vec<String> = vfs.read_dir("/").unwrap().into_iter().map(|e| e.name).collect();
            names.sort();
            assert_eq!(names, ["dest", "outside"], "case {i}");
            assert_eq!(vfs.read_dir("/outside").unwrap().len(), 1, "case {i}");
            assert_eq!(secret(&vfs), b"secret", "case {i}");
        }
    }

    #[test]
    fn symlinks_inside_the_destination_are_followed_and_never_replaced() {
        let vfs = tree();
        let mut builder = Builder::new();
        builder.dir("usr", 0o755).dir("usr/lib", 0o755).symlink("lib", "usr/lib").file("lib/x", 0o644, b"x");
        builder.symlink("abs", "/dest/usr").file("abs/y", 0o644, b"y").symlink("loop", "loop");
        assert!(unpack(&vfs, &builder.finish(), "/dest").is_ok());
        assert_eq!(vfs.metadata("/dest/usr/lib/x").unwrap().size, 1);
        assert_eq!(vfs.metadata("/dest/usr/y").unwrap().size, 1);
        // A file or directory entry over a symlink is refused, not written through it.
        let mut builder = Builder::new();
        builder.symlink("s", "/outside/secret").file("s", 0o644, b"through");
        assert_eq!(unpack(&vfs, &builder.finish(), "/dest"), Err(Errno::ELOOP));
        let mut builder = Builder::new();
        builder.symlink("t", "/outside").dir("t", 0o755);
        assert_eq!(unpack(&vfs, &builder.finish(), "/dest"), Err(Errno::EEXIST));
        let mut builder = Builder::new();
        builder.file("loop/x", 0o644, b"");
        assert_eq!(unpack(&vfs, &builder.finish(), "/dest"), Err(Errno::ELOOP));
        assert_eq!(secret(&vfs), b"secret");
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
