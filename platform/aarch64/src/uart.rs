//! The console UART the DTB names: an Arm PL011 (QEMU virt, cloud-hypervisor) or a 16550
//! (Firecracker). Written here because each needs two registers: a status bit to wait on and a
//! data register to write.
//!
//! Writing waits while the transmitter is full, then stores the byte; nothing else is needed
//! on QEMU, the VMMs or firmware that already set the UART up. A disabled PL011 is enabled for
//! transmission without touching the baud rate (which needs the UART clock).

use crate::dtb::Uart;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const PL011_DR: u64 = 0x00;
const PL011_FR: u64 = 0x18;
const PL011_CR: u64 = 0x30;
const PL011_FR_TXFF: u32 = 1 << 5;
const PL011_CR_UARTEN: u32 = 1 << 0;
const PL011_CR_TXE: u32 = 1 << 8;
const NS16550_THR: u64 = 0;
const NS16550_LSR: u64 = 5;
const NS16550_LSR_THRE: u8 = 1 << 5;

/// The UART's register base (0: none).
static BASE: AtomicU64 = AtomicU64::new(0);
/// 0: PL011; otherwise 1 + the 16550's reg-shift.
static KIND: AtomicU8 = AtomicU8::new(0);

/// The UART's register page, if there is a UART (for the regions programs must not be
/// placed over).
pub fn window() -> Option<libos_core::hal::MemoryRegion> {
    let base = BASE.load(Ordering::Relaxed);
    (base != 0).then(|| libos_core::hal::MemoryRegion { start: base, end: base.saturating_add(0x1000) })
}

/// Uses `uart` (identity-mapped as device memory) as the console.
pub fn init(uart: Uart) {
    match uart {
        Uart::Pl011(base) => {
            let cr = read32(base + PL011_CR);
            if cr & (PL011_CR_UARTEN | PL011_CR_TXE) != PL011_CR_UARTEN | PL011_CR_TXE {
                write32(base + PL011_CR, cr | PL011_CR_UARTEN | PL011_CR_TXE);
            }
            KIND.store(0, Ordering::Relaxed);
            BASE.store(base, Ordering::Relaxed);
        }
        Uart::Ns16550 { base, shift } => {
            KIND.store(1 + shift.min(4) as u8, Ordering::Relaxed);
            BASE.store(base, Ordering::Relaxed);
        }
    }
}

/// True when a UART was found.
pub fn present() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

fn read32(address: u64) -> u32 {
    // SAFETY: `address` is a register of the PL011 from the DTB, mapped as device memory by both
    // the early and the final page tables; 32-bit aligned accesses are how the PL011 is used.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}

fn write32(address: u64, value: u32) {
    // SAFETY: as in `read32`; writing DR sends a byte, writing CR enables the transmitter.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) };
}

fn read8(address: u64) -> u8 {
    // SAFETY: `address` is a register of the 16550 from the DTB (byte-wide, as the DTB said),
    // mapped as device memory; reading LSR has no side effects.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

fn write8(address: u64, value: u8) {
    // SAFETY: as in `read8`; writing THR sends a byte.
    unsafe { core::ptr::write_volatile(address as *mut u8, value) };
}

/// Writes bytes, turning `\n` into `\r\n` for terminals. Does nothing without a UART.
pub fn write_bytes(bytes: &[u8]) {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    let kind = KIND.load(Ordering::Relaxed);
    let put = |byte: u8| {
        if kind == 0 {
            while read32(base + PL011_FR) & PL011_FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            write32(base + PL011_DR, u32::from(byte));
        } else {
            let shift = u32::from(kind - 1);
            while read8(base + (NS16550_LSR << shift)) & NS16550_LSR_THRE == 0 {
                core::hint::spin_loop();
            }
            write8(base + (NS16550_THR << shift), byte);
        }
    };
    for &byte in bytes {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}
