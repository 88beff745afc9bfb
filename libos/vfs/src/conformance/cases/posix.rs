//! Cases for ownership, permissions and special files (issue 18): what Linux does for an
//! unprivileged caller and for root, on any file system. Each case switches the namespace's
//! credentials with [`Vfs::set_credentials`]; file systems only need to store owners, modes
//! and the new node kinds.

use super::*;
use crate::cred::{Access, Credentials};
use crate::node::NewNode;
use crate::types::makedev;
use crate::PathAt;

/// An unprivileged user (uid 1000, gid 1000, also in group 50).
pub(super) fn user() -> Credentials {
    let mut creds = Credentials::root();
    ok_or_panic(creds.setgroups(&[50]));
    ok_or_panic(creds.setresgid(1000, 1000, 1000));
    ok_or_panic(creds.setresuid(1000, 1000, 1000));
    creds
}

fn ok_or_panic(result: libos_core::Result<()>) {
    if let Err(e) = result {
        panic!("credentials setup: {e:?}");
    }
}


/// New files, directories and symlinks get the caller's fsuid and fsgid, or the group of a
/// set-group-id directory (whose new subdirectories inherit the bit); the ctime of chown
/// moves.
pub(super) fn new_nodes_belong_to_the_creator(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/open", 0o777));
    ok!(vfs.set_permissions("/open", 0o777, true));
    ok!(vfs.mkdir("/shared", 0o777));
    ok!(vfs.set_owner("/shared", None, Some(50), true));
    ok!(vfs.set_permissions("/shared", 0o2777, true));
    vfs.set_credentials(user());
    ok!(vfs.open("/open/f", NEW, 0o640));
    let meta = ok!(vfs.metadata("/open/f"));
    eq!((meta.uid, meta.gid, meta.perm), (1000, 1000, 0o640));
    ok!(vfs.symlink("target", "/open/l"));
    eq!(ok!(vfs.symlink_metadata("/open/l")).uid, 1000);
    ok!(vfs.mkdir("/shared/d", 0o755));
    let dir = ok!(vfs.metadata("/shared/d"));
    eq!((dir.uid, dir.gid, dir.perm), (1000, 50, 0o2755));
    ok!(vfs.open("/shared/g", NEW, 0o644));
    eq!(ok!(vfs.metadata("/shared/g")).gid, 50);
    Ok(())
}

/// Search permission on every directory of a path, write permission to add or remove
/// entries, read/write permission to open; `EEXIST` before `EACCES`; a new file opens with
/// the requested access whatever its mode; root passes all but execute checks.
pub(super) fn permission_checks(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o700));
    ok!(write_file(&vfs, "/d/f", b"secret"));
    ok!(vfs.mkdir("/pub", 0o755));
    ok!(write_file(&vfs, "/pub/ro", b"x"));
    ok!(vfs.set_permissions("/pub/ro", 0o644, true));
    ok!(vfs.mkdir("/w", 0o777));
    ok!(vfs.set_permissions("/w", 0o777, true));
    vfs.set_credentials(user());
    err!(vfs.metadata("/d/f"), EACCES);
    err!(vfs.open("/d/f", OpenFlags::RDONLY, 0), EACCES);
    err!(vfs.chdir("/d"), EACCES);
    ok!(vfs.open("/pub/ro", OpenFlags::RDONLY, 0));
    err!(vfs.open("/pub/ro", OpenFlags::WRONLY, 0), EACCES);
    err!(vfs.open("/pub/ro", OpenFlags::TRUNC, 0), EACCES);
    err!(vfs.truncate("/pub/ro", 0), EACCES);
    err!(vfs.open("/pub/new", NEW, 0o644), EACCES);
    err!(vfs.mkdir("/pub/ro", 0o755), EEXIST);
    err!(vfs.mkdir("/pub/sub", 0o755), EACCES);
    err!(vfs.unlink("/pub/ro"), EACCES);
    err!(vfs.rename("/pub/ro", "/w/ro"), EACCES);
    err!(vfs.link("/pub/ro", "/pub/ro2"), EACCES);
    ok!(vfs.link("/pub/ro", "/w/ro2"));
    // A file this open created is writable through it even with mode 0444.
    let file = ok!(vfs.open("/w/mine", NEW, 0o444));
    eq!(ok!(file.write(b"ok")), 2);
    err!(vfs.open("/w/mine", OpenFlags::WRONLY, 0), EACCES);
    // Listing needs read permission on the directory, entering needs search.
    ok!(vfs.mkdir("/w/x", 0o300));
    err!(vfs.read_dir("/w/x"), EACCES);
    ok!(vfs.open("/w/x/inside", NEW, 0o600));
    vfs.set_credentials(Credentials::root());
    ok!(vfs.open("/d/f", RW, 0));
    ok!(vfs.read_dir("/w/x"));
    Ok(())
}

/// In a sticky directory only the file's owner, the directory's owner or `CAP_FOWNER` may
/// remove or rename an entry (`EPERM`).
pub(super) fn sticky_directories(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/tmp", 0o777));
    ok!(vfs.set_permissions("/tmp", 0o1777, true));
    ok!(write_file(&vfs, "/tmp/roots", b"r"));
    vfs.set_credentials(user());
    ok!(write_file(&vfs, "/tmp/mine", b"m"));
    err!(vfs.unlink("/tmp/roots"), EPERM);
    err!(vfs.rename("/tmp/roots", "/tmp/taken"), EPERM);
    err!(vfs.rename("/tmp/mine", "/tmp/roots"), EPERM);
    ok!(vfs.rename("/tmp/mine", "/tmp/mine2"));
    ok!(vfs.unlink("/tmp/mine2"));
    vfs.set_credentials(Credentials::root());
    ok!(vfs.unlink("/tmp/roots"));
    Ok(())
}

/// Only the owner (or `CAP_FOWNER`) changes modes (`EPERM`); a caller outside the file's
/// group cannot set its set-group-id bit (silently dropped); a symlink's own mode is
/// `EOPNOTSUPP`; each change moves the ctime.
pub(super) fn chmod_rules(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/w", 0o777));
    ok!(vfs.set_permissions("/w", 0o777, true));
    ok!(write_file(&vfs, "/w/roots", b"r"));
    ok!(vfs.symlink("roots", "/w/link"));
    err!(vfs.set_permissions("/w/link", 0o600, false), EOPNOTSUPP);
    vfs.set_credentials(user());
    err!(vfs.set_permissions("/w/roots", 0o777, true), EPERM);
    ok!(write_file(&vfs, "/w/mine", b"m"));
    let before = ok!(vfs.metadata("/w/mine"));
    ok!(vfs.set_permissions("/w/mine", 0o4755, true));
    let after = ok!(vfs.metadata("/w/mine"));
    eq!(after.perm, 0o4755);
    check!(after.ctime > before.ctime);
    let file = ok!(vfs.open("/w/mine", RW, 0));
    ok!(file.set_permissions(0o600));
    eq!(ok!(vfs.metadata("/w/mine")).perm, 0o600);
    // Group 50 is one of the user's groups; group 7 is not.
    vfs.set_credentials(Credentials::root());
    ok!(vfs.set_owner("/w/mine", None, Some(7), true));
    vfs.set_credentials(user());
    ok!(vfs.set_permissions("/w/mine", 0o2755, true));
    eq!(ok!(vfs.metadata("/w/mine")).perm, 0o0755);
    Ok(())
}

/// chown: only `CAP_CHOWN` changes the owner; the owner may change the group to one of its
/// groups; a non-directory loses set-user-id (and set-group-id with group execute), even
/// when root changes it; `lchown` changes a symlink itself.
pub(super) fn chown_rules(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/w", 0o777));
    ok!(vfs.set_permissions("/w", 0o777, true));
    ok!(write_file(&vfs, "/w/f", b"x"));
    ok!(vfs.set_owner("/w/f", Some(1000), Some(1000), true));
    ok!(vfs.set_permissions("/w/f", 0o6755, true));
    let before = ok!(vfs.metadata("/w/f"));
    vfs.set_credentials(user());
    err!(vfs.set_owner("/w/f", Some(0), None, true), EPERM);
    err!(vfs.set_owner("/w/f", None, Some(7), true), EPERM);
    ok!(vfs.set_owner("/w/f", Some(1000), Some(50), true));
    let after = ok!(vfs.metadata("/w/f"));
    eq!((after.uid, after.gid, after.perm), (1000, 50, 0o0755));
    check!(after.ctime > before.ctime);
    vfs.set_credentials(Credentials::root());
    ok!(vfs.set_permissions("/w/f", 0o4755, true));
    ok!(vfs.set_owner("/w/f", Some(2000), None, true));
    eq!(ok!(vfs.metadata("/w/f")).perm, 0o0755);
    ok!(vfs.mkdir("/w/d", 0o2755));
    ok!(vfs.set_permissions("/w/d", 0o2755, true));
    ok!(vfs.set_owner("/w/d", Some(5), Some(5), true));
    eq!(ok!(vfs.metadata("/w/d")).perm, 0o2755);
    ok!(vfs.symlink("f", "/w/l"));
    ok!(vfs.set_owner("/w/l", Some(7), Some(7), false));
    eq!(ok!(vfs.symlink_metadata("/w/l")).uid, 7);
    eq!(ok!(vfs.metadata("/w/l")).uid, 2000);
    let file = ok!(vfs.open("/w/f", OpenFlags::RDONLY, 0));
    ok!(file.set_owner(Some(3), None));
    eq!(ok!(vfs.metadata("/w/f")).uid, 3);
    Ok(())
}

/// A write or truncation by someone without `CAP_FSETID` drops set-user-id, and
/// set-group-id where group execute is set; root's writes keep them.
pub(super) fn set_id_bits_dropped_by_writes(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"x"));
    ok!(vfs.set_permissions("/f", 0o6777, true));
    let file = ok!(vfs.open("/f", RW, 0));
    ok!(file.write(b"root"));
    eq!(ok!(vfs.metadata("/f")).perm, 0o6777);
    vfs.set_credentials(user());
    let file = ok!(vfs.open("/f", RW, 0));
    ok!(file.write_at(0, b"user"));
    eq!(ok!(vfs.metadata("/f")).perm, 0o0777);
    vfs.set_credentials(Credentials::root());
    ok!(vfs.set_permissions("/f", 0o4766, true));
    vfs.set_credentials(user());
    ok!(vfs.truncate("/f", 1));
    eq!(ok!(vfs.metadata("/f")).perm, 0o0766);
    Ok(())
}

/// utimensat: "now" needs ownership or write permission (`EACCES`), a given time needs
/// ownership (`EPERM`).
pub(super) fn times_permissions(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/writable", b"x"));
    ok!(vfs.set_permissions("/writable", 0o666, true));
    ok!(write_file(&vfs, "/private", b"x"));
    ok!(vfs.set_permissions("/private", 0o644, true));
    vfs.set_credentials(user());
    let t = Timestamp(1_000_000_000_000);
    ok!(vfs.set_times("/writable", TimeUpdate::Now, TimeUpdate::Now, true));
    err!(vfs.set_times("/writable", TimeUpdate::To(t), TimeUpdate::Keep, true), EPERM);
    err!(vfs.set_times("/private", TimeUpdate::Now, TimeUpdate::Now, true), EACCES);
    err!(vfs.set_times("/private", TimeUpdate::To(t), TimeUpdate::To(t), true), EPERM);
    vfs.set_credentials(Credentials::root());
    ok!(vfs.set_times("/private", TimeUpdate::To(t), TimeUpdate::To(t), true));
    eq!(ok!(vfs.metadata("/private")).mtime, t);
    Ok(())
}

/// `access` checks with the real ids: a root program running with euid 1000 is told what
/// root may do, and `AT_EACCESS` answers for the effective ids; execute needs an execute bit
/// even for root.
pub(super) fn access_uses_real_ids(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"x"));
    ok!(vfs.set_permissions("/f", 0o600, true));
    ok!(vfs.access("/f", Access::READ | Access::WRITE, true, false));
    err!(vfs.access("/f", Access::EXEC, true, false), EACCES);
    err!(vfs.access("/missing", Access::empty(), true, false), ENOENT);
    let mut creds = Credentials::root();
    ok!(creds.setresuid(0, 1000, 0));
    vfs.set_credentials(creds);
    ok!(vfs.access("/f", Access::READ, true, false));
    err!(vfs.access("/f", Access::READ, true, true), EACCES);
    err!(vfs.open("/f", OpenFlags::RDONLY, 0), EACCES);
    Ok(())
}

/// mknod makes FIFOs, socket names and device nodes with their type and number; device
/// nodes need `CAP_MKNOD`; opening a socket name is `ENXIO`, a device number without a
/// device too; directories and symlinks are not mknod's (`EINVAL`).
pub(super) fn special_nodes(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mknod("/fifo", NewNode::Fifo, 0o640));
    let fifo = ok!(vfs.metadata("/fifo"));
    eq!((fifo.file_type, fifo.perm), (FileType::Fifo, 0o640));
    ok!(vfs.mknod("/sock", NewNode::Socket, 0o755));
    eq!(ok!(vfs.metadata("/sock")).file_type, FileType::Socket);
    err!(vfs.open("/sock", OpenFlags::RDONLY, 0), ENXIO);
    let dev = makedev(1, 3);
    ok!(vfs.mknod("/null", NewNode::CharDevice(dev), 0o666));
    let null = ok!(vfs.metadata("/null"));
    eq!((null.file_type, null.rdev), (FileType::CharDevice, dev));
    ok!(vfs.mknod("/disk", NewNode::BlockDevice(makedev(259, 300)), 0o660));
    eq!(ok!(vfs.metadata("/disk")).rdev, makedev(259, 300));
    // Without devfs mounted, no device answers to these numbers.
    err!(vfs.open("/null", OpenFlags::RDONLY, 0), ENXIO);
    err!(vfs.mknod("/fifo", NewNode::Fifo, 0o600), EEXIST);
    err!(vfs.mknod("/d", NewNode::Directory, 0o755), EINVAL);
    ok!(vfs.mknod("/plain", NewNode::File, 0o600));
    eq!(ok!(vfs.metadata("/plain")).file_type, FileType::Regular);
    ok!(vfs.unlink("/fifo"));
    vfs.set_credentials(user());
    err!(vfs.mknod("/tty", NewNode::CharDevice(makedev(5, 0)), 0o600), EPERM);
    Ok(())
}

/// fallocate: mode 0 grows the file (the new range reads as zeros), `KEEP_SIZE` does not;
/// a punched hole reads as zeros and keeps the size; a read-only file is `EBADF`, an empty
/// range `EINVAL`. A file system without it answers `EOPNOTSUPP` (as Linux's ext2 does).
pub(super) fn fallocate(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let file = ok!(vfs.open("/f", NEW, 0o644));
    match file.allocate(0, 10_000, false) {
        Err(Errno::EOPNOTSUPP) => return Ok(()),
        other => ok!(other),
    }
    eq!(ok!(vfs.metadata("/f")).size, 10_000);
    ok!(file.allocate(20_000, 100, true));
    eq!(ok!(vfs.metadata("/f")).size, 10_000);
    ok!(file.write_at(4096, b"abcdefgh"));
    match file.punch_hole(4098, 2) {
        Err(Errno::EOPNOTSUPP) => {}
        other => {
            ok!(other);
            let mut buf = [1u8; 8];
            eq!(ok!(file.read_at(4096, &mut buf)), 8);
            eq!(&buf, b"ab\0\0efgh");
            eq!(ok!(vfs.metadata("/f")).size, 10_000);
        }
    }
    let mut zeros = [1u8; 16];
    eq!(ok!(file.read_at(9000, &mut zeros)), 16);
    check!(zeros.iter().all(|&b| b == 0));
    err!(file.allocate(0, 0, false), EINVAL);
    let read_only = ok!(vfs.open("/f", OpenFlags::RDONLY, 0));
    err!(read_only.allocate(0, 10, false), EBADF);
    Ok(())
}

/// Paths relative to an open directory (`openat(dirfd, ...)`) start at the directory itself:
/// after it is renamed they still reach its entries, after it is removed nothing can be
/// created in it (`ENOENT`); a non-directory is `ENOTDIR` for relative paths only; `..` leaves
/// it for its current parent.
pub(super) fn walks_from_open_directories(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/a", 0o755));
    ok!(vfs.mkdir("/a/d", 0o755));
    ok!(vfs.mkdir("/b", 0o755));
    let dir = ok!(vfs.open("/a/d", OpenFlags::DIRECTORY, 0));
    ok!(write_file(&vfs, "/a/d/f", b"abc"));
    ok!(vfs.rename("/a/d", "/b/moved"));
    eq!(ok!(vfs.metadata(PathAt::new(&dir, "f"))).size, 3);
    ok!(vfs.mkdir(PathAt::new(&dir, "sub"), 0o755));
    ok!(vfs.metadata("/b/moved/sub"));
    err!(vfs.metadata("/a/d/sub"), ENOENT);
    ok!(vfs.rename(PathAt::new(&dir, "f"), PathAt::new(&dir, "sub/g")));
    ok!(vfs.symlink("sub/g", PathAt::new(&dir, "link")));
    eq!(ok!(vfs.read_link(PathAt::new(&dir, "link"))), "sub/g");
    eq!(ok!(vfs.metadata(PathAt::new(&dir, "link"))).size, 3);
    ok!(vfs.link(PathAt::new(&dir, "sub/g"), PathAt::new(&dir, "hard")));
    eq!(ok!(vfs.metadata(PathAt::new(&dir, "hard"))).nlink, 2);
    // `..` is the directory's parent now, not the old one.
    eq!(ok!(vfs.metadata(PathAt::new(&dir, ".."))).ino, ok!(vfs.metadata("/b")).ino);
    let opened = ok!(vfs.open(PathAt::new(&dir, "sub/g"), OpenFlags::RDONLY, 0));
    eq!(ok!(opened.metadata()).size, 3);
    // An absolute path ignores the directory; a file as the directory is ENOTDIR.
    ok!(vfs.metadata(PathAt::new(&opened, "/b")));
    err!(vfs.metadata(PathAt::new(&opened, "x")), ENOTDIR);
    for name in ["hard", "link", "sub/g"] {
        ok!(vfs.unlink(PathAt::new(&dir, name)));
    }
    ok!(vfs.rmdir(PathAt::new(&dir, "sub")));
    ok!(vfs.rmdir("/b/moved"));
    err!(vfs.open(PathAt::new(&dir, "late"), NEW, 0o644), ENOENT);
    err!(vfs.metadata(PathAt::new(&dir, "f")), ENOENT);
    Ok(())
}

/// `renameat2(RENAME_NOREPLACE)`: `EEXIST` for any existing target (a file, an empty
/// directory, another name of the same inode, a dangling symlink), nothing changed; a free
/// name is a plain move.
pub(super) fn rename_noreplace(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/a", b"A"));
    ok!(write_file(&vfs, "/b", b"B"));
    err!(vfs.rename_noreplace("/a", "/b"), EEXIST);
    eq!(ok!(read_file(&vfs, "/a")), b"A".to_vec());
    eq!(ok!(read_file(&vfs, "/b")), b"B".to_vec());
    ok!(vfs.rename_noreplace("/a", "/c"));
    err!(vfs.metadata("/a"), ENOENT);
    eq!(ok!(read_file(&vfs, "/c")), b"A".to_vec());
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.mkdir("/e", 0o755));
    err!(vfs.rename_noreplace("/d", "/e"), EEXIST);
    ok!(vfs.link("/c", "/c2"));
    err!(vfs.rename_noreplace("/c", "/c2"), EEXIST);
    ok!(vfs.symlink("/nowhere", "/dangling"));
    err!(vfs.rename_noreplace("/c", "/dangling"), EEXIST);
    err!(vfs.rename_noreplace("/missing", "/free"), ENOENT);
    ok!(vfs.rename_noreplace("/d", "/e/inside"));
    check!(ok!(vfs.metadata("/e/inside")).is_dir());
    Ok(())
}

/// `O_PATH` handles: opened without permission on the node itself (search on the path is
/// still needed), a final symlink itself with `NOFOLLOW`, `ENOTDIR` with `DIRECTORY` on a
/// file; `fstat` and walks through a directory handle work, contents and attributes do not
/// (`EBADF`); nothing is created or truncated.
pub(super) fn path_handles(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let path = OpenFlags::PATH;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/d/secret", b"data"));
    ok!(vfs.set_permissions("/d/secret", 0o000, true));
    ok!(vfs.symlink("secret", "/d/link"));
    vfs.set_credentials(user());
    err!(vfs.open("/d/secret", OpenFlags::RDONLY, 0), EACCES);
    let handle = ok!(vfs.open("/d/secret", path | OpenFlags::TRUNC, 0));
    eq!(ok!(handle.metadata()).size, 4);
    let mut buf = [0u8; 4];
    err!(handle.read_at(0, &mut buf), EBADF);
    err!(handle.write_at(0, b"x"), EBADF);
    err!(handle.set_permissions(0o644), EBADF);
    err!(handle.seek(SeekFrom::Start(0)), EBADF);
    err!(handle.set_len(0), EBADF);
    let link = ok!(vfs.open("/d/link", path | OpenFlags::NOFOLLOW, 0));
    eq!(ok!(link.metadata()).file_type, FileType::Symlink);
    err!(vfs.open("/d/secret", path | OpenFlags::DIRECTORY, 0), ENOTDIR);
    err!(vfs.open("/d/missing", path | OpenFlags::CREAT, 0o644), ENOENT);
    let dir = ok!(vfs.open("/d", path | OpenFlags::DIRECTORY, 0));
    eq!(ok!(vfs.symlink_metadata(PathAt::new(&dir, "link"))).file_type, FileType::Symlink);
    err!(dir.read_dir_next(), EBADF);
    vfs.set_credentials(Credentials::root());
    ok!(vfs.set_permissions("/d", 0o700, true));
    vfs.set_credentials(user());
    err!(vfs.open("/d/secret", path, 0), EACCES);
    Ok(())
}

/// `RENAME_EXCHANGE`: two names swap their nodes in one step, whatever their types, within a
/// directory or across two (a directory that changes parent gets its new `..`, and the link
/// counts follow); both must exist; neither may be inside the other.
pub(super) fn rename_exchange(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/a", b"A"));
    ok!(write_file(&vfs, "/b", b"BB"));
    let before = ok!(vfs.metadata("/a"));
    ok!(vfs.rename_exchange("/a", "/b"));
    eq!(ok!(read_file(&vfs, "/a")), b"BB".to_vec());
    eq!(ok!(read_file(&vfs, "/b")), b"A".to_vec());
    let moved = ok!(vfs.metadata("/b"));
    eq!(moved.ino, before.ino);
    check!(moved.ctime > before.ctime, "the exchange moves the ctime");
    // A file and a directory swap.
    ok!(vfs.mkdir("/d", 0o755));
    ok!(write_file(&vfs, "/d/inner", b"in"));
    ok!(vfs.rename_exchange("/a", "/d"));
    eq!(ok!(read_file(&vfs, "/a/inner")), b"in".to_vec());
    eq!(ok!(read_file(&vfs, "/d")), b"BB".to_vec());
    // Across directories: a subdirectory and a file change parents.
    ok!(vfs.mkdir("/x", 0o755));
    ok!(vfs.mkdir("/y", 0o755));
    ok!(vfs.mkdir("/x/sub", 0o755));
    ok!(write_file(&vfs, "/x/sub/deep", b"deep"));
    ok!(write_file(&vfs, "/y/file", b"file"));
    let (x_links, y_links) = (ok!(vfs.metadata("/x")).nlink, ok!(vfs.metadata("/y")).nlink);
    ok!(vfs.rename_exchange("/x/sub", "/y/file"));
    eq!(ok!(read_file(&vfs, "/x/sub")), b"file".to_vec());
    eq!(ok!(read_file(&vfs, "/y/file/deep")), b"deep".to_vec());
    eq!(ok!(vfs.metadata("/y/file/..")).ino, ok!(vfs.metadata("/y")).ino);
    eq!(ok!(vfs.metadata("/x")).nlink, x_links - 1);
    eq!(ok!(vfs.metadata("/y")).nlink, y_links + 1);
    eq!(ok!(names(&vfs, "/x")), vec!["sub".to_string()]);
    eq!(ok!(names(&vfs, "/y")), vec!["file".to_string()]);
    // Two directories across parents: both `..` follow.
    ok!(vfs.mkdir("/x/other", 0o755));
    ok!(vfs.rename_exchange("/x/other", "/y/file"));
    eq!(ok!(vfs.metadata("/x/other/..")).ino, ok!(vfs.metadata("/x")).ino);
    eq!(ok!(read_file(&vfs, "/x/other/deep")), b"deep".to_vec());
    eq!(ok!(vfs.metadata("/y/file/..")).ino, ok!(vfs.metadata("/y")).ino);
    // Both must exist; neither may be inside the other; two names of one file: nothing.
    err!(vfs.rename_exchange("/a", "/missing"), ENOENT);
    err!(vfs.rename_exchange("/missing", "/a"), ENOENT);
    ok!(vfs.mkdir("/p", 0o755));
    ok!(vfs.mkdir("/p/q", 0o755));
    err!(vfs.rename_exchange("/p", "/p/q"), EINVAL);
    err!(vfs.rename_exchange("/p/q", "/p"), EINVAL);
    ok!(vfs.link("/b", "/b2"));
    ok!(vfs.rename_exchange("/b", "/b2"));
    eq!(ok!(read_file(&vfs, "/b2")), b"A".to_vec());
    Ok(())
}

/// `linkat`: a symlink is linked itself, or with `AT_SYMLINK_FOLLOW` what it points to; an
/// open file gets another name (`AT_EMPTY_PATH`) until its last name is removed (`ENOENT`);
/// directories never (`EPERM`).
pub(super) fn links_to_open_files_and_followed_symlinks(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"F"));
    ok!(vfs.symlink("f", "/s"));
    ok!(vfs.link("/s", "/nofollow"));
    check!(ok!(vfs.symlink_metadata("/nofollow")).file_type == FileType::Symlink);
    ok!(vfs.link_following("/s", "/follow"));
    let meta = ok!(vfs.symlink_metadata("/follow"));
    eq!((meta.file_type, meta.ino, meta.nlink), (FileType::Regular, ok!(vfs.metadata("/f")).ino, 2));
    ok!(vfs.symlink("missing", "/dangling"));
    err!(vfs.link_following("/dangling", "/nothing"), ENOENT);
    let file = ok!(vfs.open("/f", OpenFlags::RDONLY, 0));
    ok!(vfs.link_open_file(&file, "/again"));
    eq!(ok!(vfs.metadata("/again")).nlink, 3);
    let handle = ok!(vfs.open("/f", OpenFlags::PATH, 0));
    ok!(vfs.link_open_file(&handle, "/by-handle"));
    for name in ["/f", "/follow", "/again", "/by-handle"] {
        ok!(vfs.unlink(name));
    }
    err!(vfs.link_open_file(&file, "/revived"), ENOENT);
    err!(vfs.metadata("/revived"), ENOENT);
    ok!(vfs.mkdir("/d", 0o755));
    let dir = ok!(vfs.open("/d", OpenFlags::DIRECTORY, 0));
    err!(vfs.link_open_file(&dir, "/d2"), EPERM);
    Ok(())
}

/// `O_TMPFILE`: an unnamed file in a directory, for writing only; `linkat` names it once
/// (never with `O_EXCL`, never after its name is removed again); the caller needs write and
/// search permission on the directory. File systems without them answer `EOPNOTSUPP`.
pub(super) fn unnamed_files(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    let tmpfile = OpenFlags::TMPFILE | OpenFlags::DIRECTORY | OpenFlags::RDWR;
    if !f.makes_unnamed_files() {
        err!(vfs.open("/d", tmpfile, 0o600), EOPNOTSUPP);
        return Ok(());
    }
    err!(vfs.open("/d", OpenFlags::TMPFILE | OpenFlags::DIRECTORY, 0o600), EINVAL);
    err!(vfs.open("/d", OpenFlags::TMPFILE | OpenFlags::RDWR, 0o600), EINVAL);
    err!(vfs.open("/d", tmpfile | OpenFlags::CREAT, 0o600), EINVAL);
    ok!(write_file(&vfs, "/f", b"x"));
    err!(vfs.open("/f", tmpfile, 0o600), ENOTDIR);
    err!(vfs.open("/missing", tmpfile, 0o600), ENOENT);
    let file = ok!(vfs.open("/d", tmpfile, 0o640));
    eq!(ok!(names(&vfs, "/d")), Vec::<String>::new());
    eq!(ok!(file.write(b"unnamed")), 7);
    let meta = ok!(file.metadata());
    eq!((meta.file_type, meta.nlink, meta.perm, meta.size), (FileType::Regular, 0, 0o640, 7));
    ok!(vfs.link_open_file(&file, "/d/named"));
    eq!(ok!(read_file(&vfs, "/d/named")), b"unnamed".to_vec());
    eq!(ok!(vfs.metadata("/d/named")).nlink, 1);
    // Named once, it is an ordinary file: removed again, it stays removed.
    ok!(vfs.unlink("/d/named"));
    err!(vfs.link_open_file(&file, "/d/again"), ENOENT);
    drop(file);
    let unlinkable = ok!(vfs.open("/d", tmpfile | OpenFlags::EXCL, 0o600));
    eq!(ok!(unlinkable.write(b"secret")), 6);
    err!(vfs.link_open_file(&unlinkable, "/d/excl"), ENOENT);
    drop(unlinkable);
    let writer = ok!(vfs.open("/d", OpenFlags::TMPFILE | OpenFlags::DIRECTORY | OpenFlags::WRONLY, 0o600));
    err!(writer.read(&mut [0u8; 4]), EBADF);
    drop(writer);
    eq!(ok!(names(&vfs, "/d")), Vec::<String>::new());
    vfs.set_credentials(user());
    err!(vfs.open("/d", tmpfile, 0o600), EACCES);
    Ok(())
}

/// A running program's file ([`Vfs::open_executable`]): execute permission needed (`EACCES`,
/// as for a directory), `ETXTBSY` while open for writing; while it runs, `ETXTBSY` for
/// opening it to write (`O_WRONLY`, `O_RDWR`, `O_TRUNC` alone, an existing file with
/// `O_CREAT`) and for `truncate`, while reading, renaming and removing it are fine; the mark
/// goes with the last holder.
pub(super) fn running_programs_files(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/prog", b"program text"));
    err!(vfs.open_executable("/prog").map(|_| ()), EACCES);
    ok!(vfs.set_permissions("/prog", 0o700, true));
    let writer = ok!(vfs.open("/prog", OpenFlags::WRONLY, 0));
    err!(vfs.open_executable("/prog").map(|_| ()), ETXTBSY);
    drop(writer);
    let (program, busy) = ok!(vfs.open_executable("/prog"));
    let mut head = [0u8; 7];
    eq!(ok!(program.read(&mut head)), 7);
    eq!(&head, b"program");
    let (_, again) = ok!(vfs.open_executable("/prog"));
    err!(vfs.open("/prog", OpenFlags::WRONLY, 0), ETXTBSY);
    err!(vfs.open("/prog", RW, 0), ETXTBSY);
    err!(vfs.open("/prog", OpenFlags::RDONLY | OpenFlags::TRUNC, 0), ETXTBSY);
    err!(vfs.open("/prog", NEW, 0o644), ETXTBSY);
    err!(vfs.truncate("/prog", 0), ETXTBSY);
    eq!(ok!(read_file(&vfs, "/prog")), b"program text".to_vec());
    ok!(vfs.rename("/prog", "/renamed"));
    err!(vfs.open("/renamed", OpenFlags::WRONLY, 0), ETXTBSY);
    drop(busy);
    err!(vfs.truncate("/renamed", 0), ETXTBSY);
    drop(again);
    ok!(vfs.truncate("/renamed", 4));
    eq!(ok!(read_file(&vfs, "/renamed")), b"prog".to_vec());
    let (_, busy) = ok!(vfs.open_executable("/renamed"));
    ok!(vfs.unlink("/renamed"));
    drop(busy);
    err!(vfs.open_executable("/").map(|_| ()), EACCES);
    Ok(())
}
