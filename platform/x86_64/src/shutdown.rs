//! Powering off with an exit code.
//!
//! QEMU's `isa-debug-exit` device (port 0xf4, which `./x` always attaches) ends QEMU with status
//! `(code << 1) | 1`. Without it (Firecracker, cloud-hypervisor, a plain QEMU command line) the
//! code cannot reach the host, so we print it and power off through ACPI S5, then through an
//! i8042 reset (Firecracker's way to stop a guest; QEMU with `-no-reboot` exits too), and halt.

use crate::acpi::{self, PowerOff};
use crate::apic;
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::console::emergency_print;
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The ACPI RSDP from the boot information (0: none).
static RSDP: AtomicU64 = AtomicU64::new(0);

/// Remembers where the ACPI tables are, for the fallback.
pub fn set_rsdp(rsdp: Option<u64>) {
    RSDP.store(rsdp.unwrap_or(0), Ordering::Relaxed);
}

/// The ACPI RSDP from the boot information, if the loader gave one.
pub fn rsdp() -> Option<u64> {
    Some(RSDP.load(Ordering::Relaxed)).filter(|&r| r != 0)
}

/// Stops the machine, reporting `code` to the host when it can.
pub fn power_off(code: i32) -> ! {
    x86_64::instructions::interrupts::disable();
    let code = code.clamp(0, libos_core::exit::MAX_CODE);
    if code > libos_core::exit::MAX_DEVICE_CODE {
        // The device carries the low 7 bits; the line carries the rest (libos_core::exit).
        emergency_print(format_args!("libos: exit code {code}\n"));
    }
    // SAFETY: writing to the debug-exit port ends QEMU when the device exists; otherwise the
    // write goes to an unclaimed port and does nothing.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write((code & libos_core::exit::MAX_DEVICE_CODE) as u32) };
    // QEMU handles the write as a shutdown request that its main loop carries out a moment later,
    // so idle until then; a timer bounds the wait when there is no such device (1M APIC ticks:
    // 16 ms on QEMU, ~0.2 s on hardware-speed APIC clocks). No calibration needed. Before the
    // APIC and the IDT are up (an early boot error), spin a bounded while instead.
    if apic::is_enabled() {
        apic::one_shot(1_000_000);
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    } else {
        for _ in 0..10_000_000 {
            core::hint::spin_loop();
        }
    }

    emergency_print(format_args!("libos: exit code {code}; no isa-debug-exit device, powering off\n"));
    let rsdp = RSDP.load(Ordering::Relaxed);
    if rsdp != 0 {
        let read = |addr: u64, buf: &mut [u8]| read_firmware(addr, buf);
        match acpi::find_power_off(rsdp, &read) {
            // SAFETY (all arms): the register comes from the firmware's FADT and is the one ACPI
            // defines for entering S5; the write powers the machine off.
            Some(PowerOff::Pm1aControl { port, value }) => unsafe { Port::<u16>::new(port).write(value) },
            Some(PowerOff::SleepControlPort { port, value }) => unsafe { Port::<u8>::new(port).write(value) },
            Some(PowerOff::SleepControlMemory { address, value }) if address < (1 << 32) => {
                // SAFETY: below 4 GiB every non-RAM address is mapped as device memory.
                unsafe { core::ptr::write_volatile(address as *mut u8, value) }
            }
            _ => emergency_print(format_args!("libos: no usable ACPI power-off register\n")),
        }
    }
    // SAFETY: 0xfe on the i8042 command port pulses the CPU reset line; with nothing left to
    // do this is the last resort to stop the machine.
    unsafe { Port::<u8>::new(0x64).write(0xfe) };
    loop {
        x86_64::instructions::hlt();
    }
}

/// Reads firmware tables (below 4 GiB: identity-mapped, RAM or device memory).
pub(crate) fn read_firmware(addr: u64, buf: &mut [u8]) -> bool {
    let Some(end) = addr.checked_add(buf.len() as u64) else { return false };
    if addr < 4096 || end > (1 << 32) || crate::stacks::overlaps_guard(addr, end) {
        return false;
    }
    for (i, byte) in buf.iter_mut().enumerate() {
        // SAFETY: [addr, end) lies in [4 KiB, 4 GiB) and misses the stack guard pages, so paging.rs
        // maps all of it (RAM or device memory); volatile byte reads are valid for both.
        *byte = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
    }
    true
}
