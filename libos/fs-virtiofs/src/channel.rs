//! The boundary between the FUSE protocol and whatever carries its messages.
//!
//! The protocol half builds complete FUSE requests (`fuse_in_header` first, its `unique`
//! already assigned) and parses replies; a channel only moves bytes. The virtio device is one
//! channel, the fake server of the host tests another.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use libos_core::{Errno, Result};

/// A virtio-fs DAX window (the device's shared-memory region 0): guest memory into which the
/// host maps ranges of files on `FUSE_SETUPMAPPING`, so that reading a mapped range is a copy
/// from memory, with no request, no notification and no exit.
///
/// The window itself knows nothing of files: the mapping cache (`fs::dax`) decides what is
/// mapped where and never reads a range it has not mapped, or past the end of the file (the
/// host's mapping of a file ends at its last page; touching pages beyond it faults the host).
pub trait DaxWindow: Send + Sync {
    /// The window's size in bytes.
    fn size(&self) -> u64;

    /// Copies the window's bytes at `offset` into `buf`. `EINVAL` when the range does not lie
    /// inside the window (nothing is read then).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The address of the window's first byte when the platform lets programs use its pages
    /// (normal memory that system calls accept as buffers), so a file's chunks mapped there
    /// can be handed to a program's `mmap`; `None` otherwise (the host tests' fake window, a
    /// platform that keeps the window as device memory): `mmap` then copies.
    fn program_address(&self) -> Option<u64> {
        None
    }
}

/// Carries FUSE requests to a server and their replies back.
///
/// Implementations are shared by all threads using a mount: several requests may be in
/// flight at once (each caller blocks only for its own reply).
pub trait FuseChannel: Send + Sync {
    /// Sends one request (the concatenation of `request` parts, starting with the
    /// `fuse_in_header`) on a request queue and blocks until the server wrote its reply into
    /// the concatenation of `reply` parts (starting with room for the `fuse_out_header`).
    /// Returns the number of reply bytes the server wrote.
    ///
    /// Parts are passed to the device as they are (no bounce copy where the transport can
    /// avoid it), so large read/write payloads should be their own part.
    ///
    /// Errors: `EIO` when the device failed, went away, or did not answer in time (the
    /// implementation logs which opcode timed out); `E2BIG` when the parts exceed
    /// [`FuseChannel::max_transfer`].
    fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize>;

    /// Sends a request that has no reply (`FUSE_FORGET`, `FUSE_BATCH_FORGET`) on the
    /// high-priority queue. Does not wait for the server to process it.
    fn send_forget(&self, request: &[u8]) -> Result<()>;

    /// The largest total size (request plus reply buffers) one call can carry, bounded by
    /// the transport's descriptor limits. The protocol caps `max_write`/read sizes by it.
    fn max_transfer(&self) -> usize;

    /// The channel's epoch: it changes whenever the server lost its state (the device was
    /// reset after a failure), after which nodeids and file handles of the session before
    /// mean nothing, and a new session must start with `FUSE_INIT`. Channels that never lose
    /// their server keep the default, 0.
    fn epoch(&self) -> u64 {
        0
    }

    /// [`FuseChannel::request`] if the channel is still in `epoch`, else `ESTALE` without
    /// sending anything. Channels that can change epochs must make the check and the send
    /// one step (the default is only right for channels that never do).
    fn request_in(&self, epoch: u64, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        if epoch != self.epoch() {
            return Err(Errno::ESTALE);
        }
        self.request(request, reply)
    }

    /// [`FuseChannel::send_forget`] if the channel is still in `epoch`, else `ESTALE` (the
    /// server of a later epoch never heard of the node).
    fn send_forget_in(&self, epoch: u64, request: &[u8]) -> Result<()> {
        if epoch != self.epoch() {
            return Err(Errno::ESTALE);
        }
        self.send_forget(request)
    }

    /// Brings a channel that failed back (resetting and re-initialising the device), for a
    /// new session; returns the epoch it is in now (the current one if it had not failed).
    ///
    /// Errors: `EIO` when the channel cannot come back (the default: it never does), or the
    /// device's own errors from re-initialising it.
    fn reconnect(&self) -> Result<u64> {
        Err(Errno::EIO)
    }

    /// The device's DAX window, if it has one (see [`DaxWindow`]), for the mount that asks
    /// first: a second mount of the same device gets none (its mapping cache would map other
    /// files over the first one's slots) and reads with READ requests. Default: none.
    fn dax_window(&self) -> Option<Arc<dyn DaxWindow>> {
        None
    }
}
