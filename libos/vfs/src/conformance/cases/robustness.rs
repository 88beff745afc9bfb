//! Cases for mounts and hostile input: stacked and nested mounts, unmount rules, and calls
//! with names, sizes and offsets at and past every limit.

use super::*;

/// Bind mounts: the same files (device and inode) at a second place, `EXDEV` between the
/// two mounts, the mounts below the source only when recursive, `..` out of the bind's root,
/// `EBUSY` for the bound directory, a directory bound onto itself, unmount.
pub(super) fn bind_mounts(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/src", 0o755));
    ok!(vfs.mkdir("/src/sub", 0o755));
    ok!(write_file(&vfs, "/src/a", b"bound"));
    ok!(vfs.mkdir("/dst", 0o755));
    ok!(write_file(&vfs, "/dst/hidden", b"under"));
    ok!(vfs.mount("/src/sub", f.create()?));
    ok!(write_file(&vfs, "/src/sub/m", b"mounted"));
    ok!(vfs.bind("/src", "/dst", false));
    err!(vfs.metadata("/dst/hidden"), ENOENT);
    eq!(ok!(read_file(&vfs, "/dst/a")), b"bound".to_vec());
    let (a, b) = (ok!(vfs.metadata("/src/a")), ok!(vfs.metadata("/dst/a")));
    eq!((a.dev, a.ino), (b.dev, b.ino));
    ok!(write_file(&vfs, "/dst/new", b"both"));
    eq!(ok!(read_file(&vfs, "/src/new")), b"both".to_vec());
    err!(vfs.metadata("/dst/sub/m"), ENOENT);
    err!(vfs.rename("/dst/a", "/src/b"), EXDEV);
    err!(vfs.link("/dst/a", "/src/b"), EXDEV);
    eq!(ok!(vfs.metadata("/dst/..")).ino, ok!(vfs.metadata("/")).ino);
    err!(vfs.rmdir("/dst"), EBUSY);
    err!(vfs.bind("/src/a", "/dst/sub", false), ENOTDIR);
    err!(vfs.bind("/src", "/src/a", false), ENOTDIR);
    eq!(vfs.mounts().len(), 3);
    ok!(vfs.unmount("/dst"));
    eq!(ok!(read_file(&vfs, "/dst/hidden")), b"under".to_vec());
    ok!(vfs.bind("/src", "/dst", true));
    eq!(ok!(read_file(&vfs, "/dst/sub/m")), b"mounted".to_vec());
    eq!(ok!(vfs.metadata("/dst/sub/m")).dev, ok!(vfs.metadata("/src/sub/m")).dev);
    err!(vfs.unmount("/dst"), EBUSY);
    ok!(vfs.unmount("/dst/sub"));
    ok!(vfs.unmount("/dst"));
    ok!(vfs.mkdir("/self", 0o755));
    ok!(vfs.bind("/self", "/self", false));
    err!(vfs.rmdir("/self"), EBUSY);
    ok!(vfs.unmount("/self"));
    ok!(vfs.rmdir("/self"));
    ok!(vfs.unmount("/src/sub"));
    eq!(vfs.mounts().len(), 1);
    Ok(())
}

/// Mount options: a read-only mount refuses changes (`EROFS`) through it but not through
/// another mount of the same files, and `statfs` says so; `remount` changes the options;
/// `noexec` keeps programs from starting (`EACCES`); `nodev` keeps device nodes shut.
pub(super) fn mount_options(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/data", 0o755));
    ok!(vfs.mkdir("/view", 0o755));
    ok!(write_file(&vfs, "/data/f", b"text"));
    ok!(vfs.set_permissions("/data/f", 0o755, true));
    ok!(vfs.bind("/data", "/view", false));
    ok!(vfs.remount("/view", MountFlags::READ_ONLY | MountFlags::NO_EXEC | MountFlags::NO_DEV));
    err!(vfs.remount("/data", MountFlags::READ_ONLY), EINVAL);
    check!(ok!(vfs.statfs("/view/f")).flags & 1 != 0);
    eq!(ok!(vfs.statfs("/data")).flags & 0x2f, STATFS_FLAGS_VALID);
    err!(vfs.open("/view/f", OpenFlags::WRONLY, 0), EROFS);
    err!(vfs.open("/view/new", NEW, 0o644), EROFS);
    err!(vfs.mkdir("/view/d", 0o755), EROFS);
    err!(vfs.unlink("/view/f"), EROFS);
    err!(vfs.truncate("/view/f", 0), EROFS);
    err!(vfs.access("/view/f", Access::WRITE, false, true), EROFS);
    eq!(ok!(read_file(&vfs, "/view/f")), b"text".to_vec());
    ok!(write_file(&vfs, "/data/f", b"new text"));
    eq!(ok!(read_file(&vfs, "/view/f")), b"new text".to_vec());
    err!(vfs.open_executable("/view/f").map(|_| ()), EACCES);
    ok!(vfs.open_executable("/data/f").map(|_| ()));
    if vfs.mknod("/data/null", NewNode::CharDevice(makedev(1, 3)), 0o666).is_ok() {
        err!(vfs.open("/view/null", OpenFlags::RDONLY, 0).map(|_| ()), EACCES);
    }
    ok!(vfs.remount("/view", MountFlags::empty()));
    ok!(write_file(&vfs, "/view/g", b"writable again"));
    eq!(ok!(vfs.statfs("/view")).flags & 0x2f, STATFS_FLAGS_VALID);
    ok!(vfs.unmount("/view"));
    Ok(())
}

/// Mounts: separate contents, `..` out of a mount root, `EXDEV`, `EBUSY`, nested and stacked
/// mounts, unmount.
pub(super) fn mounts(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/mnt", 0o755));
    ok!(write_file(&vfs, "/mnt/hidden", b"under"));
    ok!(write_file(&vfs, "/f", b"root fs"));
    ok!(vfs.mount("/mnt", f.create()?));
    eq!(ok!(names(&vfs, "/mnt")), Vec::<String>::new());
    err!(vfs.metadata("/mnt/hidden"), ENOENT);
    ok!(write_file(&vfs, "/mnt/g", b"mounted fs"));
    check!(ok!(vfs.metadata("/mnt/g")).dev != ok!(vfs.metadata("/f")).dev);
    eq!(ok!(vfs.metadata("/mnt/..")).ino, ok!(vfs.metadata("/")).ino);
    eq!(ok!(read_file(&vfs, "/mnt/../f")), b"root fs".to_vec());
    err!(vfs.rename("/f", "/mnt/f"), EXDEV);
    err!(vfs.rename("/mnt/g", "/g"), EXDEV);
    err!(vfs.link("/f", "/mnt/f"), EXDEV);
    err!(vfs.rmdir("/mnt"), EBUSY);
    err!(vfs.rename("/mnt", "/mnt2"), EBUSY);
    err!(vfs.mount("/f", f.create()?), ENOTDIR);
    // Nested mount inside the mount.
    ok!(vfs.mkdir("/mnt/inner", 0o755));
    ok!(vfs.mount("/mnt/inner", f.create()?));
    ok!(write_file(&vfs, "/mnt/inner/h", b"inner"));
    ok!(vfs.chdir("/mnt/inner"));
    eq!(ok!(vfs.current_dir()), "/mnt/inner");
    eq!(ok!(read_file(&vfs, "../../f")), b"root fs".to_vec());
    ok!(vfs.chdir("/"));
    eq!(vfs.mounts().len(), 3);
    err!(vfs.unmount("/mnt"), EBUSY);
    err!(vfs.unmount("/mnt/g"), EINVAL);
    err!(vfs.unmount("/"), EBUSY);
    let open_inner = ok!(vfs.open("/mnt/inner/h", OpenFlags::RDONLY, 0));
    ok!(vfs.unmount("/mnt/inner"));
    err!(vfs.metadata("/mnt/inner/h"), ENOENT);
    let mut buf = [0u8; 5];
    eq!(ok!(open_inner.read(&mut buf)), 5);
    ok!(vfs.unmount("/mnt"));
    eq!(ok!(read_file(&vfs, "/mnt/hidden")), b"under".to_vec());
    err!(vfs.unmount("/mnt"), EINVAL);
    // Stacked mounts: the newest hides the older one until it is unmounted.
    ok!(vfs.mount("/mnt", f.create()?));
    ok!(write_file(&vfs, "/mnt/lower", b"lower"));
    ok!(vfs.mount("/mnt", f.create()?));
    err!(vfs.metadata("/mnt/lower"), ENOENT);
    eq!(ok!(vfs.metadata("/mnt/..")).ino, ok!(vfs.metadata("/")).ino);
    ok!(vfs.unmount("/mnt"));
    eq!(ok!(read_file(&vfs, "/mnt/lower")), b"lower".to_vec());
    ok!(vfs.unmount("/mnt"));
    // Symlinks cross mounts.
    ok!(vfs.mount("/mnt", f.create()?));
    ok!(vfs.symlink("/f", "/mnt/to_root"));
    eq!(ok!(read_file(&vfs, "/mnt/to_root")), b"root fs".to_vec());
    Ok(())
}

/// Random operations on hostile paths (NUL bytes, `..` chains, over-long names, symlinks to
/// anywhere, trailing slashes, empty strings) never panic, and leave a namespace that still
/// works: every answer is `Ok` or an errno, and afterwards `/` lists, and a file can be
/// created and read back.
pub(super) fn hostile_input(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    let long = "x".repeat(300);
    let pieces: [&str; 14] = ["a", "b", ".", "..", "", "/", "//", "\0", "l", "d/", &long, "a/b", "é", " "];
    let mut state = 0x5eed_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..3000 {
        let mut path = String::new();
        for _ in 0..next(5) {
            path.push_str(pieces[next(pieces.len())]);
            if next(2) == 0 {
                path.push('/');
            }
        }
        if next(2) == 0 {
            path.insert(0, '/');
        }
        let mut other = String::from("/");
        other.push_str(pieces[next(pieces.len())]);
        let flags = OpenFlags::from_bits_truncate(next(1 << 20) as u32);
        let _ = match next(12) {
            0 => vfs.open(&path, flags, 0o644).map(drop),
            1 => vfs.mkdir(&path, 0o755),
            2 => vfs.rmdir(&path),
            3 => vfs.unlink(&path),
            4 => vfs.rename(&path, &other),
            5 => vfs.rename(&other, &path),
            6 => vfs.link(&path, &other),
            7 => vfs.symlink(&path, &other),
            8 => vfs.truncate(&path, next(10_000) as u64),
            9 => vfs.chdir(&path),
            10 => vfs.read_dir(&path).map(drop),
            _ => vfs.symlink_metadata(&path).map(drop),
        };
    }
    ok!(vfs.chdir("/"));
    ok!(vfs.read_dir("/"));
    ok!(write_file(&vfs, "/survivor", b"still works"));
    eq!(ok!(read_file(&vfs, "/survivor")), b"still works".to_vec());
    Ok(())
}
