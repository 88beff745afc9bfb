//! virtio-fs devices (feature `fs-virtiofs`): found once, on first use, among the devices the
//! platform discovered, and looked up by the tag the host gave each share.
//!
//! Kernel options: `root=virtiofs:TAG` mounts the share as `/`, `mount=virtiofs:TAG:/PATH`
//! mounts it at `/PATH`, `virtiofs_timeout=SECONDS` (default 30) bounds how long a reply may
//! take before the device is declared dead (its requests then fail with `EIO`); `0` waits
//! forever (for benchmarks under `-icount sleep=off`, where a halted guest's clock jumps to its
//! next deadline at once).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
pub use libos_fs_virtiofs::channel::FuseChannel;
pub use libos_fs_virtiofs::device::{Stats, VirtioFsDevice};
pub use libos_fs_virtiofs::protocol::op;
pub use libos_fs_virtiofs::{FuseStats, MountOptions, VirtioFs};
use libos_core::hal;
use spin::Once;

static DEVICES: Once<Vec<Arc<VirtioFsDevice>>> = Once::new();
static TIMEOUT_SECS: AtomicU64 = AtomicU64::new(libos_fs_virtiofs::device::DEFAULT_TIMEOUT.as_secs());

/// Sets the reply timeout of devices found after this call (boot: `virtiofs_timeout=`; 0: none).
pub fn set_timeout(seconds: u64) {
    TIMEOUT_SECS.store(seconds, Ordering::Relaxed);
}

/// Every virtio-fs device of the machine (probed on the first call).
pub fn devices() -> &'static [Arc<VirtioFsDevice>] {
    DEVICES.call_once(|| {
        let timeout = Some(TIMEOUT_SECS.load(Ordering::Relaxed)).filter(|&s| s > 0).map(Duration::from_secs);
        libos_fs_virtiofs::device::probe(&hal::platform().devices(), timeout)
    })
}

/// The device whose tag is `tag`; the error names the tags there are.
pub fn device(tag: &str) -> Result<Arc<VirtioFsDevice>, String> {
    let all = devices();
    all.iter().find(|d| d.tag() == tag).cloned().ok_or_else(|| {
        if all.is_empty() {
            alloc::format!("no virtio-fs device for tag `{tag}`: this machine has no virtio-fs device")
        } else {
            let tags: Vec<&str> = all.iter().map(|d| d.tag()).collect();
            alloc::format!("no virtio-fs device with tag `{tag}` (tags: {})", tags.join(", "))
        }
    })
}
