//! The x86_64 system-call frame (layout fixed by `platform/x86_64/src/syscall.rs`).

/// The caller's registers at a `syscall`, lowest address first. `syscall` itself put the
/// return address in `rcx` and the flags in `r11`, so a handler never reads those two.
/// `rbx`, `r12`-`r15`, `rcx` and `r11` are filled only for the return hook (see the
/// [module docs](super)): at a system call's return `rcx`/`r11` hold the return address and
/// flags, as after Linux's `sysret`; for Linux code interrupted elsewhere, their values there.
#[repr(C)]
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct Frame {
    /// The system-call number on entry.
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rcx: u64,
    pub r11: u64,
    pub rflags: u64,
    /// Where execution continues (the instruction after `syscall`).
    pub rip: u64,
    pub rsp: u64,
}

const _: () = assert!(size_of::<Frame>() == 144);

impl Frame {
    /// The system-call number.
    pub fn number(&self) -> u64 {
        self.rax
    }

    /// The six arguments, in Linux order.
    pub fn args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }

    /// The stack pointer of the caller.
    pub fn stack_pointer(&self) -> u64 {
        self.rsp
    }

    /// Sets the stack pointer execution resumes with.
    pub fn set_stack_pointer(&mut self, sp: u64) {
        self.rsp = sp;
    }

    /// The program counter execution resumes at.
    pub fn program_counter(&self) -> u64 {
        self.rip
    }

    /// Sets the program counter execution resumes at.
    pub fn set_program_counter(&mut self, pc: u64) {
        self.rip = pc;
    }

    /// Sets the result register (used when entering code directly, e.g. a `clone` child).
    pub fn set_result(&mut self, value: u64) {
        self.rax = value;
    }

    /// Sets argument register `index` (0 = `rdi`) for entering a function directly.
    pub fn set_arg(&mut self, index: usize, value: u64) {
        match index {
            0 => self.rdi = value,
            1 => self.rsi = value,
            2 => self.rdx = value,
            3 => self.r10 = value,
            4 => self.r8 = value,
            _ => self.r9 = value,
        }
    }

    /// A frame for entering code at `pc` on the stack `sp` (flags: interrupts enabled).
    pub fn new_entry(pc: u64, sp: u64) -> Self {
        const INTERRUPTS_ENABLED: u64 = 1 << 9;
        const RESERVED_ONE: u64 = 1 << 1;
        Frame { rip: pc, rsp: sp, rflags: INTERRUPTS_ENABLED | RESERVED_ONE, ..Frame::default() }
    }
}
