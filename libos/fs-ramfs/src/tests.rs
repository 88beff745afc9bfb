//! Host tests: the whole conformance suite, the thorough model test, and what is specific to
//! ramfs (memory accounting, the size limit, deterministic times).

use super::*;
use libos_vfs::conformance::{self, FileSystemFactory, ModelConfig};
use libos_vfs::{OpenFlags, TickClock, Vfs};

struct Factory;

impl FileSystemFactory for Factory {
    fn name(&self) -> &str {
        "ramfs"
    }

    fn create(&self) -> core::result::Result<Arc<dyn FileSystem>, String> {
        Ok(Arc::new(RamFs::with_options(None, Arc::new(TickClock::new(0)))))
    }
}

#[test]
fn conformance_suite_passes() {
    let mut failures = Vec::new();
    let report = conformance::run_all(&Factory, &mut |name, result| {
        if let Err(why) = result {
            failures.push(format!("{name}: {why}"));
        }
    });
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(report.passed, conformance::CASES.len());
    assert!(report.passed >= 25);
}

#[test]
fn model_test_thousands_of_sequences() {
    if let Err(why) = conformance::run_model(&Factory, ModelConfig::THOROUGH) {
        panic!("{why}");
    }
}

fn vfs_with(fs: &Arc<RamFs>) -> Vfs {
    Vfs::new(fs.clone())
}

fn new_file() -> OpenFlags {
    OpenFlags::CREAT | OpenFlags::RDWR
}

#[test]
fn memory_is_reclaimed_when_the_last_open_file_closes() {
    let fs = Arc::new(RamFs::with_options(None, Arc::new(TickClock::new(0))));
    let vfs = vfs_with(&fs);
    let nodes = fs.node_count();
    let file = vfs.open("/f", new_file(), 0o644).unwrap();
    file.write(&[7u8; 3 * PAGE_SIZE + 1]).unwrap();
    assert_eq!(fs.used_bytes(), 4 * PAGE);
    vfs.unlink("/f").unwrap();
    assert_eq!(fs.used_bytes(), 4 * PAGE, "data must live while open");
    assert_eq!(fs.node_count(), nodes + 1);
    drop(file);
    assert_eq!(fs.used_bytes(), 0);
    assert_eq!(fs.node_count(), nodes);
}

#[test]
fn holes_take_no_memory_and_truncate_frees_pages() {
    let fs = Arc::new(RamFs::new());
    let vfs = vfs_with(&fs);
    let file = vfs.open("/f", new_file(), 0o644).unwrap();
    file.write_at(1 << 40, b"x").unwrap();
    assert_eq!(fs.used_bytes(), PAGE);
    file.write_at(0, &[1u8; 10_000]).unwrap();
    assert_eq!(fs.used_bytes(), 4 * PAGE);
    file.set_len(5000).unwrap();
    assert_eq!(fs.used_bytes(), 2 * PAGE);
    assert_eq!(file.metadata().unwrap().blocks, 2 * PAGE / 512);
}

#[test]
fn size_limit_gives_enospc_and_short_writes() {
    let fs = Arc::new(RamFs::with_limit(3 * PAGE));
    let vfs = vfs_with(&fs);
    let file = vfs.open("/f", new_file(), 0o644).unwrap();
    assert_eq!(file.write(&[1u8; 5 * PAGE_SIZE]), Ok(3 * PAGE_SIZE), "a write that runs out is short");
    assert_eq!(file.write(&[1u8; 10]), Err(Errno::ENOSPC));
    // Rewriting allocated pages needs no space.
    assert_eq!(file.write_at(0, &[2u8; 100]), Ok(100));
    let stat = vfs.statfs("/").unwrap();
    assert_eq!((stat.blocks, stat.blocks_free, stat.fs_type), (3, 0, RAMFS_MAGIC));
    vfs.unlink("/f").unwrap();
    drop(file);
    assert_eq!(vfs.statfs("/").unwrap().blocks_free, 3);
    let again = vfs.open("/g", new_file(), 0o644).unwrap();
    assert_eq!(again.write(&[1u8; PAGE_SIZE]), Ok(PAGE_SIZE));
}

#[test]
fn times_come_from_the_clock() {
    let fs = Arc::new(RamFs::with_options(None, Arc::new(TickClock::new(1000))));
    let vfs = vfs_with(&fs);
    let file = vfs.open("/f", new_file(), 0o644).unwrap();
    let created = file.metadata().unwrap();
    assert!(created.mtime.0 > 1000 && created.mtime == created.ctime);
    file.write(b"x").unwrap();
    let written = file.metadata().unwrap();
    assert!(written.mtime > created.mtime && written.ctime > created.ctime);
    assert_eq!(written.atime, created.atime);
    let mut buf = [0u8; 1];
    file.read_at(0, &mut buf).unwrap();
    assert!(file.metadata().unwrap().atime > written.atime);
    let root = vfs.metadata("/").unwrap().mtime;
    vfs.mkdir("/d", 0o755).unwrap();
    assert!(vfs.metadata("/").unwrap().mtime > root);
}

#[test]
fn large_directories_list_every_entry() {
    let fs = Arc::new(RamFs::new());
    let vfs = vfs_with(&fs);
    for i in 0..5000 {
        vfs.open(&format!("/f{i}"), new_file(), 0o644).unwrap();
    }
    assert_eq!(vfs.read_dir("/").unwrap().len(), 5000);
    assert!(vfs.metadata("/f4999").is_ok());
}

#[test]
fn cpio_archives_unpack_into_ramfs() {
    use libos_vfs::cpio::{self, Builder, Unpacked};
    let fs = Arc::new(RamFs::new());
    let vfs = vfs_with(&fs);
    let mut builder = Builder::new();
    builder.dir(".", 0o755).dir("etc", 0o750).file("etc/motd", 0o640, b"hello\n").symlink("motd", "etc/motd");
    builder.file("big", 0o644, &[9u8; 10_000]);
    let archive = builder.finish();
    vfs.mkdir("/init", 0o755).unwrap();
    let done = cpio::unpack(&vfs, &archive, "/init").unwrap();
    assert_eq!(done, Unpacked { dirs: 1, files: 2, symlinks: 1, bytes: 10_006 });
    assert_eq!(vfs.metadata("/init/etc").unwrap().mode(), 0o040_750);
    assert_eq!(vfs.metadata("/init/motd").unwrap().mode(), 0o100_640);
    assert_eq!(vfs.metadata("/init/big").unwrap().size, 10_000);
    // Unpacking again replaces files and reuses directories; a symlink in the way is EEXIST.
    assert_eq!(cpio::unpack(&vfs, &archive, "/init").unwrap_err(), Errno::EEXIST);
    let escape = {
        let mut b = Builder::new();
        b.file("../outside", 0o644, b"x");
        b.finish()
    };
    assert_eq!(cpio::unpack(&vfs, &escape, "/init").unwrap_err(), Errno::EINVAL);
    assert_eq!(vfs.metadata("/outside").unwrap_err(), Errno::ENOENT);
    assert_eq!(cpio::unpack(&vfs, &archive, "/init/big").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(cpio::unpack(&vfs, b"garbage", "/").unwrap_err(), Errno::EINVAL);
}

#[test]
fn a_very_deep_tree_is_freed_without_recursion() {
    let fs = Arc::new(RamFs::new());
    let vfs = vfs_with(&fs);
    for _ in 0..100_000 {
        vfs.mkdir("d", 0o755).unwrap();
        vfs.chdir("d").unwrap();
    }
    vfs.open("leaf", new_file(), 0o644).unwrap().write(b"deep").unwrap();
    assert_eq!(fs.node_count(), 100_002);
    let held = vfs.open("leaf", OpenFlags::RDONLY, 0).unwrap();
    // An open directory keeps its mount (and so the RamFs) until it is closed, last.
    let held_dir = vfs.open(".", OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).unwrap();
    assert_eq!(vfs.current_dir(), Err(Errno::ENAMETOOLONG));
    // The subtree check walks up from the new parent (here the cwd, 100 000 levels down).
    assert_eq!(vfs.rename("/d", "moved"), Err(Errno::EINVAL));
    assert_eq!(vfs.rename("/d/d", "/d2"), Ok(()));
    vfs.chdir("/").unwrap();
    // Dropping the namespace drops the last RamFs reference: a recursive drop of 100 000
    // levels would overflow this thread's stack.
    drop(vfs);
    drop(fs);
    let mut buf = [0u8; 4];
    assert_eq!(held.read(&mut buf), Ok(4));
    drop(held);
    drop(held_dir);
}
