//! The Arm PL031 real-time clock (QEMU `virt`, Firecracker, cloud-hypervisor), read once at
//! boot for the wall clock ([`libos_core::time::SystemTime`]).
//!
//! The device tree names it (`arm,pl031`, see [`crate::dtb`]); its data register RTCDR counts
//! seconds since the Unix epoch, which QEMU sets from the host's UTC time at start. Before
//! trusting the register we check the PrimeCell identification registers (part number 0x031,
//! the PrimeCell cell ID), so a wrong node or an unmapped window gives "no clock" rather than
//! a random date. The clock counts whole seconds: the wall clock starts up to a second behind.
//!
//! The check is pure ([`read`] over a register-reading function), so host tests run it; only
//! `read_wall_clock` (bare-metal builds only) touches the device.

use core::fmt;

/// Register offsets.
pub mod register {
    /// RTCDR: the current time, seconds since 1970.
    pub const DATA: usize = 0x000;
    /// RTCPeriphID0: part number, low byte.
    pub const PERIPH_ID0: usize = 0xfe0;
    /// RTCPeriphID1: part number high nibble, designer low nibble.
    pub const PERIPH_ID1: usize = 0xfe4;
    /// RTCPCellID0 to RTCPCellID3 follow at 4-byte steps.
    pub const CELL_ID0: usize = 0xff0;
}

/// The cell ID every PrimeCell device returns in the low bytes of `RTCPCellID0..3`, read as one
/// little-endian word.
const PRIMECELL_ID: u32 = 0xb105_f00d;
/// The PL031's part number in `RTCPeriphID0/1`.
const PART_NUMBER: u32 = 0x031;

/// Why the clock gave no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcError {
    /// The identification registers are not a PL031's: the part number and cell ID found.
    NotAPl031 {
        /// Part number from RTCPeriphID0/1.
        part: u32,
        /// RTCPCellID0..3, low bytes, as one little-endian word.
        cell_id: u32,
    },
}

impl fmt::Display for RtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcError::NotAPl031 { part, cell_id } => {
                write!(f, "its ID registers say part {part:#05x}, cell ID {cell_id:#010x} (a PL031 is 0x031, 0xb105f00d)")
            }
        }
    }
}

/// Reads the clock through `register(offset)` (a 32-bit read): seconds since the Unix epoch.
pub fn read(register: &dyn Fn(usize) -> u32) -> Result<u64, RtcError> {
    let id_byte = |offset: usize| register(offset) & 0xff;
    let cell_id = (0..4).fold(0, |id, i| id | (id_byte(register::CELL_ID0 + 4 * i) << (8 * i)));
    let part = id_byte(register::PERIPH_ID0) | ((register(register::PERIPH_ID1) & 0x0f) << 8);
    if part != PART_NUMBER || cell_id != PRIMECELL_ID {
        return Err(RtcError::NotAPl031 { part, cell_id });
    }
    Ok(u64::from(register(register::DATA)))
}

/// Reads the PL031 for [`libos_core::hal::Platform::read_wall_clock`]; logs why it found no
/// usable time.
#[cfg(target_os = "none")]
pub fn read_wall_clock() -> Option<libos_core::hal::WallClockReading> {
    let Some(base) = crate::discovery::rtc() else {
        log::debug!("no PL031 RTC in the device tree");
        return None;
    };
    let register = |offset: usize| -> u32 {
        // SAFETY: `base` is the PL031's register window from the device tree, which the page
        // tables map as device memory (below the DTB's device limit); every offset read here
        // is an aligned 32-bit register inside its 4 KiB window, and reads have no side effects.
        unsafe { core::ptr::read_volatile((base as usize + offset) as *const u32) }
    };
    let result = read(&register);
    let counter = crate::cpu::counter();
    match result {
        Ok(seconds) => {
            log::debug!("PL031 RTC at {base:#x}: {} UTC", libos_core::time::calendar::DateTime::from_unix_seconds(seconds));
            Some(libos_core::hal::WallClockReading { unix_nanos: seconds * 1_000_000_000, counter })
        }
        Err(e) => {
            log::warn!("PL031 RTC at {base:#x} ignored: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's PL031 registers (hw/rtc/pl031.c: ID bytes 31 10 14 00 0d f0 05 b1).
    fn qemu(offset: usize, now: u32) -> u32 {
        match offset {
            register::DATA => now,
            0xfe0 => 0x31,
            0xfe4 => 0x10,
            0xfe8 => 0x14,
            0xfec => 0x00,
            0xff0 => 0x0d,
            0xff4 => 0xf0,
            0xff8 => 0x05,
            0xffc => 0xb1,
            _ => 0,
        }
    }

    #[test]
    fn reads_qemus_clock() {
        assert_eq!(read(&|o| qemu(o, 1_748_785_530)), Ok(1_748_785_530));
        // RTCDR is 32 bits: it reads up to 2106-02-07.
        assert_eq!(read(&|o| qemu(o, u32::MAX)), Ok(u64::from(u32::MAX)));
    }

    #[test]
    fn other_devices_are_not_clocks() {
        // Unmapped windows read as all ones or zeros on different machines; a PL011 UART has
        // the PrimeCell cell ID but part number 0x011.
        assert_eq!(read(&|_| 0xffff_ffff), Err(RtcError::NotAPl031 { part: 0xfff, cell_id: 0xffff_ffff }));
        assert_eq!(read(&|_| 0), Err(RtcError::NotAPl031 { part: 0, cell_id: 0 }));
        let pl011 = |o: usize| if o == 0xfe0 { 0x11 } else { qemu(o, 5) };
        assert_eq!(read(&pl011), Err(RtcError::NotAPl031 { part: 0x011, cell_id: 0xb105_f00d }));
        assert!(read(&pl011).unwrap_err().to_string().contains("part 0x011"));
    }
}
