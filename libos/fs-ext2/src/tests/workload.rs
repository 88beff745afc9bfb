//! A long sequence of operations, then the host's tools judge the result: `e2fsck -fn` must
//! find nothing, and `debugfs` must read the same bytes this driver wrote. Also: directories
//! that e2fsprogs indexed (htree) read and change correctly.

use super::*;
use libos_vfs::{FileSystem, FileType, Vfs};
use std::collections::BTreeMap;

/// Runs the workload on `vfs`; returns the files that should exist with their contents, and
/// the symlinks with their targets.
fn workload(vfs: &Vfs, block_size: usize) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let ptrs = block_size / 4;
    let direct = 12 * block_size;
    let single = direct + ptrs * block_size;
    // Sizes at and around each level of the block map (with 1 KiB blocks the last reaches the
    // double-indirect level: 12 + 256 + 65536 blocks would be 64 MiB).
    let sizes = [0, 1, block_size - 1, block_size, direct, direct + 1, single - 1, single, single + 5000, 3 << 20];
    vfs.mkdir("/data", 0o755).unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        let path = format!("/data/f{i}-{size}");
        let data = pattern(size, i as u32);
        write_file(vfs, &path, &data);
        files.insert(path, data);
    }
    // A sparse file whose end needs the triple-indirect block (1 KiB blocks: at 64 MiB) or,
    // with bigger blocks (where that is gigabytes away), the double-indirect one.
    let far_block = if block_size == 1024 { 12 + ptrs + ptrs * ptrs + 10 } else { 12 + ptrs + 10 };
    let far = far_block as u64 * block_size as u64;
    let sparse = vfs.open("/data/sparse", new_file(), 0o600).unwrap();
    sparse.write_at(far, b"the end").unwrap();
    sparse.write_at(3, b"start").unwrap();
    drop(sparse);
    let mut expected = vec![0u8; far as usize + 7];
    expected[3..8].copy_from_slice(b"start");
    expected[far as usize..].copy_from_slice(b"the end");
    files.insert("/data/sparse".into(), expected);

    // Directories, nested, and one with many entries spanning many blocks.
    vfs.mkdir("/a", 0o755).unwrap();
    vfs.mkdir("/a/b", 0o700).unwrap();
    vfs.mkdir("/a/b/c", 0o755).unwrap();
    vfs.mkdir("/many", 0o755).unwrap();
    for i in 0..400 {
        let path = format!("/many/entry-with-a-longish-name-{i:04}");
        let data = format!("file {i}\n").into_bytes();
        write_file(vfs, &path, &data);
        files.insert(path, data);
    }
    for i in (0..400).step_by(3) {
        let path = format!("/many/entry-with-a-longish-name-{i:04}");
        vfs.unlink(&path).unwrap();
        files.remove(&path);
    }
    for i in 0..50 {
        let path = format!("/many/n{i}");
        write_file(vfs, &path, b"refilled");
        files.insert(path, b"refilled".to_vec());
    }

    // Symlinks: fast (in the inode) and slow (a data block).
    let long_target = format!("/a/b/{}", "long-component/".repeat(12));
    vfs.symlink("data/f1-1", "/short").unwrap();
    vfs.symlink(&long_target, "/a/long").unwrap();
    links.insert("/short".to_string(), "data/f1-1".to_string());
    links.insert("/a/long".to_string(), long_target);

    // Hard links, then the original name goes.
    let f4 = format!("/data/f4-{direct}");
    vfs.link(&f4, "/a/b/hard").unwrap();
    vfs.link(&f4, "/a/hard2").unwrap();
    vfs.unlink(&f4).unwrap();
    let data = files.remove(&f4).unwrap();
    files.insert("/a/b/hard".into(), data.clone());
    files.insert("/a/hard2".into(), data);
    assert_eq!(vfs.metadata("/a/hard2").unwrap().nlink, 2);

    // Renames: a file across directories, over an existing file, and a directory to a new
    // parent (its `..` and both parents' link counts change).
    let f2 = format!("/data/f2-{}", block_size - 1);
    vfs.rename(&f2, "/a/b/c/moved").unwrap();
    let data = files.remove(&f2).unwrap();
    files.insert("/a/b/c/moved".into(), data);
    let f5 = format!("/data/f5-{}", direct + 1);
    let f1 = "/data/f1-1".to_string();
    vfs.rename(&f5, &f1).unwrap();
    let data = files.remove(&f5).unwrap();
    files.insert(f1, data);
    vfs.rename("/a/b/c", "/many/c-moved").unwrap();
    let moved: Vec<(String, Vec<u8>)> =
        files.iter().filter(|(p, _)| p.starts_with("/a/b/c/")).map(|(p, d)| (p.clone(), d.clone())).collect();
    for (path, data) in moved {
        files.remove(&path);
        files.insert(path.replace("/a/b/c/", "/many/c-moved/"), data);
    }
    assert_eq!(vfs.metadata("/many/c-moved/..").unwrap().ino, vfs.metadata("/many").unwrap().ino);
    assert_eq!(vfs.metadata("/a/b").unwrap().nlink, 2);
    assert_eq!(vfs.metadata("/many").unwrap().nlink, 3);

    // Truncation: shrink across levels (freeing indirect blocks), grow with a hole.
    let big = "/data/f9-3145728".to_string();
    vfs.truncate(&big, 100_000).unwrap();
    vfs.truncate(&big, 200_000).unwrap();
    let data = files.get_mut(&big).unwrap();
    data.truncate(100_000);
    data.resize(200_000, 0);
    let mid = format!("/data/f7-{}", single);
    vfs.truncate(&mid, 5).unwrap();
    files.get_mut(&mid).unwrap().truncate(5);

    // Deletions: a file with indirect blocks, an empty directory.
    let gone = format!("/data/f8-{}", single + 5000);
    vfs.unlink(&gone).unwrap();
    files.remove(&gone);
    vfs.mkdir("/a/empty", 0o755).unwrap();
    vfs.rmdir("/a/empty").unwrap();

    // Timestamps and modes are stored.
    vfs.set_permissions("/data/sparse", 0o640, true).unwrap();
    (files, links)
}

fn check_with_host_tools(image: &[u8], files: &BTreeMap<String, Vec<u8>>, links: &BTreeMap<String, String>, what: &str) {
    assert_clean(image, what);
    for (path, data) in files {
        let read = debugfs(image, &format!("cat {path}"));
        assert!(read == *data, "debugfs reads {} bytes of {path}, expected {}", read.len(), data.len());
    }
    for (path, target) in links {
        let stat = String::from_utf8_lossy(&debugfs(image, &format!("stat {path}"))).into_owned();
        let fast = target.len() < 60;
        if fast {
            assert!(stat.contains(&format!("Fast link dest: \"{target}\"")), "debugfs stat {path}:\n{stat}");
        } else {
            assert!(stat.contains(&format!("Size: {}", target.len())), "debugfs stat {path}:\n{stat}");
        }
    }
}

fn run_workload(block_size: u32, size: &str) {
    run_workload_indexed(block_size, size, options().dir_index_bytes);
}

fn run_workload_indexed(block_size: u32, size: &str, dir_index_bytes: usize) {
    let disk = Arc::new(MemDisk::from_image(mkfs(size, block_size, &[])));
    let fs = Ext2Fs::mount(disk.clone(), MountOptions { dir_index_bytes, ..options() }).unwrap();
    let vfs = Vfs::new(fs.clone());
    let (files, links) = workload(&vfs, block_size as usize);
    fs.sync().unwrap();
    let image = disk.image();
    check_with_host_tools(&image, &files, &links, &format!("the workload with {block_size}-byte blocks"));
    let perm = vfs.metadata("/data/sparse").unwrap().perm;
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "unmount");

    // Mounted again, this driver reads the same.
    let disk = Arc::new(MemDisk::from_image(disk.image()));
    let vfs = Vfs::new(mount(&disk));
    for (path, data) in &files {
        assert!(read_file(&vfs, path) == *data, "{path} differs after remount");
    }
    for (path, target) in &links {
        assert_eq!(vfs.read_link(path).unwrap(), *target);
    }
    assert_eq!(vfs.metadata("/data/sparse").unwrap().perm, perm);
    assert_eq!(vfs.symlink_metadata("/short").unwrap().file_type, FileType::Symlink);
}

#[test]
fn workload_with_1k_blocks_is_clean_for_e2fsck_and_debugfs() {
    run_workload(1024, "16M");
}

/// Directories scanned linearly (no index), and indexes evicted all the time (room for about
/// one directory of the workload's).
#[test]
fn workload_without_and_with_tiny_directory_indexes_is_clean() {
    run_workload_indexed(1024, "16M", 0);
    run_workload_indexed(1024, "16M", 24 * 1024);
}

#[test]
fn workload_with_2k_blocks_is_clean_for_e2fsck_and_debugfs() {
    run_workload(2048, "16M");
}

#[test]
fn workload_with_4k_blocks_is_clean_for_e2fsck_and_debugfs() {
    run_workload(4096, "32M");
}

/// A directory e2fsprogs indexed (htree, `dir_index`) reads completely; changing it clears
/// the index flag and leaves e2fsck happy.
#[test]
fn hashed_directories_made_by_e2fsprogs_are_read_and_changed() {
    let source = Temp::new("populate");
    std::fs::create_dir_all(source.0.join("big")).unwrap();
    let mut names = Vec::new();
    for i in 0..600 {
        let name = format!("hashed-entry-number-{i:05}");
        std::fs::write(source.0.join("big").join(&name), format!("{i}")).unwrap();
        names.push(name);
    }
    let image = Temp::new("htree");
    let out = run(
        &tool("mke2fs"),
        &["-q", "-t", "ext2", "-O", "dir_index", "-b", "1024", "-d", source.path(), "-F", image.path(), "8M"],
    );
    assert!(out.status.success(), "mke2fs -d: {}", String::from_utf8_lossy(&out.stderr));
    // `e2fsck -D` rebuilds directories, indexing every one that spans several blocks.
    let out = run(&tool("e2fsck"), &["-fyD", image.path()]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "e2fsck -fyD: {}", String::from_utf8_lossy(&out.stdout));
    let bytes = std::fs::read(&image.0).unwrap();
    let flags = String::from_utf8_lossy(&debugfs(&bytes, "stat /big")).into_owned();
    assert!(flags.contains("Flags: 0x1000"), "the directory was not indexed:\n{flags}");
    assert!(String::from_utf8_lossy(&debugfs(&bytes, "htree /big")).contains("Root node dump"), "no htree");

    let disk = Arc::new(MemDisk::from_image(bytes));
    let fs = mount(&disk);
    let vfs = Vfs::new(fs.clone());
    let mut listed: Vec<String> = vfs.read_dir("/big").unwrap().into_iter().map(|e| e.name).collect();
    listed.sort();
    assert_eq!(listed, names, "every entry is listed once");
    for (i, name) in names.iter().enumerate().step_by(37) {
        assert_eq!(read_file(&vfs, &format!("/big/{name}")), format!("{i}").into_bytes());
    }
    // Change it: add, remove, rename within.
    write_file(&vfs, "/big/new-file", b"new");
    vfs.unlink(&format!("/big/{}", names[5])).unwrap();
    vfs.rename(&format!("/big/{}", names[6]), "/big/renamed").unwrap();
    fs.sync().unwrap();
    let image = disk.image();
    assert_clean(&image, "changing an indexed directory");
    let flags = String::from_utf8_lossy(&debugfs(&image, "stat /big")).into_owned();
    assert!(!flags.contains("Flags: 0x1000"), "the index flag stays set:\n{flags}");
    assert_eq!(debugfs(&image, "cat /big/new-file"), b"new");
    assert_eq!(debugfs(&image, "cat /big/renamed"), b"6");
    assert_eq!(vfs.read_dir("/big").unwrap().len(), 600);
}

/// Read-ahead starts only for a sequential reader (then a 4 MiB file costs a few dozen device
/// requests, not one per block), and random reads fetch only their own blocks.
#[test]
fn read_ahead_is_for_sequential_readers_only() {
    let (disk, data, fs, vfs) = big_file_volume(7);
    let file = vfs.open("/big", OpenFlags::RDONLY, 0).unwrap();
    let mut page = vec![0u8; 4096];
    for offset in [1u64 << 20, 3 << 20, 2 << 20, 5 * 4096] {
        assert_eq!(file.read_at(offset, &mut page).unwrap(), 4096);
        assert!(page[..] == data[offset as usize..offset as usize + 4096]);
    }
    assert_eq!(fs.cache().stats().read_ahead, 0, "random reads read nothing ahead");
    let reads_before = disk.stats().reads;
    let file = vfs.open("/big", OpenFlags::RDONLY, 0).unwrap();
    let mut at = 0;
    while at < data.len() {
        assert_eq!(file.read(&mut page).unwrap(), 4096);
        assert!(page[..] == data[at..at + 4096], "bytes at {at}");
        at += 4096;
    }
    let requests = disk.stats().reads - reads_before;
    assert!(requests < 64, "a sequential 4 MiB read took {requests} device requests");
    assert!(fs.cache().stats().read_ahead > 900);
}

/// A big directory churned through its index: freed room is reused before the directory
/// grows, a volume mounted again without indexes finds the same names, and e2fsck agrees.
#[test]
fn directory_index_reuses_room_and_matches_the_disk() {
    let (disk, fs, vfs) = volume("16M", 1024, &[]);
    vfs.mkdir("/d", 0o755).unwrap();
    let name = |i: usize| format!("/d/name-{i:05}");
    for i in 0..1000 {
        drop(vfs.open(&name(i), new_file(), 0o644).unwrap());
    }
    let size = vfs.metadata("/d").unwrap().size;
    for i in (0..1000).step_by(2) {
        vfs.unlink(&name(i)).unwrap();
    }
    for i in 1000..1500 {
        drop(vfs.open(&name(i), new_file(), 0o644).unwrap());
    }
    assert_eq!(vfs.metadata("/d").unwrap().size, size, "the freed room was reused");
    vfs.rename(&name(1), &name(2)).unwrap();
    vfs.rename(&name(3), &name(1001)).unwrap();
    let mut expected: Vec<String> = (1..1000).step_by(2).chain(1000..1500).map(name).collect();
    expected.retain(|n| *n != name(1) && *n != name(3));
    expected.push(name(2));
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "the directory churn");
    let fs = Ext2Fs::mount(disk.clone(), MountOptions { dir_index_bytes: 0, ..options() }).unwrap();
    let vfs = Vfs::new(fs);
    let mut listed: Vec<String> = vfs.read_dir("/d").unwrap().into_iter().map(|e| format!("/d/{}", e.name)).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    for n in &expected {
        vfs.metadata(n).unwrap();
    }
}

/// Remembered block runs (`bmap::Runs`) never outlive the blocks they name: a file read (its
/// runs remembered), then truncated, cut short or deleted while another file takes its blocks,
/// reads only its own bytes afterwards, through the same open file and through a new one.
#[test]
fn remembered_block_runs_follow_truncation_and_reuse() {
    let (disk, fs, vfs) = volume("8M", 1024, &[]);
    let block = 1024usize;
    let fill = |path: &str, byte: u8, blocks: usize| {
        let file = vfs.open(path, OpenFlags::WRONLY | OpenFlags::CREAT, 0o644).unwrap();
        for i in 0..blocks {
            assert_eq!(file.write_at((i * block) as u64, &vec![byte; block]).unwrap(), block);
        }
    };
    let byte_at = |file: &libos_vfs::OpenFile, index: usize| {
        let mut one = [0u8; 1];
        assert_eq!(file.read_at((index * block + 7) as u64, &mut one).unwrap(), 1);
        one[0]
    };
    // Blocks 0-11 are direct, 12-267 single-indirect, the rest double-indirect.
    fill("/a", b'A', 400);
    let reader = vfs.open("/a", OpenFlags::RDONLY, 0).unwrap();
    for index in [3, 100, 300, 399] {
        assert_eq!(byte_at(&reader, index), b'A');
    }
    // Truncated and grown again while another file takes the freed blocks.
    reader.set_len(0).unwrap_err(); // read-only: EINVAL, nothing changes
    let writer = vfs.open("/a", OpenFlags::WRONLY, 0).unwrap();
    writer.set_len(0).unwrap();
    fill("/b", b'B', 400);
    fill("/a", b'C', 400);
    for index in [3, 100, 300, 399] {
        assert_eq!(byte_at(&reader, index), b'C', "block {index} through the old descriptor");
        let fresh = vfs.open("/a", OpenFlags::RDONLY, 0).unwrap();
        assert_eq!(byte_at(&fresh, index), b'C', "block {index} through a new descriptor");
    }
    // Cut to 90 blocks (the rest goes to the next writer), then written at block 300 again:
    // the blocks between are a hole and read zeros.
    writer.set_len((90 * block) as u64).unwrap();
    fill("/c", b'D', 300);
    assert_eq!(writer.write_at((300 * block) as u64, &vec![b'F'; block]).unwrap(), block);
    for index in [90, 100, 267, 268, 299] {
        assert_eq!(byte_at(&reader, index), 0, "block {index} of the hole");
    }
    assert_eq!(byte_at(&reader, 89), b'C');
    assert_eq!(byte_at(&reader, 300), b'F');
    // Deleted while open: it still reads its own bytes (its blocks are not free yet).
    vfs.unlink("/a").unwrap();
    fill("/e", b'E', 100);
    assert_eq!(byte_at(&reader, 300), b'F');
    assert_eq!(byte_at(&reader, 50), b'C');
    drop((reader, writer));
    fs.sync().unwrap();
    assert_clean(&disk.image(), "reads, truncation, holes and reuse");
}
