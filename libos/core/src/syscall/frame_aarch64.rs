//! The aarch64 system-call frame (layout fixed by `platform/aarch64/src/syscall.rs`; its
//! first 272 bytes are those of the platform's exception frame).

/// The caller's registers at an `svc #0`: all general registers, the stack pointer, the return
/// address (`ELR_EL1`, the instruction after `svc`) and the saved `PSTATE` (`SPSR_EL1`).
/// Linux preserves every register but `x0` across a system call, and compiled code relies on
/// it (musl's `svc` asm clobbers only memory). `x19`-`x29` are filled only for the return
/// hook (see the [module docs](super)); a handler must not read them. The FP/SIMD registers
/// are not here: the kernel never changes them.
#[repr(C)]
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct Frame {
    /// `x0`-`x30`; the system-call number is `x8`.
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
}

const _: () = assert!(size_of::<Frame>() == 272);

impl Frame {
    /// The system-call number.
    pub fn number(&self) -> u64 {
        self.x[8]
    }

    /// The six arguments, in Linux order.
    pub fn args(&self) -> [u64; 6] {
        [self.x[0], self.x[1], self.x[2], self.x[3], self.x[4], self.x[5]]
    }

    /// The stack pointer of the caller.
    pub fn stack_pointer(&self) -> u64 {
        self.sp
    }

    /// Sets the stack pointer execution resumes with.
    pub fn set_stack_pointer(&mut self, sp: u64) {
        self.sp = sp;
    }

    /// The program counter execution resumes at.
    pub fn program_counter(&self) -> u64 {
        self.pc
    }

    /// Sets the program counter execution resumes at.
    pub fn set_program_counter(&mut self, pc: u64) {
        self.pc = pc;
    }

    /// Sets the result register (used when entering code directly, e.g. a `clone` child).
    pub fn set_result(&mut self, value: u64) {
        self.x[0] = value;
    }

    /// Sets argument register `index` (`x0`-`x5`) for entering a function directly.
    pub fn set_arg(&mut self, index: usize, value: u64) {
        self.x[index.min(5)] = value;
    }

    /// A frame for entering code at `pc` on the stack `sp`: EL1 with SP_EL0 (EL1t), interrupts
    /// enabled.
    pub fn new_entry(pc: u64, sp: u64) -> Self {
        const EL1T: u64 = 0b0100;
        Frame { pc, sp, pstate: EL1T, ..Frame::default() }
    }
}
