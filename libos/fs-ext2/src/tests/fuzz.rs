//! Corrupt volumes never panic: random bytes of a small volume's metadata (superblock, group
//! descriptors, bitmaps, inode table, directory blocks, indirect blocks, a slow symlink's
//! block) are changed, over and over with fixed seeds, and each damaged copy is mounted,
//! walked, read and written. Every operation may fail (with an errno); none may panic or hang.

use super::*;
use libos_vfs::{FileSystem, FileType, Vfs};

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// A small volume with a bit of everything, and its metadata blocks.
fn populated() -> (Vec<u8>, Vec<u64>) {
    let (disk, fs, vfs) = volume("512K", 1024, &["-N", "48"]);
    vfs.mkdir("/d1", 0o755).unwrap();
    vfs.mkdir("/d1/d2", 0o755).unwrap();
    for i in 0..30 {
        write_file(&vfs, &format!("/d1/file-with-a-long-name-{i}"), &pattern(i * 100, i as u32));
    }
    // Past the single-indirect level (268 KiB with 1 KiB blocks).
    write_file(&vfs, "/d1/d2/big", &pattern(290 * 1024, 99));
    vfs.symlink("d1/file-with-a-long-name-3", "/fast").unwrap();
    vfs.symlink(&"/slow/target".repeat(10), "/slow").unwrap();
    vfs.link("/d1/file-with-a-long-name-7", "/hard").unwrap();
    fs.sync().unwrap();
    let metadata = fs.metadata_blocks().unwrap();
    drop(vfs);
    drop(fs);
    let image = disk.image();
    assert_clean(&image, "populating the fuzz volume");
    (image, metadata)
}

/// Reads everything reachable (bounded), then changes things; ignores every error. Returns
/// whether the volume mounted.
fn exercise(image: Vec<u8>) -> bool {
    let disk = Arc::new(MemDisk::from_image(image));
    let Ok(fs) = Ext2Fs::mount(disk, options()) else { return false };
    let vfs = Vfs::new(fs.clone());
    let mut found_files = Vec::new();
    let mut found_dirs = Vec::new();
    let mut budget = 300;
    let mut stack = vec![("/".to_string(), 0)];
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = vfs.read_dir(&dir) else { continue };
        for entry in entries.into_iter().take(60) {
            budget -= 1;
            if budget == 0 {
                break;
            }
            let path = if dir == "/" { format!("/{}", entry.name) } else { format!("{dir}/{}", entry.name) };
            let Ok(meta) = vfs.symlink_metadata(&path) else { continue };
            match meta.file_type {
                FileType::Directory if depth < 5 => {
                    found_dirs.push(path.clone());
                    stack.push((path, depth + 1));
                }
                FileType::Regular => {
                    if let Ok(file) = vfs.open(&path, OpenFlags::RDONLY, 0) {
                        let mut offset = 0;
                        while offset < 1 << 20 {
                            match file.read_at(offset, &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => offset += n as u64,
                            }
                        }
                    }
                    found_files.push(path);
                }
                FileType::Symlink => {
                    let _ = vfs.read_link(&path);
                    let _ = vfs.metadata(&path);
                }
                _ => {}
            }
        }
        if budget == 0 {
            break;
        }
    }
    // Changes, each allowed to fail.
    if let Ok(file) = vfs.open("/new", OpenFlags::CREAT | OpenFlags::RDWR, 0o644) {
        let _ = file.write(&pattern(3000, 1));
        let _ = file.write_at(300_000, b"far");
        let _ = file.set_len(100);
    }
    let _ = vfs.mkdir("/newdir", 0o755);
    let _ = vfs.symlink(&"long".repeat(40), "/newdir/link");
    if let Some(file) = found_files.first() {
        let _ = vfs.rename(file, "/renamed");
        let _ = vfs.link("/renamed", "/newdir/linked");
        let _ = vfs.truncate("/renamed", 10);
    }
    if let Some(file) = found_files.get(1) {
        let _ = vfs.open(file, OpenFlags::RDWR, 0).map(|f| f.write_at(50, b"scribble"));
        let _ = vfs.unlink(file);
    }
    if let Some(dir) = found_dirs.last() {
        let _ = vfs.rename(dir, "/newdir/moved");
        let _ = vfs.rmdir("/newdir/moved");
    }
    let _ = vfs.statfs("/");
    let _ = fs.sync();
    true
}

#[test]
fn corrupt_metadata_never_panics() {
    let (base, metadata) = populated();
    assert!(metadata.len() > 20, "metadata blocks: {metadata:?}");
    let block_size = 1024;
    let mut mounted = 0;
    let runs = 500u64;
    for seed in 0..runs {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut image = base.clone();
        for _ in 0..1 + rng.below(8) {
            let block = metadata[rng.below(metadata.len() as u64) as usize] as usize;
            let at = block * block_size + rng.below(block_size as u64) as usize;
            if rng.below(2) == 0 {
                image[at] ^= 1 << rng.below(8);
            } else {
                image[at] = rng.below(256) as u8;
            }
        }
        mounted += u64::from(exercise(image));
    }
    // Most damage is below the superblock: the workload must really have run on it.
    assert!(mounted > runs / 2, "only {mounted} of {runs} damaged volumes mounted");
}

/// Whole structures replaced by garbage (not single bytes): each region in turn.
#[test]
fn garbage_structures_never_panic() {
    let (base, metadata) = populated();
    let mut rng = Rng(0x5eed);
    for &block in &metadata {
        for _ in 0..3 {
            let mut image = base.clone();
            let start = block as usize * 1024;
            for byte in &mut image[start..start + 1024] {
                *byte = rng.below(256) as u8;
            }
            exercise(image);
        }
        let mut image = base.clone();
        image[block as usize * 1024..(block as usize + 1) * 1024].fill(0xff);
        exercise(image);
    }
}
