//! # libos-block: block devices for libos
//!
//! What a disk file system (or a program reading `/dev/vda`) needs from a disk, whatever the
//! device:
//!
//! - [`BlockDevice`]: the object-safe trait every disk implements. Addresses are in 512-byte
//!   [`SECTOR_SIZE`] units (as in virtio-blk and Linux), transfers are multiples of the
//!   device's logical block size ([`BlockDevice::block_size`]) and go straight into the caller's
//!   buffers, as a scatter-gather list, with no bounce copy. Several callers may have requests
//!   in flight at once; `flush` makes everything written before it durable, and a write with
//!   `fua` is durable when it returns.
//! - [`virtio_blk`]: the virtio-blk driver (virtio 1.2 §5.2) on `libos-virtio`: virtio-mmio v1/v2
//!   and modern PCI, interrupt-driven (polling where no interrupt is routable), `FLUSH`, `FUA`
//!   (as a write followed by a flush when the device has no FUA), `DISCARD`, read-only devices.
//! - [`cache`]: the buffer cache disk file systems share (bounded, write-back, read-ahead).
//! - [`testing::MemDisk`] (feature `testing`): a RAM disk with fault injection for host tests.
//!
//! Users: `libos` (feature `blk`: devices as `/dev/vda`, `/dev/vdb`, ...), disk file systems
//! (`libos-fs-ext2`).
//!
//! `unsafe` lives only in [`virtio_blk`], where caller buffers are published to the device.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod virtio_blk;

use libos_core::{Errno, Result};

/// The unit of block addresses: 512 bytes, whatever the device's logical block size.
pub const SECTOR_SIZE: u64 = 512;

/// A disk.
///
/// Transfers: `sector` is in [`SECTOR_SIZE`] units; the byte offset (`sector * 512`) and the
/// total length of the buffers must be multiples of [`BlockDevice::block_size`] and stay
/// within [`BlockDevice::sectors`]; the individual buffers may have any length (the driver
/// splits them at page boundaries). Violations fail with `EINVAL` before the device sees them.
pub trait BlockDevice: Send + Sync {
    /// The device's name in `/dev` (`"vda"`).
    fn name(&self) -> &str;

    /// Capacity in [`SECTOR_SIZE`] units.
    fn sectors(&self) -> u64;

    /// The logical block size in bytes (a power of two, at least 512): the alignment of every
    /// transfer.
    fn block_size(&self) -> u32 {
        SECTOR_SIZE as u32
    }

    /// Whether the device refuses writes (they fail with `EROFS`).
    fn read_only(&self) -> bool;

    /// The largest total length of one request in bytes (callers split bigger transfers, or
    /// use [`read_all`]/[`write_all`]).
    fn max_transfer(&self) -> usize;

    /// Reads from `sector` into `buffers`, in order. Errors: `EINVAL` (alignment, range),
    /// `EIO` (the device failed the request or died).
    fn read(&self, sector: u64, buffers: &mut [&mut [u8]]) -> Result<()>;

    /// Writes `buffers` at `sector`. With `fua`, the data is on stable storage when this
    /// returns. Errors: `EROFS`, `EINVAL`, `EIO`.
    fn write(&self, sector: u64, buffers: &[&[u8]], fua: bool) -> Result<()>;

    /// Makes every write completed before this call durable. Errors: `EIO`.
    fn flush(&self) -> Result<()>;

    /// Tells the device that `count` sectors from `sector` hold no data any more (they may read
    /// as zeros or as the old data afterwards). Default: `EOPNOTSUPP`.
    fn discard(&self, sector: u64, count: u64) -> Result<()> {
        let _ = (sector, count);
        Err(Errno::EOPNOTSUPP)
    }
}

/// Checks a transfer of `len` bytes at `sector` against `device`'s alignment and capacity.
///
/// Errors: `EINVAL` for a misaligned or out-of-range transfer.
pub fn check_transfer(device: &dyn BlockDevice, sector: u64, len: usize) -> Result<()> {
    let block = u64::from(device.block_size());
    let len = len as u64;
    let offset = sector.checked_mul(SECTOR_SIZE).ok_or(Errno::EINVAL)?;
    let end = offset.checked_add(len).ok_or(Errno::EINVAL)?;
    if offset % block != 0 || len % block != 0 || end > device.sectors().saturating_mul(SECTOR_SIZE) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Checks one request's `buffers` (their lengths summed) at `sector`: [`check_transfer`], and at
/// most [`BlockDevice::max_transfer`] bytes. Returns the total length. Every driver's `read` and
/// `write` start with it.
pub fn check_request(device: &dyn BlockDevice, sector: u64, buffers: impl Iterator<Item = usize>) -> Result<usize> {
    let len = buffers.sum();
    check_transfer(device, sector, len)?;
    if len > device.max_transfer() {
        return Err(Errno::EINVAL);
    }
    Ok(len)
}

/// Reads `buffer.len()` bytes from `sector`, in requests of at most
/// [`BlockDevice::max_transfer`] bytes.
pub fn read_all(device: &dyn BlockDevice, sector: u64, buffer: &mut [u8]) -> Result<()> {
    check_transfer(device, sector, buffer.len())?;
    let step = chunk(device);
    let mut at = sector;
    for piece in buffer.chunks_mut(step) {
        let len = piece.len() as u64;
        device.read(at, &mut [piece])?;
        at += len / SECTOR_SIZE;
    }
    Ok(())
}

/// Writes `buffer` at `sector`, in requests of at most [`BlockDevice::max_transfer`] bytes.
pub fn write_all(device: &dyn BlockDevice, sector: u64, buffer: &[u8], fua: bool) -> Result<()> {
    check_transfer(device, sector, buffer.len())?;
    let step = chunk(device);
    let mut at = sector;
    for piece in buffer.chunks(step) {
        device.write(at, &[piece], fua)?;
        at += piece.len() as u64 / SECTOR_SIZE;
    }
    Ok(())
}

/// The largest request that keeps the logical block alignment.
fn chunk(device: &dyn BlockDevice) -> usize {
    let block = device.block_size() as usize;
    (device.max_transfer() / block).max(1) * block
}
