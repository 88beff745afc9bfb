//! The other CPUs: found in the ACPI MADT, started with INIT-SIPI-SIPI, each with a per-CPU
//! block, stacks, GDT and TSS of its own.
//!
//! **Per-CPU block.** Every CPU's GS base points at its [`PerCpu`]; the first field is the CPU's
//! index, so [`cpu_id`] is one load (`%gs:0`). The boot CPU's block is a static set before
//! anything else runs ([`init_boot_cpu`]). Nothing else writes the GS base: posix-shim refuses
//! `ARCH_SET_GS`, and the kernel never uses `swapgs` (everything runs in ring 0).
//!
//! **Start-up.** A STARTUP IPI can only start a CPU in real mode at a page below 1 MiB, so the
//! trampoline of src/boot.s is copied to [`TRAMPOLINE`] (a page of low RAM, which the heap and
//! programs never get). It reaches long mode on the final page tables and calls
//! [`libos_x86_64_ap_main`] on the stack prepared here. One CPU starts at a time
//! (`libos_core::cpus::start_all` waits for each), so one set of start-up variables serves all;
//! a CPU that misses its timeout and wakes up later sees that the variables name another CPU and
//! parks in the assembly without touching them.
//!
//! **What a started CPU does.** It loads its GDT/TSS and the shared IDT, enables SSE/AVX and its
//! local APIC (timer masked), says it is online and halts until an interrupt: the only ones it
//! gets are [`send_ipi`]'s, which run `libos_core::cpus::run_on` calls. Threads do not run on it
//! yet: the scheduler is single-CPU, and the shared kernel state (locks that mask
//! interrupts on one CPU only, the verified-pages cache without TLB shootdown, the `syscall`
//! MSRs that only the boot CPU has) is not ready for a second one (issue 16's next steps).

use crate::gdt::{self, IstTops};
use crate::{apic, devices, fpu, guard, interrupts, shutdown};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;
use libos_core::cpus::{self, CpuStarter, StartError, StartReport};
use libos_core::time::Instant;
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

/// The page the trampoline is copied to (the STARTUP vector is its page number).
pub const TRAMPOLINE: u64 = 0x8000;
/// Set at boot when [`TRAMPOLINE`] lies in RAM the memory map reports as usable.
static TRAMPOLINE_USABLE: AtomicBool = AtomicBool::new(false);
/// Set once the trampoline has been copied.
static TRAMPOLINE_COPIED: AtomicBool = AtomicBool::new(false);

#[allow(clippy::declare_interior_mutable_const)]
const NO_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
/// The local APIC id of each CPU index that was started (the boot CPU's from `start_cpus`).
static APIC_IDS: [AtomicU32; cpus::MAX_CPUS] = [NO_CPU; cpus::MAX_CPUS];

const IA32_GS_BASE: u32 = 0xc000_0101;
const PAGE: usize = 4096;

/// One CPU's block, reached through its GS base.
#[repr(C)]
pub struct PerCpu {
    /// The CPU's index (`%gs:0`, [`cpu_id`]).
    index: usize,
    /// Non-zero while the thread this CPU runs is in Linux code (`%gs:8`, written by the
    /// `syscall` trap's entry and exits: see [`crate::syscall`]).
    in_linux_code: AtomicU32,
    /// Its interrupt stacks (secondary CPUs; the boot CPU's are in its static TSS).
    ist: IstTops,
}

/// Where the `syscall` trap finds [`PerCpu::in_linux_code`].
pub const IN_LINUX_CODE: usize = 8;
const _: () = assert!(core::mem::offset_of!(PerCpu, index) == 0 && core::mem::offset_of!(PerCpu, in_linux_code) == IN_LINUX_CODE);

static BOOT_CPU: PerCpu =
    PerCpu { index: 0, in_linux_code: AtomicU32::new(0), ist: IstTops { double_fault: 0, fault: 0, nmi: 0, interrupt: 0 } };

unsafe extern "C" {
    static libos_x86_64_ap_trampoline: u8;
    static libos_x86_64_ap_trampoline_end: u8;
    static libos_x86_64_ap_gdt: u8;
    static libos_x86_64_ap_gdt_pointer: u8;
    static mut libos_x86_64_ap_cr3: u64;
    static mut libos_x86_64_ap_efer: u64;
    static mut libos_x86_64_ap_stack: u64;
    static mut libos_x86_64_ap_context: u64;
    static mut libos_x86_64_ap_expected_id: u64;
}

fn set_gs_base(block: &'static PerCpu) {
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; the block lives forever, and nothing
    // but `cpu_id` reads through GS.
    unsafe { Msr::new(IA32_GS_BASE).write(block as *const PerCpu as u64) };
}

/// Points the boot CPU's GS base at its block. Called first thing at boot.
pub fn init_boot_cpu() {
    set_gs_base(&BOOT_CPU);
}

/// Records whether [`TRAMPOLINE`] is usable RAM (from the boot memory map).
pub fn set_trampoline_usable(usable: bool) {
    TRAMPOLINE_USABLE.store(usable, Ordering::Relaxed);
}

/// The running CPU's index.
#[inline]
pub fn cpu_id() -> usize {
    let index: usize;
    // SAFETY: every CPU's GS base points at its `PerCpu` from its first Rust instruction on
    // (`init_boot_cpu`, `libos_x86_64_ap_main`), whose first field is the index.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) index, options(nostack, readonly, preserves_flags)) };
    index
}

/// This CPU's "in Linux code" flag ([`PerCpu::in_linux_code`]).
#[inline]
pub fn in_linux_code() -> u32 {
    let value: u32;
    // SAFETY: as in `cpu_id`: GS points at this CPU's block, whose field at IN_LINUX_CODE is a u32.
    unsafe { core::arch::asm!("mov {:e}, gs:[8]", out(reg) value, options(nostack, readonly, preserves_flags)) };
    value
}

/// Sets this CPU's "in Linux code" flag.
#[inline]
pub fn set_in_linux_code(value: u32) {
    // SAFETY: as in `in_linux_code`; the field is an atomic, written only by its own CPU (here,
    // with interrupts masked by the caller or in one instruction).
    unsafe { core::arch::asm!("mov dword ptr gs:[8], {:e}", in(reg) value, options(nostack, preserves_flags)) };
}

/// The local APIC ids of the enabled processors in the MADT, the boot CPU's first.
fn processors() -> Vec<u32> {
    let boot = apic::local_id();
    let mut ids = alloc::vec![boot];
    let Some(rsdp) = shutdown::rsdp() else {
        log::info!("no ACPI tables: one CPU");
        return ids;
    };
    let read = |addr: u64, buf: &mut [u8]| shutdown::read_firmware(addr, buf);
    let Some((madt, len)) = crate::acpi::find_table(rsdp, &read, b"APIC") else {
        log::info!("no MADT in the ACPI tables: one CPU");
        return ids;
    };
    let mut table = alloc::vec![0u8; len.min(64 * 1024)];
    if !read(madt, &mut table) {
        log::warn!("the MADT at {madt:#x} is unreadable: one CPU");
        return ids;
    }
    devices::local_apics_in_madt(&table, |id| {
        if id != boot {
            ids.push(id);
        }
    });
    ids
}

/// Starts the other processors, at most `limit` CPUs in all.
pub fn start_cpus(limit: Option<usize>) -> StartReport {
    let mut starter = Starter { apic_ids: processors() };
    APIC_IDS[0].store(starter.apic_ids[0], Ordering::Relaxed);
    cpus::start_all(&mut starter, limit)
}

/// Sends CPU `cpu` the interrupt of `libos_core::cpus::run_on`.
pub fn send_ipi(cpu: usize) -> libos_core::Result<()> {
    let apic_id = APIC_IDS.get(cpu).map_or(u32::MAX, |id| id.load(Ordering::Acquire));
    if apic_id == u32::MAX || !cpus::is_online(cpu) {
        return Err(libos_core::Errno::EINVAL);
    }
    apic::send_fixed(apic_id, interrupts::IPI_VECTOR);
    Ok(())
}

struct Starter {
    apic_ids: Vec<u32>,
}

impl CpuStarter for Starter {
    fn reported(&self) -> usize {
        self.apic_ids.len()
    }

    fn hardware_id(&self, index: usize) -> u64 {
        self.apic_ids.get(index).map_or(u64::MAX, |&id| u64::from(id))
    }

    fn start(&mut self, index: usize) -> Result<(), StartError> {
        let apic_id = self.apic_ids[index];
        if !TRAMPOLINE_USABLE.load(Ordering::Relaxed) {
            return Err(StartError::NoResources("usable low-memory page at 0x8000 for the start-up code"));
        }
        if apic_id > 0xff {
            // ap_start64 compares CPUID's 8-bit initial APIC id.
            return Err(StartError::NoResources("start-up path for APIC ids above 255"));
        }
        copy_trampoline();
        APIC_IDS[index].store(apic_id, Ordering::Release);
        let stacks = Stacks::allocate().ok_or(StartError::NoResources("memory for stacks"))?;
        let block: &'static PerCpu = Box::leak(Box::new(PerCpu { index, in_linux_code: AtomicU32::new(0), ist: stacks.ist }));
        let efer = Efer::read() & (EferFlags::LONG_MODE_ENABLE | EferFlags::NO_EXECUTE_ENABLE);
        let (root, _) = x86_64::registers::control::Cr3::read_raw();
        // SAFETY: the start-up variables are read only by the CPU started below (the others
        // either never started or park at the id check); the previous CPU is online (or given
        // up), so nothing reads them while they change. CR3 is below 4 GiB (the page tables
        // sit right after the image, inside the first GiB).
        unsafe {
            (&raw mut libos_x86_64_ap_cr3).write_volatile(root.start_address().as_u64());
            (&raw mut libos_x86_64_ap_efer).write_volatile(efer.bits());
            (&raw mut libos_x86_64_ap_stack).write_volatile(stacks.kernel_top);
            (&raw mut libos_x86_64_ap_context).write_volatile(block as *const PerCpu as u64);
            (&raw mut libos_x86_64_ap_expected_id).write_volatile(u64::from(apic_id));
        }
        // The sequence of the Intel SDM (vol. 3, 9.4.4.1): INIT, 10 ms, STARTUP, 200 us, and a
        // second STARTUP if the CPU has not begun (a running CPU ignores it). The 10 ms are for
        // old hardware; a hypervisor's virtual CPUs take INIT at once (Linux skips the wait
        // there too), and it would cost every boot 10 ms per CPU.
        apic::send_init(apic_id);
        if !under_hypervisor() {
            delay(Duration::from_millis(10));
        }
        apic::send_startup(apic_id, TRAMPOLINE);
        delay(Duration::from_micros(200));
        if !cpus::is_online(index) {
            apic::send_startup(apic_id, TRAMPOLINE);
        }
        Ok(())
    }

    fn relax(&self) {
        core::hint::spin_loop();
    }
}

/// CPUID's hypervisor bit (leaf 1, ECX bit 31): this CPU is virtual.
fn under_hypervisor() -> bool {
    crate::cpu::cpuid(1, 0).ecx & (1 << 31) != 0
}

fn delay(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        core::hint::spin_loop();
    }
}

/// Copies the trampoline to [`TRAMPOLINE`] (once) and points its GDT pointer at the copy.
fn copy_trampoline() {
    if TRAMPOLINE_COPIED.swap(true, Ordering::AcqRel) {
        return;
    }
    let start = (&raw const libos_x86_64_ap_trampoline) as u64;
    let len = (&raw const libos_x86_64_ap_trampoline_end) as u64 - start;
    let gdt_offset = (&raw const libos_x86_64_ap_gdt) as u64 - start;
    let pointer_offset = (&raw const libos_x86_64_ap_gdt_pointer) as u64 - start;
    assert!(len <= PAGE as u64, "the trampoline fits in its page");
    // SAFETY: TRAMPOLINE is a page of usable low RAM (checked at boot), identity-mapped and
    // writable, which neither the heap nor programs get (below 1 MiB); the source is the
    // trampoline's bytes in the image. The GDT base field is the 4 bytes after the 2-byte limit.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE as *mut u8, len as usize);
        ((TRAMPOLINE + pointer_offset + 2) as *mut u32).write_unaligned((TRAMPOLINE + gdt_offset) as u32);
    }
}

/// A secondary CPU's stacks, each above a guard page.
struct Stacks {
    kernel_top: u64,
    ist: IstTops,
}

impl Stacks {
    /// Stack sizes: the kernel stack, then the interrupt stacks (as the boot CPU's, src/boot.s).
    const SIZES: [usize; 5] = [64 << 10, 16 << 10, 32 << 10, 8 << 10, 16 << 10];

    fn allocate() -> Option<Stacks> {
        let total: usize = Self::SIZES.iter().map(|size| size + PAGE).sum();
        let layout = core::alloc::Layout::from_size_align(total, PAGE).ok()?;
        // SAFETY: the layout has a non-zero size. The memory is never freed: CPUs stay.
        let base = unsafe { alloc::alloc::alloc(layout) } as u64;
        if base == 0 {
            return None;
        }
        let mut tops = [0u64; 5];
        let mut at = base;
        for (top, size) in tops.iter_mut().zip(Self::SIZES) {
            if guard::set(at, true).is_err() {
                log::warn!("no guard page below a CPU stack at {:#x}", at + PAGE as u64);
            }
            at += (PAGE + size) as u64;
            *top = at;
        }
        let [kernel_top, double_fault, fault, nmi, interrupt] = tops;
        Some(Stacks { kernel_top, ist: IstTops { double_fault, fault, nmi, interrupt } })
    }
}

/// The Rust entry of a secondary CPU (from src/boot.s, on the stack [`Stacks`] gave it).
#[unsafe(no_mangle)]
extern "C" fn libos_x86_64_ap_main(block: &'static PerCpu) -> ! {
    set_gs_base(block);
    gdt::init_secondary(block.ist);
    interrupts::load();
    fpu::init();
    apic::init_secondary();
    crate::syscall::enable_on_this_cpu();
    cpus::mark_online(block.index);
    // Wait for interrupts: only `run_on`'s reach this CPU (its timer is masked and device
    // interrupts go to the boot CPU), until the scheduler sends it into its loop.
    loop {
        x86_64::instructions::interrupts::disable();
        if let Some(entry) = cpus::secondary_entry() {
            entry(block.index);
        }
        crate::pages::halt_lazily();
    }
}
