//! Disks (feature `blk`): every virtio-blk device, found once on first use and named `vda`,
//! `vdb`, ... in discovery order, and [`DiskNode`], the device node `/dev/vdX` that programs
//! read and write like a file.
//!
//! Kernel options: `blk_timeout=SECONDS` (default 30) bounds how long a request may take before
//! the device is declared dead (its requests then fail with `EIO`); `0` waits forever (for
//! benchmarks under `-icount sleep=off`). `blk_cache=BYTES` (suffix K, M or G; default 8M)
//! bounds the buffer cache of each disk file system (`root=ext2:vda`, `mount=ext2:vdb:/PATH`).
//!
//! A program reading `/dev/vda` goes straight to the device: a transfer aligned to the device's
//! logical block size is one request into the caller's buffer (what `O_DIRECT` asks for, and
//! what every aligned transfer gets); an unaligned one reads (and for a write, modifies and
//! writes back) the blocks it touches through a bounce buffer. Nothing of the raw device is
//! cached, so `O_DIRECT` I/O is never cached twice; file systems on a disk cache through
//! `libos_block::cache`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
pub use libos_block::virtio_blk::VirtioBlkDevice;
pub use libos_block::{BlockDevice, SECTOR_SIZE};
use libos_core::blocking::Mutex;
use libos_core::sync::Once;
use libos_core::{Errno, Result, hal};
#[cfg(feature = "vfs")]
use libos_vfs::{FileType, Metadata, Node, Timestamp};

static DEVICES: Once<Vec<Arc<VirtioBlkDevice>>> = Once::new();
static CACHE_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_CACHE_BYTES);
static TIMEOUT_SECS: AtomicU64 = AtomicU64::new(libos_block::virtio_blk::DEFAULT_TIMEOUT.as_secs());

/// The buffer cache of each disk file system by default: 8 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 8 << 20;

/// Sets the buffer cache size of disk file systems mounted after this call (boot:
/// `blk_cache=`).
pub fn set_cache_bytes(bytes: u64) {
    CACHE_BYTES.store(bytes, Ordering::Relaxed);
}

/// The buffer cache size of the next disk file system mounted.
pub fn cache_bytes() -> usize {
    usize::try_from(CACHE_BYTES.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
}

/// Sets the request timeout of devices found after this call (boot: `blk_timeout=`; 0: none).
pub fn set_timeout(seconds: u64) {
    TIMEOUT_SECS.store(seconds, Ordering::Relaxed);
}

/// Every virtio-blk device of the machine (probed on the first call).
pub fn devices() -> &'static [Arc<VirtioBlkDevice>] {
    DEVICES.call_once(|| {
        let timeout = Some(TIMEOUT_SECS.load(Ordering::Relaxed)).filter(|&s| s > 0).map(Duration::from_secs);
        libos_block::virtio_blk::probe(&hal::platform().devices(), timeout)
    })
}

/// The disk called `name` (`vda`, ...); the error names the disks there are.
pub fn device(name: &str) -> core::result::Result<Arc<VirtioBlkDevice>, String> {
    let all = devices();
    all.iter().find(|d| d.name() == name).cloned().ok_or_else(|| {
        if all.is_empty() {
            alloc::format!("no disk `{name}`: this machine has no virtio-blk device")
        } else {
            let names: Vec<&str> = all.iter().map(|d| d.name()).collect();
            alloc::format!("no disk `{name}` (disks: {})", names.join(", "))
        }
    })
}

/// Linux's block major for virtio-blk disks as QEMU guests usually see it.
const VIRTIO_BLK_MAJOR: u64 = 254;

/// `/dev/vdX`: a disk as a file of its capacity.
#[cfg(feature = "vfs")]
pub struct DiskNode {
    disk: Arc<dyn BlockDevice>,
    ino: u64,
    rdev: u64,
    /// Serialises read-modify-write of partial blocks, so two unaligned writes to the same
    /// block do not undo each other.
    partial: Mutex<()>,
}

#[cfg(feature = "vfs")]
impl DiskNode {
    /// The node of the `index`th disk (inode and minor numbers follow the index).
    pub fn new(disk: Arc<dyn BlockDevice>, index: usize) -> DiskNode {
        let index = index as u64;
        DiskNode { disk, ino: libos_vfs::devfs::FIRST_EXTRA_INO + index, rdev: (VIRTIO_BLK_MAJOR << 8) | (index * 16), partial: Mutex::new(()) }
    }

    fn capacity(&self) -> u64 {
        self.disk.sectors() * SECTOR_SIZE
    }

    /// The bytes of a transfer of `len` at `offset` that lie on the disk.
    fn clip(&self, offset: u64, len: usize) -> usize {
        self.capacity().saturating_sub(offset).min(len as u64) as usize
    }

    /// Reads the whole blocks covering `offset..offset + len` into a bounce buffer; returns
    /// it with the sector it starts at.
    fn covering_blocks(&self, offset: u64, len: usize) -> Result<(u64, Vec<u8>)> {
        let block = u64::from(self.disk.block_size());
        let start = offset / block * block;
        let end = (offset + len as u64).div_ceil(block) * block;
        let mut bounce = Vec::new();
        bounce.try_reserve_exact((end - start) as usize).map_err(|_| Errno::ENOMEM)?;
        bounce.resize((end - start) as usize, 0);
        libos_block::read_all(&*self.disk, start / SECTOR_SIZE, &mut bounce)?;
        Ok((start / SECTOR_SIZE, bounce))
    }

    fn aligned(&self, offset: u64, len: usize) -> bool {
        let block = u64::from(self.disk.block_size());
        offset % block == 0 && len as u64 % block == 0
    }
}

#[cfg(feature = "vfs")]
impl Node for DiskNode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        FileType::BlockDevice
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata {
            dev: 0,
            ino: self.ino,
            file_type: FileType::BlockDevice,
            perm: if self.disk.read_only() { 0o440 } else { 0o660 },
            // root:disk, as udev sets up disks on Linux (`/etc/group` in the default root
            // names group 6).
            uid: 0,
            gid: 6,
            nlink: 1,
            // Linux reports 0 here and the capacity through `lseek(SEEK_END)` and
            // `BLKGETSIZE64`; the capacity lets both of ours work from one figure.
            size: self.capacity(),
            blocks: 0,
            block_size: self.disk.block_size(),
            rdev: self.rdev,
            atime: Timestamp(0),
            mtime: Timestamp(0),
            ctime: Timestamp(0),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let len = self.clip(offset, buf.len());
        if len == 0 {
            return Ok(0);
        }
        let buf = &mut buf[..len];
        if self.aligned(offset, len) {
            libos_block::read_all(&*self.disk, offset / SECTOR_SIZE, buf)?;
        } else {
            let (start, bounce) = self.covering_blocks(offset, len)?;
            let skip = (offset - start * SECTOR_SIZE) as usize;
            buf.copy_from_slice(&bounce[skip..skip + len]);
        }
        Ok(len)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        if self.disk.read_only() {
            return Err(Errno::EROFS);
        }
        let len = self.clip(offset, buf.len());
        if len == 0 {
            return if buf.is_empty() { Ok(0) } else { Err(Errno::ENOSPC) };
        }
        let buf = &buf[..len];
        if self.aligned(offset, len) {
            libos_block::write_all(&*self.disk, offset / SECTOR_SIZE, buf, false)?;
        } else {
            let _partial = self.partial.lock();
            let (start, mut bounce) = self.covering_blocks(offset, len)?;
            let skip = (offset - start * SECTOR_SIZE) as usize;
            bounce[skip..skip + len].copy_from_slice(buf);
            libos_block::write_all(&*self.disk, start, &bounce, false)?;
        }
        Ok(len)
    }

    fn sync(&self) -> Result<()> {
        self.disk.flush()
    }
}

/// The devfs nodes of every disk: `(name, node)`.
#[cfg(feature = "vfs")]
pub fn device_nodes() -> Vec<(String, Arc<dyn Node>)> {
    devices()
        .iter()
        .enumerate()
        .map(|(index, disk)| (String::from(disk.name()), Arc::new(DiskNode::new(disk.clone(), index)) as Arc<dyn Node>))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_block::testing::MemDisk;

    fn disk_node(disk: MemDisk) -> (DiskNode, Arc<MemDisk>) {
        let disk = Arc::new(disk);
        (DiskNode::new(disk.clone(), 0), disk)
    }

    #[test]
    fn unaligned_reads_and_writes_touch_only_their_bytes() {
        let (node, disk) = disk_node(MemDisk::from_image((0..16384u32).map(|i| (i % 253) as u8).collect()).with_block_size(4096));
        let mut before = disk.image();
        node.write_at(4000, &[0xaa; 300]).unwrap();
        before[4000..4300].fill(0xaa);
        assert_eq!(disk.image(), before);
        let mut back = [0u8; 700];
        assert_eq!(node.read_at(3900, &mut back).unwrap(), 700);
        assert_eq!(&back[..], &before[3900..4600]);
    }

    #[test]
    fn transfers_stop_at_the_end_of_the_disk() {
        let (node, _) = disk_node(MemDisk::new(8192));
        let mut buf = [0u8; 1024];
        assert_eq!(node.read_at(7680, &mut buf).unwrap(), 512, "a read past the end is short");
        assert_eq!(node.read_at(8192, &mut buf).unwrap(), 0, "at the end: end of file");
        assert_eq!(node.write_at(7680, &[1; 1024]).unwrap(), 512, "a write past the end is short");
        assert_eq!(node.write_at(8192, &[1; 10]), Err(Errno::ENOSPC));
        assert_eq!(node.metadata().unwrap().size, 8192);
        assert_eq!(node.metadata().unwrap().file_type, FileType::BlockDevice);
    }

    #[test]
    fn read_only_disks_refuse_writes_and_device_errors_are_eio() {
        let (node, _) = disk_node(MemDisk::new(8192).read_only());
        assert_eq!(node.write_at(0, &[1; 512]), Err(Errno::EROFS));
        let (node, disk) = disk_node(MemDisk::new(8192));
        disk.fail_sectors(Some(2..3));
        assert_eq!(node.read_at(1024, &mut [0u8; 512]), Err(Errno::EIO));
        assert_eq!(node.write_at(1100, &[1; 10]), Err(Errno::EIO));
        assert_eq!(node.read_at(0, &mut [0u8; 512]), Ok(512));
    }
}
