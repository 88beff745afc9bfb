//! The VFS conformance suite and the model test on ext2 volumes, each volume checked by
//! `e2fsck -fn` once the suite has dropped it (unmounted).

use super::*;
use libos_vfs::FileSystem;
use libos_vfs::conformance::{self, FileSystemFactory, ModelConfig};
use std::sync::Mutex;

/// A file system the factory made (while it lives) and its disk.
type Mounted = (std::sync::Weak<dyn FileSystem>, Arc<MemDisk>);

/// Makes volumes from one mke2fs image whose root has been emptied (the suite expects an
/// empty root; mke2fs makes `lost+found`), and remembers every disk for the final e2fsck.
struct Factory {
    template: Vec<u8>,
    disks: Mutex<Vec<Arc<MemDisk>>>,
    /// Each volume made and its file system, while it lives (for `durable_view`).
    mounted: Mutex<Vec<Mounted>>,
    keep: bool,
    /// `MountOptions::dir_index_bytes` of the volumes.
    dir_index_bytes: usize,
}

impl Factory {
    fn new(size: &str, block_size: u32, keep: bool) -> Factory {
        let disk = Arc::new(MemDisk::from_image(mkfs(size, block_size, &[])));
        let fs = mount(&disk);
        fs.root().rmdir("lost+found").expect("removing lost+found");
        drop(fs);
        Factory {
            template: disk.image(),
            disks: Mutex::new(Vec::new()),
            mounted: Mutex::new(Vec::new()),
            keep,
            dir_index_bytes: options().dir_index_bytes,
        }
    }

    /// Checks every volume the suite made with e2fsck; returns how many.
    fn check_all(&self) -> usize {
        let disks = std::mem::take(&mut *self.disks.lock().unwrap());
        for (i, disk) in disks.iter().enumerate() {
            assert_clean(&disk.image(), &format!("conformance volume {i}"));
        }
        disks.len()
    }
}

impl FileSystemFactory for Factory {
    fn name(&self) -> &str {
        "ext2"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        let disk = Arc::new(MemDisk::from_image(self.template.clone()));
        if self.keep {
            self.disks.lock().unwrap().push(disk.clone());
        }
        let options = MountOptions { dir_index_bytes: self.dir_index_bytes, ..options() };
        let fs: Arc<dyn FileSystem> = Ext2Fs::mount(disk.clone(), options).map_err(|e| format!("mount: {e}"))?;
        let mut mounted = self.mounted.lock().unwrap();
        mounted.retain(|(fs, _)| fs.strong_count() > 0);
        mounted.push((Arc::downgrade(&fs), disk));
        Ok(fs)
    }

    /// What the volume's disk would hold after a crash now (only flushed writes: nothing of
    /// the mounted instance's caches, nor of the disk's own volatile cache), mounted afresh.
    fn durable_view(&self, fs: &Arc<dyn FileSystem>) -> Option<Result<Arc<dyn FileSystem>, String>> {
        let mounted = self.mounted.lock().unwrap();
        let disk = mounted.iter().find(|(made, _)| made.upgrade().is_some_and(|made| Arc::ptr_eq(&made, fs))).map(|(_, disk)| disk.clone())?;
        let copy = Arc::new(MemDisk::from_image(disk.durable_image()));
        Some(Ext2Fs::mount(copy, options()).map(|fs| fs as Arc<dyn FileSystem>).map_err(|e| format!("mounting what the disk holds: {e}")))
    }
}

fn run_suite(block_size: u32) {
    let factory = Factory::new("8M", block_size, true);
    let mut failures = Vec::new();
    let report = conformance::run_all(&factory, &mut |name, result| {
        if let Err(why) = result {
            failures.push(format!("{name}: {why}"));
        }
    });
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(report.passed, conformance::CASES.len());
    let checked = factory.check_all();
    assert!(checked >= conformance::CASES.len(), "only {checked} volumes checked");
}

#[test]
fn conformance_suite_passes_with_1k_blocks_and_e2fsck_agrees() {
    run_suite(1024);
}

#[test]
fn conformance_suite_passes_with_4k_blocks_and_e2fsck_agrees() {
    run_suite(4096);
}

/// The model test with directories scanned linearly (no index memory) and with indexes
/// evicted all the time (a budget of a few small directories).
#[test]
fn model_test_without_and_with_tiny_directory_indexes() {
    for budget in [0, 8192] {
        let mut factory = Factory::new("1M", 1024, false);
        factory.dir_index_bytes = budget;
        let config = ModelConfig { first_seed: 1000, sequences: 300, operations: 200 };
        if let Err(why) = conformance::run_model(&factory, config) {
            panic!("dir_index_bytes {budget}: {why}");
        }
    }
}

#[test]
fn model_test_many_sequences() {
    // Small volumes: each sequence gets a fresh copy.
    let factory = Factory::new("1M", 1024, false);
    let config = ModelConfig { first_seed: 1, sequences: 600, operations: 200 };
    if let Err(why) = conformance::run_model(&factory, config) {
        panic!("{why}");
    }
}

