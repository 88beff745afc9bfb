//! The boot path from the assembly entry to the kernel's main function.
//!
//! `_start32` (src/boot.s) enters long mode on an early 1 GiB identity map and calls
//! `libos_x86_64_start`, which [`crate::entry_point!`] defines to call [`start`]. Here we bring
//! up the console, read the PVH boot information, build the final page tables, load the GDT,
//! TSS and IDT, enable the local APIC, register the platform with libos-core and hand a
//! [`BootInfo`] to the kernel. Any failure prints why and powers off with
//! [`exit::BOOT_ERROR`]; nothing here can hang.

use crate::memory::usable_ram;
use libos_core::memory::{self, MIN_HEAP, PAGE, RegionList, TooLittleMemory};
use crate::paging::{self, Layout, TableMemory};
use crate::pvh::{self, PvhError};
use crate::{PLATFORM, apic, cpu, fpu, gdt, interrupts, serial, shutdown, smp, stacks};
use core::fmt;
use libos_core::console::emergency_print;
use libos_core::exit;
use libos_core::hal::{self, BootInfo, MemoryRegion};
use spin::Once;

core::arch::global_asm!(include_str!("boot.s"), options(att_syntax));

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static libos_x86_64_entry_tsc: u64;
}

/// The early identity map (src/boot.s) covers the first GiB: everything we read before the final
/// page tables are loaded, and every page-table frame, must lie below this.
const EARLY_MAP_LIMIT: u64 = 1 << 30;
/// RAM below 1 MiB holds firmware data (the loader's start_info, BIOS areas); leave it alone.
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Why the platform could not boot.
#[derive(Debug)]
pub enum BootError {
    /// The PVH boot information is missing or broken.
    Pvh(PvhError),
    /// Too little RAM for the image, its page tables and a minimal heap.
    TooLittleMemory {
        /// Bytes of usable RAM the firmware reported.
        have: u64,
        /// RAM must reach up to this address.
        need_end: u64,
    },
    /// The page tables did not fit in the frames set aside for them.
    PageTables,
}

impl From<TooLittleMemory> for BootError {
    fn from(e: TooLittleMemory) -> BootError {
        BootError::TooLittleMemory { have: e.have, need_end: e.need_end }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Pvh(e) => e.fmt(f),
            BootError::TooLittleMemory { have, need_end } => write!(
                f,
                "too little memory: {} KiB of usable RAM; the image, its page tables and a {} KiB heap need RAM up to {} KiB",
                have / 1024,
                MIN_HEAP / 1024,
                need_end.div_ceil(1024)
            ),
            BootError::PageTables => write!(f, "page tables need more frames than reserved (a bug)"),
        }
    }
}

/// Boot state that lives for the rest of the kernel's life.
struct Booted {
    cmdline: [u8; pvh::MAX_CMDLINE],
    cmdline_len: usize,
    free: RegionList<{ pvh::MAX_MEMMAP_ENTRIES }>,
}

static BOOTED: Once<Booted> = Once::new();

/// The platform's Rust entry: boots and calls `kernel_main`. Called once, from the assembly entry.
pub fn start(start_info: u32, kernel_main: fn(&'static BootInfo) -> !) -> ! {
    smp::init_boot_cpu();
    serial::init();
    hal::set_platform(&PLATFORM);
    match boot(u64::from(start_info)) {
        Ok(info) => kernel_main(info),
        Err(e) => {
            emergency_print(format_args!("libos: cannot boot: {e}\n"));
            shutdown::power_off(exit::BOOT_ERROR);
        }
    }
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

fn boot(start_info: u64) -> Result<&'static BootInfo, BootError> {
    // SAFETY: the assembly entry wrote this before anything else ran; it is never written again.
    let entry_counter = unsafe { core::ptr::read_volatile(&raw const libos_x86_64_entry_tsc) };
    let features = cpu::Features::detect();

    let mut cmdline = [0u8; pvh::MAX_CMDLINE];
    let read_early = |addr: u64, buf: &mut [u8]| -> Result<(), PvhError> {
        match addr.checked_add(buf.len() as u64) {
            Some(end) if addr >= 4096 && end <= EARLY_MAP_LIMIT => {
                // SAFETY: [addr, end) lies inside the early identity map of the first GiB, and
                // the loader's boot information is plain memory.
                unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
                Ok(())
            }
            _ => Err(PvhError::Unreadable(addr)),
        }
    };
    let start = pvh::parse(start_info, &read_early, &mut cmdline).map_err(BootError::Pvh)?;
    shutdown::set_rsdp(start.rsdp);

    // SAFETY (all four): linker-script symbols; only their addresses are taken.
    let (image_start, text_end, rodata_end, image_end) = unsafe {
        (symbol(&__image_start), symbol(&__text_end), symbol(&__rodata_end), symbol(&__image_end))
    };
    let ram: RegionList<{ pvh::MAX_MEMMAP_ENTRIES }> = usable_ram(start.memmap());
    let total_ram = ram.total();
    smp::set_trampoline_usable(
        ram.as_slice().iter().any(|r| r.start <= smp::TRAMPOLINE && smp::TRAMPOLINE + PAGE <= r.end),
    );

    let guards = stacks::guard_pages().map(|(page, _)| page);
    let layout = Layout {
        text: image_start..text_end,
        rodata: text_end..rodata_end,
        data: rodata_end..image_end,
        guards: &guards,
        ram: ram.as_slice(),
        // No 64-bit BAR window is known (the ACPI tables' is not read): prefetchable BARs go
        // into the 32-bit window, mapped as device memory like every other BAR.
        prefetchable: None,
        device_limit: 1 << 32,
    };
    // Page-table frames come right after the image; reserve the most the layout can need.
    let tables_start = image_end;
    let tables_limit = tables_start + paging::max_tables(&layout) * PAGE;
    // RAM below 1 MiB holds firmware data (the loader's start_info, BIOS areas): not for the heap.
    // With `program-window`, the addresses non-PIE programs are linked at stay out of the heap;
    // so does the initial RAM archive, for good (`hal::Platform::initrd`).
    let initrd = start.initrd.and_then(|(at, len)| initrd_in_ram(at, len, ram.as_slice()));
    let mut kept_storage = [MemoryRegion { start: 0, end: LOW_MEMORY_END }; 3];
    let mut kept_count = 1;
    for region in [crate::pages::reserved_window(), initrd].into_iter().flatten() {
        kept_storage[kept_count] = region;
        kept_count += 1;
    }
    let kept = &kept_storage[..kept_count];
    memory::plan_free::<{ pvh::MAX_MEMMAP_ENTRIES }>(
        ram.as_slice(),
        MemoryRegion { start: image_start, end: tables_limit },
        kept,
    )?;
    if tables_limit > EARLY_MAP_LIMIT {
        return Err(BootError::TooLittleMemory { have: total_ram, need_end: tables_limit + MIN_HEAP });
    }
    let mut frames = BumpFrames { next: tables_start, limit: tables_limit };
    let nx = if features.nx { paging::flags::NO_EXECUTE } else { 0 };
    if features.nx {
        // SAFETY: the CPU supports NX (CPUID); enabling it only makes the NX bit meaningful.
        unsafe { x86_64::registers::model_specific::Efer::update(|f| f.insert(x86_64::registers::model_specific::EferFlags::NO_EXECUTE_ENABLE)) };
    }
    let root = paging::build(&layout, &mut frames, nx).map_err(|_| BootError::PageTables)?;
    // SAFETY: the new tables identity-map the image (text executable, data and stacks writable),
    // the stacks and all RAM exactly as the early map did, so execution continues unchanged.
    unsafe {
        let frame = x86_64::structures::paging::PhysFrame::from_start_address_unchecked(x86_64::PhysAddr::new(root));
        x86_64::registers::control::Cr3::write(frame, x86_64::registers::control::Cr3Flags::empty());
    }
    gdt::init();
    interrupts::init();
    fpu::init();
    apic::init(features.x2apic);

    // Free RAM: everything usable above 1 MiB except the image, the page tables it used and
    // what `kept` holds.
    let free = memory::plan_free(ram.as_slice(), MemoryRegion { start: image_start, end: frames.next }, kept)?;
    crate::pages::KERNEL_START.store(image_start, core::sync::atomic::Ordering::Relaxed);
    crate::pages::KERNEL_END.store(frames.next, core::sync::atomic::Ordering::Relaxed);
    crate::pages::NX.store(features.nx, core::sync::atomic::Ordering::Relaxed);

    if let (Some((at, len)), Some(_)) = (start.initrd, initrd) {
        INITRD.call_once(|| (at, len));
    }
    let booted = BOOTED.call_once(|| Booted { cmdline, cmdline_len: start.cmdline_len, free });
    // `Once` gives shared access only; build the BootInfo pointing into the stored state.
    let cmdline = core::str::from_utf8(&booted.cmdline[..booted.cmdline_len]).unwrap_or("");
    static INFO: Once<BootInfo> = Once::new();
    Ok(INFO.call_once(|| BootInfo {
        cmdline,
        free_memory: booted.free.as_slice(),
        total_memory: total_ram,
        entry_counter,
    }))
}

/// The initial RAM archive's bytes (physical start, length), once boot kept them from the heap.
static INITRD: Once<(u64, u64)> = Once::new();

/// `hal::Platform::initrd`.
pub(crate) fn initrd() -> Option<&'static [u8]> {
    let &(at, len) = INITRD.get()?;
    // SAFETY: boot checked that [at, at + len) is usable RAM, identity-mapped, and kept it out
    // of the heap for good; nothing writes it (the loader's archive, read-only from then on).
    Some(unsafe { core::slice::from_raw_parts(at as *const u8, usize::try_from(len).ok()?) })
}

/// The pages holding the loader's module `[at, at + len)`, when all of it is usable RAM; else
/// `None` with a line on the console (an archive elsewhere is not read).
fn initrd_in_ram(at: u64, len: u64, ram: &[MemoryRegion]) -> Option<MemoryRegion> {
    let end = at.checked_add(len)?;
    if !ram.iter().any(|r| r.start <= at && end <= r.end) || at < LOW_MEMORY_END {
        emergency_print(format_args!("libos: the initial RAM archive at {at:#x} ({len} bytes) is not in usable RAM: ignored\n"));
        return None;
    }
    Some(memory::page_widened(MemoryRegion { start: at, end }))
}

/// Hands out the frames after the image for page tables (inside the early identity map, so
/// they can be written before the new tables are live).
struct BumpFrames {
    next: u64,
    limit: u64,
}

impl TableMemory for BumpFrames {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.next >= self.limit {
            return None;
        }
        let frame = self.next;
        self.next += PAGE;
        // SAFETY: the frame is RAM after the image, inside the early identity map, and handed
        // out once.
        unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize) };
        Some(frame)
    }

    fn table(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: `table` is a frame from `alloc_table`: identity-mapped, aligned, 4 KiB, and only
        // reached through this builder (borrowed mutably), and not live until CR3 is loaded.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}
