//! The edges: a full disk, read-only devices and mounts, features this driver must refuse,
//! device errors, and crashes (what `fsync` and `sync` promise).

use super::*;
use libos_block::BlockDevice;
use libos_core::Errno;
use libos_vfs::{FileSystem, Vfs};

/// Filling the disk gives `ENOSPC` (short writes first), for data, inodes and directory
/// blocks alike; the volume stays consistent and the space comes back when files go.
#[test]
fn a_full_disk_is_enospc_and_stays_consistent() {
    let (disk, fs, vfs) = volume("1M", 1024, &["-N", "64"]);
    let free_before = vfs.statfs("/").unwrap().blocks_free;

    // Data: one file grows until the disk is full.
    let file = vfs.open("/fill", new_file(), 0o644).unwrap();
    let chunk = vec![0x5au8; 50_000];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(n) => {
                written += n as u64;
                if n < chunk.len() {
                    break;
                }
            }
            Err(Errno::ENOSPC) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(file.write(b"more"), Err(Errno::ENOSPC));
    assert_eq!(vfs.statfs("/").unwrap().blocks_free, 0);
    assert!(written > 800_000, "only {written} bytes fit");
    assert_eq!(file.metadata().unwrap().size, written);
    // A full disk still allows what needs no block: an inode with a fast symlink, a rename.
    vfs.symlink("fill", "/link").unwrap();
    // A directory needs a block.
    assert_eq!(vfs.mkdir("/d", 0o755), Err(Errno::ENOSPC));
    assert_eq!(vfs.symlink(&"x".repeat(200), "/slow"), Err(Errno::ENOSPC));
    fs.sync().unwrap();
    assert_clean(&disk.image(), "filling the disk with data");

    // Inodes: create empty files until none is left.
    drop(file);
    vfs.unlink("/fill").unwrap();
    assert_eq!(vfs.statfs("/").unwrap().blocks_free, free_before, "every block came back");
    let mut created = 0;
    loop {
        match vfs.open(&format!("/e{created}"), new_file(), 0o644) {
            Ok(_) => created += 1,
            Err(Errno::ENOSPC) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(vfs.statfs("/").unwrap().files_free, 0);
    assert!(created > 40, "only {created} inodes");
    fs.sync().unwrap();
    assert_clean(&disk.image(), "running out of inodes");
    for i in 0..created {
        vfs.unlink(&format!("/e{i}")).unwrap();
    }
    write_file(&vfs, "/again", &pattern(100_000, 1));
    assert_eq!(read_file(&vfs, "/again"), pattern(100_000, 1));
    fs.sync().unwrap();
    assert_clean(&disk.image(), "freeing everything and writing again");
}

/// A read-only device mounts read-only: reads work, every change is `EROFS`, and nothing is
/// written (not even the superblock's mount count).
#[test]
fn read_only_devices_and_mounts_give_erofs() {
    let image = mkfs("4M", 1024, &[]);
    let setup = Arc::new(MemDisk::from_image(image));
    let vfs = Vfs::new(mount(&setup));
    write_file(&vfs, "/f", b"contents");
    vfs.mkdir("/d", 0o755).unwrap();
    drop(vfs);
    let image = setup.image();

    let disk = Arc::new(MemDisk::from_image(image.clone()).read_only());
    let fs = Ext2Fs::mount(disk.clone(), options()).unwrap();
    assert!(fs.read_only());
    let vfs = Vfs::new(fs.clone());
    assert_eq!(read_file(&vfs, "/f"), b"contents");
    assert_eq!(vfs.open("/f", OpenFlags::RDWR, 0).map(drop), Err(Errno::EROFS), "refused at open, as on Linux");
    assert_eq!(vfs.open("/f", OpenFlags::RDONLY | OpenFlags::TRUNC, 0).map(drop), Err(Errno::EROFS));
    assert_eq!(vfs.open("/g", new_file(), 0o644).map(drop), Err(Errno::EROFS));
    assert_eq!(vfs.mkdir("/e", 0o755), Err(Errno::EROFS));
    assert_eq!(vfs.unlink("/f"), Err(Errno::EROFS));
    assert_eq!(vfs.rmdir("/d"), Err(Errno::EROFS));
    assert_eq!(vfs.rename("/f", "/h"), Err(Errno::EROFS));
    assert_eq!(vfs.truncate("/f", 0), Err(Errno::EROFS));
    assert_eq!(vfs.set_permissions("/f", 0o600, true), Err(Errno::EROFS));
    assert_eq!(vfs.symlink("f", "/l"), Err(Errno::EROFS));
    fs.sync().unwrap();
    drop(vfs);
    drop(fs);
    assert_eq!(disk.stats().writes, 0);

    // A read-only mount of a writable device: the same, and the image is untouched.
    let disk = Arc::new(MemDisk::from_image(image.clone()));
    let fs = Ext2Fs::mount(disk.clone(), MountOptions { read_only: true, ..options() }).unwrap();
    let vfs = Vfs::new(fs);
    assert_eq!(vfs.mkdir("/e", 0o755), Err(Errno::EROFS));
    drop(vfs);
    assert!(disk.image() == image);
}

/// Volumes with features this driver cannot handle are refused, with the errno saying how.
#[test]
fn unsupported_features_are_refused() {
    let device = |image: Vec<u8>| -> Arc<dyn BlockDevice> { Arc::new(MemDisk::from_image(image)) };
    // ext4 (extents, 64bit, flex_bg, metadata_csum): incompatible.
    let ext4 = mkfs("8M", 1024, &["-t", "ext4"]);
    assert_eq!(Ext2Fs::mount(device(ext4), options()).err(), Some(Errno::EOPNOTSUPP));
    // A read-only-compatible feature it cannot maintain: read-only mounts only.
    let huge = mkfs("8M", 1024, &["-O", "huge_file"]);
    assert_eq!(Ext2Fs::mount(device(huge.clone()), options()).err(), Some(Errno::EROFS));
    let fs = Ext2Fs::mount(device(huge), MountOptions { read_only: true, ..options() }).unwrap();
    assert!(fs.read_only());
    // Not ext2 at all.
    assert_eq!(Ext2Fs::mount(device(vec![0u8; 1 << 20]), options()).err(), Some(Errno::EINVAL));
    // A volume claiming more blocks than the device has.
    let mut cut = mkfs("8M", 1024, &[]);
    cut.truncate(4 << 20);
    assert_eq!(Ext2Fs::mount(device(cut), options()).err(), Some(Errno::EUCLEAN));
    // A root inode that is not a directory: refused, and the failed mount writes nothing.
    let bad_root = debugfs_write(&mkfs("4M", 1024, &[]), "sif <2> mode 0100644");
    let disk = Arc::new(MemDisk::from_image(bad_root));
    assert_eq!(Ext2Fs::mount(disk.clone(), options()).err(), Some(Errno::EUCLEAN));
    assert_eq!(disk.stats().writes, 0);
    // ext3 (a journal, a compatible feature) mounts and stays clean for e2fsck.
    let (disk, fs, vfs) = volume("8M", 1024, &["-j"]);
    write_file(&vfs, "/on-ext3", &pattern(30_000, 3));
    fs.sync().unwrap();
    assert_clean(&disk.image(), "writing to ext3 without the journal");
}

/// Device errors reach the caller as `EIO`, and nothing is lost: once the device recovers,
/// a sync writes what failed.
#[test]
fn device_errors_are_eio() {
    let (disk, fs, vfs) = volume("4M", 1024, &[]);
    write_file(&vfs, "/f", &pattern(20_000, 9));
    fs.sync().unwrap();
    disk.fail_sectors(Some(0..u64::MAX));
    write_file(&vfs, "/f", &pattern(20_000, 10));
    assert_eq!(fs.sync(), Err(Errno::EIO));
    disk.fail_sectors(None);
    fs.sync().unwrap();
    assert_clean(&disk.image(), "a failed sync retried");
    assert_eq!(debugfs(&disk.image(), "cat /f"), pattern(20_000, 10));
}

/// After `fsync` of a file (and its directory), a crash keeps it; after `sync`, a crash keeps
/// everything and the volume is clean.
#[test]
fn fsynced_data_survives_a_crash() {
    let (disk, fs, vfs) = volume("8M", 1024, &[]);
    vfs.mkdir("/dir", 0o755).unwrap();
    let data = pattern(300_000, 4);
    write_file(&vfs, "/dir/kept", &data);
    vfs.open("/dir/kept", OpenFlags::RDONLY, 0).unwrap().sync().unwrap();
    vfs.open("/dir", OpenFlags::RDONLY, 0).unwrap().sync().unwrap();
    vfs.open("/", OpenFlags::RDONLY, 0).unwrap().sync().unwrap();
    // Not synced: may be lost.
    write_file(&vfs, "/dir/volatile", &pattern(50_000, 5));
    let survived = disk.crash();

    let after = Arc::new(MemDisk::from_image(survived.clone()));
    let vfs2 = Vfs::new(mount(&after));
    assert_eq!(read_file(&vfs2, "/dir/kept"), data, "the fsynced file is intact");
    // An unjournaled file system may leave allocations of unsynced files behind; e2fsck may
    // say so, but the fsynced file must be as written.
    let (code, report) = fsck(&survived);
    eprintln!("e2fsck -fn after the crash exited {code}:\n{report}");
    assert_eq!(debugfs(&survived, "cat /dir/kept"), data);

    // After a full sync, a crash loses nothing and leaves a clean volume.
    write_file(&vfs, "/dir/all", &pattern(70_000, 6));
    fs.sync().unwrap();
    let survived = disk.crash();
    assert_clean(&survived, "a crash right after sync");
    assert_eq!(debugfs(&survived, "cat /dir/all"), pattern(70_000, 6));
    assert_eq!(debugfs(&survived, "cat /dir/volatile"), pattern(50_000, 5));
}

/// `s_state` of a volume image (the primary superblock at byte 1024, the field at 58).
fn superblock_state(image: &[u8]) -> u16 {
    u16::from_le_bytes([image[1024 + 58], image[1024 + 59]])
}

/// A shut-down volume (program exit) is on disk and marked cleanly unmounted, as after an
/// unmount, while the file system object lives on; changes after it fail with `EROFS`, and
/// a later sync does not mark it "not clean" again.
#[test]
fn a_shut_down_volume_is_marked_clean_and_takes_no_more_changes() {
    let (disk, fs, vfs) = volume("4M", 1024, &[]);
    assert_eq!(superblock_state(&disk.image()) & 1, 0, "a mounted volume is marked not clean");
    write_file(&vfs, "/kept", &pattern(30_000, 11));
    fs.shut_down().unwrap();
    let image = disk.crash();
    assert_eq!(superblock_state(&image) & 1, 1, "marked clean at the shut-down");
    assert_clean(&image, "the shut-down");
    assert_eq!(debugfs(&image, "cat /kept"), pattern(30_000, 11));
    assert_eq!(vfs.mkdir("/late", 0o755), Err(Errno::EROFS));
    fs.sync().unwrap();
    assert_eq!(superblock_state(&disk.crash()) & 1, 1, "still clean after a later sync");
}
