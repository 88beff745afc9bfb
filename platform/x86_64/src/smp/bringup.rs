//! Starting the other CPUs (feature `smp`): found in the ACPI MADT, started with
//! INIT-SIPI-SIPI, each with stacks, a GDT and TSS of its own.
//!
//! **Start-up.** A STARTUP IPI can only start a CPU in real mode at a page below 1 MiB, so the
//! trampoline below is copied to [`TRAMPOLINE`] (a page of low RAM, which the heap and programs
//! never get). It reaches long mode on the final page tables and calls
//! [`libos_x86_64_ap_main`] on the stack prepared here. One CPU starts at a time
//! (`libos_core::cpus::start_all` waits for each), so one set of start-up variables serves all;
//! a CPU that misses its timeout and wakes up later sees that the variables name another CPU and
//! parks in the assembly without touching them.
//!
//! **What a started CPU does.** It loads its GDT/TSS and the shared IDT, enables SSE/AVX, its
//! local APIC (timer masked until the scheduler arms it) and the `syscall` MSRs, says it is
//! online and waits for an interrupt until the scheduler sends it into its loop
//! (`libos_core::cpus::secondary_entry`); [`send_ipi`]'s interrupts run
//! `libos_core::cpus::run_on` calls and wake-ups.

use super::{PerCpu, TRAMPOLINE, TRAMPOLINE_USABLE, set_gs_base};
use crate::gdt::{self, IstTops};
use crate::{apic, devices, fpu, guard, interrupts, shutdown};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;
use libos_core::cpus::{self, CpuStarter, StartError, StartReport};
use libos_core::time::Instant;
use x86_64::registers::model_specific::{Efer, EferFlags};

core::arch::global_asm!(
    r#"
/* ---- Secondary CPUs (this module) ----
 * A started CPU begins in real mode at the page the boot CPU copied the trampoline to (the
 * SIPI vector names it; CS = page >> 4, IP = 0). The trampoline loads its own small GDT (its
 * base patched to the copy's address), enters 32-bit protected mode and jumps into the image
 * at libos_x86_64_ap_start32, which enables long mode on the kernel's final page tables (CR3
 * and EFER bits from the boot CPU) and calls libos_x86_64_ap_main(context) on the stack the
 * boot CPU prepared. One CPU starts at a time; the variables below describe that one. */
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global libos_x86_64_ap_trampoline
libos_x86_64_ap_trampoline:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (libos_x86_64_ap_gdt_pointer - libos_x86_64_ap_trampoline)
    movl %cr0, %eax
    orl $1, %eax                        /* CR0.PE */
    movl %eax, %cr0
    ljmpl *(ap_far_jump - libos_x86_64_ap_trampoline)
    .balign 8
    .global libos_x86_64_ap_gdt
libos_x86_64_ap_gdt:
    .quad 0                             /* null */
    .quad 0x00cf9a000000ffff            /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
    .quad 0x00af9a000000ffff            /* 0x18: 64-bit code */
ap_gdt_end:
    .global libos_x86_64_ap_gdt_pointer
libos_x86_64_ap_gdt_pointer:
    .word ap_gdt_end - libos_x86_64_ap_gdt - 1
    .long 0                             /* the copy's address of the GDT, written by smp.rs */
ap_far_jump:
    .long libos_x86_64_ap_start32       /* the image is linked at its physical address */
    .word 0x08
    .global libos_x86_64_ap_trampoline_end
libos_x86_64_ap_trampoline_end:

    .section .data.ap_start, "aw"
    .balign 8
    .global libos_x86_64_ap_cr3
libos_x86_64_ap_cr3:        .quad 0     /* the final page tables (below 4 GiB) */
    .global libos_x86_64_ap_efer
libos_x86_64_ap_efer:       .quad 0     /* EFER bits to set: LME, NXE */
    .global libos_x86_64_ap_stack
libos_x86_64_ap_stack:      .quad 0     /* top of the starting CPU's kernel stack */
    .global libos_x86_64_ap_context
libos_x86_64_ap_context:    .quad 0     /* its per-CPU block, the argument of ap_main */
    .global libos_x86_64_ap_expected_id
libos_x86_64_ap_expected_id: .quad 0    /* its initial APIC id (low 8 bits) */

    .section .text.boot, "ax"
    .code32
    .global libos_x86_64_ap_start32
libos_x86_64_ap_start32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax                     /* CR4.PAE */
    movl %eax, %cr4
    movl libos_x86_64_ap_cr3, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx              /* EFER */
    rdmsr
    orl libos_x86_64_ap_efer, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax               /* CR0.PG | WP | PE */
    movl %eax, %cr0
    ljmp $0x18, $ap_start64

    .code64
ap_start64:
    /* Only the CPU the boot CPU is starting now may take the stack: one that missed its
     * timeout and wakes up late parks here instead, touching nothing. */
    movl $1, %eax
    cpuid
    shrl $24, %ebx                      /* initial APIC id */
    cmpl libos_x86_64_ap_expected_id(%rip), %ebx
    jne 3f
    movq libos_x86_64_ap_stack(%rip), %rsp
    xorl %ebp, %ebp                     /* ends the frame-pointer chain for backtraces */
    movq libos_x86_64_ap_context(%rip), %rdi
    call libos_x86_64_ap_main
3:  cli
    hlt
    jmp 3b

    .code64
"#,
    options(att_syntax)
);

/// Set once the trampoline has been copied.
static TRAMPOLINE_COPIED: AtomicBool = AtomicBool::new(false);

#[allow(clippy::declare_interior_mutable_const)]
const NO_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
/// The local APIC id of each CPU index that was started (the boot CPU's from `start_cpus`).
static APIC_IDS: [AtomicU32; cpus::MAX_CPUS] = [NO_CPU; cpus::MAX_CPUS];

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


const PAGE: usize = 4096;

/// A secondary CPU's block: its [`PerCpu`] first (where its GS base points), then what only
/// its own start needs.
#[repr(C)]
struct ApBlock {
    percpu: PerCpu,
    /// Its interrupt stacks.
    ist: IstTops,
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
        let block: &'static ApBlock = Box::leak(Box::new(ApBlock { percpu: PerCpu { index, in_linux_code: AtomicU32::new(0) }, ist: stacks.ist }));
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
            (&raw mut libos_x86_64_ap_context).write_volatile(block as *const ApBlock as u64);
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
extern "C" fn libos_x86_64_ap_main(block: &'static ApBlock) -> ! {
    set_gs_base(&block.percpu);
    gdt::init_secondary(block.ist);
    interrupts::load();
    fpu::init();
    apic::init_secondary();
    crate::syscall::enable_on_this_cpu();
    cpus::mark_online(block.percpu.index);
    // Wait for interrupts: only `run_on`'s reach this CPU (its timer is masked and device
    // interrupts go to the boot CPU), until the scheduler sends it into its loop.
    loop {
        x86_64::instructions::interrupts::disable();
        if let Some(entry) = cpus::secondary_entry() {
            entry(block.percpu.index);
        }
        crate::pages::halt_lazily();
    }
}
