//! Program pages: [`map`], [`protect`] and [`unmap`] put 4 KiB pages with frames of their own
//! at chosen virtual addresses of the live tables (`hal::Platform::map_pages`), for the ELF
//! loader of posix-shim. Frames and new tables come from the heap (identity-mapped).
//!
//! On QEMU `virt` RAM starts at 1 GiB, so the 4 MiB non-PIE programs are linked at is device
//! space (the flash's addresses, unused by libos): its blocks are split and the pages replaced.
//! RAM of the identity map (the image, the heap) is always refused. Replacing a valid device
//! descriptor is done break-before-make; pages made executable get their data cache cleaned to
//! the point of unification and their instruction cache invalidated.

use crate::guard::{LOCK, LiveTables, root};
use crate::paging::{self, PageError, TableMemory, bits};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::hal::{Access, MemoryRegion, Protection};
use libos_core::{Errno, Result};

const PAGE: u64 = 4096;

/// The lowest and the highest (exclusive) address ever given program pages. Outside that
/// range every address is identity-mapped, so [`virt_to_phys`] answers without a walk.
static PROGRAM_LOW: AtomicU64 = AtomicU64::new(u64::MAX);
static PROGRAM_HIGH: AtomicU64 = AtomicU64::new(0);

/// The physical address behind `virt` (`hal::Platform::virt_to_phys`): a program page's own
/// frame, which lies elsewhere than its virtual address, or `virt` itself (the identity map).
/// Devices are given program memory directly (a `read` into a program's buffer is DMA), so
/// this must be exact.
pub fn virt_to_phys(virt: u64) -> u64 {
    if virt < PROGRAM_LOW.load(Ordering::Acquire) || virt >= PROGRAM_HIGH.load(Ordering::Acquire) {
        return virt;
    }
    let _lock = LOCK.lock();
    match paging::program_page(&mut LiveTables, root(), virt & !(PAGE - 1)) {
        Ok((table, index)) => (LiveTables.table(table)[index] & bits::ADDRESS) | (virt & (PAGE - 1)),
        Err(_) => virt,
    }
}

fn frame_layout() -> Layout {
    Layout::new::<[u8; 4096]>().align_to(4096).expect("4 KiB alignment is valid")
}

fn check(virt: u64, len: u64) -> Result<u64> {
    let end = virt.checked_add(len).ok_or(Errno::EINVAL)?;
    if virt % PAGE != 0 || len % PAGE != 0 || len == 0 || end > paging::ADDRESS_LIMIT {
        return Err(Errno::EINVAL);
    }
    if virt < PAGE {
        return Err(Errno::EBUSY);
    }
    Ok(end)
}

fn errno(e: PageError) -> Errno {
    match e {
        PageError::Busy | PageError::CannotSplit => Errno::EBUSY,
        PageError::Exists => Errno::EEXIST,
        PageError::NotProgram => Errno::EINVAL,
        PageError::OutOfTableFrames => Errno::ENOMEM,
    }
}

/// Writes `descriptor` to the live slot `table[index]` for the page at `addr`: break-before-make
/// when the slot held a valid descriptor.
fn write_descriptor(table: u64, index: usize, descriptor: u64, addr: u64) {
    let mut tables = LiveTables;
    let slot = &mut tables.table(table)[index];
    let old = *slot;
    if old & bits::VALID != 0 {
        *slot = 0;
        invalidate(addr);
    }
    *slot = descriptor;
    invalidate(addr);
}

fn invalidate(addr: u64) {
    // SAFETY: TLB maintenance for one page; the barriers order it with the descriptor store.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vaae1is, {page}",
            "dsb ish",
            "isb",
            page = in(reg) addr >> 12,
            options(nostack, preserves_flags),
        );
    }
}

/// Makes instruction fetches from the page at `addr` see what was written to it.
fn sync_instructions(addr: u64) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let dline = 4u64 << ((ctr >> 16) & 0xf);
    let iline = 4u64 << (ctr & 0xf);
    for line in (addr..addr + PAGE).step_by(dline as usize) {
        // SAFETY: cleaning a mapped line of the data cache changes no memory contents.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) line, options(nostack, preserves_flags)) };
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    for line in (addr..addr + PAGE).step_by(iline as usize) {
        // SAFETY: invalidating instruction-cache lines only drops cached copies.
        unsafe { core::arch::asm!("ic ivau, {}", in(reg) line, options(nostack, preserves_flags)) };
    }
    // SAFETY: barriers.
    unsafe { core::arch::asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Maps `[virt, virt + len)` to fresh zeroed frames (see `hal::Platform::map_pages`).
pub fn map(virt: u64, len: u64, protection: Protection) -> Result<()> {
    let end = check(virt, len)?;
    let _lock = LOCK.lock();
    PROGRAM_LOW.fetch_min(virt, Ordering::AcqRel);
    PROGRAM_HIGH.fetch_max(end, Ordering::AcqRel);
    let mut addr = virt;
    let mut result = Ok(());
    while addr < end {
        let (table, index) = match paging::program_slot(&mut LiveTables, root(), addr) {
            Ok(slot) => slot,
            Err(e) => {
                result = Err(errno(e));
                break;
            }
        };
        // SAFETY: the layout has a non-zero size.
        let frame = unsafe { alloc_zeroed(frame_layout()) };
        if frame.is_null() {
            result = Err(Errno::ENOMEM);
            break;
        }
        write_descriptor(table, index, paging::program_entry(frame as u64, protection), addr);
        if protection == Protection::ReadExecute {
            sync_instructions(addr);
        }
        addr += PAGE;
    }
    if result.is_err() {
        unmap_locked(virt, addr);
    }
    result
}

/// Changes the protection of program pages (see `hal::Platform::protect_pages`). Checks every
/// page before changing any.
pub fn protect(virt: u64, len: u64, protection: Protection) -> Result<()> {
    let end = check(virt, len)?;
    let _lock = LOCK.lock();
    for addr in (virt..end).step_by(PAGE as usize) {
        paging::program_page(&mut LiveTables, root(), addr).map_err(errno)?;
    }
    for addr in (virt..end).step_by(PAGE as usize) {
        let (table, index) = paging::program_page(&mut LiveTables, root(), addr).map_err(errno)?;
        if protection == Protection::ReadExecute {
            sync_instructions(addr);
        }
        // A permission change of the same frame needs no break-before-make.
        let mut tables = LiveTables;
        let slot = &mut tables.table(table)[index];
        *slot = paging::program_entry(*slot, protection);
        invalidate(addr);
    }
    Ok(())
}

/// Unmaps program pages and frees their frames (see `hal::Platform::unmap_pages`).
pub fn unmap(virt: u64, len: u64) -> Result<()> {
    let end = check(virt, len)?;
    let _lock = LOCK.lock();
    unmap_locked(virt, end);
    Ok(())
}

fn unmap_locked(start: u64, end: u64) {
    for addr in (start..end).step_by(PAGE as usize) {
        let Ok((table, index)) = paging::program_page(&mut LiveTables, root(), addr) else { continue };
        let descriptor = core::mem::take(&mut LiveTables.table(table)[index]);
        invalidate(addr);
        // SAFETY: the frame of a program page came from `alloc_zeroed` with this layout in
        // `map`, and its only mapping is gone.
        unsafe { dealloc((descriptor & bits::ADDRESS) as *mut u8, frame_layout()) };
    }
}

/// `hal::Platform::check_user_access`: every page of `[start, end)` mapped as Normal memory
/// (not Device: every device window is) and, for a write, not read-only; else `EFAULT`. Guard
/// pages and holes are invalid descriptors, so they fail too.
pub fn check_user_access(start: u64, end: u64, access: Access) -> Result<()> {
    libos_core::hal::check_each_page(start, end, paging::ADDRESS_LIMIT, |at| access_end(at, access))
}

/// The end of the page or block holding `addr` when it allows `access` (as
/// [`check_user_access`] says), else `EFAULT`.
///
/// Every system call's buffers come through here, so the MMU answers first ([`mmu_access_end`]:
/// a handful of instructions instead of a software walk under the lock); when it refuses, the
/// walk under the lock gives the answer (a block split in progress is invalid for a moment,
/// break-before-make).
#[inline(always)]
fn access_end(addr: u64, access: Access) -> Result<u64> {
    if let Some(end) = mmu_access_end(addr, access) {
        return Ok(end);
    }
    let (attributes, size) = {
        let _lock = LOCK.lock();
        paging::translate(&mut LiveTables, root(), addr).ok_or(Errno::EFAULT)?
    };
    if attributes & bits::ATTR_DEVICE != 0 || (access == Access::Write && attributes & bits::READ_ONLY != 0) {
        return Err(Errno::EFAULT);
    }
    Ok((addr & !(size - 1)).saturating_add(size))
}

/// Asks the MMU to translate `addr` for an EL1 `access` (`AT S1E1R`/`AT S1E1W`): the end of
/// its 4 KiB page when that succeeds to Normal memory, else `None`. Interrupts stay masked
/// from the `AT` to the read of `PAR_EL1`, which a thread switched in between could overwrite.
fn mmu_access_end(addr: u64, access: Access) -> Option<u64> {
    let par: u64;
    // SAFETY: address translation instructions only write PAR_EL1 (no memory access, no
    // fault); DAIF is saved and restored around them.
    unsafe {
        match access {
            Access::Read => core::arch::asm!(
                "mrs {daif}, daif", "msr daifset, #2", "at s1e1r, {addr}", "isb", "mrs {par}, par_el1", "msr daif, {daif}",
                addr = in(reg) addr, par = out(reg) par, daif = out(reg) _, options(nostack, preserves_flags)
            ),
            Access::Write => core::arch::asm!(
                "mrs {daif}, daif", "msr daifset, #2", "at s1e1w, {addr}", "isb", "mrs {par}, par_el1", "msr daif, {daif}",
                addr = in(reg) addr, par = out(reg) par, daif = out(reg) _, options(nostack, preserves_flags)
            ),
        }
    }
    const FAULT: u64 = 1;
    // PAR_EL1.ATTR (bits 63:56) is the MAIR encoding: Device memory has a zero upper nibble.
    let normal = (par >> 60) != 0;
    (par & FAULT == 0 && normal).then(|| (addr & !(PAGE - 1)) + PAGE)
}

/// `hal::Platform::reserved_regions`: page 0, the image, the interrupt controller, the UART
/// and the device windows found in the device tree.
pub fn reserved_regions() -> alloc::vec::Vec<(MemoryRegion, &'static str)> {
    let mut regions = alloc::vec![
        (MemoryRegion { start: 0, end: PAGE }, "page 0"),
        (MemoryRegion { start: crate::boot::image_start(), end: crate::boot::image_end() }, "the kernel image"),
    ];
    regions.extend(crate::gic::windows().map(|w| (w, "the interrupt controller")));
    regions.extend(crate::uart::window().map(|w| (w, "the console UART")));
    regions.extend(crate::discovery::devices().windows());
    regions
}
