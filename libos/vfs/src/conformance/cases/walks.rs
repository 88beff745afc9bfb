//! Cases for the VFS's walk cache (`vfs/walk_cache.rs`): a walk to a directory that was just
//! walked may be answered from memory, so every change that can make it end elsewhere or be
//! refused must be seen at once, through this namespace, another one over the same file
//! system, or an open directory.

use super::*;
use crate::cred::Credentials;

/// An unprivileged user with uid and gid `id`.
fn user(id: u32) -> Credentials {
    let mut creds = Credentials::root();
    // Root may take any ids: these cannot fail.
    let _ = creds.setresgid(id, id, id);
    let _ = creds.setresuid(id, id, id);
    creds
}

/// Renames, removals, replacements by a symlink or a file, and mounts of a directory on the
/// path of files just walked to: the next walk sees each of them.
pub(super) fn cached_walks_follow_name_changes(f: &dyn FileSystemFactory) -> Outcome {
    let fs = f.create()?;
    let vfs = Vfs::new(fs.clone());
    let other = Vfs::new(fs);
    ok!(vfs.mkdir("/a", 0o755));
    ok!(vfs.mkdir("/a/b", 0o755));
    ok!(write_file(&vfs, "/a/b/f", b"one"));
    // Twice: the second walk to /a/b/ may come from the cache.
    eq!(ok!(read_file(&vfs, "/a/b/f")), b"one".to_vec());
    eq!(ok!(vfs.metadata("/a/b/f")).size, 3);

    // A rename of a directory on the path, by this namespace.
    ok!(vfs.rename("/a/b", "/a/c"));
    err!(vfs.metadata("/a/b/f"), ENOENT);
    eq!(ok!(read_file(&vfs, "/a/c/f")), b"one".to_vec());
    // A new directory takes the old name.
    ok!(vfs.mkdir("/a/b", 0o755));
    ok!(write_file(&vfs, "/a/b/f", b"two"));
    eq!(ok!(read_file(&vfs, "/a/b/f")), b"two".to_vec());

    // Changes by another namespace over the same file system.
    eq!(ok!(vfs.metadata("/a/c/f")).size, 3);
    ok!(other.rename("/a/c", "/a/d"));
    err!(vfs.metadata("/a/c/f"), ENOENT);
    ok!(other.unlink("/a/d/f"));
    ok!(other.rmdir("/a/d"));
    err!(vfs.metadata("/a/d/f"), ENOENT);

    // Removed and replaced by a symlink, then by a regular file.
    eq!(ok!(vfs.metadata("/a/b/f")).size, 3);
    ok!(vfs.unlink("/a/b/f"));
    ok!(vfs.rmdir("/a/b"));
    err!(vfs.metadata("/a/b/f"), ENOENT);
    ok!(vfs.mkdir("/a/e", 0o755));
    ok!(write_file(&vfs, "/a/e/f", b"three"));
    ok!(vfs.symlink("e", "/a/b"));
    eq!(ok!(read_file(&vfs, "/a/b/f")), b"three".to_vec());
    ok!(vfs.unlink("/a/b"));
    ok!(write_file(&vfs, "/a/b", b"file"));
    err!(vfs.metadata("/a/b/f"), ENOTDIR);

    // A rename that replaces a directory on the path with another one (the walk to /x/ was
    // cached by the failed lookup of /x/g).
    ok!(vfs.mkdir("/x", 0o755));
    err!(vfs.metadata("/x/g"), ENOENT);
    ok!(vfs.mkdir("/y", 0o755));
    ok!(write_file(&vfs, "/y/g", b"g"));
    ok!(vfs.rename("/y", "/x"));
    eq!(ok!(read_file(&vfs, "/x/g")), b"g".to_vec());

    // A walk that ended at a file (`ENOTDIR` for what follows) is not remembered: removing a
    // file does not count as a change, and its name may become a directory.
    ok!(write_file(&vfs, "/n", b"file"));
    err!(vfs.metadata("/n/x"), ENOTDIR);
    err!(vfs.metadata("/n/x"), ENOTDIR);
    ok!(vfs.unlink("/n"));
    ok!(vfs.mkdir("/n", 0o755));
    ok!(write_file(&vfs, "/n/x", b"x"));
    eq!(ok!(vfs.metadata("/n/x")).size, 1);

    // A mount on a directory of the path, and its unmount.
    ok!(vfs.mkdir("/m", 0o755));
    ok!(write_file(&vfs, "/m/under", b"u"));
    eq!(ok!(vfs.metadata("/m/under")).size, 1);
    ok!(vfs.mount("/m", f.create()?));
    err!(vfs.metadata("/m/under"), ENOENT);
    ok!(write_file(&vfs, "/m/over", b"o"));
    eq!(ok!(vfs.metadata("/m/over")).size, 1);
    ok!(vfs.unmount("/m"));
    err!(vfs.metadata("/m/over"), ENOENT);
    eq!(ok!(vfs.metadata("/m/under")).size, 1);
    Ok(())
}

/// Who may walk: a directory on the path made unsearchable (by path, through an open
/// directory, by a chown) by another namespace after this one cached a walk through it, or
/// this namespace's credentials changed: the next walk is refused, and allowed again when the
/// permission comes back.
pub(super) fn cached_walks_follow_permission_changes(f: &dyn FileSystemFactory) -> Outcome {
    let fs = f.create()?;
    let admin = Vfs::new(fs.clone());
    let vfs = Vfs::new(fs);
    ok!(admin.mkdir("/p", 0o755));
    ok!(admin.mkdir("/p/q", 0o755));
    ok!(write_file(&admin, "/p/q/f", b"data"));
    ok!(admin.set_owner("/p/q", Some(1000), Some(1000), true));
    vfs.set_credentials(user(1000));
    let size = |vfs: &Vfs| vfs.metadata("/p/q/f").map(|m| m.size);
    eq!(size(&vfs), Ok(4));
    eq!(size(&vfs), Ok(4));

    // By path.
    ok!(admin.set_permissions("/p/q", 0o600, true));
    eq!(size(&vfs), Err(Errno::EACCES));
    ok!(admin.set_permissions("/p/q", 0o700, true));
    eq!(size(&vfs), Ok(4));
    // By owner.
    ok!(admin.set_owner("/p/q", Some(2000), None, true));
    eq!(size(&vfs), Err(Errno::EACCES));
    ok!(admin.set_owner("/p/q", Some(1000), None, true));
    eq!(size(&vfs), Ok(4));
    // Through an open directory higher up.
    let p = ok!(admin.open("/p", OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0));
    ok!(p.set_permissions(0o700));
    eq!(size(&vfs), Err(Errno::EACCES));
    ok!(p.set_permissions(0o755));
    eq!(size(&vfs), Ok(4));
    // This namespace's credentials.
    vfs.set_credentials(user(2000));
    eq!(size(&vfs), Err(Errno::EACCES));
    vfs.set_credentials(user(1000));
    eq!(size(&vfs), Ok(4));
    Ok(())
}
