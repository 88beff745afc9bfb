//! [`MemDisk`]: a RAM disk for host tests of disk file systems and of code above
//! [`BlockDevice`], with what a real disk can do to its user: refuse writes (read-only), fail
//! requests on chosen sectors, and lose every write not yet flushed ([`MemDisk::crash`]).

use crate::{BlockDevice, SECTOR_SIZE, check_request, check_transfer};
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

/// Request counters of a [`MemDisk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Read requests.
    pub reads: u64,
    /// Write requests.
    pub writes: u64,
    /// Flushes (including the implicit one of each FUA write).
    pub flushes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

struct State {
    /// What a reader sees now.
    current: Vec<u8>,
    /// What survives a crash: `current` as of the last flush.
    durable: Vec<u8>,
    failing: Option<Range<u64>>,
    stats: DiskStats,
}

/// A disk in RAM.
pub struct MemDisk {
    name: String,
    block_size: u32,
    read_only: bool,
    max_transfer: usize,
    state: SpinLock<State>,
}

impl MemDisk {
    /// A zeroed disk of `bytes` (rounded down to whole sectors) with 512-byte blocks.
    pub fn new(bytes: u64) -> MemDisk {
        MemDisk::from_image(alloc::vec![0; (bytes - bytes % SECTOR_SIZE) as usize])
    }

    /// A disk holding `image` (e.g. a file made by `mke2fs`); its length is cut to whole
    /// sectors.
    pub fn from_image(mut image: Vec<u8>) -> MemDisk {
        image.truncate(image.len() - image.len() % SECTOR_SIZE as usize);
        MemDisk {
            name: String::from("memdisk"),
            block_size: SECTOR_SIZE as u32,
            read_only: false,
            max_transfer: 1 << 20,
            state: SpinLock::new(State {
                durable: image.clone(),
                current: image,
                failing: None,
                stats: DiskStats::default(),
            }),
        }
    }

    /// The same disk, refusing writes.
    pub fn read_only(mut self) -> MemDisk {
        self.read_only = true;
        self
    }

    /// The same disk with a logical block size of `bytes` (a power of two >= 512).
    pub fn with_block_size(mut self, bytes: u32) -> MemDisk {
        assert!(bytes.is_power_of_two() && u64::from(bytes) >= SECTOR_SIZE);
        self.block_size = bytes;
        self
    }

    /// The same disk with requests of at most `bytes`.
    pub fn with_max_transfer(mut self, bytes: usize) -> MemDisk {
        self.max_transfer = bytes;
        self
    }

    /// Requests touching `sectors` fail with `EIO` from now on (`None`: none fail).
    pub fn fail_sectors(&self, sectors: Option<Range<u64>>) {
        self.state.lock().failing = sectors;
    }

    /// The disk's contents as a reader sees them.
    pub fn image(&self) -> Vec<u8> {
        self.state.lock().current.clone()
    }

    /// What a power cut now would leave (the contents as of the last flush), without cutting
    /// anything: the disk keeps its unflushed writes.
    pub fn durable_image(&self) -> Vec<u8> {
        self.state.lock().durable.clone()
    }

    /// Simulates a power cut: every write since the last flush is lost. Returns the surviving
    /// contents (the disk keeps them too).
    pub fn crash(&self) -> Vec<u8> {
        let mut state = self.state.lock();
        state.current = state.durable.clone();
        state.current.clone()
    }

    /// Counters since creation.
    pub fn stats(&self) -> DiskStats {
        self.state.lock().stats
    }

    fn failing(state: &State, sector: u64, len: usize) -> bool {
        let end = sector + (len as u64).div_ceil(SECTOR_SIZE);
        state.failing.as_ref().is_some_and(|bad| bad.start < end && sector < bad.end)
    }
}

impl BlockDevice for MemDisk {
    fn name(&self) -> &str {
        &self.name
    }

    fn sectors(&self) -> u64 {
        self.state.lock().current.len() as u64 / SECTOR_SIZE
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    fn read(&self, sector: u64, buffers: &mut [&mut [u8]]) -> Result<()> {
        let len = check_request(self, sector, buffers.iter().map(|b| b.len()))?;
        let mut state = self.state.lock();
        if Self::failing(&state, sector, len) {
            return Err(Errno::EIO);
        }
        let mut at = (sector * SECTOR_SIZE) as usize;
        for buffer in buffers.iter_mut() {
            buffer.copy_from_slice(&state.current[at..at + buffer.len()]);
            at += buffer.len();
        }
        state.stats.reads += 1;
        state.stats.bytes_read += len as u64;
        Ok(())
    }

    fn write(&self, sector: u64, buffers: &[&[u8]], fua: bool) -> Result<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let len = check_request(self, sector, buffers.iter().map(|b| b.len()))?;
        let mut state = self.state.lock();
        if Self::failing(&state, sector, len) {
            return Err(Errno::EIO);
        }
        let start = (sector * SECTOR_SIZE) as usize;
        let mut at = start;
        for buffer in buffers {
            state.current[at..at + buffer.len()].copy_from_slice(buffer);
            at += buffer.len();
        }
        if fua {
            let State { current, durable, .. } = &mut *state;
            durable[start..at].copy_from_slice(&current[start..at]);
            state.stats.flushes += 1;
        }
        state.stats.writes += 1;
        state.stats.bytes_written += len as u64;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut state = self.state.lock();
        if state.failing.is_some() {
            return Err(Errno::EIO);
        }
        state.durable = state.current.clone();
        state.stats.flushes += 1;
        Ok(())
    }

    fn discard(&self, sector: u64, count: u64) -> Result<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let len = usize::try_from(count * SECTOR_SIZE).map_err(|_| Errno::EINVAL)?;
        check_transfer(self, sector, len)?;
        let start = (sector * SECTOR_SIZE) as usize;
        self.state.lock().current[start..start + len].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_all, write_all};

    #[test]
    fn writes_are_read_back_across_scattered_buffers() {
        let disk = MemDisk::new(64 * 1024);
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let (a, b) = data.split_at(1000);
        disk.write(8, &[a, b], false).unwrap();
        let mut x = alloc::vec![0u8; 96];
        let mut y = alloc::vec![0u8; 4000];
        disk.read(8, &mut [&mut x, &mut y]).unwrap();
        assert_eq!([x, y].concat(), data);
    }

    #[test]
    fn misaligned_and_out_of_range_transfers_are_einval() {
        let disk = MemDisk::new(8192).with_block_size(4096);
        assert_eq!(disk.read(1, &mut [&mut [0u8; 4096]]), Err(Errno::EINVAL), "sector 1 is not 4 KiB aligned");
        assert_eq!(disk.read(0, &mut [&mut [0u8; 512]]), Err(Errno::EINVAL), "shorter than a block");
        assert_eq!(disk.read(8, &mut [&mut [0u8; 8192]]), Err(Errno::EINVAL), "past the end");
        assert_eq!(disk.read(u64::MAX, &mut [&mut [0u8; 4096]]), Err(Errno::EINVAL), "overflow");
        assert_eq!(disk.write(8, &[&[0u8; 4096]], false), Ok(()));
    }

    #[test]
    fn read_only_disks_refuse_writes_with_erofs() {
        let disk = MemDisk::new(4096).read_only();
        assert_eq!(disk.write(0, &[&[1u8; 512]], false), Err(Errno::EROFS));
        assert_eq!(disk.discard(0, 1), Err(Errno::EROFS));
    }

    #[test]
    fn a_crash_keeps_only_flushed_and_fua_writes() {
        let disk = MemDisk::new(4096);
        disk.write(0, &[&[1u8; 512]], false).unwrap();
        disk.flush().unwrap();
        disk.write(1, &[&[2u8; 512]], false).unwrap();
        disk.write(2, &[&[3u8; 512]], true).unwrap();
        let survived = disk.crash();
        assert_eq!((survived[0], survived[512], survived[1024]), (1, 0, 3));
    }

    #[test]
    fn injected_failures_are_eio_only_where_asked() {
        let disk = MemDisk::new(8192);
        disk.fail_sectors(Some(4..5));
        assert_eq!(disk.read(3, &mut [&mut [0u8; 1024]]), Err(Errno::EIO));
        assert_eq!(disk.read(0, &mut [&mut [0u8; 2048]]), Ok(()));
        assert_eq!(disk.write(4, &[&[0u8; 512]], false), Err(Errno::EIO));
    }

    #[test]
    fn big_transfers_are_split_by_read_all_and_write_all() {
        let disk = MemDisk::new(1 << 20).with_max_transfer(8192);
        let data: Vec<u8> = (0..(300 * 1024u32)).map(|i| (i % 251) as u8).collect();
        write_all(&disk, 2, &data, false).unwrap();
        let mut back = alloc::vec![0u8; data.len()];
        read_all(&disk, 2, &mut back).unwrap();
        assert_eq!(back, data);
        assert!(disk.stats().writes >= 38);
    }
}
