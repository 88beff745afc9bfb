//! The boot path from the assembly entry to the kernel's main function.
//!
//! `primary_entry` (src/boot.s) drops to EL1, turns the MMU on with an early map, relocates the
//! image and calls `libos_aarch64_start`, which [`crate::entry_point!`] defines to call
//! [`start`]. Here we find the console in the DTB, read the rest of the machine from it, build
//! the final page tables, enable the GIC and the timer, register the platform with libos-core
//! and hand a [`BootInfo`] to the kernel. Any failure prints why (on the UART, else through
//! semihosting) and powers off with [`exit::BOOT_ERROR`]; nothing here can hang.

use crate::dtb::{self, DtbError, Machine};
use libos_core::memory::{self, MIN_HEAP, PAGE, RegionList, TooLittleMemory};
use crate::paging::{self, Layout, TableMemory};
use crate::{PLATFORM, exceptions, gic, semihosting, shutdown, stacks, timer, uart};
use core::fmt;
use libos_core::console::emergency_print;
use libos_core::exit;
use libos_core::hal::{self, BootInfo, MemoryRegion};
use spin::Once;

core::arch::global_asm!(include_str!("boot.s"));

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

/// The longest kernel command line (as on x86_64).
pub const MAX_CMDLINE: usize = 4096;
/// The early map (src/boot.s) maps whole GiBs: the image's and the DTB's, below 512 GiB.
const GIB: u64 = 1 << 30;
const EARLY_MAP_LIMIT: u64 = 512 * GIB;
/// A larger DTB is not believed.
const MAX_DTB: u64 = 2 << 20;

/// Why the platform could not boot.
#[derive(Debug)]
pub enum BootError {
    /// x0 held no usable DTB address.
    NoDtb(u64),
    /// The device tree is missing something we need.
    Dtb(DtbError),
    /// No UART (PL011 or 16550) in the device tree.
    NoUart,
    /// `/chosen/bootargs` is too long.
    CmdlineTooLong,
    /// Too little RAM for the image, its page tables and a minimal heap.
    TooLittleMemory {
        /// Bytes of RAM the DTB reported.
        have: u64,
        /// RAM must reach up to this address.
        need_end: u64,
    },
    /// The page tables do not fit where the early map can reach them.
    PageTables,
    /// The GICv3 has no redistributor for this CPU.
    NoRedistributor,
    /// CNTFRQ_EL0 is 0 and the DTB gives no timer frequency.
    NoTimerFrequency,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NoDtb(address) => write!(f, "no device tree at {address:#x} (x0 at entry)"),
            BootError::Dtb(e) => e.fmt(f),
            BootError::NoUart => write!(f, "the device tree has no UART for the console (PL011 or 16550)"),
            BootError::CmdlineTooLong => write!(f, "kernel command line is longer than {MAX_CMDLINE} bytes"),
            BootError::TooLittleMemory { have, need_end } => write!(
                f,
                "too little memory: {} KiB of RAM; the image, its page tables and a {} KiB heap need RAM up to {:#x} ({} KiB past the image start)",
                have / 1024,
                MIN_HEAP / 1024,
                need_end,
                need_end.saturating_sub(image_start()).div_ceil(1024)
            ),
            BootError::PageTables => write!(f, "page tables need more frames than reserved (a bug)"),
            BootError::NoRedistributor => write!(f, "the GICv3 has no redistributor for this CPU"),
            BootError::NoTimerFrequency => write!(f, "the generic timer's frequency is unknown (CNTFRQ_EL0 is 0)"),
        }
    }
}

impl From<TooLittleMemory> for BootError {
    fn from(e: TooLittleMemory) -> BootError {
        BootError::TooLittleMemory { have: e.have, need_end: e.need_end }
    }
}

impl From<DtbError> for BootError {
    fn from(e: DtbError) -> BootError {
        BootError::Dtb(e)
    }
}

/// Boot state that lives for the rest of the kernel's life.
struct Booted {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    free: RegionList<32>,
}

static BOOTED: Once<Booted> = Once::new();

/// The free RAM handed to the kernel (the heap's regions); empty before the boot path set it.
pub(crate) fn free_memory() -> &'static [MemoryRegion] {
    BOOTED.get().map_or(&[], |booted| booted.free.as_slice())
}

/// The platform's Rust entry: boots and calls `kernel_main`. Called once, from the assembly entry.
pub fn start(dtb: u64, entry_counter: u64, kernel_main: fn(&'static BootInfo) -> !) -> ! {
    hal::set_platform(&PLATFORM);
    // In thread mode, before anything can fail (see src/semihosting.rs).
    semihosting::probe();
    match boot(dtb, entry_counter) {
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

/// Where the image ends (its bss; the boot page tables follow).
pub fn image_end() -> u64 {
    // SAFETY: a linker-script symbol; only its address is taken.
    symbol(unsafe { &__image_end })
}

/// Where the image runs (the loader's choice; it is linked at 0).
pub fn image_start() -> u64 {
    // SAFETY: a linker-script symbol; only its address is taken.
    symbol(unsafe { &__image_start })
}

/// The DTB's bytes, if `address` holds one the early map reaches.
fn dtb_bytes(address: u64) -> Result<&'static [u8], BootError> {
    if address == 0 || address % 8 != 0 || address >= EARLY_MAP_LIMIT {
        return Err(BootError::NoDtb(address));
    }
    let mut header = [0u8; 8];
    // SAFETY: the early map covers the DTB's GiB as normal memory (src/boot.s) and 8 bytes from
    // an 8-aligned address stay inside it.
    unsafe { core::ptr::copy_nonoverlapping(address as *const u8, header.as_mut_ptr(), 8) };
    let size = dtb::total_size(&header).ok_or(BootError::NoDtb(address))?;
    let size = u64::from(size);
    if !(40..=MAX_DTB).contains(&size) || (address + size - 1) / GIB != address / GIB {
        return Err(BootError::NoDtb(address));
    }
    // SAFETY: the whole DTB lies in the early-mapped GiB (checked above); it is RAM the loader
    // filled and that we keep out of the heap (`free` below), so it stays valid and unchanged.
    Ok(unsafe { core::slice::from_raw_parts(address as *const u8, size as usize) })
}

fn boot(dtb_address: u64, entry_counter: u64) -> Result<&'static BootInfo, BootError> {
    let bytes = dtb_bytes(dtb_address)?;
    let fdt = dtb::open(bytes)?;
    let scan = dtb::scan(&fdt);
    // First, so that every error below can power the machine off.
    shutdown::set_psci(scan.psci());
    match scan.console() {
        Some(console) => uart::init(console),
        None => return Err(BootError::NoUart), // reported through semihosting, if any
    }
    let machine = Machine::from_scan(&scan, &fdt)?;
    crate::discovery::record(&machine);
    crate::smp::set_dtb(bytes);
    if machine.bootargs.len() >= MAX_CMDLINE {
        return Err(BootError::CmdlineTooLong);
    }

    // SAFETY (all four): linker-script symbols; only their addresses are taken.
    let (image_start, text_end, rodata_end, image_end) = unsafe {
        (symbol(&__image_start), symbol(&__text_end), symbol(&__rodata_end), symbol(&__image_end))
    };
    let ram = machine.ram;
    let total_ram = ram.total();
    let guards = stacks::guard_pages().map(|(page, _)| page);
    let layout = Layout {
        text: image_start..text_end,
        rodata: text_end..rodata_end,
        data: rodata_end..image_end,
        guards: &guards,
        ram: ram.as_slice(),
        prefetchable: machine.pcie_mem64,
        device_limit: machine.device_limit.min(paging::ADDRESS_LIMIT),
    };
    // Table frames come right after the image; reserve the most the layout can need. They are
    // written through the early map, which covers the image's GiB.
    let tables_start = image_end;
    let tables_limit = tables_start + paging::max_tables(&layout) * PAGE;
    let dtb_region = MemoryRegion { start: dtb_address, end: dtb_address + bytes.len() as u64 };
    // The DTB and the firmware's reservations stay out of the heap.
    let mut reserved = machine.reserved;
    reserved.add(dtb_region);
    // Checked before any table frame is written: the frames must be RAM.
    memory::plan_free::<32>(ram.as_slice(), MemoryRegion { start: image_start, end: tables_limit }, reserved.as_slice())?;
    if (tables_limit - 1) / GIB != image_start / GIB {
        return Err(BootError::PageTables);
    }
    let mut frames = BumpFrames { next: tables_start, limit: tables_limit };
    let root = paging::build(&layout, &mut frames).map_err(|_| BootError::PageTables)?;
    // SAFETY: the new tables identity-map the image (text executable, data and stacks writable),
    // RAM and the devices as the early map did (with finer permissions), so execution continues
    // unchanged; the barriers make the table writes visible to the walker first, and the TLB
    // invalidation drops the early map's entries.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "msr ttbr0_el1, {root}",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            root = in(reg) root,
            options(nostack),
        );
    }

    let hz = timer::init(machine.timer_frequency);
    if hz == 0 {
        return Err(BootError::NoTimerFrequency);
    }
    exceptions::set_timer_intid(machine.timer_intid);
    gic::init(machine.gic, machine.timer_intid).map_err(|_| BootError::NoRedistributor)?;
    crate::set_gic_version(machine.gic.version());

    // Free RAM: all RAM except page 0, the image and the tables it used, the DTB and reserved
    // memory.
    let free: RegionList<32> = memory::plan_free(ram.as_slice(), MemoryRegion { start: image_start, end: frames.next }, reserved.as_slice())?;

    if let Some(archive) = machine.initrd {
        INITRD.call_once(|| archive);
    }
    let booted = BOOTED.call_once(|| {
        let mut cmdline = [0u8; MAX_CMDLINE];
        let args = machine.bootargs.as_bytes();
        cmdline[..args.len()].copy_from_slice(args);
        Booted { cmdline, cmdline_len: args.len(), free }
    });
    let cmdline = core::str::from_utf8(&booted.cmdline[..booted.cmdline_len]).unwrap_or("");
    static INFO: Once<BootInfo> = Once::new();
    Ok(INFO.call_once(|| BootInfo {
        cmdline,
        free_memory: booted.free.as_slice(),
        total_memory: total_ram,
        entry_counter,
    }))
}

/// The initial RAM archive (physical range), once boot kept it from the heap.
static INITRD: Once<MemoryRegion> = Once::new();

/// `hal::Platform::initrd`.
pub(crate) fn initrd() -> Option<&'static [u8]> {
    let archive = INITRD.get()?;
    let len = usize::try_from(archive.end - archive.start).ok()?;
    // SAFETY: the device tree's parse checked that the range is RAM (identity-mapped, normal
    // memory) and boot kept it out of the heap for good; nothing writes it.
    Some(unsafe { core::slice::from_raw_parts(archive.start as *const u8, len) })
}

/// Hands out the frames after the image for page tables (inside the early map, so they can be
/// written before the new tables are live).
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
        // SAFETY: the frame is RAM after the image (checked against the DTB's memory), inside
        // the early-mapped GiB of the image, and handed out once.
        unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize) };
        Some(frame)
    }

    fn table(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: `table` is a frame from `alloc_table`: mapped, aligned, 4 KiB, only reached
        // through this builder (borrowed mutably), and not live until TTBR0 is loaded.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}
