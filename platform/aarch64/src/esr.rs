//! Decoding the Exception Syndrome Register (ESR_EL1) for crash reports (pure, host-tested).
//!
//! [`class_name`] names the exception class; [`Abort::decode`] explains instruction and data
//! aborts in the same words the x86_64 page-fault report uses ("read of a non-present page",
//! "write violating page protection", ...), followed by the architectural fault status.

/// The exception class field (ESR bits 31:26).
pub fn class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// Exception classes the report treats specially.
pub mod ec {
    /// Unknown reason (an undefined instruction, e.g. `hlt` without semihosting).
    pub const UNKNOWN: u8 = 0x00;
    /// Instruction abort from EL1.
    pub const INSTRUCTION_ABORT_SAME_EL: u8 = 0x21;
    /// Instruction abort from EL0.
    pub const INSTRUCTION_ABORT_LOWER_EL: u8 = 0x20;
    /// Data abort from EL1.
    pub const DATA_ABORT_SAME_EL: u8 = 0x25;
    /// Data abort from EL0.
    pub const DATA_ABORT_LOWER_EL: u8 = 0x24;
}

/// A short description of an exception class.
pub fn class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped FP/SIMD access",
        0x0e => "illegal execution state",
        0x15 => "SVC instruction",
        0x16 => "HVC instruction",
        0x17 => "SMC instruction",
        0x18 => "trapped system register access",
        0x20 => "instruction abort from EL0",
        0x21 => "instruction abort, same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from EL0",
        0x25 => "data abort, same EL",
        0x26 => "SP alignment fault",
        0x2c => "trapped floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "reserved or unexpected exception class",
    }
}

/// What kind of access an abort was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Fetch,
}

/// A decoded instruction or data abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// What was accessed.
    pub access: Access,
    /// The fault status code (DFSC/IFSC, bits 5:0).
    pub status: u8,
}

impl Abort {
    /// Decodes an abort's ESR; `None` for other exception classes.
    pub fn decode(esr: u64) -> Option<Abort> {
        let access = match class(esr) {
            ec::INSTRUCTION_ABORT_SAME_EL | ec::INSTRUCTION_ABORT_LOWER_EL => Access::Fetch,
            // WnR (bit 6); cache maintenance (CM, bit 8) counts as a write.
            ec::DATA_ABORT_SAME_EL | ec::DATA_ABORT_LOWER_EL if esr & (1 << 6 | 1 << 8) != 0 => Access::Write,
            ec::DATA_ABORT_SAME_EL | ec::DATA_ABORT_LOWER_EL => Access::Read,
            _ => return None,
        };
        Some(Abort { access, status: (esr & 0x3f) as u8 })
    }

    /// True when FAR_EL1 holds the faulting address (not for external aborts etc.).
    pub fn far_valid(esr: u64) -> bool {
        esr & (1 << 10) == 0
    }

    /// The translation level the fault happened at, for faults that have one.
    pub fn level(&self) -> Option<u8> {
        matches!(self.status & 0x3c, 0x00 | 0x04 | 0x08 | 0x0c).then_some(self.status & 3)
    }

    /// The fault status in architectural terms.
    pub fn status_name(&self) -> &'static str {
        match self.status & 0x3c {
            0x00 => "address size fault",
            0x04 => "translation fault",
            0x08 => "access flag fault",
            0x0c => "permission fault",
            _ => match self.status {
                0x10 => "synchronous external abort",
                0x21 => "alignment fault",
                0x30 => "TLB conflict abort",
                _ => "other fault",
            },
        }
    }

    /// The access in the x86_64 report's words: `read of a non-present page`, `write violating
    /// page protection`, `instruction fetch ...`.
    pub fn describe(&self) -> (&'static str, &'static str) {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::Fetch => "instruction fetch",
        };
        let what = match self.status & 0x3c {
            0x00 | 0x04 => "of a non-present page",
            0x0c => "violating page protection",
            0x08 => "of a page without the access flag",
            _ if self.status == 0x21 => "misaligned",
            _ => "failed",
        };
        (access, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_of_an_unmapped_address() {
        // QEMU's ESR for `ldrb` from an address no table maps: DA same EL, translation fault L0.
        let esr = 0x9600_0004;
        assert_eq!(class(esr), 0x25);
        assert_eq!(class_name(class(esr)), "data abort, same EL");
        let abort = Abort::decode(esr).unwrap();
        assert_eq!(abort, Abort { access: Access::Read, status: 4 });
        assert_eq!(abort.describe(), ("read", "of a non-present page"));
        assert_eq!(abort.status_name(), "translation fault");
        assert_eq!(abort.level(), Some(0));
        assert!(Abort::far_valid(esr));
    }

    #[test]
    fn write_to_read_only_and_fetch_from_data() {
        let write = Abort::decode(0x9600_004f).unwrap();
        assert_eq!(write.describe(), ("write", "violating page protection"));
        assert_eq!(write.level(), Some(3));
        let fetch = Abort::decode(0x8600_000f).unwrap();
        assert_eq!(fetch.access, Access::Fetch);
        assert_eq!(fetch.describe(), ("instruction fetch", "violating page protection"));
    }

    #[test]
    fn other_classes_are_not_aborts() {
        assert_eq!(Abort::decode(0x0200_0000), None);
        assert_eq!(class_name(0), "unknown reason (undefined instruction)");
        assert_eq!(class_name(0x3c), "BRK instruction");
        let alignment = Abort::decode(0x9600_0021).unwrap();
        assert_eq!(alignment.status_name(), "alignment fault");
        assert_eq!(alignment.level(), None);
    }
}
