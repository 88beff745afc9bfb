//! The virtio-mmio transport, version 1 (legacy: `QueuePFN`, 32 feature bits, guest page size)
//! and version 2 (separate ring addresses, `QueueReady`, 64 feature bits, shared-memory regions
//! through `SHMSel`/`SHMLen`/`SHMBase`), virtio 1.2 §4.2.
//!
//! QEMU's `microvm` exposes legacy devices unless started with
//! `-global virtio-mmio.force-legacy=false`; `virt` on aarch64 likewise. Both are handled.

use crate::{QueueAddresses, Transport};
use alloc::format;
use alloc::string::String;
use libos_core::hal::{self, MemoryRegion};
use libos_core::{Errno, Result};

const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const LEGACY_GUEST_PAGE_SIZE: usize = 0x028;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const LEGACY_QUEUE_ALIGN: usize = 0x03c;
const LEGACY_QUEUE_PFN: usize = 0x040;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
const QUEUE_DRIVER_LOW: usize = 0x090;
const QUEUE_DRIVER_HIGH: usize = 0x094;
const QUEUE_DEVICE_LOW: usize = 0x0a0;
const QUEUE_DEVICE_HIGH: usize = 0x0a4;
const SHM_SEL: usize = 0x0ac;
const SHM_LEN_LOW: usize = 0x0b0;
const SHM_LEN_HIGH: usize = 0x0b4;
const SHM_BASE_LOW: usize = 0x0b8;
const SHM_BASE_HIGH: usize = 0x0bc;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

/// "virt" in little endian.
const MAGIC: u32 = 0x7472_6976;
/// The page size legacy devices compute `QueuePFN` addresses with.
const LEGACY_PAGE: u32 = 4096;

/// One virtio-mmio device.
#[derive(Debug)]
pub struct MmioTransport {
    /// Physical base (for messages).
    phys: u64,
    /// Virtual address of the registers.
    base: usize,
    /// Window size in bytes (config space ends there).
    size: usize,
    version: u32,
    device_id: u32,
}

impl MmioTransport {
    /// Probes the window at physical address `phys`: `None` unless it holds the virtio magic
    /// value, version 1 or 2, and a device (id != 0; QEMU leaves unused slots at id 0).
    ///
    /// # Safety
    /// `[phys, phys + size)` must be a virtio-mmio register window mapped as device memory at
    /// [`hal::Platform::phys_to_virt`], and no other driver may use it.
    pub unsafe fn probe(phys: u64, size: u64) -> Option<MmioTransport> {
        let base = hal::platform().phys_to_virt(phys);
        let mut transport = MmioTransport { phys, base, size: size.max(0x100) as usize, version: 0, device_id: 0 };
        if transport.read(MAGIC_VALUE) != MAGIC {
            return None;
        }
        transport.version = transport.read(VERSION);
        transport.device_id = transport.read(DEVICE_ID);
        (matches!(transport.version, 1 | 2) && transport.device_id != 0).then_some(transport)
    }

    /// The register interface version: 1 (legacy) or 2.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the 4-byte aligned registers inside the window `probe`'s
        // contract says is mapped device memory owned by this driver.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`; writes to these registers have no memory effects beyond the
        // device's documented behaviour.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn read_config_byte(&self, offset: usize) -> u8 {
        // SAFETY: `offset` lies in the configuration space inside the window (checked by the
        // caller against `size`), which QEMU and the spec allow to be read bytewise.
        unsafe { core::ptr::read_volatile((self.base + CONFIG + offset) as *const u8) }
    }
}

impl Transport for MmioTransport {
    fn describe(&self) -> String {
        format!("virtio-mmio v{} @{:#x}", self.version, self.phys)
    }

    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn is_modern(&self) -> bool {
        self.version == 2
    }

    fn device_features(&self) -> u64 {
        self.write(DEVICE_FEATURES_SEL, 0);
        let low = self.read(DEVICE_FEATURES);
        if self.version == 1 {
            return u64::from(low);
        }
        self.write(DEVICE_FEATURES_SEL, 1);
        u64::from(low) | (u64::from(self.read(DEVICE_FEATURES)) << 32)
    }

    fn set_driver_features(&self, features: u64) {
        self.write(DRIVER_FEATURES_SEL, 0);
        self.write(DRIVER_FEATURES, features as u32);
        if self.version == 2 {
            self.write(DRIVER_FEATURES_SEL, 1);
            self.write(DRIVER_FEATURES, (features >> 32) as u32);
        } else {
            self.write(LEGACY_GUEST_PAGE_SIZE, LEGACY_PAGE);
        }
    }

    fn status(&self) -> u8 {
        self.read(STATUS) as u8
    }

    fn set_status(&self, status: u8) {
        self.write(STATUS, u32::from(status));
    }

    fn max_queue_size(&self, queue: u16) -> u16 {
        self.write(QUEUE_SEL, u32::from(queue));
        if self.version == 2 && self.read(QUEUE_READY) != 0 {
            return 0; // already in use
        }
        self.read(QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16
    }

    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        self.write(QUEUE_SEL, u32::from(queue));
        self.write(QUEUE_NUM, u32::from(size));
        if self.version == 1 {
            let pfn = addresses.descriptors / u64::from(LEGACY_PAGE);
            let pfn = u32::try_from(pfn).map_err(|_| Errno::ENOMEM)?;
            self.write(LEGACY_QUEUE_ALIGN, LEGACY_PAGE);
            self.write(LEGACY_QUEUE_PFN, pfn);
        } else {
            self.write(QUEUE_DESC_LOW, addresses.descriptors as u32);
            self.write(QUEUE_DESC_HIGH, (addresses.descriptors >> 32) as u32);
            self.write(QUEUE_DRIVER_LOW, addresses.available as u32);
            self.write(QUEUE_DRIVER_HIGH, (addresses.available >> 32) as u32);
            self.write(QUEUE_DEVICE_LOW, addresses.used as u32);
            self.write(QUEUE_DEVICE_HIGH, (addresses.used >> 32) as u32);
            self.write(QUEUE_READY, 1);
        }
        Ok(())
    }

    fn notify(&self, queue: u16) {
        // The ring writes must be visible before the device looks (a store-store barrier that
        // also orders normal memory against the device register on aarch64).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.write(QUEUE_NOTIFY, u32::from(queue));
    }

    fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let limit = self.size.saturating_sub(CONFIG);
        // Legacy devices have no generation counter: one read.
        let generation = || if self.version == 2 { self.read(CONFIG_GENERATION) } else { 0 };
        crate::read_consistent(generation, || {
            for (i, byte) in buf.iter_mut().enumerate() {
                *byte = if offset.saturating_add(i) < limit { self.read_config_byte(offset + i) } else { 0 };
            }
        })
    }

    fn acknowledge_interrupt(&self) -> u32 {
        let pending = self.read(INTERRUPT_STATUS);
        if pending != 0 {
            self.write(INTERRUPT_ACK, pending);
        }
        pending
    }

    fn shared_memory(&self, id: u8) -> Option<MemoryRegion> {
        if self.version != 2 {
            return None; // the registers do not exist in the legacy layout
        }
        self.write(SHM_SEL, u32::from(id));
        let len = u64::from(self.read(SHM_LEN_LOW)) | (u64::from(self.read(SHM_LEN_HIGH)) << 32);
        // A region that does not exist reads as all ones (virtio 1.2 §4.2.2).
        if len == u64::MAX || len == 0 {
            return None;
        }
        let start = u64::from(self.read(SHM_BASE_LOW)) | (u64::from(self.read(SHM_BASE_HIGH)) << 32);
        Some(MemoryRegion { start, end: start.checked_add(len)? })
    }
}
