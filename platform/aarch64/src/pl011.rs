//! The PL011 UART: the console (its address comes from the DTB).
//!
//! Writing waits while the transmit FIFO is full, then stores the byte; nothing else is needed
//! on QEMU, cloud-hypervisor or firmware that already set the UART up. If the UART is disabled
//! we enable it for transmission without touching the baud rate (which needs the UART clock).

use core::sync::atomic::{AtomicU64, Ordering};

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const CR: u64 = 0x30;
const FR_TXFF: u32 = 1 << 5;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;

/// The UART's register base (0: none).
static BASE: AtomicU64 = AtomicU64::new(0);

/// Uses the PL011 at `base` (identity-mapped as device memory) as the console.
pub fn init(base: u64) {
    BASE.store(base, Ordering::Relaxed);
    let cr = read(base, CR);
    if cr & (CR_UARTEN | CR_TXE) != CR_UARTEN | CR_TXE {
        write(base, CR, cr | CR_UARTEN | CR_TXE);
    }
}

/// True when a UART was found.
pub fn present() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

fn read(base: u64, register: u64) -> u32 {
    // SAFETY: `base` is the PL011 from the DTB, mapped as device memory by both the early and
    // the final page tables; `register` is an aligned register offset in its 4 KiB window.
    unsafe { core::ptr::read_volatile((base + register) as *const u32) }
}

fn write(base: u64, register: u64, value: u32) {
    // SAFETY: as in `read`; writing DR sends a byte, writing CR enables the transmitter.
    unsafe { core::ptr::write_volatile((base + register) as *mut u32, value) };
}

/// Writes bytes, turning `\n` into `\r\n` for terminals. Does nothing without a UART.
pub fn write_bytes(bytes: &[u8]) {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    let put = |byte: u8| {
        while read(base, FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        write(base, DR, u32::from(byte));
    };
    for &byte in bytes {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}
