//! Program pages: [`map`], [`protect`] and [`unmap`] put 4 KiB pages with frames of their own
//! at chosen virtual addresses of the live tables (`hal::Platform::map_pages`), for the ELF
//! loader of posix-shim. Frames and new page tables come from the heap (identity-mapped, so a
//! frame's address is its physical address).
//!
//! Non-PIE x86_64 programs are linked at 4 MiB, which is RAM of the kernel's identity map, and
//! where a 3 MiB image loaded at 1 MiB would end. With the feature `program-window` the image is
//! linked at 16 MiB instead (build.rs) and the platform keeps [`PROGRAM_WINDOW`] (4 to 16 MiB)
//! out of the heap at boot, so a program may take those addresses whatever the image's size;
//! the RAM frames behind the window stay unused (12 MiB; the heap still gets 1-4 MiB). Without
//! the feature, mapping RAM there gives `EBUSY`. Low memory (below 1 MiB) and the image with its
//! boot page tables (whose holes are page 0 and the boot stacks' guard pages) are always
//! refused.

use crate::guard::{LOCK, LiveTables, root};
use crate::paging::{self, PageError, TableMemory, flags};
use crate::verified::Verified;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libos_core::hal::{Access, MemoryRegion, Protection};
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};
use x86_64::registers::control::Cr3;

/// The addresses non-PIE programs are linked at, kept from the heap with `program-window`.
pub const PROGRAM_WINDOW: MemoryRegion = MemoryRegion { start: 0x40_0000, end: 0x100_0000 };

/// The image and its boot page tables, `[KERNEL_START, KERNEL_END)` (set at boot; until then
/// everything is refused).
pub(crate) static KERNEL_START: AtomicU64 = AtomicU64::new(0);
/// See [`KERNEL_START`].
pub(crate) static KERNEL_END: AtomicU64 = AtomicU64::new(u64::MAX);
/// Firmware data and page 0 live below this.
const LOW_MEMORY_END: u64 = 0x10_0000;
/// Whether the CPU has NX (set at boot).
pub(crate) static NX: AtomicBool = AtomicBool::new(false);

/// The heap region the boot code keeps for programs.
pub(crate) const fn reserved_window() -> Option<MemoryRegion> {
    if cfg!(feature = "program-window") { Some(PROGRAM_WINDOW) } else { None }
}

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
        Ok((table, index)) => (LiveTables.table(table)[index] & flags::ADDRESS) | (virt & (PAGE - 1)),
        Err(_) => virt,
    }
}

fn frame_layout() -> Layout {
    Layout::new::<[u8; 4096]>().align_to(4096).expect("4 KiB alignment is valid")
}

fn check(virt: u64, len: u64) -> Result<u64> {
    let end = virt.checked_add(len).ok_or(Errno::EINVAL)?;
    if virt % PAGE != 0 || len % PAGE != 0 || len == 0 || end > 1 << 47 {
        return Err(Errno::EINVAL);
    }
    let kernel = KERNEL_START.load(Ordering::Relaxed)..KERNEL_END.load(Ordering::Relaxed);
    if virt < LOW_MEMORY_END || (virt < kernel.end && kernel.start < end) {
        return Err(Errno::EBUSY);
    }
    Ok(end)
}

fn errno(e: PageError) -> Errno {
    match e {
        PageError::Busy => Errno::EBUSY,
        PageError::Exists => Errno::EEXIST,
        PageError::NotProgram => Errno::EINVAL,
        PageError::OutOfTableFrames => Errno::ENOMEM,
    }
}

fn nx() -> u64 {
    if NX.load(Ordering::Relaxed) { flags::NO_EXECUTE } else { 0 }
}

fn flush_all() {
    let me = crate::smp::cpu_id();
    let generation = GENERATION.load(Ordering::SeqCst);
    let (frame, cr3_flags) = Cr3::read_raw();
    // SAFETY: reloading the same root flushes the TLB (stale 2 MiB entries after a split).
    unsafe { Cr3::write_raw(frame, cr3_flags) };
    if let Some(seen) = FLUSHED_AT.get(me) {
        seen.fetch_max(generation, Ordering::Relaxed);
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const NEVER: AtomicU64 = AtomicU64::new(0);
/// Per CPU: the table generation its TLB was last flushed at (all of it).
static FLUSHED_AT: [AtomicU64; libos_core::cpus::MAX_CPUS] = [NEVER; libos_core::cpus::MAX_CPUS];
/// CPUs halted in their idle loop (one bit each): a shootdown skips them, and they flush on
/// their way out if the tables changed meanwhile ([`leave_lazy`]). Waking a halted CPU for a
/// flush would cost every page-table change (a thread's stack guard, `mprotect`) a round trip
/// per idle CPU; on an emulated host that is milliseconds.
static LAZY: AtomicU64 = AtomicU64::new(0);

/// Halts this CPU until an interrupt (enabling interrupts atomically with the halt), as a
/// lazy-TLB CPU that shootdowns do not interrupt.
pub(crate) fn halt_lazily() {
    let me = crate::smp::cpu_id();
    LAZY.fetch_or(1 << me, Ordering::SeqCst);
    x86_64::instructions::interrupts::enable_and_hlt();
    leave_lazy();
}

/// Called first by every interrupt and after a lazy halt: a CPU that was halted lazily flushes
/// its TLB if the tables changed since it last did, before anything (a thread switched to at
/// the interrupt's return) can use a stale entry. (A shooter bumps the generation before it
/// reads [`LAZY`]: a CPU it skipped finds the bump here.)
#[inline]
pub(crate) fn leave_lazy() {
    if LAZY.load(Ordering::Relaxed) == 0 {
        return;
    }
    let me = crate::smp::cpu_id();
    if LAZY.fetch_and(!(1 << me), Ordering::SeqCst) & (1 << me) != 0
        && GENERATION.load(Ordering::SeqCst) > FLUSHED_AT[me].load(Ordering::Relaxed)
    {
        flush_all();
    }
}

/// Flushes the TLB of every other online CPU (the caller flushed its own), after a change to
/// the live tables and before anything depends on it being seen everywhere (a frame freed, a
/// protection call returning). Call it with interrupts enabled and `LOCK` released: the other
/// CPUs answer an interrupt, and one of them may be waiting for the lock with interrupts masked.
pub(crate) fn shoot_down() {
    if libos_core::cpus::online_count() < 2 {
        return;
    }
    let me = crate::smp::cpu_id();
    // The generation was bumped (`tables_changed`, SeqCst) before this read.
    let targets = libos_core::cpus::online() & !(1 << me) & !LAZY.load(Ordering::SeqCst);
    if let Err(e) = libos_core::cpus::run_on_each(targets, &flush_all) {
        log::warn!("TLB shootdown of CPUs {targets:#b} failed: {e}");
    }
}

/// Maps `[virt, virt + len)` to fresh zeroed frames (see `hal::Platform::map_pages`).
pub fn map(virt: u64, len: u64, protection: Protection) -> Result<()> {
    let end = check(virt, len)?;
    let (result, freed) = map_locked(virt, end, protection);
    shoot_down();
    drop(freed);
    result
}

/// Maps `[virt, end)`; on an error, unmaps what it mapped and returns those frames (freed by
/// the caller after the shootdown).
fn map_locked(virt: u64, end: u64, protection: Protection) -> (Result<()>, Frames) {
    let window = reserved_window();
    let _lock = LOCK.lock();
    PROGRAM_LOW.fetch_min(virt, Ordering::AcqRel);
    PROGRAM_HIGH.fetch_max(end, Ordering::AcqRel);
    let mut addr = virt;
    let mut result = Ok(());
    while addr < end {
        let allow_ram = window.is_some_and(|w| w.start <= addr && addr < w.end);
        let slot = paging::program_slot(&mut LiveTables, root(), addr, allow_ram).map_err(errno);
        let (table, index, split) = match slot {
            Ok(slot) => slot,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        // SAFETY: the layout has a non-zero size.
        let frame = unsafe { alloc_zeroed(frame_layout()) };
        if frame.is_null() {
            result = Err(Errno::ENOMEM);
            break;
        }
        LiveTables.table(table)[index] = paging::program_entry(frame as u64, protection, nx());
        if split {
            flush_all();
        } else {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(addr));
        }
        addr += PAGE;
    }
    let freed = if result.is_err() { unmap_locked(virt, addr) } else { Frames(alloc::vec::Vec::new()) };
    tables_changed();
    (result, freed)
}

/// Changes the protection of program pages (see `hal::Platform::protect_pages`). Checks every
/// page before changing any.
pub fn protect(virt: u64, len: u64, protection: Protection) -> Result<()> {
    protect_locked(virt, len, protection)?;
    shoot_down();
    Ok(())
}

fn protect_locked(virt: u64, len: u64, protection: Protection) -> Result<()> {
    let end = check(virt, len)?;
    let _lock = LOCK.lock();
    for addr in (virt..end).step_by(PAGE as usize) {
        paging::program_page(&mut LiveTables, root(), addr).map_err(errno)?;
    }
    for addr in (virt..end).step_by(PAGE as usize) {
        let (table, index) = paging::program_page(&mut LiveTables, root(), addr).map_err(errno)?;
        let mut tables = LiveTables;
        let entry = &mut tables.table(table)[index];
        *entry = paging::program_entry(*entry, protection, nx());
        tables_changed();
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(addr));
    }
    Ok(())
}

/// Unmaps program pages and frees their frames (see `hal::Platform::unmap_pages`).
pub fn unmap(virt: u64, len: u64) -> Result<()> {
    let end = check(virt, len)?;
    let freed = {
        let _lock = LOCK.lock();
        unmap_locked(virt, end)
    };
    // The frames go back to the heap only once no CPU's TLB can reach them.
    shoot_down();
    drop(freed);
    Ok(())
}

/// Frames of unmapped program pages, freed when dropped (after the TLB shootdown).
struct Frames(alloc::vec::Vec<u64>);

impl Drop for Frames {
    fn drop(&mut self) {
        for &frame in &self.0 {
            // SAFETY: the frame of a program page came from `alloc_zeroed` with this layout in
            // `map`; its only mapping is gone and every CPU's TLB was flushed since.
            unsafe { dealloc(frame as *mut u8, frame_layout()) };
        }
    }
}

fn unmap_locked(start: u64, end: u64) -> Frames {
    let mut frames = Frames(alloc::vec::Vec::new());
    for addr in (start..end).step_by(PAGE as usize) {
        let Ok((table, index)) = paging::program_page(&mut LiveTables, root(), addr) else { continue };
        let entry = core::mem::take(&mut LiveTables.table(table)[index]);
        tables_changed();
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(addr));
        frames.0.push(entry & flags::ADDRESS);
    }
    frames
}

/// `hal::Platform::make_program_accessible`: the identity map's device pages of `region` become
/// normal write-back memory (a virtio shared-memory window a program maps). Every page is
/// checked first: one that is not uncached device memory of the identity map, or a large
/// page reaching outside `region`, gives `EINVAL` and nothing changes. A region that already
/// is normal memory answers `Ok` (a second mount of the same window). With the feature
/// `shared-memory` only.
#[cfg(feature = "shared-memory")]
pub fn make_normal(region: MemoryRegion) -> Result<()> {
    if region.start % PAGE != 0 || region.end % PAGE != 0 || region.start >= region.end || region.end > 1 << 47 {
        return Err(Errno::EINVAL);
    }
    if check_user_access(region.start, region.end, Access::Write).is_ok() {
        return Ok(());
    }
    {
        let _lock = LOCK.lock();
        let mut at = region.start;
        while at < region.end {
            let (bits, size) = paging::translate(&mut LiveTables, root(), at).ok_or(Errno::EINVAL)?;
            let start = at & !(size - 1);
            if bits & flags::NO_CACHE == 0 || bits & flags::PROGRAM != 0 || start < region.start || start + size > region.end {
                return Err(Errno::EINVAL);
            }
            at = start + size;
        }
        let mut at = region.start;
        while at < region.end {
            let (_, end) = paging::make_normal(&mut LiveTables, root(), at).map_err(errno)?;
            at = end;
        }
        tables_changed();
        flush_all();
    }
    shoot_down();
    Ok(())
}

/// Counts changes to the live tables (see [`crate::verified`]): bumped by [`tables_changed`].
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Pages [`check_user_access`] found usable lately (see [`crate::verified`]). One set for
/// the machine (behind a lock: every CPU asks it; a change of the tables voids it for all).
static VERIFIED: IrqSpinLock<Verified> = IrqSpinLock::new(Verified::new());

/// Called under `LOCK` after every change to the live tables: voids what [`VERIFIED`]
/// remembers.
pub(crate) fn tables_changed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// `hal::Platform::check_user_access`: every page of `[start, end)` mapped, cached (RAM, not
/// a device window: those are mapped uncached) and, for a write, writable; else `EFAULT`.
/// Guard pages and holes are non-present, so they fail too.
pub fn check_user_access(start: u64, end: u64, access: Access) -> Result<()> {
    const LIMIT: u64 = 1 << 47;
    if end > LIMIT {
        return Err(Errno::EFAULT);
    }
    let generation = GENERATION.load(Ordering::Acquire);
    // What the remembered pages vouch for, in one lock round (the guard is gone before the
    // miss path takes the lock again); the rest page by page.
    let unknown = VERIFIED.lock().covered(start, end, access == Access::Write, generation);
    libos_core::hal::check_each_page(unknown, end, LIMIT, |at| walk_and_remember(at, access, generation))
}

/// [`check_user_access`] for a page [`VERIFIED`] does not know: the table walk, remembered
/// when it allows the access. Out of line, so the common path keeps a short frame.
#[cold]
#[inline(never)]
fn walk_and_remember(at: u64, access: Access, generation: u64) -> Result<u64> {
    let (page_start, page_end, writable) = access_end(at, access)?;
    VERIFIED.lock().remember(page_start, page_end, writable, generation);
    Ok(page_end)
}

/// The page or large page holding `addr` (start, end, writable) when it allows `access` (as
/// [`check_user_access`] says), else `EFAULT`.
///
/// Every system call's buffers come through here, so the walk first goes without the lock:
/// on one CPU that saves only the lock round (about 3 instructions per page, measured), but
/// it keeps the system calls of several CPUs from queueing on one lock. That is safe because
/// tables are never freed and a split fills its new table before linking it, so a racing walk
/// sees the old mapping or the new one; a walk that finds no usable page is repeated under
/// the lock, which gives the answer.
#[inline(always)]
fn access_end(addr: u64, access: Access) -> Result<(u64, u64, bool)> {
    let permits = |bits: u64| bits & flags::NO_CACHE == 0 && (access == Access::Read || bits & flags::WRITABLE != 0);
    let unlocked = paging::translate_by(
        // SAFETY: `table` is the root or an address a present entry holds: a live table,
        // identity-mapped and never freed; one aligned word, read volatile because the locked
        // writers may change it meanwhile.
        |table, i| unsafe { core::ptr::read_volatile((table as *const u64).add(i)) },
        root(),
        addr,
    );
    let (bits, size) = match unlocked.filter(|&(bits, _)| permits(bits)) {
        Some(found) => found,
        None => {
            let _lock = LOCK.lock();
            paging::translate(&mut LiveTables, root(), addr).ok_or(Errno::EFAULT)?
        }
    };
    if !permits(bits) {
        return Err(Errno::EFAULT);
    }
    let start = addr & !(size - 1);
    Ok((start, start.saturating_add(size), bits & flags::WRITABLE != 0))
}

/// `hal::Platform::reserved_regions`: low memory (firmware data, page 0), the image with its
/// boot tables, the interrupt controllers' and firmware's window below 4 GiB (I/O APIC, HPET,
/// local APIC, the BIOS), and the device windows found at boot.
pub fn reserved_regions() -> alloc::vec::Vec<(MemoryRegion, &'static str)> {
    let mut regions = alloc::vec![
        (MemoryRegion { start: 0, end: LOW_MEMORY_END }, "low memory"),
        (MemoryRegion { start: KERNEL_START.load(Ordering::Relaxed), end: KERNEL_END.load(Ordering::Relaxed) }, "the kernel image"),
        (MemoryRegion { start: 0xfec0_0000, end: 0x1_0000_0000 }, "the interrupt controllers"),
    ];
    regions.extend(crate::discovery::devices().windows());
    regions
}
