//! # libos-platform-aarch64: libos on aarch64 virtual machines
//!
//! One raw Linux arm64 `Image` (64-byte header with the `ARM\x64` magic, then code), so QEMU
//! `virt -kernel`, Firecracker and cloud-hypervisor load it the same way. `./x build` links a
//! position-independent ELF and flattens its loadable segments into that `Image`. This crate
//! owns everything architecture-specific:
//!
//! - `boot.s` + `boot`: entry at EL2 or EL1 (EL2 drops to EL1), FP/SIMD on, early identity map
//!   with MMU and caches on, self-relocation, then the Rust boot path;
//! - [`dtb`]: the device tree from `x0` (RAM, `/chosen/bootargs`, the UART, GIC version and
//!   addresses, the virtual timer's interrupt, virtio-mmio slots, PCIe ECAM, CPUs, PSCI);
//! - `mem`: the kernel's `memcpy`/`memmove`/`memset` in general registers (soft-float kernel).
//! - `pages`: program pages at chosen addresses (`Platform::map_pages`, W^X, break-before-make,
//!   instruction-cache maintenance) for posix-shim's ELF loader;
//! - [`paging`]: the final tables (text RX, rodata R, data/bss/stacks
//!   RW + execute-never, unmapped guard page below every stack, page 0 unmapped, devices as
//!   Device-nGnRE);
//! - `exceptions`, `stacks`, [`esr`]: vectors, crash reports with the exception class decoded
//!   and a frame-pointer backtrace;
//! - `context`: thread context switch, and preemption by redirecting an IRQ's return into a
//!   trampoline on the thread's own stack (for the scheduler);
//! - `uart`, `gic`, `timer`: the console (PL011, or Firecracker's 16550), GICv2/GICv3, the
//!   virtual timer as one-shot timer and the virtual counter as clock;
//! - `semihosting`, `shutdown`: exit codes through QEMU semihosting, else PSCI `SYSTEM_OFF`;
//! - [`rtc`]: the PL031 real-time clock, read once at boot for the wall clock;
//! - `smp`: per-CPU state (TPIDR_EL1), starting the other CPUs with PSCI `CPU_ON`, and their
//!   wait loop until the scheduler runs threads there (IPIs through the GIC's SGI 1).
//!
//! ## Design choices
//! - **Position independence**: the ELF is linked at 0 with `-pie`; the entry code applies its
//!   `R_AARCH64_RELATIVE` relocations for wherever the loader put it, and the kernel runs
//!   identity-mapped (virtual = physical), as on x86_64. Nothing depends on one VMM's memory
//!   map: RAM, devices and the PSCI conduit all come from the DTB. The early map covers the
//!   first 512 GiB of physical addresses (every VMM we know puts RAM there); the final map
//!   covers 48 bits.
//! - **FP/SIMD**: the kernel is built for `aarch64-unknown-none-softfloat`, so compiled kernel
//!   code never touches the FP/SIMD registers (as on x86_64, and as Linux's own kernel), and
//!   they belong to Linux code (posix-shim's C programs, hard-float). FP/SIMD is enabled at
//!   boot (CPACR_EL1.FPEN) for that code; exception entry saves all 32 vector registers, FPCR
//!   and FPSR, since an interrupted program may hold live values in any of them and a
//!   preempted thread gets them back; the system-call trap saves none (`syscall.rs`), the
//!   context switch of C images does (`context.rs`). Assembly that handles FP state says so
//!   with `.arch_extension fp`/`simd`.
//! - **Stacks**: the kernel runs in EL1t on SP_EL0; exceptions use SP_EL1, a separate stack,
//!   so a stack overflow into a guard page is reported like any other fault. An exception while
//!   handling one switches to a third stack. Every CPU has its own three stacks (the boot
//!   CPU's in the image, the others' on the heap) and a per-CPU block at TPIDR_EL1 (`smp`).
//! - **Exit codes**: semihosting `SYS_EXIT_EXTENDED` is tried first; if QEMU was started
//!   without semihosting the `hlt` traps as an undefined instruction, which the handler
//!   recognises and skips, so no runner flag has to tell the guest.
//! - **Crates**: `fdt` parses the device tree. The GIC, UART and system-register code is ours:
//!   a few dozen register accesses for two private interrupts per CPU, smaller than the
//!   general drivers (see each module).
//!
//! It implements [`libos_core::hal::Platform`]. `libos` invokes [`entry_point!`] once to connect
//! the assembly entry to its kernel main; apps never use this crate directly.
//!
//! Free RAM is planned by `libos_core::memory`, shared with x86_64. The pure parts ([`dtb`],
//! [`paging`], [`esr`], [`rtc`]) build and are tested on the host;
//! the hardware parts only exist for the bare-metal target.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod dtb;
pub mod esr;
pub mod paging;
pub mod rtc;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
mod context;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod discovery;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod guard;
/// Program pages at chosen addresses (`hal::Platform::map_pages`).
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
pub mod pages;
#[cfg(target_os = "none")]
mod uart;
#[cfg(target_os = "none")]
mod random;
#[cfg(target_os = "none")]
mod semihosting;
#[cfg(target_os = "none")]
mod shutdown;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stacks;
#[cfg(target_os = "none")]
mod syscall;
#[cfg(target_os = "none")]
mod timer;

#[cfg(target_os = "none")]
pub use platform::{Aarch64, Context, UserEntry};
#[cfg(target_os = "none")]
use platform::set_gic_version;

/// Connects the image's entry point to `kernel_main: fn(&'static BootInfo) -> !`.
///
/// Invoke it exactly once, in the composition root (`libos`). It defines the symbol the
/// assembly entry calls, so a second invocation is a link error rather than a silent choice.
#[macro_export]
macro_rules! entry_point {
    ($kernel_main:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        extern "C" fn libos_aarch64_start(dtb: u64, entry_counter: u64) -> ! {
            $crate::boot::start(dtb, entry_counter, $kernel_main)
        }
    };
}

#[cfg(target_os = "none")]
mod platform {
    use crate::{context, cpu, discovery, guard, semihosting, shutdown, syscall, timer, uart};
    use core::sync::atomic::{AtomicU8, Ordering};
    use libos_core::hal::{ContextSwitch, InterruptState, Platform};
    use libos_core::time::Instant;

    /// The aarch64 platform (state lives in the modules' statics).
    pub struct Aarch64;

    static GIC_VERSION: AtomicU8 = AtomicU8::new(0);

    /// Records the GIC version for [`Platform::name`].
    pub fn set_gic_version(version: u8) {
        GIC_VERSION.store(version, Ordering::Relaxed);
    }

    impl Platform for Aarch64 {
        fn name(&self) -> &'static str {
            match GIC_VERSION.load(Ordering::Relaxed) {
                2 => "aarch64 GICv2",
                3 => "aarch64 GICv3",
                _ => "aarch64",
            }
        }

        fn console_write(&self, bytes: &[u8]) {
            if uart::present() {
                uart::write_bytes(bytes);
            } else {
                semihosting::write_bytes(bytes);
            }
        }

        fn counter(&self) -> u64 {
            cpu::counter()
        }

        fn counter_frequency(&self) -> u64 {
            timer::frequency()
        }

        fn set_timer(&self, deadline: Option<Instant>) {
            let Some(deadline) = deadline else {
                timer::disarm();
                return;
            };
            // Round up, plus one tick, so the interrupt never comes before the deadline once
            // the counter is converted back to nanoseconds.
            let hz = u128::from(timer::frequency());
            let ticks = (u128::from(deadline.as_nanos()) * hz).div_ceil(1_000_000_000) + 1;
            timer::arm(ticks.min(u128::from(u64::MAX)) as u64);
        }

        // Masking is inline in libos-core (`libos_core::interrupts`), which the locks use
        // directly; these forward to it so both paths agree.
        fn disable_interrupts(&self) -> InterruptState {
            libos_core::interrupts::disable()
        }

        fn restore_interrupts(&self, state: InterruptState) {
            libos_core::interrupts::restore(state);
        }

        fn enable_interrupts(&self) {
            libos_core::interrupts::enable();
        }

        fn wait_for_interrupt(&self) {
            cpu::wait_for_interrupt();
        }

        fn cpu_id(&self) -> usize {
            crate::smp::cpu_id()
        }

        fn start_cpus(&self, limit: Option<usize>) -> libos_core::cpus::StartReport {
            crate::smp::start_cpus(limit)
        }

        fn send_ipi(&self, cpu: usize) -> libos_core::Result<()> {
            crate::gic::send_ipi(cpu)
        }

        fn hardware_random(&self) -> Option<u64> {
            crate::random::random_u64()
        }

        fn hardware_random_name(&self) -> Option<&'static str> {
            crate::random::name()
        }

        fn virt_to_phys(&self, virt: usize) -> u64 {
            crate::pages::virt_to_phys(virt as u64)
        }

        fn initrd(&self) -> Option<&'static [u8]> {
            crate::boot::initrd()
        }

        fn check_user_access(&self, start: u64, end: u64, access: libos_core::hal::Access) -> libos_core::Result<()> {
            crate::pages::check_user_access(start, end, access)
        }

        fn reserved_regions(&self) -> alloc::vec::Vec<(libos_core::hal::MemoryRegion, &'static str)> {
            crate::pages::reserved_regions()
        }

        unsafe fn map_pages(&self, virt: u64, len: u64, protection: libos_core::hal::Protection) -> libos_core::Result<()> {
            crate::pages::map(virt, len, protection)
        }

        unsafe fn protect_pages(&self, virt: u64, len: u64, protection: libos_core::hal::Protection) -> libos_core::Result<()> {
            crate::pages::protect(virt, len, protection)
        }

        unsafe fn unmap_pages(&self, virt: u64, len: u64) -> libos_core::Result<()> {
            crate::pages::unmap(virt, len)
        }

        fn read_wall_clock(&self) -> Option<libos_core::hal::WallClockReading> {
            crate::rtc::read_wall_clock()
        }

        fn shutdown(&self, code: i32) -> ! {
            shutdown::power_off(code)
        }

        fn devices(&self) -> libos_core::device::Devices {
            discovery::devices()
        }

        fn enable_device_interrupt(&self, interrupt: u32) -> libos_core::Result<()> {
            crate::gic::enable_spi(interrupt)
        }
    }

    /// The context switch of this platform (`src/context.rs`, `src/guard.rs`), registered by the
    /// composition root when it has a scheduler: [`Context::KERNEL`], or in images with
    /// posix-shim [`Context::WITH_THREAD_POINTER`], which also keeps Linux code's FP/SIMD state
    /// and thread pointer (TPIDR_EL0) per thread (a separate routine, so images without C code
    /// pay nothing for it).
    pub struct Context {
        switch: libos_core::hal::SwitchRoutine,
        /// Bytes of the routine's switch frame (a new thread's first frame has that size).
        frame_bytes: usize,
    }

    impl Context {
        /// Switches the kernel's own registers.
        pub const KERNEL: Context = Context { switch: context::SWITCH, frame_bytes: context::SWITCH_FRAME };
        /// Also keeps Linux code's per-thread state.
        pub const WITH_THREAD_POINTER: Context =
            Context { switch: context::SWITCH_WITH_USER_STATE, frame_bytes: context::USER_STATE_SWITCH_FRAME };
    }

    impl ContextSwitch for Context {
        unsafe fn init_context(&self, stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
            // SAFETY: forwarded contract (ContextSwitch::init_context), for this routine's frame.
            unsafe { context::init(stack_top, entry, arg, self.frame_bytes) }
        }

        fn switch_routine(&self) -> libos_core::hal::SwitchRoutine {
            self.switch
        }

        fn set_guard_page(&self, page: usize, guarded: bool) -> libos_core::Result<()> {
            guard::set(page as u64, guarded)
        }
    }

    /// The `svc #0` trap and entry into Linux code (`src/syscall.rs`), registered by the
    /// composition root when posix-shim is in the image.
    pub struct UserEntry;

    impl libos_core::syscall::UserEntry for UserEntry {
        fn install(&self, handler: libos_core::syscall::Handler, on_return: libos_core::syscall::ReturnHook) {
            syscall::install(handler, on_return);
        }

        unsafe fn enter(&self, frame: &libos_core::syscall::Frame) -> ! {
            // SAFETY: forwarded contract (UserEntry::enter).
            unsafe { syscall::enter(frame) }
        }

        fn set_thread_pointer(&self, value: usize) {
            syscall::set_thread_pointer(value as u64);
        }

        fn thread_pointer(&self) -> usize {
            syscall::thread_pointer() as usize
        }

        fn fp_state_size(&self) -> usize {
            context::FP_STATE_SIZE
        }

        unsafe fn save_fp_state(&self, area: *mut u8) {
            // SAFETY: forwarded contract (aligned, fp_state_size bytes).
            unsafe { context::save_fp(area) }
        }

        unsafe fn restore_fp_state(&self, area: *const u8) {
            // SAFETY: forwarded contract.
            unsafe { context::restore_fp(area) }
        }
    }
}

#[cfg(target_os = "none")]
static PLATFORM: Aarch64 = Aarch64;
