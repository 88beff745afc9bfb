//! # libos-platform-x86_64: libos on x86_64 virtual machines
//!
//! One ELF image with a PVH entry note, so QEMU (`-kernel`, microvm/q35/pc), Firecracker and
//! cloud-hypervisor boot it directly. This crate owns everything architecture-specific:
//!
//! - `boot.s` + [`boot`]: 32-bit PVH entry, long mode, then the Rust boot path;
//! - [`pvh`]: the loader's boot information (command line, memory map, ACPI RSDP);
//! - [`memory`], [`paging`]: free RAM and the final page tables (text RX, data NX, guard pages);
//! - `pages`: program pages at chosen addresses (`Platform::map_pages`, W^X) for posix-shim's
//!   ELF loader; with the feature `program-window`, 4-16 MiB kept free for non-PIE programs;
//! - `gdt`, `interrupts`, `stacks`: GDT/TSS with an IST stack for every interrupt and
//!   exception (nothing is pushed onto the interrupted code's stack: its red zone is safe), the
//!   IDT, crash reports with a frame-pointer backtrace;
//! - `smp`: the other CPUs (ACPI MADT, INIT-SIPI-SIPI through a real-mode trampoline), the
//!   per-CPU block behind the GS base (`cpu_id`);
//! - `fpu`: SSE (and XSAVE/AVX where present) enabled at boot; the FP/SIMD state of preempted
//!   threads saved and restored;
//! - `context`: the thread context switch and preemption on interrupt return, on the thread's
//!   own stack (for the scheduler);
//! - `serial`, `clock`, `apic`: the 16550 console, the TSC clock, the local APIC one-shot timer;
//! - [`devices`], `discovery`, `ioapic`: virtio-mmio slots (DSDT `LNRO0005`), PCIe hosts (MCFG),
//!   device interrupts through the I/O APICs of the MADT;
//! - [`acpi`], `shutdown`: exit codes through `isa-debug-exit`, else ACPI S5, else i8042 reset;
//! - [`rtc`]: the CMOS real-time clock, read once at boot for the wall clock.
//!
//! It implements [`libos_core::hal::Platform`]. `libos` invokes [`entry_point!`] once to connect
//! the assembly entry to its kernel main; apps never use this crate directly.
//!
//! The pure parts ([`pvh`], [`memory`], [`paging`], [`acpi`], [`rtc`]) build and are tested on the host;
//! the hardware parts only exist for the bare-metal target.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod acpi;
pub mod devices;
pub mod memory;
pub mod paging;
pub mod pvh;
pub mod rtc;
#[cfg(any(test, target_os = "none"))]
mod verified;

#[cfg(target_os = "none")]
mod apic;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod context;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod discovery;
#[cfg(target_os = "none")]
mod fpu;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod guard;
/// Program pages at chosen addresses (`hal::Platform::map_pages`).
#[cfg(target_os = "none")]
pub mod pages;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod ioapic;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod random;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod shutdown;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stacks;
#[cfg(target_os = "none")]
mod syscall;

#[cfg(target_os = "none")]
pub use platform::{Context, UserEntry, X86_64, calibration_source};

/// Connects the image's entry point to `kernel_main: fn(&'static BootInfo) -> !`.
///
/// Invoke it exactly once, in the composition root (`libos`). It defines the symbol the
/// assembly entry calls, so a second invocation is a link error rather than a silent choice.
#[macro_export]
macro_rules! entry_point {
    ($kernel_main:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        extern "C" fn libos_x86_64_start(start_info: u32) -> ! {
            $crate::boot::start(start_info, $kernel_main)
        }
    };
}

#[cfg(target_os = "none")]
mod platform {
    use crate::{apic, clock, context, cpu, discovery, fpu, guard, serial, shutdown, syscall};
    use libos_core::hal::{ContextSwitch, InterruptState, Platform};
    use libos_core::time::Instant;

    /// The x86_64 platform (state lives in the modules' statics).
    pub struct X86_64;

    /// Where the clock frequencies came from (`"PIT"`, `"CPUID 0x40000010"`, ...).
    pub fn calibration_source() -> &'static str {
        clock::calibration().source
    }

    impl Platform for X86_64 {
        fn name(&self) -> &'static str {
            "x86_64 PVH"
        }

        fn console_write(&self, bytes: &[u8]) {
            serial::write(bytes);
        }

        fn counter(&self) -> u64 {
            cpu::rdtsc()
        }

        fn counter_frequency(&self) -> u64 {
            clock::calibration().tsc_hz
        }

        fn set_timer(&self, deadline: Option<Instant>) {
            let Some(deadline) = deadline else {
                apic::one_shot(0);
                return;
            };
            let nanos = deadline.as_nanos().saturating_sub(Instant::now().as_nanos());
            let hz = u128::from(clock::calibration().apic_timer_hz);
            let ticks = (u128::from(nanos) * hz / 1_000_000_000).clamp(1, u128::from(u32::MAX));
            apic::one_shot(ticks as u32);
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
            // `sti; hlt` is atomic: STI takes effect after the next instruction, so an interrupt
            // pending at the STI wakes the HLT instead of being taken before it. Halted, the CPU
            // is skipped by TLB shootdowns (it flushes on its way out if needed).
            crate::pages::halt_lazily();
        }

        fn cpu_id(&self) -> usize {
            crate::smp::cpu_id()
        }

        fn start_cpus(&self, limit: Option<usize>) -> libos_core::cpus::StartReport {
            crate::smp::start_cpus(limit)
        }

        fn send_ipi(&self, cpu: usize) -> libos_core::Result<()> {
            crate::smp::send_ipi(cpu)
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

        fn check_user_access(&self, start: u64, end: u64, access: libos_core::hal::Access) -> libos_core::Result<()> {
            crate::pages::check_user_access(start, end, access)
        }

        fn reserved_regions(&self) -> alloc::vec::Vec<(libos_core::hal::MemoryRegion, &'static str)> {
            crate::pages::reserved_regions()
        }

        fn initrd(&self) -> Option<&'static [u8]> {
            crate::boot::initrd()
        }

        #[cfg(feature = "shared-memory")]
        unsafe fn make_program_accessible(&self, region: libos_core::hal::MemoryRegion) -> libos_core::Result<()> {
            crate::pages::make_normal(region)
        }

        // Program pages are for the ELF loader, whose images take the program window.
        #[cfg(feature = "program-window")]
        unsafe fn map_pages(&self, virt: u64, len: u64, protection: libos_core::hal::Protection) -> libos_core::Result<()> {
            crate::pages::map(virt, len, protection)
        }

        #[cfg(feature = "program-window")]
        unsafe fn protect_pages(&self, virt: u64, len: u64, protection: libos_core::hal::Protection) -> libos_core::Result<()> {
            crate::pages::protect(virt, len, protection)
        }

        #[cfg(feature = "program-window")]
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
            crate::ioapic::enable(interrupt)
        }

        fn msi_message(&self, interrupt: u32) -> libos_core::Result<(u64, u32)> {
            crate::ioapic::msi_message(interrupt)
        }
    }

    /// The context switch of this platform (`src/context.rs`, `src/guard.rs`), registered by the
    /// composition root when it has a scheduler: [`Context::KERNEL`], or in images with
    /// posix-shim [`Context::WITH_THREAD_POINTER`], which also keeps Linux code's thread pointer (FS base) and vector registers per thread (`src/syscall.rs`)
    /// (a separate routine, so images without C code pay nothing for it).
    pub struct Context {
        switch: libos_core::hal::SwitchRoutine,
    }

    impl Context {
        /// Switches the kernel's own registers.
        pub const KERNEL: Context = Context { switch: context::SWITCH };
        /// Also keeps Linux code's per-thread state.
        pub const WITH_THREAD_POINTER: Context = Context { switch: syscall::switch_saving_user_state };
    }

    impl ContextSwitch for Context {
        unsafe fn init_context(&self, stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
            // SAFETY: forwarded contract (ContextSwitch::init_context).
            unsafe { context::init(stack_top, entry, arg) }
        }

        fn switch_routine(&self) -> libos_core::hal::SwitchRoutine {
            self.switch
        }

        fn set_guard_page(&self, page: usize, guarded: bool) -> libos_core::Result<()> {
            guard::set(page as u64, guarded)
        }
    }

    /// The `syscall` trap and entry into Linux code (`src/syscall.rs`), registered by the
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
            syscall::set_fs_base(value as u64);
        }

        fn thread_pointer(&self) -> usize {
            syscall::fs_base() as usize
        }

        fn fp_state_size(&self) -> usize {
            fpu::area_size()
        }

        unsafe fn save_fp_state(&self, area: *mut u8) {
            // SAFETY: forwarded contract (64-byte aligned, fp_state_size bytes).
            unsafe { fpu::save(area) }
        }

        unsafe fn restore_fp_state(&self, area: *const u8) {
            // SAFETY: forwarded contract; the copy is sanitized before the CPU sees it.
            unsafe { fpu::restore_untrusted(area) }
        }
    }
}

#[cfg(target_os = "none")]
static PLATFORM: X86_64 = X86_64;
