//! The other CPUs: per-CPU state ([`PerCpu`] at TPIDR_EL1, [`cpu_id`]) and bring-up through
//! PSCI `CPU_ON` ([`start_cpus`]).
//!
//! [`start_cpus`] reads the CPUs from the device tree ([`dtb::cpus`]: the boot CPU is index 0,
//! the others follow in tree order), maps the heap with pages ([`guard::split_for_smp`]: no
//! block may be split under a running CPU's feet later) and lets
//! [`libos_core::cpus::start_all`] start them one at a time. For each, [`Starter::start`] allocates the CPU's stacks from the heap (kernel,
//! exception and nested-exception stack, each above an unmapped guard page) and its
//! [`PerCpu`] block, which doubles as the start context: the boot CPU's live MAIR/TCR/TTBR0/
//! SCTLR values go in, so the new CPU uses the very tables the boot CPU uses. The block is
//! cleaned to the point of coherency (the new CPU reads it with its MMU off, past the caches),
//! then `CPU_ON` names `libos_aarch64_secondary_entry` (src/boot.s) with the block as context.
//! The CPU sets itself up there and calls [`libos_aarch64_secondary_start`], which sets up its
//! part of the GIC ([`gic::init_cpu`]: its redistributor or banked registers, its CPU
//! interface, the timer PPI and the IPI) and its timer, reports it online and waits for
//! interrupts until the scheduler gives it work ([`cpus::secondary_entry`]). IPIs
//! ([`gic::send_ipi`]) reach it from then on.

use crate::cpu::{self, read_sysreg};
use crate::dtb::{self, CpuList, MPIDR_AFFINITY};
use crate::{gic, guard, shutdown, timer};
use alloc::alloc::{Layout, alloc, dealloc};
use alloc::boxed::Box;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use libos_core::cpus::{self, CpuStarter, MAX_CPUS, StartError, StartReport};
use spin::Once;

/// One CPU's own state, found through TPIDR_EL1. The fields after `nested_stack_top` are the
/// start context that `libos_aarch64_secondary_entry` reads with the MMU off (offsets: the
/// `PERCPU_*` constants of src/boot.s, checked below). One cache line (64 bytes, aligned), so
/// cleaning it is one `dc cvac` on usual cores. Never freed: a CPU uses it for good.
#[repr(C, align(64))]
pub struct PerCpu {
    /// The CPU's index ([`cpu_id`]).
    index: u64,
    /// The top of the stack the nested-exception vectors switch to.
    nested_stack_top: u64,
    ttbr0: u64,
    tcr: u64,
    mair: u64,
    sctlr: u64,
    stack_top: u64,
    exception_stack_top: u64,
    /// Non-zero while the thread this CPU runs is in Linux code ([`IN_LINUX_CODE`]: written by
    /// the system-call trap's entry and exits and kept per thread by the switch, see
    /// `crate::syscall`).
    in_linux_code: AtomicU32,
}

/// Where the system-call trap and the switch find [`PerCpu::in_linux_code`] (from TPIDR_EL1).
pub const IN_LINUX_CODE: usize = 64;

const _: () = {
    assert!(offset_of!(PerCpu, index) == 0);
    assert!(offset_of!(PerCpu, nested_stack_top) == 8);
    assert!(offset_of!(PerCpu, ttbr0) == 16);
    assert!(offset_of!(PerCpu, tcr) == 24);
    assert!(offset_of!(PerCpu, mair) == 32);
    assert!(offset_of!(PerCpu, sctlr) == 40);
    assert!(offset_of!(PerCpu, stack_top) == 48);
    assert!(offset_of!(PerCpu, exception_stack_top) == 56);
    assert!(offset_of!(PerCpu, in_linux_code) == IN_LINUX_CODE);
    assert!(size_of::<PerCpu>() == 128);
};

unsafe extern "C" {
    /// src/boot.s: where `CPU_ON` starts a CPU.
    fn libos_aarch64_secondary_entry();
}

/// This CPU's "in Linux code" flag ([`PerCpu::in_linux_code`]).
#[inline]
pub fn in_linux_code() -> u32 {
    this_cpu().in_linux_code.load(Ordering::Relaxed)
}

fn this_cpu() -> &'static PerCpu {
    let percpu = read_sysreg!("tpidr_el1") as *const PerCpu;
    // SAFETY: as in `cpu_id`: TPIDR_EL1 points at this CPU's block, which lives forever.
    unsafe { &*percpu }
}

/// The index of the running CPU, from its [`PerCpu`] (the boot CPU's is set up by src/boot.s
/// before any Rust code runs, so this is 0 there).
pub fn cpu_id() -> usize {
    let percpu = read_sysreg!("tpidr_el1") as *const PerCpu;
    // SAFETY: TPIDR_EL1 points at this CPU's PerCpu from its entry on (src/boot.s) and is never
    // changed (the nested-exception vectors use TPIDRRO_EL0 as scratch); blocks live forever
    // and `index` is never written after the CPU started.
    unsafe { (*percpu).index as usize }
}

/// The device tree, kept by the boot path: the CPU list is read when the logger is up, so the
/// CPUs left out can be logged.
static DTB: Once<&'static [u8]> = Once::new();

/// Remembers the device tree for [`start_cpus`] (the boot path keeps it out of the heap).
pub fn set_dtb(bytes: &'static [u8]) {
    DTB.call_once(|| bytes);
}

/// `hal::Platform::start_cpus`: starts the CPUs the device tree lists, at most `limit`.
pub fn start_cpus(limit: Option<usize>) -> StartReport {
    let boot_mpidr = read_sysreg!("mpidr_el1") & MPIDR_AFFINITY;
    let list = match DTB.get().map(|bytes| dtb::open(bytes)) {
        Some(Ok(fdt)) => dtb::cpus(&fdt, boot_mpidr, &mut |name, why| {
            log::warn!("CPU node /cpus/{name} left out: {why}");
        }),
        _ => return StartReport { limit, ..StartReport::SINGLE },
    };
    let mut starter = Starter { list };
    if starter.reported() > 1 && limit.is_none_or(|limit| limit > 1) {
        // Before any other CPU can run: later guard pages must not replace heap blocks.
        guard::split_for_smp(crate::boot::free_memory());
    }
    cpus::start_all(&mut starter, limit)
}

/// Bytes of each CPU's kernel stack (SP_EL0), as the boot CPU's.
const STACK: usize = 64 << 10;
/// Bytes of its exception stack (SP_EL1).
const EXCEPTION_STACK: usize = 16 << 10;
/// Bytes of its nested-exception stack.
const NESTED_STACK: usize = 8 << 10;
const PAGE: usize = 4096;
/// One allocation per CPU: guard, nested stack, guard, exception stack, guard, kernel stack.
const STACKS: usize = 3 * PAGE + NESTED_STACK + EXCEPTION_STACK + STACK;

fn stacks_layout() -> Layout {
    Layout::from_size_align(STACKS, PAGE).expect("page-aligned stacks are a valid layout")
}

/// The base of CPU `i`'s [`Stacks`] (0: none), for fault reports ([`guarded_by`]).
static STACKS_OF: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// The CPU and stack whose guard page holds `address`, if it is one of the started CPUs'.
pub fn guarded_by(address: u64) -> Option<(usize, &'static str)> {
    const NAMES: [&str; 3] = ["nested-exception", "exception", "kernel"];
    STACKS_OF.iter().enumerate().find_map(|(cpu, base)| {
        let base = base.load(Ordering::Acquire);
        let guards = Stacks::guards(base).into_iter().zip(NAMES);
        let mut hit = guards.filter(|&(page, _)| base != 0 && (page..page + PAGE).contains(&(address as usize)));
        hit.next().map(|(_, name)| (cpu, name))
    })
}

/// A CPU's stacks on the heap, with the guard pages that [`guard::set`] could make.
struct Stacks {
    base: usize,
    guarded: [bool; 3],
}

impl Stacks {
    fn guards(base: usize) -> [usize; 3] {
        [base, base + PAGE + NESTED_STACK, base + 2 * PAGE + NESTED_STACK + EXCEPTION_STACK]
    }

    fn new() -> Option<Stacks> {
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(stacks_layout()) } as usize;
        if base == 0 {
            return None;
        }
        // A guard page is refused when its block cannot be split safely (see guard.rs); the
        // stack then has none, like the boot CPU's would without paging.
        let guarded = Stacks::guards(base).map(|page| guard::set(page as u64, true).is_ok());
        Some(Stacks { base, guarded })
    }

    /// Tops of the nested-exception, exception and kernel stacks (each right below a guard page
    /// or the end, so 16-byte aligned).
    fn tops(&self) -> (u64, u64, u64) {
        let [_, second, third] = Stacks::guards(self.base);
        (second as u64, third as u64, (self.base + STACKS) as u64)
    }

    /// Gives the memory back (only for a CPU that was never started).
    fn free(self) {
        for (page, guarded) in Stacks::guards(self.base).into_iter().zip(self.guarded) {
            if guarded {
                // Restoring a page we guarded cannot fail: its block is split already.
                let _ = guard::set(page as u64, false);
            }
        }
        // SAFETY: allocated in `new` with this layout; the CPU never ran on it.
        unsafe { dealloc(self.base as *mut u8, stacks_layout()) };
    }
}

/// PSCI `CPU_ON` (SMC64).
const PSCI_CPU_ON: u64 = 0xc400_0003;

/// Starts the CPUs of a [`CpuList`] with PSCI.
struct Starter {
    list: CpuList,
}

impl CpuStarter for Starter {
    fn reported(&self) -> usize {
        self.list.as_slice().len()
    }

    fn hardware_id(&self, index: usize) -> u64 {
        self.list.as_slice().get(index).copied().unwrap_or(u64::MAX)
    }

    fn start(&mut self, index: usize) -> Result<(), StartError> {
        let mpidr = *self.list.as_slice().get(index).ok_or(StartError::NoResources("device-tree entry"))?;
        let stacks = Stacks::new().ok_or(StartError::NoResources("memory for stacks"))?;
        let (nested_stack_top, exception_stack_top, stack_top) = stacks.tops();
        let percpu = Box::leak(Box::new(PerCpu {
            index: index as u64,
            nested_stack_top,
            ttbr0: read_sysreg!("ttbr0_el1"),
            tcr: read_sysreg!("tcr_el1"),
            mair: read_sysreg!("mair_el1"),
            sctlr: read_sysreg!("sctlr_el1"),
            stack_top,
            exception_stack_top,
            in_linux_code: AtomicU32::new(0),
        }));
        let context = core::ptr::from_mut(percpu) as u64;
        STACKS_OF[index].store(stacks.base, Ordering::Release);
        clean_to_poc(context, size_of::<PerCpu>() as u64);
        let entry = libos_aarch64_secondary_entry as *const () as u64;
        // SAFETY: the entry is the secondary path of src/boot.s and the context a PerCpu that
        // holds everything it needs, filled and cleaned to the point of coherency above; the
        // stacks and the block are never freed once the CPU may run (below).
        match unsafe { shutdown::psci_call(PSCI_CPU_ON, mpidr, entry, context) } {
            Some(0) => Ok(()),
            outcome => {
                // The CPU will not run: nothing of this reaches it.
                STACKS_OF[index].store(0, Ordering::Release);
                stacks.free();
                // SAFETY: leaked just above from a Box and never shared (the CPU did not start).
                drop(unsafe { Box::from_raw(core::ptr::from_mut(percpu)) });
                Err(match outcome {
                    Some(code) => StartError::Refused(code),
                    None => StartError::NoResources("PSCI conduit"),
                })
            }
        }
    }
}

/// Cleans the data-cache lines over `[start, start + len)` to the point of coherency, so that
/// loads with the MMU off (non-cacheable) see what was stored through the caches.
fn clean_to_poc(start: u64, len: u64) {
    let line = 4u64 << ((read_sysreg!("ctr_el0") >> 16) & 0xf);
    let mut at = start & !(line - 1);
    while at < start + len {
        // SAFETY: cleaning a mapped line writes it back and changes no memory contents.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += line;
    }
    // SAFETY: a barrier: the clean completes before the CPU_ON call that follows.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// The Rust side of `libos_aarch64_secondary_entry`: runs on the new CPU's own stacks with its
/// MMU, vectors and TPIDR_EL1 set up, interrupts masked. Sets up its part of the GIC (the timer
/// PPI and the IPI) and its timer, reports the CPU online, then waits for interrupts: only IPIs
/// reach it (its timer is disarmed, device interrupts go to the boot CPU) until the scheduler
/// sends it into its loop ([`cpus::enter_secondaries`]), as x86_64's `libos_x86_64_ap_main`.
#[unsafe(no_mangle)]
extern "C" fn libos_aarch64_secondary_start(percpu: &'static PerCpu) -> ! {
    let index = percpu.index as usize;
    // A CPU whose TPIDR_EL1 is not its block would answer `cpu_id` wrongly, and one without a
    // redistributor could receive no interrupt: such a CPU stays offline (the boot CPU then
    // reports it as timed out) rather than run with the wrong identity or never wake.
    if cpu_id() != index {
        park();
    }
    if gic::init_cpu().is_err() {
        log::warn!("CPU {index}: the GICv3 has no redistributor for MPIDR {:#x}", read_sysreg!("mpidr_el1"));
        park();
    }
    // The virtual timer's control register is UNKNOWN after reset: quiet until `set_timer`.
    timer::disarm();
    cpus::mark_online(index);
    loop {
        libos_core::interrupts::disable();
        if let Some(entry) = cpus::secondary_entry() {
            entry(index);
        }
        // Unmasks and waits in one step: an IPI raised since the check above ends the wait.
        cpu::wait_for_interrupt();
    }
}

/// Stops this CPU for good (it never reported itself online).
fn park() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting only stops this CPU; nothing wakes it to work.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
    }
}
