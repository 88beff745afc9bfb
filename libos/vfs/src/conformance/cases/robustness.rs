//! Cases for mounts and hostile input: stacked and nested mounts, unmount rules, and calls
//! with names, sizes and offsets at and past every limit.

use super::*;

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
