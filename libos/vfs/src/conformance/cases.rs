//! The named conformance cases.

use super::{Case, FileSystemFactory};
use crate::types::{FileType, OpenFlags, SeekFrom, TimeUpdate, Timestamp};
use crate::{Access, MAX_SYMLINKS, MountFlags, NewNode, STATFS_FLAGS_VALID, Vfs, makedev};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use libos_core::Errno;

type Outcome = Result<(), String>;

/// Fails the case unless `cond` holds.
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return Err(format!("line {}: check failed: {}", line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!("line {}: check failed: {}: {}", line!(), stringify!($cond), format!($($why)+)));
        }
    };
}

/// Unwraps a `Result<T, Errno>`, failing the case on an error.
macro_rules! ok {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(errno) => return Err(format!("line {}: {} failed with {:?}", line!(), stringify!($e), errno)),
        }
    };
}

/// Fails the case unless `$e` fails with `Errno::$errno`.
macro_rules! err {
    ($e:expr, $errno:ident) => {
        match $e {
            Err(Errno::$errno) => {}
            Err(other) => {
                return Err(format!(
                    "line {}: {}: expected {}, got {:?}",
                    line!(),
                    stringify!($e),
                    stringify!($errno),
                    other
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "line {}: {}: expected {}, got success",
                    line!(),
                    stringify!($e),
                    stringify!($errno)
                ))
            }
        }
    };
}

/// Checks two values are equal, showing both.
macro_rules! eq {
    ($a:expr, $b:expr) => {
        match (&$a, &$b) {
            (a, b) if a == b => {}
            (a, b) => {
                return Err(format!("line {}: {} == {}: {:?} != {:?}", line!(), stringify!($a), stringify!($b), a, b))
            }
        }
    };
}

mod posix;
mod readdir;
mod robustness;
mod walks;
mod xattrs;

const RW: OpenFlags = OpenFlags::RDWR;
const NEW: OpenFlags = OpenFlags::CREAT.union(OpenFlags::RDWR);

fn fresh(factory: &dyn FileSystemFactory) -> Result<Vfs, String> {
    Ok(Vfs::new(factory.create()?))
}

fn write_file(vfs: &Vfs, path: &str, data: &[u8]) -> Result<(), Errno> {
    let file = vfs.open(path, NEW | OpenFlags::TRUNC, 0o644)?;
    let mut done = 0;
    while done < data.len() {
        done += file.write(&data[done..])?;
    }
    Ok(())
}

fn read_file(vfs: &Vfs, path: &str) -> Result<Vec<u8>, Errno> {
    let file = vfs.open(path, OpenFlags::RDONLY, 0)?;
    let mut data = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(data);
        }
        data.extend_from_slice(&buf[..n]);
    }
}

fn names(vfs: &Vfs, path: &str) -> Result<Vec<String>, Errno> {
    let mut names: Vec<String> = vfs.read_dir(path)?.into_iter().map(|e| e.name).collect();
    names.sort();
    Ok(names)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add((i >> 8) as u8)).collect()
}

pub(super) const ALL: &[Case] = &[
    Case { name: "root_is_an_empty_directory", run: root_is_an_empty_directory },
    Case { name: "create_write_read", run: create_write_read },
    Case { name: "open_flags", run: open_flags },
    Case { name: "access_modes", run: access_modes },
    Case { name: "directory_open_rules", run: directory_open_rules },
    Case { name: "mkdir_rmdir", run: mkdir_rmdir },
    Case { name: "unlink_rules", run: unlink_rules },
    Case { name: "dot_and_dotdot", run: dot_and_dotdot },
    Case { name: "path_errors", run: path_errors },
    Case { name: "symlinks", run: symlinks },
    Case { name: "symlink_loops", run: symlink_loops },
    Case { name: "hard_links", run: hard_links },
    Case { name: "rename_files", run: rename_files },
    Case { name: "rename_directories", run: rename_directories },
    Case { name: "truncate", run: truncate },
    Case { name: "sparse_files", run: sparse_files },
    Case { name: "large_file", run: large_file },
    Case { name: "seek", run: seek },
    Case { name: "readdir", run: readdir::readdir },
    Case { name: "readdir_stable_cookies", run: readdir::readdir_stable_cookies },
    Case { name: "readdir_dot_entries", run: readdir::readdir_dot_entries },
    Case { name: "set_times", run: set_times },
    Case { name: "stat_fields_and_times", run: stat_fields_and_times },
    Case { name: "unlinked_open_file_lives_on", run: unlinked_open_file_lives_on },
    Case { name: "mounts", run: robustness::mounts },
    Case { name: "bind_mounts", run: robustness::bind_mounts },
    Case { name: "mount_options", run: robustness::mount_options },
    Case { name: "running_programs_files", run: posix::running_programs_files },
    Case { name: "fsync_statfs", run: fsync_statfs },
    Case { name: "hostile_input", run: robustness::hostile_input },
    Case { name: "new_nodes_belong_to_the_creator", run: posix::new_nodes_belong_to_the_creator },
    Case { name: "permission_checks", run: posix::permission_checks },
    Case { name: "sticky_directories", run: posix::sticky_directories },
    Case { name: "chmod_rules", run: posix::chmod_rules },
    Case { name: "chown_rules", run: posix::chown_rules },
    Case { name: "set_id_bits_dropped_by_writes", run: posix::set_id_bits_dropped_by_writes },
    Case { name: "times_permissions", run: posix::times_permissions },
    Case { name: "access_uses_real_ids", run: posix::access_uses_real_ids },
    Case { name: "special_nodes", run: posix::special_nodes },
    Case { name: "fallocate", run: posix::fallocate },
    Case { name: "walks_from_open_directories", run: posix::walks_from_open_directories },
    Case { name: "rename_noreplace", run: posix::rename_noreplace },
    Case { name: "rename_exchange", run: posix::rename_exchange },
    Case { name: "links_to_open_files_and_followed_symlinks", run: posix::links_to_open_files_and_followed_symlinks },
    Case { name: "unnamed_files", run: posix::unnamed_files },
    Case { name: "path_handles", run: posix::path_handles },
    Case { name: "extended_attributes", run: xattrs::extended_attributes },
    Case { name: "extended_attributes_of_links_and_descriptors", run: xattrs::extended_attributes_of_links_and_descriptors },
    Case { name: "extended_attribute_permissions", run: xattrs::extended_attribute_permissions },
    Case { name: "privileged_attribute_namespaces", run: xattrs::privileged_attribute_namespaces },
    Case { name: "cached_walks_follow_name_changes", run: walks::cached_walks_follow_name_changes },
    Case { name: "cached_walks_follow_permission_changes", run: walks::cached_walks_follow_permission_changes },
    Case { name: "model", run: model },
];

/// `/` is a directory with no entries and at least two links.
fn root_is_an_empty_directory(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let meta = ok!(vfs.metadata("/"));
    check!(meta.is_dir());
    check!(meta.nlink >= 2, "nlink {}", meta.nlink);
    eq!(meta.mode() & 0o170_000, 0o040_000);
    eq!(ok!(names(&vfs, "/")), Vec::<String>::new());
    Ok(())
}

/// Creating, writing, reading back; the offset advances; reads at the end return 0.
fn create_write_read(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let file = ok!(vfs.open("/f", NEW, 0o644));
    eq!(ok!(file.write(b"hello, ")), 7);
    eq!(ok!(file.write(b"world")), 5);
    eq!(file.position(), 12);
    let mut buf = [0u8; 32];
    eq!(ok!(file.read(&mut buf)), 0);
    eq!(ok!(file.read_at(0, &mut buf)), 12);
    eq!(&buf[..12], b"hello, world");
    eq!(ok!(file.read_at(7, &mut buf[..3])), 3);
    eq!(&buf[..3], b"wor");
    eq!(ok!(file.read_at(100, &mut buf)), 0);
    eq!(ok!(file.write_at(0, b"J")), 1);
    drop(file);
    eq!(ok!(read_file(&vfs, "/f")), b"Jello, world".to_vec());
    eq!(ok!(vfs.metadata("/f")).size, 12);
    let empty = ok!(vfs.open("/empty", NEW, 0o644));
    eq!(ok!(empty.read(&mut buf)), 0);
    eq!(ok!(empty.write(b"")), 0);
    Ok(())
}

/// `O_CREAT|O_EXCL`, `O_TRUNC`, `O_APPEND`, opening missing files.
fn open_flags(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    err!(vfs.open("/missing", RW, 0), ENOENT);
    ok!(write_file(&vfs, "/f", b"0123456789"));
    err!(vfs.open("/f", NEW | OpenFlags::EXCL, 0o644), EEXIST);
    ok!(vfs.open("/g", NEW | OpenFlags::EXCL, 0o644));
    // O_CREAT without O_EXCL opens the existing file unchanged.
    ok!(vfs.open("/f", NEW, 0o644));
    eq!(ok!(vfs.metadata("/f")).size, 10);
    // O_APPEND writes at the end whatever the offset.
    let file = ok!(vfs.open("/f", OpenFlags::WRONLY | OpenFlags::APPEND, 0));
    ok!(file.seek(SeekFrom::Start(2)));
    eq!(ok!(file.write(b"ab")), 2);
    eq!(file.position(), 12);
    eq!(ok!(read_file(&vfs, "/f")), b"0123456789ab".to_vec());
    // O_TRUNC empties it.
    ok!(vfs.open("/f", OpenFlags::WRONLY | OpenFlags::TRUNC, 0));
    eq!(ok!(vfs.metadata("/f")).size, 0);
    // O_EXCL on a dangling symlink: the name exists.
    ok!(vfs.symlink("/nowhere", "/dangling"));
    err!(vfs.open("/dangling", NEW | OpenFlags::EXCL, 0o644), EEXIST);
    err!(vfs.open("/dangling", NEW | OpenFlags::NOFOLLOW, 0o644), ELOOP);
    // Without O_EXCL, O_CREAT through a dangling symlink creates its target.
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.symlink("target", "/d/rel"));
    ok!(ok!(vfs.open("/d/rel", NEW, 0o644)).write(b"via link"));
    eq!(ok!(read_file(&vfs, "/d/target")), b"via link".to_vec());
    eq!(ok!(vfs.symlink_metadata("/d/rel")).file_type, FileType::Symlink);
    ok!(vfs.symlink("/d/rel", "/chain"));
    ok!(vfs.open("/chain", NEW | OpenFlags::TRUNC, 0o644));
    eq!(ok!(vfs.metadata("/d/target")).size, 0);
    ok!(vfs.symlink("/missing-dir/x", "/bad"));
    err!(vfs.open("/bad", NEW, 0o644), ENOENT);
    ok!(vfs.symlink("/loop", "/loop"));
    err!(vfs.open("/loop", NEW, 0o644), ELOOP);
    Ok(())
}

/// Reading a write-only file or writing a read-only one is `EBADF`; `ftruncate` needs write
/// access (`EINVAL`).
fn access_modes(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"data"));
    let mut buf = [0u8; 4];
    let read_only = ok!(vfs.open("/f", OpenFlags::RDONLY, 0));
    err!(read_only.write(b"x"), EBADF);
    err!(read_only.write_at(0, b"x"), EBADF);
    err!(read_only.set_len(0), EINVAL);
    eq!(ok!(read_only.read(&mut buf)), 4);
    let write_only = ok!(vfs.open("/f", OpenFlags::WRONLY, 0));
    err!(write_only.read(&mut buf), EBADF);
    err!(write_only.read_at(0, &mut buf), EBADF);
    eq!(ok!(write_only.write(b"D")), 1);
    ok!(write_only.set_len(2));
    let both = ok!(vfs.open("/f", RW, 0));
    eq!(ok!(both.read(&mut buf)), 2);
    eq!(&buf[..2], b"Da");
    Ok(())
}

/// Directories open read-only only; `O_DIRECTORY`; trailing slashes on files.
fn directory_open_rules(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/f", b"x"));
    err!(vfs.open("/d", OpenFlags::WRONLY, 0), EISDIR);
    err!(vfs.open("/d", RW, 0), EISDIR);
    err!(vfs.open("/d", NEW, 0o644), EISDIR);
    err!(vfs.open("/d", OpenFlags::RDONLY | OpenFlags::TRUNC, 0), EISDIR);
    let dir = ok!(vfs.open("/d", OpenFlags::RDONLY, 0));
    let mut buf = [0u8; 4];
    err!(dir.read(&mut buf), EISDIR);
    ok!(vfs.open("/d/", OpenFlags::DIRECTORY, 0));
    err!(vfs.open("/f", OpenFlags::DIRECTORY, 0), ENOTDIR);
    err!(vfs.open("/f/", OpenFlags::RDONLY, 0), ENOTDIR);
    err!(vfs.open("/new/", NEW, 0o644), EISDIR);
    err!(vfs.open("/", NEW, 0o644), EISDIR);
    err!(vfs.open(".", NEW, 0o644), EISDIR);
    let file = ok!(vfs.open("/f", OpenFlags::RDONLY, 0));
    err!(file.read_dir_next(), ENOTDIR);
    Ok(())
}

/// `mkdir` and `rmdir` with their errors; directory link counts.
fn mkdir_rmdir(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let root_links = ok!(vfs.metadata("/")).nlink;
    ok!(vfs.mkdir("/d", 0o755));
    eq!(ok!(vfs.metadata("/")).nlink, root_links + 1);
    eq!(ok!(vfs.metadata("/d")).nlink, 2);
    ok!(vfs.mkdir("/d/sub/", 0o755));
    eq!(ok!(vfs.metadata("/d")).nlink, 3);
    err!(vfs.mkdir("/d", 0o755), EEXIST);
    err!(vfs.mkdir("/", 0o755), EEXIST);
    err!(vfs.mkdir("/d/.", 0o755), EEXIST);
    err!(vfs.mkdir("/missing/x", 0o755), ENOENT);
    ok!(write_file(&vfs, "/f", b""));
    err!(vfs.mkdir("/f", 0o755), EEXIST);
    err!(vfs.mkdir("/f/x", 0o755), ENOTDIR);
    err!(vfs.rmdir("/d"), ENOTEMPTY);
    err!(vfs.rmdir("/f"), ENOTDIR);
    err!(vfs.rmdir("/d/sub/."), EINVAL);
    err!(vfs.rmdir("/d/sub/.."), ENOTEMPTY);
    err!(vfs.rmdir("/"), EBUSY);
    err!(vfs.rmdir("/missing"), ENOENT);
    ok!(vfs.rmdir("/d/sub/"));
    eq!(ok!(vfs.metadata("/d")).nlink, 2);
    ok!(vfs.rmdir("/d"));
    err!(vfs.metadata("/d"), ENOENT);
    eq!(ok!(vfs.metadata("/")).nlink, root_links);
    Ok(())
}

/// `unlink` removes non-directories only.
fn unlink_rules(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/f", b"x"));
    err!(vfs.unlink("/d"), EISDIR);
    err!(vfs.unlink("/d/"), EISDIR);
    err!(vfs.unlink("/"), EISDIR);
    err!(vfs.unlink("/f/"), ENOTDIR);
    err!(vfs.unlink("/missing"), ENOENT);
    err!(vfs.unlink("/f/x"), ENOTDIR);
    ok!(vfs.unlink("/f"));
    err!(vfs.metadata("/f"), ENOENT);
    err!(vfs.unlink("/f"), ENOENT);
    eq!(ok!(names(&vfs, "/")), vec![String::from("d")]);
    Ok(())
}

/// `.` and `..`, also above the root and relative to the current directory.
fn dot_and_dotdot(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/a", 0o755));
    ok!(vfs.mkdir("/a/b", 0o755));
    ok!(write_file(&vfs, "/a/b/f", b"deep"));
    let ino = ok!(vfs.metadata("/a/b/f")).ino;
    for path in ["/a/./b/../b/f", "/../../a/b/f", "//a//b//f", "/a/b/./f", "/a/b/../../a/b/f"] {
        eq!(ok!(vfs.metadata(path)).ino, ino);
    }
    eq!(ok!(vfs.metadata("/..")).ino, ok!(vfs.metadata("/")).ino);
    err!(vfs.metadata("/a/b/f/.."), ENOTDIR);
    err!(vfs.metadata("/a/b/f/."), ENOTDIR);
    ok!(vfs.chdir("/a"));
    eq!(ok!(vfs.metadata("b/f")).ino, ino);
    eq!(ok!(read_file(&vfs, "./b/f")), b"deep".to_vec());
    eq!(ok!(vfs.current_dir()), "/a");
    ok!(vfs.chdir("b"));
    eq!(ok!(vfs.current_dir()), "/a/b");
    eq!(ok!(vfs.metadata("f")).ino, ino);
    eq!(ok!(vfs.metadata("..")).ino, ok!(vfs.metadata("/a")).ino);
    eq!(ok!(vfs.metadata("../../../..")).ino, ok!(vfs.metadata("/")).ino);
    err!(vfs.chdir("f"), ENOTDIR);
    // The current directory follows renames; once removed, getcwd is ENOENT.
    ok!(vfs.rename("/a", "/renamed"));
    eq!(ok!(vfs.current_dir()), "/renamed/b");
    ok!(vfs.chdir("../.."));
    eq!(ok!(vfs.metadata(".")).ino, ok!(vfs.metadata("/")).ino);
    eq!(ok!(vfs.current_dir()), "/");
    ok!(vfs.mkdir("/gone", 0o755));
    ok!(vfs.chdir("/gone"));
    ok!(vfs.rmdir("/gone"));
    err!(vfs.current_dir(), ENOENT);
    err!(vfs.open("new", NEW, 0o644), ENOENT);
    ok!(vfs.chdir("/"));
    Ok(())
}

/// Empty paths, NUL bytes, over-long names and paths, missing or non-directory components.
fn path_errors(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    err!(vfs.metadata(""), ENOENT);
    err!(vfs.open("", NEW, 0o644), ENOENT);
    err!(vfs.metadata("/a\0b"), EINVAL);
    err!(vfs.open("/a\0b", NEW, 0o644), EINVAL);
    err!(vfs.mkdir("a\0", 0o755), EINVAL);
    let long = "n".repeat(256);
    err!(vfs.open(&format!("/{long}"), NEW, 0o644), ENAMETOOLONG);
    err!(vfs.mkdir(&long, 0o755), ENAMETOOLONG);
    let max = "m".repeat(255);
    ok!(write_file(&vfs, &format!("/{max}"), b"x"));
    eq!(ok!(names(&vfs, "/")), vec![max.clone()]);
    let too_long_path = "a/".repeat(2048);
    err!(vfs.metadata(&too_long_path), ENAMETOOLONG);
    err!(vfs.metadata("/missing/f"), ENOENT);
    ok!(write_file(&vfs, "/f", b"x"));
    err!(vfs.metadata("/f/g"), ENOTDIR);
    err!(vfs.open("/f/g", NEW, 0o644), ENOTDIR);
    err!(vfs.symlink("", "/l"), ENOENT);
    Ok(())
}

/// Symlinks: relative and absolute targets, `lstat`, `readlink`, `O_NOFOLLOW`, trailing
/// slashes, dangling links, removal.
fn symlinks(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/d/f", b"target"));
    ok!(vfs.symlink("d/f", "/rel"));
    ok!(vfs.symlink("/d/f", "/abs"));
    ok!(vfs.symlink("../d", "/d/up"));
    ok!(vfs.symlink("/d", "/dirlink"));
    ok!(vfs.symlink("missing", "/dangling"));
    for path in ["/rel", "/abs", "/d/up/f", "/dirlink/f", "/dirlink/up/up/up/f"] {
        eq!(ok!(read_file(&vfs, path)), b"target".to_vec());
    }
    eq!(ok!(vfs.read_link("/rel")), "d/f");
    eq!(ok!(vfs.read_link("/abs")), "/d/f");
    err!(vfs.read_link("/d/f"), EINVAL);
    err!(vfs.read_link("/d"), EINVAL);
    let link = ok!(vfs.symlink_metadata("/rel"));
    eq!(link.file_type, FileType::Symlink);
    eq!(link.size, 3);
    eq!(link.mode() & 0o170_000, 0o120_000);
    eq!(ok!(vfs.metadata("/rel")).ino, ok!(vfs.metadata("/d/f")).ino);
    eq!(ok!(vfs.symlink_metadata("/dirlink/")).file_type, FileType::Directory);
    eq!(ok!(vfs.symlink_metadata("/dirlink")).file_type, FileType::Symlink);
    err!(vfs.open("/rel", OpenFlags::NOFOLLOW, 0), ELOOP);
    ok!(vfs.open("/dirlink/f", OpenFlags::NOFOLLOW, 0));
    err!(vfs.metadata("/dangling"), ENOENT);
    ok!(vfs.symlink_metadata("/dangling"));
    err!(vfs.symlink("/d", "/abs"), EEXIST);
    err!(vfs.symlink("/d", "/d"), EEXIST);
    err!(vfs.metadata("/rel/"), ENOTDIR);
    // Writing through a link writes the target.
    let file = ok!(vfs.open("/abs", OpenFlags::WRONLY | OpenFlags::APPEND, 0));
    ok!(file.write(b"!"));
    eq!(ok!(read_file(&vfs, "/d/f")), b"target!".to_vec());
    // Removing the link leaves the target.
    ok!(vfs.unlink("/abs"));
    ok!(vfs.metadata("/d/f"));
    err!(vfs.symlink_metadata("/abs"), ENOENT);
    err!(vfs.unlink("/dirlink/"), ENOTDIR); // the link itself is not a directory (Linux agrees)
    ok!(vfs.unlink("/dirlink"));
    ok!(vfs.metadata("/d"));
    Ok(())
}

/// Self loops and chains: 40 links are followed, the 41st is `ELOOP`.
fn symlink_loops(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.symlink("/self", "/self"));
    err!(vfs.metadata("/self"), ELOOP);
    err!(vfs.open("/self", OpenFlags::RDONLY, 0), ELOOP);
    ok!(vfs.symlink_metadata("/self"));
    ok!(vfs.symlink("/pong", "/ping"));
    ok!(vfs.symlink("/ping", "/pong"));
    err!(vfs.metadata("/ping/x"), ELOOP);
    ok!(write_file(&vfs, "/f", b"end"));
    ok!(vfs.symlink("/f", "/l0"));
    for i in 1..=MAX_SYMLINKS {
        ok!(vfs.symlink(&format!("l{}", i - 1), &format!("/l{i}")));
    }
    let limit = MAX_SYMLINKS - 1;
    eq!(ok!(read_file(&vfs, &format!("/l{limit}"))), b"end".to_vec());
    err!(vfs.metadata(&format!("/l{}", MAX_SYMLINKS)), ELOOP);
    Ok(())
}

/// Hard links share the inode; the data lives until the last name goes.
fn hard_links(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/a", b"shared"));
    ok!(vfs.link("/a", "/d/b"));
    let a = ok!(vfs.metadata("/a"));
    let b = ok!(vfs.metadata("/d/b"));
    eq!(a.ino, b.ino);
    eq!(a.nlink, 2);
    ok!(write_file(&vfs, "/d/b", b"changed"));
    eq!(ok!(read_file(&vfs, "/a")), b"changed".to_vec());
    err!(vfs.link("/a", "/d/b"), EEXIST);
    err!(vfs.link("/d", "/d2"), EPERM);
    err!(vfs.link("/missing", "/x"), ENOENT);
    err!(vfs.link("/a", "/missing/x"), ENOENT);
    err!(vfs.link("/a", "/x/"), ENOENT);
    ok!(vfs.unlink("/a"));
    eq!(ok!(vfs.metadata("/d/b")).nlink, 1);
    eq!(ok!(read_file(&vfs, "/d/b")), b"changed".to_vec());
    // A link to a symlink links the symlink itself.
    ok!(vfs.symlink("/d/b", "/s"));
    ok!(vfs.link("/s", "/s2"));
    eq!(ok!(vfs.symlink_metadata("/s2")).file_type, FileType::Symlink);
    eq!(ok!(vfs.symlink_metadata("/s")).nlink, 2);
    Ok(())
}

/// Renaming files: moves, replaces, same-file no-op, errors.
fn rename_files(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/a", b"A"));
    ok!(write_file(&vfs, "/b", b"B"));
    let a_ino = ok!(vfs.metadata("/a")).ino;
    ok!(vfs.rename("/a", "/d/a2"));
    err!(vfs.metadata("/a"), ENOENT);
    eq!(ok!(vfs.metadata("/d/a2")).ino, a_ino);
    // Over an existing file: the target is replaced.
    let held = ok!(vfs.open("/b", OpenFlags::RDONLY, 0));
    ok!(vfs.rename("/d/a2", "/b"));
    eq!(ok!(read_file(&vfs, "/b")), b"A".to_vec());
    eq!(ok!(vfs.metadata("/b")).ino, a_ino);
    eq!(ok!(names(&vfs, "/d")), Vec::<String>::new());
    let mut buf = [0u8; 1];
    ok!(held.read(&mut buf));
    eq!(buf, *b"B");
    // Hard links of one file: nothing happens, both names stay.
    ok!(vfs.link("/b", "/c"));
    ok!(vfs.rename("/b", "/c"));
    ok!(vfs.metadata("/b"));
    ok!(vfs.metadata("/c"));
    ok!(vfs.rename("/c", "/c"));
    // Errors.
    err!(vfs.rename("/missing", "/x"), ENOENT);
    err!(vfs.rename("/b", "/missing/x"), ENOENT);
    err!(vfs.rename("/b", "/d"), EISDIR);
    err!(vfs.rename("/b/", "/x"), ENOTDIR);
    err!(vfs.rename("/b", "/x/"), ENOTDIR);
    err!(vfs.rename("/b", "/c/x"), ENOTDIR);
    err!(vfs.rename("/", "/x"), EBUSY);
    err!(vfs.rename("/d/.", "/x"), EBUSY);
    // Renaming a symlink renames the link.
    ok!(vfs.symlink("/b", "/l"));
    ok!(vfs.rename("/l", "/l2"));
    eq!(ok!(vfs.read_link("/l2")), "/b");
    Ok(())
}

/// Renaming directories: into empty directories only, never into their own subtree, `..`
/// follows.
fn rename_directories(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/a", 0o755));
    ok!(vfs.mkdir("/a/sub", 0o755));
    ok!(write_file(&vfs, "/a/sub/f", b"f"));
    ok!(vfs.mkdir("/empty", 0o755));
    ok!(vfs.mkdir("/full", 0o755));
    ok!(write_file(&vfs, "/full/x", b"x"));
    ok!(write_file(&vfs, "/file", b""));
    err!(vfs.rename("/a", "/a/sub/inside"), EINVAL);
    err!(vfs.rename("/a", "/a/inside"), EINVAL);
    err!(vfs.rename("/a/sub", "/a/sub/x/y"), ENOENT);
    err!(vfs.rename("/a", "/full"), ENOTEMPTY);
    err!(vfs.rename("/a", "/file"), ENOTDIR);
    err!(vfs.rename("/a/sub", "/a"), ENOTEMPTY);
    ok!(vfs.rename("/a", "/a"));
    let root_links = ok!(vfs.metadata("/")).nlink;
    ok!(vfs.rename("/a", "/empty/"));
    eq!(ok!(vfs.metadata("/")).nlink, root_links - 1);
    err!(vfs.metadata("/a"), ENOENT);
    eq!(ok!(read_file(&vfs, "/empty/sub/f")), b"f".to_vec());
    // Move a directory to another parent: `..` and link counts follow.
    ok!(vfs.rename("/empty/sub", "/full/moved"));
    eq!(ok!(vfs.metadata("/full/moved/..")).ino, ok!(vfs.metadata("/full")).ino);
    eq!(ok!(vfs.metadata("/full")).nlink, 3);
    eq!(ok!(vfs.metadata("/empty")).nlink, 2);
    ok!(vfs.chdir("/full/moved"));
    eq!(ok!(read_file(&vfs, "../moved/f")), b"f".to_vec());
    ok!(vfs.chdir("/"));
    err!(vfs.rename("/full/moved/..", "/z"), EBUSY);
    Ok(())
}

/// `truncate` grows with zeros, shrinks, and a shrink-then-grow reads zeros.
fn truncate(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", &pattern(10_000, 1)));
    ok!(vfs.truncate("/f", 5000));
    eq!(ok!(vfs.metadata("/f")).size, 5000);
    ok!(vfs.truncate("/f", 12_000));
    let data = ok!(read_file(&vfs, "/f"));
    eq!(data.len(), 12_000);
    check!(data[..5000] == pattern(10_000, 1)[..5000]);
    check!(data[5000..].iter().all(|&b| b == 0), "stale data after shrink and grow");
    ok!(vfs.truncate("/f", 0));
    eq!(ok!(read_file(&vfs, "/f")), Vec::<u8>::new());
    ok!(vfs.mkdir("/d", 0o755));
    err!(vfs.truncate("/d", 0), EISDIR);
    err!(vfs.truncate("/missing", 0), ENOENT);
    let file = ok!(vfs.open("/f", RW, 0));
    ok!(file.set_len(3));
    eq!(ok!(file.metadata()).size, 3);
    Ok(())
}

/// Writes far past the end leave holes that read as zeros; offsets past the largest file size
/// are `EFBIG`.
fn sparse_files(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let file = ok!(vfs.open("/sparse", NEW, 0o644));
    let far = 16 * 1024 * 1024 + 123;
    eq!(ok!(file.write_at(far, b"end")), 3);
    eq!(ok!(file.write_at(10, b"start")), 5);
    let meta = ok!(file.metadata());
    eq!(meta.size, far + 3);
    // Whether holes take storage is the file system's business (POSIX allows both); ramfs
    // checks its own in its tests.
    let mut buf = vec![0xffu8; 8192];
    eq!(ok!(file.read_at(far - 8189, &mut buf)), 8192);
    check!(buf[..8189].iter().all(|&b| b == 0));
    eq!(&buf[8189..], b"end");
    eq!(ok!(file.read_at(0, &mut buf[..20])), 20);
    eq!(&buf[..20], b"\0\0\0\0\0\0\0\0\0\0start\0\0\0\0\0");
    err!(file.write_at(crate::MAX_FILE_SIZE, b"x"), EFBIG);
    Ok(())
}

/// A 3 MiB file written in odd-sized pieces reads back exactly in other pieces.
fn large_file(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let data = pattern(3 * 1024 * 1024 + 17, 7);
    let file = ok!(vfs.open("/big", NEW, 0o644));
    let mut done = 0;
    for size in [1, 4095, 4097, 65_536, 1 << 20].iter().cycle() {
        if done == data.len() {
            break;
        }
        let end = (done + size).min(data.len());
        done += ok!(file.write(&data[done..end]));
    }
    eq!(ok!(file.metadata()).size, data.len() as u64);
    ok!(file.seek(SeekFrom::Start(0)));
    let mut back = vec![0u8; data.len()];
    let mut got = 0;
    for size in [3000usize, 1 << 20, 7].iter().cycle() {
        let end = (got + size).min(back.len());
        let n = ok!(file.read(&mut back[got..end]));
        if n == 0 {
            break;
        }
        got += n;
    }
    eq!(got, data.len());
    check!(back == data, "data differs");
    Ok(())
}

/// `lseek` from start, current and end; negative offsets are `EINVAL`; writing past the end.
fn seek(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let file = ok!(vfs.open("/f", NEW, 0o644));
    ok!(file.write(b"0123456789"));
    eq!(ok!(file.seek(SeekFrom::End(-3))), 7);
    let mut buf = [0u8; 8];
    eq!(ok!(file.read(&mut buf)), 3);
    eq!(&buf[..3], b"789");
    eq!(ok!(file.seek(SeekFrom::Current(-5))), 5);
    eq!(ok!(file.seek(SeekFrom::Start(2))), 2);
    err!(file.seek(SeekFrom::Current(-3)), EINVAL);
    err!(file.seek(SeekFrom::End(-11)), EINVAL);
    eq!(file.position(), 2);
    eq!(ok!(file.seek(SeekFrom::End(5))), 15);
    ok!(file.write(b"x"));
    eq!(ok!(file.metadata()).size, 16);
    eq!(ok!(file.read_at(9, &mut buf[..7])), 7);
    eq!(&buf[..7], b"9\0\0\0\0\0x");
    Ok(())
}

/// `utimensat`: explicit times, "now", and "keep" for each of atime and mtime; the change time
/// moves; a symlink's own times without following; `ENOENT` for a missing path.
fn set_times(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"x"));
    let before = ok!(vfs.metadata("/f"));
    let (t1, t2) = (Timestamp(1_000_000_007), Timestamp(2_000_000_009));
    ok!(vfs.set_times("/f", TimeUpdate::To(t1), TimeUpdate::To(t2), true));
    let set = ok!(vfs.metadata("/f"));
    eq!((set.atime, set.mtime), (t1, t2));
    check!(set.ctime >= before.ctime);
    ok!(vfs.set_times("/f", TimeUpdate::Keep, TimeUpdate::Keep, true));
    eq!(ok!(vfs.metadata("/f")), set);
    ok!(vfs.set_times("/f", TimeUpdate::Keep, TimeUpdate::Now, true));
    let now = ok!(vfs.metadata("/f"));
    eq!(now.atime, t1);
    check!(now.mtime >= set.ctime && now.mtime != t2);
    let file = ok!(vfs.open("/f", OpenFlags::empty(), 0));
    ok!(file.set_times(TimeUpdate::To(t2), TimeUpdate::Keep));
    eq!(ok!(file.metadata()).atime, t2);
    ok!(vfs.symlink("f", "/l"));
    ok!(vfs.set_times("/l", TimeUpdate::To(t1), TimeUpdate::To(t1), false));
    eq!(ok!(vfs.symlink_metadata("/l")).mtime, t1);
    eq!(ok!(vfs.metadata("/f")).mtime, now.mtime);
    err!(vfs.set_times("/missing", TimeUpdate::Now, TimeUpdate::Now, true), ENOENT);
    Ok(())
}

/// `stat`: types, modes, sizes, distinct inode numbers, times that move forward.
fn stat_fields_and_times(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let file = ok!(vfs.open("/f", NEW, 0o640));
    let created = ok!(file.metadata());
    eq!(created.file_type, FileType::Regular);
    eq!(created.mode(), 0o100_640);
    eq!(created.nlink, 1);
    eq!(created.size, 0);
    ok!(file.write(b"12345"));
    let written = ok!(file.metadata());
    eq!(written.size, 5);
    check!(written.mtime >= created.mtime && written.ctime >= created.ctime);
    check!(written.mtime.subsec_nanos() < 1_000_000_000);
    ok!(vfs.mkdir("/d", 0o750));
    let dir = ok!(vfs.metadata("/d"));
    eq!(dir.mode(), 0o040_750);
    check!(dir.ino != created.ino && dir.ino != ok!(vfs.metadata("/")).ino);
    eq!(dir.dev, ok!(vfs.metadata("/")).dev);
    let root_before = ok!(vfs.metadata("/"));
    ok!(vfs.open("/g", NEW, 0o644));
    check!(ok!(vfs.metadata("/")).mtime >= root_before.mtime);
    ok!(vfs.set_permissions("/f", 0o600, true));
    eq!(ok!(vfs.metadata("/f")).perm, 0o600);
    Ok(())
}

/// A file removed while open keeps its data and stays usable until closed; the name is free.
fn unlinked_open_file_lives_on(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", &pattern(20_000, 3)));
    let file = ok!(vfs.open("/f", RW, 0));
    ok!(vfs.unlink("/f"));
    err!(vfs.metadata("/f"), ENOENT);
    eq!(ok!(file.metadata()).nlink, 0);
    let mut buf = vec![0u8; 20_000];
    eq!(ok!(file.read_at(0, &mut buf)), 20_000);
    check!(buf == pattern(20_000, 3));
    ok!(file.write_at(20_000, b"more"));
    eq!(ok!(file.metadata()).size, 20_004);
    ok!(write_file(&vfs, "/f", b"new"));
    eq!(ok!(read_file(&vfs, "/f")), b"new".to_vec());
    eq!(ok!(file.read_at(0, &mut buf[..4])), 4);
    check!(buf[..4] == pattern(20_000, 3)[..4]);
    // An open directory removed: reading it lists nothing, creating in it fails.
    ok!(vfs.mkdir("/d", 0o755));
    let dir = ok!(vfs.open("/d", OpenFlags::DIRECTORY, 0));
    ok!(vfs.rmdir("/d"));
    eq!(ok!(dir.read_dir_next()), None);
    Ok(())
}

/// `fsync` succeeds on files and directories; `statfs` reports sane values. Where the factory
/// can show what a crash would leave ([`FileSystemFactory::durable_view`]), what `fsync` (of
/// the file and its directory) and `sync` promised is there: a `sync` that writes nothing
/// back fails here.
fn fsync_statfs(f: &dyn FileSystemFactory) -> Outcome {
    let fs = f.create()?;
    let vfs = Vfs::new(fs.clone());
    let file = ok!(vfs.open("/f", NEW, 0o644));
    let synced: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    ok!(file.write(&synced));
    ok!(file.sync());
    ok!(vfs.open("/", OpenFlags::RDONLY, 0)).sync().map_err(|e| format!("fsync of a directory: {e:?}"))?;
    if let Some(view) = f.durable_view(&fs) {
        let after_crash = Vfs::new(view?);
        let found = read_file(&after_crash, "/f").map_err(|e| format!("after fsync of /f and /, a crash loses /f: {e:?}"))?;
        check!(found == synced);
    }
    ok!(write_file(&vfs, "/g", b"synced by sync"));
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.sync());
    if let Some(view) = f.durable_view(&fs) {
        let after_crash = Vfs::new(view?);
        let found = read_file(&after_crash, "/g").map_err(|e| format!("after sync, a crash loses /g: {e:?}"))?;
        check!(found == b"synced by sync".to_vec());
        check!(read_file(&after_crash, "/f").ok() == Some(synced));
        check!(after_crash.metadata("/d").is_ok_and(|m| m.is_dir()));
    }
    match vfs.statfs("/f") {
        Ok(stat) => {
            check!(stat.block_size > 0);
            check!(stat.blocks_free <= stat.blocks);
            check!(stat.name_max >= 255);
        }
        Err(Errno::ENOSYS) => {}
        Err(e) => return Err(format!("statfs: {e:?}")),
    }
    err!(vfs.statfs("/missing"), ENOENT);
    Ok(())
}

/// The randomized model test, quick configuration.
fn model(f: &dyn FileSystemFactory) -> Outcome {
    super::run_model(f, super::ModelConfig::QUICK)
}
