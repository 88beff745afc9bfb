//! Device interrupts on x86_64: I/O APIC pins (the GSIs of virtio-mmio devices on `microvm`,
//! from the DSDT) and PCI MSI-X messages, both delivered to vectors of this CPU's local APIC.
//!
//! Each routed interrupt gets its own vector from [`FIRST_VECTOR`] on; the trap handler calls
//! [`dispatch`] for those vectors, which runs the driver's handler through
//! [`libos_core::device::device_interrupt`] before the end-of-interrupt (level-triggered lines
//! must be quiet, i.e. acknowledged at the device, before the EOI reaches the I/O APIC).

use crate::{acpi, apic, devices, shutdown};
use core::sync::atomic::{AtomicU32, Ordering};
use libos_core::device;
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};

/// The first vector used for device interrupts.
pub const FIRST_VECTOR: u8 = 0x40;
/// How many device interrupts can be routed.
pub const VECTORS: usize = 16;

const UNUSED: u32 = u32::MAX;
#[allow(clippy::declare_interior_mutable_const)]
const FREE: AtomicU32 = AtomicU32::new(UNUSED);
/// The interrupt number (GSI) behind each vector.
static ROUTED: [AtomicU32; VECTORS] = [FREE; VECTORS];
static LOCK: IrqSpinLock<()> = IrqSpinLock::new(());

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const IOAPICVER: u32 = 0x01;
const REDIRECTION_TABLE: u32 = 0x10;
const LEVEL_TRIGGERED: u32 = 1 << 15;

fn read(base: u64, register: u32) -> u32 {
    // SAFETY: `base` is an I/O APIC from the MADT, below 4 GiB and so mapped as device memory;
    // IOREGSEL/IOWIN are its two 32-bit registers. Callers hold LOCK, so the select-then-access
    // pair is not interleaved.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, register);
        core::ptr::read_volatile((base + IOWIN) as *const u32)
    }
}

fn write(base: u64, register: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, register);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}

/// The I/O APIC serving `gsi` and its pin there.
fn find_pin(gsi: u32) -> Option<(u64, u32)> {
    let rsdp = shutdown::rsdp()?;
    let read_table = |addr: u64, buf: &mut [u8]| shutdown::read_firmware(addr, buf);
    let (madt, len) = acpi::find_table(rsdp, &read_table, b"APIC")?;
    let mut table = [0u8; 1024];
    let len = len.min(table.len());
    if !read_table(madt, &mut table[..len]) {
        return None;
    }
    let mut pin = None;
    devices::ioapics_in_madt(&table[..len], |io| {
        let base = u64::from(io.address);
        if pin.is_some() || gsi < io.gsi_base || base == 0 {
            return;
        }
        let entries = ((read(base, IOAPICVER) >> 16) & 0xff) + 1;
        if gsi - io.gsi_base < entries {
            pin = Some((base, gsi - io.gsi_base));
        }
    });
    pin
}

/// Routes `gsi` (level-triggered, active high, as virtio-mmio's `_CRS` says) to a free vector
/// of this CPU. Errors: `EINVAL` when no I/O APIC serves it, `ENOSPC` when all vectors are used.
pub fn enable(gsi: u32) -> Result<()> {
    let _guard = LOCK.lock();
    if ROUTED.iter().any(|r| r.load(Ordering::Relaxed) == gsi) {
        return Ok(());
    }
    let (base, pin) = find_pin(gsi).ok_or(Errno::EINVAL)?;
    let index = ROUTED.iter().position(|r| r.load(Ordering::Relaxed) == UNUSED).ok_or(Errno::ENOSPC)?;
    ROUTED[index].store(gsi, Ordering::Release);
    let vector = u32::from(FIRST_VECTOR) + index as u32;
    // Physical destination: this CPU's initial APIC id (CPUID leaf 1, EBX bits 31..24).
    let apic_id = (core::arch::x86_64::__cpuid(1).ebx >> 24) & 0xff;
    write(base, REDIRECTION_TABLE + 2 * pin + 1, apic_id << 24);
    write(base, REDIRECTION_TABLE + 2 * pin, vector | LEVEL_TRIGGERED);
    Ok(())
}

/// Binds device interrupt `interrupt` to a free vector of this CPU and returns the MSI message
/// that raises it: the local APIC's address with this CPU as the physical destination, and the
/// vector (fixed delivery, edge). Errors: `ENOSPC` when all vectors are used.
pub fn msi_message(interrupt: u32) -> Result<(u64, u32)> {
    let _guard = LOCK.lock();
    let index = match ROUTED.iter().position(|r| r.load(Ordering::Relaxed) == interrupt) {
        Some(index) => index,
        None => {
            let index = ROUTED.iter().position(|r| r.load(Ordering::Relaxed) == UNUSED).ok_or(Errno::ENOSPC)?;
            ROUTED[index].store(interrupt, Ordering::Release);
            index
        }
    };
    let apic_id = (core::arch::x86_64::__cpuid(1).ebx >> 24) & 0xff;
    Ok((0xfee0_0000 | (u64::from(apic_id) << 12), u32::from(FIRST_VECTOR) + index as u32))
}

/// Whether `vector` belongs to a routed device interrupt.
pub fn is_device_vector(vector: u64) -> bool {
    (u64::from(FIRST_VECTOR)..u64::from(FIRST_VECTOR) + VECTORS as u64).contains(&vector)
}

/// Handles device vector `vector`: the driver's handler, then the end of interrupt.
pub fn dispatch(vector: u64) {
    let gsi = ROUTED[(vector - u64::from(FIRST_VECTOR)) as usize].load(Ordering::Acquire);
    if gsi != UNUSED && !device::device_interrupt(gsi) {
        log::warn!("device interrupt {gsi} has no handler");
    }
    apic::end_of_interrupt();
}
