//! The platform boundary: what libos needs from the machine, and nothing more.
//!
//! A platform crate (`platform/x86_64`, `platform/aarch64`) implements [`Platform`] for the
//! machine it boots on and registers it with [`set_platform`] before anything else runs. Crates
//! above it call [`platform()`] and never name an architecture. The trait is object safe, so a
//! host test can register [`crate::testing::FakePlatform`] instead.
//!
//! The platform also hands the kernel a [`BootInfo`]: the command line, the free memory and the
//! clock reading taken at the first instruction. Its real-time clock, if any, is read once at
//! boot through [`Platform::read_wall_clock`] (see [`crate::time::system`]).

use crate::time::Instant;
use alloc::vec::Vec;
use spin::Once;

/// A range of physical memory `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl MemoryRegion {
    /// The region's size in bytes.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True when the region holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// What the platform found at boot and hands to the kernel.
#[derive(Debug)]
pub struct BootInfo {
    /// The kernel command line as the boot loader passed it (options, then `--`, then app args).
    pub cmdline: &'static str,
    /// RAM the kernel may use for its heap: usable RAM minus the image, boot stacks and page
    /// tables. Physical addresses; see [`Platform::phys_to_virt`].
    pub free_memory: &'static [MemoryRegion],
    /// All usable RAM the firmware reported, in bytes (including what the image occupies).
    pub total_memory: u64,
    /// [`Platform::counter`] read at the image's first instruction.
    pub entry_counter: u64,
}

/// One reading of a real-time clock, from [`Platform::read_wall_clock`]: what the clock showed,
/// and when, on the monotonic counter (so the wall clock can be carried forward by the counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClockReading {
    /// The time the clock showed, in nanoseconds since the Unix epoch (1970-01-01 00:00:00 UTC).
    pub unix_nanos: u64,
    /// [`Platform::counter`] at the moment of the reading.
    pub counter: u64,
}

/// The interrupt-enable state saved by [`Platform::disable_interrupts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptState(pub bool);

/// Services that the machine provides to libos. One implementation per architecture.
pub trait Platform: Sync {
    /// A short name for messages, e.g. `"x86_64 PVH"`.
    fn name(&self) -> &'static str;

    /// Writes bytes to the console (a serial port). Must work from any context, including
    /// exception handlers; it may interleave with other writers (callers lock, see
    /// [`crate::console`]).
    fn console_write(&self, bytes: &[u8]);

    /// A free-running monotonic counter (the TSC, the generic timer's virtual counter).
    fn counter(&self) -> u64;

    /// Ticks of [`Platform::counter`] per second. May calibrate on first use.
    fn counter_frequency(&self) -> u64;

    /// Arms the one-shot timer to interrupt at `deadline` (at once if it has passed), or
    /// disarms it with `None`. The interrupt calls [`crate::hal::irq::timer_interrupt`].
    fn set_timer(&self, deadline: Option<Instant>);

    /// Masks interrupts on this CPU and returns the previous state.
    fn disable_interrupts(&self) -> InterruptState;

    /// Restores the state returned by [`Platform::disable_interrupts`].
    fn restore_interrupts(&self, state: InterruptState);

    /// Unmasks interrupts on this CPU.
    fn enable_interrupts(&self);

    /// Halts the CPU until the next interrupt, enabling interrupts atomically with the halt so a
    /// wake-up cannot be missed. Returns with interrupts enabled.
    fn wait_for_interrupt(&self);

    /// The index of the running CPU: 0 for the boot CPU, then 1.. in the order
    /// [`Platform::start_cpus`] started them ([`crate::cpus`]).
    fn cpu_id(&self) -> usize {
        0
    }

    /// Starts the machine's other CPUs, at most `limit` CPUs in all (the boot CPU included;
    /// `None`: every CPU the firmware reports), through [`crate::cpus::start_all`]. Called once
    /// at boot, after the heap is up. A started CPU sets up its own stacks, exception vectors and
    /// per-CPU state, reports itself online and waits for interrupts (only
    /// [`Platform::send_ipi`]'s reach it): nothing is scheduled on it yet. Default: a machine
    /// of one CPU.
    fn start_cpus(&self, limit: Option<usize>) -> crate::cpus::StartReport {
        let _ = limit;
        crate::cpus::StartReport::SINGLE
    }

    /// Sends CPU `cpu` the interrupt whose handler calls [`crate::cpus::handle_ipi`]. Errors:
    /// `EINVAL` for a CPU the platform did not start. Default: `ENOSYS` (one CPU).
    fn send_ipi(&self, cpu: usize) -> crate::Result<()> {
        let _ = cpu;
        Err(crate::Errno::ENOSYS)
    }

    /// The virtual address at which physical address `phys` is mapped.
    fn phys_to_virt(&self, phys: u64) -> usize {
        phys as usize
    }

    /// The physical address of kernel virtual address `virt` (what a device needs for DMA).
    fn virt_to_phys(&self, virt: usize) -> u64 {
        virt as u64
    }

    /// 64 bits from the CPU's hardware random number generator (x86 `RDSEED`/`RDRAND`, aarch64
    /// `RNDR`), or `None` when the CPU has none or it failed. Seeds the kernel's generator
    /// ([`crate::random`]). Default: `None`.
    fn hardware_random(&self) -> Option<u64> {
        None
    }

    /// The name of the instruction behind [`Platform::hardware_random`] (`"rdseed"`,
    /// `"rdrand"`, `"rndr"`) when the CPU reports one, for the boot log and tests. Default:
    /// `None`.
    fn hardware_random_name(&self) -> Option<&'static str> {
        None
    }

    /// Reads the machine's real-time clock (the host's time, in a VM): what it shows, in UTC,
    /// and the counter value at that moment. libos calls this once at boot, after the logger is
    /// up (so a platform may log why a clock it found is unusable), and from then on carries the
    /// wall clock forward with the monotonic counter ([`crate::time::SystemTime`]): a slow
    /// device is read once, not on every `clock_gettime`. `None` when the machine has no
    /// real-time clock or its reading is not a valid time; the wall clock then counts from 1970
    /// at the counter's origin. Default: `None`.
    fn read_wall_clock(&self) -> Option<WallClockReading> {
        None
    }

    /// Powers the machine off, reporting `code` (`0..=255`) to the host where the machine can.
    fn shutdown(&self, code: i32) -> !;

    /// The devices found in the firmware tables at boot (virtio-mmio windows, PCIe hosts).
    /// Default: none.
    fn devices(&self) -> crate::device::Devices {
        crate::device::Devices::default()
    }

    /// Unmasks device interrupt `interrupt` (a number from [`Platform::devices`]) and routes it to
    /// [`crate::device::device_interrupt`]; register the handler first. Errors: `ENOSYS` where
    /// the platform cannot route device interrupts (drivers then poll), `EINVAL` for a number
    /// it does not know.
    fn enable_device_interrupt(&self, interrupt: u32) -> crate::Result<()> {
        let _ = interrupt;
        Err(crate::Errno::ENOSYS)
    }

    /// The message (address, data) a PCI function writes for an MSI/MSI-X interrupt that the
    /// platform delivers as device interrupt `interrupt` (a number the driver picks with
    /// [`crate::device::msi_interrupt`]). Register the handler first. Errors: `ENOSYS` where
    /// the platform has no MSI route (drivers then poll), `ENOSPC` when no vector is free.
    fn msi_message(&self, interrupt: u32) -> crate::Result<(u64, u32)> {
        let _ = interrupt;
        Err(crate::Errno::ENOSYS)
    }

    /// Whether a program may be given the memory `[start, end)` for `access`, answered from
    /// the live page tables: `Ok` when every page of it is mapped as normal memory (not a
    /// device window, not a guard page or hole) and allows `access` (for [`Access::Write`]:
    /// writable); `EFAULT` otherwise. posix-shim asks this before it touches (or hands a
    /// device, by DMA) a buffer a program passed to a system call, so a bad pointer gives
    /// `EFAULT` instead of a kernel fault. One call per buffer, whatever its length (a 2 MiB
    /// block of the identity map answers for all its pages). The answer describes the tables
    /// at the time of the call. Default: `ENOSYS` (a platform without page tables to consult;
    /// callers then fall back to their own plausibility checks and say so).
    fn check_user_access(&self, start: u64, end: u64, access: Access) -> crate::Result<()> {
        let _ = (start, end, access);
        Err(crate::Errno::ENOSYS)
    }

    /// Makes the device memory `region` (physical addresses) memory the kernel may hand to a
    /// program: mapped as normal, cached memory, which [`Platform::check_user_access`] then
    /// accepts for reads and writes. For a window without side effects that a device shares
    /// with the host (a virtio shared-memory region such as a DAX window), whose pages
    /// posix-shim maps into programs (`mmap` of a file straight from the window). Errors:
    /// `EINVAL` when some page of `region` is not device memory the platform can change (RAM, a
    /// program page, a hole), and nothing changes then. Default: `Ok` when every page of it
    /// already is such memory (an aarch64 prefetchable PCI window), else the refusal of
    /// [`Platform::check_user_access`] (`EFAULT`, or `ENOSYS` without page tables).
    ///
    /// # Safety
    /// Reads and writes of `region` must have no side effects (no device registers there):
    /// cached, they may be merged, repeated or done early.
    unsafe fn make_program_accessible(&self, region: MemoryRegion) -> crate::Result<()> {
        let start = self.phys_to_virt(region.start) as u64;
        let len = region.end.checked_sub(region.start).ok_or(crate::Errno::EINVAL)?;
        self.check_user_access(start, start.saturating_add(len), Access::Write)
    }

    /// The initial RAM archive the loader put in memory beside the image (QEMU `-initrd`: a
    /// `newc` cpio archive, which boot unpacks into `/` after the app's own initial files),
    /// kept out of the heap for the life of the machine. Default: none.
    fn initrd(&self) -> Option<&'static [u8]> {
        None
    }

    /// The physical ranges a program's pages must never be placed at (the kernel image and its
    /// boot tables, low firmware memory, device windows: interrupt controllers, the console,
    /// virtio-mmio, PCI configuration and BAR windows), each with a short name for messages.
    /// The ELF loader refuses a file whose segments overlap one. Default: none.
    fn reserved_regions(&self) -> Vec<(MemoryRegion, &'static str)> {
        Vec::new()
    }

    /// Maps the `len` bytes at virtual address `virt` (both 4 KiB aligned) to newly allocated,
    /// zeroed physical pages with `protection`: the ELF loader puts programs at the addresses
    /// they were linked for. Pages already mapped by this call give `EEXIST`; pages of RAM the
    /// kernel maps for itself give `EBUSY` (except a range the platform reserves for programs,
    /// see the platform crate); unaligned or non-canonical ranges give `EINVAL`; no frame or
    /// table memory `ENOMEM`. On error nothing stays mapped. Default: `ENOSYS`.
    ///
    /// # Safety
    /// Nothing the kernel uses may live at `[virt, virt + len)`: the range replaces whatever
    /// non-RAM mapping (device addresses) was there.
    unsafe fn map_pages(&self, virt: u64, len: u64, protection: Protection) -> crate::Result<()> {
        let _ = (virt, len, protection);
        Err(crate::Errno::ENOSYS)
    }

    /// Changes the protection of pages mapped by [`Platform::map_pages`] (`EINVAL` for a page
    /// that was not). Making pages executable also makes the instruction fetch see what was
    /// written to them through the data side. Default: `ENOSYS`.
    ///
    /// # Safety
    /// Nothing may still write to pages made read-only, or run code in pages made
    /// non-executable.
    unsafe fn protect_pages(&self, virt: u64, len: u64, protection: Protection) -> crate::Result<()> {
        let _ = (virt, len, protection);
        Err(crate::Errno::ENOSYS)
    }

    /// Unmaps pages mapped by [`Platform::map_pages`] and frees their frames; pages of the range
    /// that are not such pages are left alone. Default: `ENOSYS`.
    ///
    /// # Safety
    /// Nothing may use the range afterwards.
    unsafe fn unmap_pages(&self, virt: u64, len: u64) -> crate::Result<()> {
        let _ = (virt, len);
        Err(crate::Errno::ENOSYS)
    }
}

/// [`Platform::check_user_access`] page by page: `EFAULT` when `end` passes `limit` (the top of
/// the address space programs may use), else `page_end(at)` for every page or block from
/// `start` on (the first address past it, or the error), until `end` is reached.
pub fn check_each_page(start: u64, end: u64, limit: u64, mut page_end: impl FnMut(u64) -> crate::Result<u64>) -> crate::Result<()> {
    if end > limit {
        return Err(crate::Errno::EFAULT);
    }
    let mut at = start;
    while at < end {
        let next = page_end(at)?;
        if next <= at {
            return Err(crate::Errno::EFAULT); // no progress: a page-table walk gone wrong
        }
        at = next;
    }
    Ok(())
}

/// What a program wants to do with memory it passes to the kernel ([`Platform::check_user_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The kernel (or a device) reads it.
    Read,
    /// The kernel (or a device) writes it.
    Write,
}

/// The access rights of pages mapped with [`Platform::map_pages`]. Writable and executable
/// never come together (W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
    /// Read and execute.
    ReadExecute,
}

/// Thread context-switch primitives of a platform, for the scheduler.
///
/// Kept apart from [`Platform`] so that images without a scheduler carry none of this code:
/// the composition root registers the platform's implementation with [`set_context_switch`]
/// only when a scheduler is compiled in.
pub trait ContextSwitch: Sync {
    /// Prepares a new thread's stack so that the first [`SwitchRoutine`] call to the
    /// returned stack pointer calls `entry(arg)` on that stack, with interrupts masked and the
    /// floating-point control state of a fresh thread. `entry` must never return.
    ///
    /// # Safety
    /// `stack_top` must be 16-byte aligned and the end of a writable stack of at least 4 KiB that
    /// nothing else uses; the returned value may only be switched to once.
    unsafe fn init_context(&self, stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize;

    /// The platform's switch routine (see [`SwitchRoutine`] for what it does and its safety
    /// contract). A function pointer rather than a method, so the scheduler calls the assembly
    /// directly, without a second call through a Rust wrapper on every switch.
    fn switch_routine(&self) -> SwitchRoutine;

    /// Calls [`ContextSwitch::switch_routine`]'s routine.
    ///
    /// # Safety
    /// As [`SwitchRoutine`].
    unsafe fn switch_context(&self, save_sp: *mut usize, load_sp: usize) {
        // SAFETY: the caller upholds the routine's contract.
        unsafe { (self.switch_routine())(save_sp, load_sp) }
    }

    /// Unmaps (`guarded = true`) or remaps read-write (`false`) the 4 KiB page at `page` of the
    /// kernel's identity map, so a thread stack can have a guard page below it. Errors:
    /// `ENOSYS` where the platform cannot change its mapping, `EINVAL` for a page that is not
    /// mapped RAM (or not a guard page, when remapping), `ENOMEM`/`EBUSY` when a large page
    /// cannot be split.
    fn set_guard_page(&self, page: usize, guarded: bool) -> crate::Result<()> {
        let _ = (page, guarded);
        Err(crate::Errno::ENOSYS)
    }
}

/// A thread switch routine (assembly in the platform crate): saves the callee-saved registers
/// (and, on aarch64, the callee-saved FP/SIMD registers and FPCR) on the current stack, stores
/// the stack pointer to `*save_sp`, then loads `load_sp` and resumes the thread saved there.
/// Returns when some thread switches back to the saved stack pointer. Interrupts must be masked
/// by the caller and stay masked across the switch. No other register state is switched: a
/// voluntary switch is a function call, so caller-saved (and FP/SIMD) registers are dead.
///
/// # Safety
/// Interrupts masked; called in thread context (not from an interrupt handler's stack);
/// `save_sp` valid for writes; `load_sp` a value stored by an earlier switch or returned by
/// [`ContextSwitch::init_context`], whose stack is still alive and not in use by a running
/// thread. The caller must not hold references into data another thread may mutate while this
/// one is switched out.
pub type SwitchRoutine = unsafe extern "C" fn(save_sp: *mut usize, load_sp: usize);

static CONTEXT_SWITCH: Once<&'static dyn ContextSwitch> = Once::new();

/// Registers the platform's context switch (the composition root does, when it has a scheduler).
pub fn set_context_switch(context: &'static dyn ContextSwitch) {
    CONTEXT_SWITCH.call_once(|| context);
}

/// The registered context switch, if any.
pub fn context_switch() -> Option<&'static dyn ContextSwitch> {
    CONTEXT_SWITCH.get().copied()
}

static PLATFORM: Once<&'static dyn Platform> = Once::new();

/// Registers the platform. Called once by the platform's boot code; later calls are ignored.
pub fn set_platform(platform: &'static dyn Platform) {
    PLATFORM.call_once(|| platform);
}

/// The registered platform.
///
/// # Panics
/// When no platform was registered yet (a boot-order bug, or a host test without
/// [`crate::testing::FakePlatform`]).
pub fn platform() -> &'static dyn Platform {
    try_platform().expect("libos-core: no platform registered (hal::set_platform not called)")
}

/// The registered platform, or `None` before registration.
pub fn try_platform() -> Option<&'static dyn Platform> {
    PLATFORM.get().copied()
}

/// Interrupt hooks: how a platform's interrupt handlers reach the crates that care.
///
/// Lower crates (the platform) call the `*_interrupt` functions; higher crates (the scheduler,
/// tests) register handlers. Handlers run with interrupts masked and must not block or allocate.
pub mod irq {
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

    static TIMER_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
    static TIMER_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

    /// Registers the function the timer interrupt calls (replacing any earlier one).
    pub fn set_timer_handler(handler: fn()) {
        TIMER_HANDLER.store(handler as *mut (), Ordering::Release);
    }

    /// Called by the platform when the one-shot timer fires.
    pub fn timer_interrupt() {
        crate::idle::leave();
        TIMER_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
        let handler = TIMER_HANDLER.load(Ordering::Acquire);
        if !handler.is_null() {
            // SAFETY: the only non-null value ever stored is a `fn()` cast to a pointer in
            // `set_timer_handler`, so transmuting it back yields that same function pointer.
            let handler: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(handler) };
            handler();
        }
    }

    /// How many timer interrupts have fired since boot.
    pub fn timer_interrupt_count() -> u64 {
        TIMER_INTERRUPTS.load(Ordering::Relaxed)
    }

    static PREEMPT_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
    #[allow(clippy::declare_interior_mutable_const)]
    const NOT_REQUESTED: AtomicBool = AtomicBool::new(false);
    /// Per CPU: a handler asked for preemption of the thread that CPU runs.
    static PREEMPT_REQUESTED: [AtomicBool; crate::cpus::MAX_CPUS] = [NOT_REQUESTED; crate::cpus::MAX_CPUS];

    fn this_cpu() -> usize {
        crate::cpus::current().min(crate::cpus::MAX_CPUS - 1)
    }

    /// Registers the function a platform calls, in thread context with interrupts masked, when
    /// an interrupt handler asked for preemption with [`request_preemption`] (the scheduler).
    pub fn set_preempt_handler(handler: fn()) {
        PREEMPT_HANDLER.store(handler as *mut (), Ordering::Release);
    }

    /// Asks the platform to call the preempt handler when the current interrupt returns to the
    /// thread it interrupted (on this CPU). Called from interrupt handlers.
    pub fn request_preemption() {
        PREEMPT_REQUESTED[this_cpu()].store(true, Ordering::Relaxed);
    }

    /// Asks for preemption on CPU `cpu`: on this CPU as [`request_preemption`]; on another, the
    /// request is recorded for it and an inter-processor interrupt makes it look (its return to
    /// the interrupted thread then calls the preempt handler there).
    pub fn request_preemption_on(cpu: usize) {
        let me = this_cpu();
        if cpu == me {
            PREEMPT_REQUESTED[me].store(true, Ordering::Relaxed);
        } else if let Some(flag) = PREEMPT_REQUESTED.get(cpu) {
            flag.store(true, Ordering::Release);
            if let Some(platform) = super::try_platform() {
                let _ = platform.send_ipi(cpu);
            }
        }
    }

    /// Called by a platform at the end of an interrupt taken in thread context: true (and the
    /// request is cleared) when a handler requested preemption of this CPU's thread and a
    /// preempt handler exists.
    pub fn take_preemption_request() -> bool {
        let flag = &PREEMPT_REQUESTED[this_cpu()];
        flag.load(Ordering::Relaxed) && !PREEMPT_HANDLER.load(Ordering::Acquire).is_null() && flag.swap(false, Ordering::Acquire)
    }

    /// Runs the preempt handler. The platform calls it after [`take_preemption_request`]
    /// returned true, in the interrupted thread's context (its stack), with interrupts masked;
    /// it returns when the scheduler resumes this thread.
    pub fn preempt() {
        let handler = PREEMPT_HANDLER.load(Ordering::Acquire);
        if !handler.is_null() {
            // SAFETY: the only non-null value ever stored is a `fn()` (set_preempt_handler).
            let handler: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(handler) };
            handler();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_each_page;
    use crate::Errno;

    #[test]
    fn check_each_page_asks_once_per_page_and_stops_at_the_first_refusal() {
        let mut asked = Vec::new();
        let pages = |at: u64| (at & !0xfff) + 0x1000;
        assert_eq!(check_each_page(0x1800, 0x3001, 1 << 47, |at| { asked.push(at); Ok(pages(at)) }), Ok(()));
        assert_eq!(asked, [0x1800, 0x2000, 0x3000]);
        assert_eq!(check_each_page(0x1000, 0x1000, 1 << 47, |_| Err(Errno::EFAULT)), Ok(()), "an empty range asks nothing");
        assert_eq!(check_each_page(0, 0x2000, 0x1000, |at| Ok(pages(at))), Err(Errno::EFAULT), "past the limit");
        assert_eq!(check_each_page(0x1000, 0x4000, 1 << 47, |at| if at >= 0x2000 { Err(Errno::EFAULT) } else { Ok(pages(at)) }), Err(Errno::EFAULT));
        assert_eq!(check_each_page(0x1000, 0x4000, 1 << 47, Ok), Err(Errno::EFAULT), "no progress is a refusal, not a hang");
    }
}
