//! The node cache (`node_cache`) and the read-ahead of shared nodes: cached names follow
//! unlink, rmdir, rename and truncation; a removed file is freed at once unless open; the
//! cache neither keeps the volume mounted nor grows past its bound; several readers of one
//! node each get their read-ahead.

use super::*;
use crate::node_cache::NodeCache;

/// Blocks of a file that fills the direct pointers and four leaves of 256 pointers (1 KiB
/// blocks).
const FOUR_LEAVES: usize = 4 * 256 + 12;
use libos_core::Errno;

fn free_inodes(vfs: &Vfs) -> u64 {
    vfs.statfs("/").unwrap().files_free
}

/// Stats `path` twice, so that its name is surely cached (the second is a cache hit).
fn stat_twice(vfs: &Vfs, path: &str) -> libos_vfs::Metadata {
    let first = vfs.metadata(path).unwrap();
    assert_eq!(vfs.metadata(path).unwrap(), first);
    first
}

#[test]
fn cached_names_follow_unlink_rmdir_and_rename() {
    let (disk, fs, vfs) = volume("8M", 1024, &[]);
    let free = free_inodes(&vfs);

    // unlink: the name goes, and its inode is freed at once (the cache does not keep it).
    write_file(&vfs, "/a", b"first");
    stat_twice(&vfs, "/a");
    vfs.unlink("/a").unwrap();
    assert_eq!(vfs.metadata("/a").err(), Some(Errno::ENOENT));
    assert_eq!(free_inodes(&vfs), free, "the unlinked inode was freed");
    write_file(&vfs, "/a", b"second file");
    assert_eq!(stat_twice(&vfs, "/a").size, 11, "the new file, not the cached old one");

    // rename: the old name goes, the new one names the moved inode, the replaced one is freed.
    write_file(&vfs, "/b", b"bee");
    let a = stat_twice(&vfs, "/a");
    stat_twice(&vfs, "/b");
    vfs.rename("/a", "/b").unwrap();
    assert_eq!(vfs.metadata("/a").err(), Some(Errno::ENOENT));
    assert_eq!(stat_twice(&vfs, "/b").ino, a.ino);
    assert_eq!(read_file(&vfs, "/b"), b"second file");
    assert_eq!(free_inodes(&vfs), free - 1, "the replaced inode was freed");

    // A directory renamed to a new parent: its cached children stay valid, `..` follows.
    vfs.mkdir("/d", 0o755).unwrap();
    vfs.mkdir("/e", 0o755).unwrap();
    write_file(&vfs, "/d/child", b"c");
    let child = stat_twice(&vfs, "/d/child");
    let e = stat_twice(&vfs, "/e");
    vfs.rename("/d", "/e/d").unwrap();
    assert_eq!(stat_twice(&vfs, "/e/d/child").ino, child.ino);
    assert_eq!(stat_twice(&vfs, "/e/d/..").ino, e.ino);
    assert_eq!(vfs.metadata("/d/child").err(), Some(Errno::ENOENT));

    // rmdir: the name goes, the directory is freed, and a new one takes the name.
    vfs.unlink("/e/d/child").unwrap();
    stat_twice(&vfs, "/e/d");
    vfs.rmdir("/e/d").unwrap();
    assert_eq!(vfs.metadata("/e/d").err(), Some(Errno::ENOENT));
    vfs.rmdir("/e").unwrap();
    assert_eq!(free_inodes(&vfs), free - 1, "the removed directories were freed");
    vfs.mkdir("/e", 0o700).unwrap();
    assert_eq!(stat_twice(&vfs, "/e").perm, 0o700);
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "renames and removals of cached names");
}

/// A removed file that is open stays readable and is freed when closed, though lookups
/// share its node with the cache; truncation and writes show through every open file.
#[test]
fn shared_nodes_of_open_files_follow_changes() {
    let (disk, fs, vfs) = volume("8M", 1024, &[]);
    let free = free_inodes(&vfs);
    write_file(&vfs, "/f", &pattern(5000, 1));
    let reader = vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    let writer = vfs.open("/f", OpenFlags::WRONLY, 0).unwrap();
    writer.set_len(100).unwrap();
    assert_eq!(vfs.metadata("/f").unwrap().size, 100);
    let mut buf = [0u8; 200];
    assert_eq!(reader.read_at(0, &mut buf).unwrap(), 100);
    assert_eq!(buf[..100], pattern(5000, 1)[..100]);
    writer.write_at(0, b"new").unwrap();
    assert_eq!(reader.read_at(0, &mut buf[..3]).unwrap(), 3);
    assert_eq!(&buf[..3], b"new");

    vfs.unlink("/f").unwrap();
    assert_eq!(vfs.metadata("/f").err(), Some(Errno::ENOENT));
    assert_eq!(reader.read_at(0, &mut buf[..3]).unwrap(), 3, "a removed file stays readable while open");
    assert_eq!(free_inodes(&vfs), free - 1, "kept while open");
    drop(writer);
    assert_eq!(free_inodes(&vfs), free - 1, "kept while open");
    drop(reader);
    assert_eq!(free_inodes(&vfs), free, "freed with its last open file");
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "removing an open file");
}

/// More names than the cache holds: it starts over and stays correct; unmounting with
/// cached nodes still marks the volume clean (the cache does not keep it mounted).
#[test]
fn the_node_cache_is_bounded_and_lets_the_volume_go() {
    let (disk, fs, vfs) = volume("16M", 1024, &[]);
    vfs.mkdir("/d", 0o755).unwrap();
    let capacity = fs.inner().state.lock().nodes.capacity();
    assert_eq!(capacity, NodeCache::MIN_CAPACITY, "a small buffer cache gets the fewest entries");
    let names = capacity + 100;
    for i in 0..names {
        drop(vfs.open(&format!("/d/{i}"), new_file(), 0o644).unwrap());
    }
    for i in 0..names {
        vfs.metadata(&format!("/d/{i}")).unwrap();
        assert!(fs.inner().state.lock().nodes.len() <= capacity);
    }
    for i in (0..names).step_by(3) {
        vfs.unlink(&format!("/d/{i}")).unwrap();
    }
    for i in 0..names {
        let expected = if i % 3 == 0 { Err(Errno::ENOENT) } else { Ok(()) };
        assert_eq!(vfs.metadata(&format!("/d/{i}")).map(|_| ()), expected, "/d/{i}");
    }
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "unmounting with cached nodes");
}

/// Two sequential readers of one file (one node, shared through the cache) each get
/// read-ahead, also with a random reader in between.
#[test]
fn readers_sharing_a_node_each_read_ahead() {
    let (disk, data, fs, vfs) = big_file_volume(3);
    let files: Vec<_> = (0..2).map(|_| vfs.open("/big", OpenFlags::RDONLY, 0).unwrap()).collect();
    let random = vfs.open("/big", OpenFlags::RDONLY, 0).unwrap();
    let reads_before = disk.stats().reads;
    let mut page = vec![0u8; 4096];
    // The second reader starts half-way (at its second read), so they never share blocks.
    let half = data.len() / 2;
    for i in 0..half / 4096 {
        for (f, file) in files.iter().enumerate() {
            let at = f * half + i * 4096;
            assert_eq!(file.read_at(at as u64, &mut page).unwrap(), 4096);
            assert!(page[..] == data[at..at + 4096], "reader {f} at {at}");
        }
        // Somewhere already read (cached): only its stream matters here.
        let at = (i * 7919 % (i + 1)) * 4096;
        assert_eq!(random.read_at(at as u64, &mut page).unwrap(), 4096);
    }
    let requests = disk.stats().reads - reads_before;
    assert!(requests < 200, "two interleaved sequential 2 MiB reads took {requests} device requests");
    assert!(fs.cache().stats().read_ahead > 800);
}

/// A node's memo of its last read (`read`) follows every change of the file: growth, a
/// truncation, a rewrite of the block, another file's writes taking freed blocks.
#[test]
fn the_memo_of_the_last_read_follows_changes() {
    let (disk, fs, vfs) = volume("8M", 1024, &[]);
    write_file(&vfs, "/f", &[b'a'; 1500]);
    let reader = vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    let writer = vfs.open("/f", OpenFlags::WRONLY, 0).unwrap();
    let mut buf = [0u8; 1024];
    let mut read = |at: u64, len: usize| {
        let n = reader.read_at(at, &mut buf[..len]).unwrap();
        buf[..n].to_vec()
    };
    assert_eq!(read(1100, 100), [b'a'; 100]);
    assert_eq!(read(1400, 300), [b'a'; 100], "short at the end");
    // Grown within the remembered block: the new bytes are seen.
    writer.write_at(1500, &[b'b'; 200]).unwrap();
    assert_eq!(read(1400, 300), [&[b'a'; 100][..], &[b'b'; 200][..]].concat());
    // Truncated: nothing past the new end, then zeros where it grows again.
    writer.set_len(1200).unwrap();
    assert_eq!(read(1100, 300), [b'a'; 100]);
    assert_eq!(read(1300, 10), b"");
    writer.set_len(1500).unwrap();
    assert_eq!(read(1100, 300), [&[b'a'; 100][..], &[0u8; 200][..]].concat());
    // Cut to nothing, its blocks taken by another file, then written again.
    writer.set_len(0).unwrap();
    write_file(&vfs, "/g", &[b'g'; 8192]);
    writer.write_at(1024, &[b'c'; 10]).unwrap();
    assert_eq!(read(1024, 20), [b'c'; 10]);
    assert_eq!(read(0, 10), [0u8; 10], "a hole");
    drop((reader, writer));
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "reads between changes");
}

/// The memo keeps the runs of every leaf its reads visited, and they follow changes too:
/// reads that move between leaves come back right, also after the file lost its last leaves
/// to a truncation and another file took their blocks.
#[test]
fn the_memo_of_several_leaves_follows_changes() {
    let (disk, fs, vfs) = volume("16M", 1024, &[]);
    let blocks = FOUR_LEAVES;
    let content = |block: usize| [(block % 251) as u8; 1024];
    let data: Vec<u8> = (0..blocks).flat_map(content).collect();
    write_file(&vfs, "/f", &data);
    let reader = vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    let writer = vfs.open("/f", OpenFlags::WRONLY, 0).unwrap();
    let mut buf = [0u8; 1024];
    let mut read = |block: usize| {
        let n = reader.read_at((block * 1024) as u64, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    // One block in each leaf, back and forth, twice: the second round is all memo hits.
    let visits = [20, 300, 20, 600, 5, 900, 299, 601, 1000, 12, 267];
    for _ in 0..2 {
        for &block in &visits {
            assert_eq!(read(block), content(block), "block {block}");
        }
    }
    // The last two leaves go, and their blocks go to another file.
    writer.set_len(524 * 1024).unwrap();
    write_file(&vfs, "/g", &vec![b'g'; 512 * 1024]);
    for &block in &visits {
        let expected = if block < 524 { content(block).to_vec() } else { Vec::new() };
        assert_eq!(read(block), expected, "block {block} after the truncation");
    }
    // Written again: a hole up to the new block.
    writer.write_at(900 * 1024, &[b'n'; 1024]).unwrap();
    assert_eq!(read(900), [b'n'; 1024]);
    assert_eq!(read(600), [0u8; 1024], "a hole");
    assert_eq!(read(300), content(300));
    drop((reader, writer));
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "reads across leaves between changes");
}

/// Creating a name caches its node (the next `stat` or `open` of a file just made is a hit),
/// and a bigger buffer cache gets a bigger node cache.
#[test]
fn created_names_are_cached_and_the_cache_grows_with_the_buffer_cache() {
    let (_disk, fs, vfs) = volume("8M", 1024, &[]);
    let cached = || fs.inner().state.lock().nodes.len();
    let before = cached();
    drop(vfs.open("/new", new_file(), 0o644).unwrap());
    vfs.mkdir("/dir", 0o755).unwrap();
    assert_eq!(cached(), before + 2, "both created names are cached");
    vfs.unlink("/new").unwrap();
    vfs.rmdir("/dir").unwrap();
    assert_eq!(cached(), before, "and leave with their names");
    assert_eq!(NodeCache::new(192 << 20).capacity(), 12288, "one entry per 16 KiB of buffer cache");
}

/// Random reads of a file laid out in one piece per leaf keep one run per leaf: a run is
/// found both ways from the block read, so reads landing anywhere in a leaf find it again
/// (runs made from each read's block onwards overlapped and missed each other).
#[test]
fn random_reads_of_a_contiguous_file_keep_one_run_per_leaf() {
    let (_disk, fs, vfs) = volume("16M", 1024, &[]);
    let blocks = FOUR_LEAVES;
    write_file(&vfs, "/f", &vec![7u8; blocks * 1024]);
    let file = vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    let ino = vfs.metadata("/f").unwrap().ino as u32;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = [0u8; 1024];
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let block = x % blocks as u64;
        assert_eq!(file.read_at(block * 1024, &mut buf), Ok(1024));
        assert!(buf.iter().all(|&b| b == 7));
    }
    let runs = fs.inner().state.lock().runs.borrow().count(ino);
    assert!(runs <= 5, "{runs} runs for a file in 5 leaves");
}
