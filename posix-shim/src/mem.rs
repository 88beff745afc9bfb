//! Memory calls: `brk`, `mmap` (anonymous; file-backed `MAP_PRIVATE` and `MAP_SHARED`),
//! `munmap`, `mremap`, `mprotect`, `madvise`, `msync`.
//!
//! libos has one identity-mapped address space, so a mapping is page-aligned, zeroed memory
//! from the kernel heap. The shim records every mapped range with the allocation it belongs
//! to ([`RangeMap`] of [`crate::ranges`]); `munmap` may cut any page range out of any mapping, and an allocation
//! goes back to the heap when its last page is unmapped (musl's allocator unmaps parts of
//! regions). Differences from Linux, all documented behaviour rather than accidents:
//!
//! - the program's own loads and stores are not checked against protections on this memory
//!   (the platform maps the heap read-write), so `PROT_NONE` pages stay accessible to it. The
//!   kernel does honour them: every mapping records its protection, and a system call that
//!   would read a `PROT_NONE` mapping or write one without `PROT_WRITE` (a `read()` into a
//!   buffer the program made read-only) fails with `EFAULT` ([`check_protection`], asked by
//!   `user.rs` before any copy or DMA). A loaded ELF program's own pages are enforced by the
//!   hardware too: `mprotect` there applies `PROT_READ`, `PROT_READ|PROT_WRITE` and
//!   `PROT_READ|PROT_EXEC` through the platform and leaves `PROT_NONE` as it was. Writable +
//!   executable is refused everywhere with `EACCES` (W^X, as Linux with an execmem-denying
//!   security policy);
//! - a `MAP_SHARED` file mapping is a copy: stores reach the file at `msync`, `munmap`,
//!   `mremap` (which moves the file backing with the mapping) and program exit
//!   ([`release_files_at_exit`]), and a `write` to the file is not seen by an existing mapping;
//!   except where the file system maps the file itself (`Node::map_direct`: a virtio-fs DAX
//!   window), which the shim takes first: the program then gets the host file's pages, stores
//!   reach the file at once and `write`s show at once, as on Linux. Pages of such a mapping
//!   past the end of the file read as zeros and keep no stores (Linux raises `SIGBUS` there);
//!   `msync(MS_SYNC)` of it is an `fsync` of the file;
//! - unmapping memory that a call in flight still reads or fills (a blocking `read` in
//!   another thread) removes the range at once but parks its heap memory until the call ends
//!   (see [`crate::inflight`]), so the data never lands in reused memory;
//! - `MAP_FIXED` and `MREMAP_FIXED` cannot place memory at a chosen address: `ENOMEM`;
//! - `brk` grows inside one reservation of [`BRK_RESERVE`] bytes taken at the first call;
//!   beyond it `brk` fails as Linux does when the break cannot move (musl then uses `mmap`).

use crate::fd::{self, Object};
use crate::inflight;
use core::sync::atomic::{AtomicBool, Ordering};
use libos::hal::Access;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use crate::ranges::{Piece, RangeMap, Slice};
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::sync::Mutex;
use libos::{Errno, Result};

/// The page size programs see (`AT_PAGESZ`).
pub const PAGE: u64 = 4096;
/// The bytes reserved for the `brk` heap at its first use.
pub const BRK_RESERVE: u64 = 8 << 20;

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const PROT_GROWSDOWN: u64 = 0x0100_0000;
const PROT_GROWSUP: u64 = 0x0200_0000;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
/// Flags accepted and ignored (hints that make no difference without paging):
/// MAP_GROWSDOWN, MAP_DENYWRITE, MAP_EXECUTABLE, MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE,
/// MAP_NONBLOCK, MAP_STACK, MAP_HUGETLB, MAP_32BIT is not accepted.
const MAP_HINTS: u64 = 0x0100 | 0x0800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MS_ASYNC: u64 = 1;
const MS_INVALIDATE: u64 = 2;
const MS_SYNC: u64 = 4;

/// The memory behind one or more mapped ranges: heap memory, freed when the last range is
/// unmapped, or a file range its file system mapped for the program, unmapped then.
struct Allocation {
    ptr: *mut u8,
    memory: Memory,
}

enum Memory {
    Heap(Layout),
    /// The file's own pages ([`libos::fs::vfs::DirectMapping`]): stores are the file's.
    /// Held for its drop, which ends the mapping.
    #[cfg(feature = "fs")]
    File { _mapping: alloc::boxed::Box<dyn libos::fs::vfs::DirectMapping> },
}

// SAFETY: the allocation is plain memory owned by this value; access goes through the program.
unsafe impl Send for Allocation {}
// SAFETY: as above; the value itself is never mutated.
unsafe impl Sync for Allocation {}

impl Allocation {
    fn new(len: u64) -> Result<Arc<Allocation>> {
        let layout = Layout::from_size_align(usize::try_from(len).map_err(|_| Errno::ENOMEM)?, PAGE as usize)
            .map_err(|_| Errno::ENOMEM)?;
        // SAFETY: `layout` has a non-zero size (callers map at least one page).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Errno::ENOMEM);
        }
        Ok(Arc::new(Allocation { ptr, memory: Memory::Heap(layout) }))
    }

    /// `len` bytes of `object` from `offset` mapped by its file system, if it can
    /// (`Node::map_direct`).
    #[cfg(feature = "fs")]
    fn of_file(object: &Object, offset: u64, len: u64, writable: bool) -> Option<Arc<Allocation>> {
        let Object::File(file) = object else { return None };
        let mapping = file.node().map_direct(offset, len, writable)?;
        Some(Arc::new(Allocation { ptr: mapping.address() as *mut u8, memory: Memory::File { _mapping: mapping } }))
    }

    #[cfg(not(feature = "fs"))]
    fn of_file(_: &Object, _: u64, _: u64, _: bool) -> Option<Arc<Allocation>> {
        None
    }

    /// Whether the memory is the file's own pages (nothing to copy back, nothing to zero).
    fn is_file(&self) -> bool {
        !matches!(self.memory, Memory::Heap(_))
    }

    /// Whether `addr` lies in this heap memory (a file's pages are never a thread's stack).
    fn contains(&self, addr: u64) -> bool {
        match &self.memory {
            Memory::Heap(layout) => (self.ptr as u64..self.ptr as u64 + layout.size() as u64).contains(&addr),
            #[cfg(feature = "fs")]
            Memory::File { .. } => false, // never a stack
        }
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        match self.memory {
            // SAFETY: allocated in `new` with this layout, freed once (the last Arc).
            Memory::Heap(layout) => unsafe { dealloc(self.ptr, layout) },
            // A file's pages are unmapped by dropping their mapping, with `memory`.
            #[cfg(feature = "fs")]
            Memory::File { .. } => {}
        }
    }
}

/// Where a shared file mapping writes back to.
#[derive(Clone)]
struct Backing {
    object: Arc<Object>,
    /// File offset of the range's first byte.
    offset: u64,
}

/// What backs one mapped range (the range itself is kept by [`RangeMap`]).
#[derive(Clone)]
struct Mapping {
    allocation: Arc<Allocation>,
    shared: Option<Backing>,
    /// The `PROT_*` bits the program asked for (checked by the kernel, see the module docs).
    prot: u64,
}

impl Slice for Mapping {
    fn advanced(&self, by: u64) -> Mapping {
        // No overflow: `mmap` refuses a file range whose end does not fit in 64 bits, and `by`
        // stays inside the range.
        let shared = self.shared.as_ref().map(|b| Backing { object: b.object.clone(), offset: b.offset + by });
        Mapping { allocation: self.allocation.clone(), shared, prot: self.prot }
    }
}

/// A removed piece of a mapping: start, length and what backed it.
type Range = Piece<Mapping>;

struct BrkState {
    base: u64,
    current: u64,
    _allocation: Option<Arc<Allocation>>,
}

static MAPPINGS: Mutex<RangeMap<Mapping>> = Mutex::new(RangeMap::new());
/// Set (for good) once some mapping was not readable and writable: until then
/// [`check_protection`] answers without taking the lock, so programs that never restrict
/// their mappings pay nothing for it.
static RESTRICTED: AtomicBool = AtomicBool::new(false);
/// Unmapped pieces whose memory a call in flight may still use ([`crate::inflight`]).
static PARKED: Mutex<Vec<Range>> = Mutex::new(Vec::new());

fn note_protection(prot: u64) {
    if prot & (PROT_READ | PROT_WRITE) != PROT_READ | PROT_WRITE {
        RESTRICTED.store(true, Ordering::Relaxed);
    }
}

/// `EFAULT` when `[start, end)` touches a mapping whose protection forbids `access` for the
/// kernel: `PROT_NONE` for any access, no `PROT_WRITE` for a write. Memory outside the shim's
/// mappings is left to the page-table check.
pub fn check_protection(start: u64, end: u64, access: Access) -> Result<()> {
    if !RESTRICTED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let need = match access {
        Access::Read => PROT_READ | PROT_WRITE | PROT_EXEC,
        Access::Write => PROT_WRITE,
    };
    if MAPPINGS.lock().overlapping(start, end).any(|p| p.value.prot & need == 0) {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// A C thread that may still run on memory the program unmaps: it has ended (its joiner
/// unmaps its stack as soon as it sees the thread's id cleared, while the thread still runs
/// the end of its `exit` on that stack), or it unmapped its own stack (musl's detached
/// threads do, then call `exit` on it). Pieces unmapped under it wait here, still allocated,
/// until the scheduler reports the thread gone (`libos::thread::when_gone`): freed earlier,
/// the next `mmap` would zero or reuse the memory under a running thread.
#[cfg(feature = "threads")]
struct Ending {
    thread: libos::sync::ThreadId,
    /// An address on the stack it runs on.
    sp: u64,
    /// Anonymous pieces unmapped under it (a file mapping is never a stack).
    parked: Vec<Range>,
}

#[cfg(feature = "threads")]
static ENDING: libos::sync::IrqSpinLock<Vec<Ending>> = libos::sync::IrqSpinLock::new(Vec::new());

/// An address on the calling thread's current stack (system calls run on the program's).
#[cfg(feature = "threads")]
#[inline(never)]
fn stack_marker() -> u64 {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as u64
}

/// The calling C thread is ending: memory unmapped under its stack from now on is freed only
/// once no CPU runs on it (see [`Ending`]).
pub fn thread_ending() {
    #[cfg(feature = "threads")]
    watch(stack_marker());
}

/// Records the calling thread as [`Ending`] on the stack at `sp` (once), and asks the
/// scheduler to report when it is gone. Without room for either, it is not watched: its
/// memory is freed at `munmap` as before.
#[cfg(feature = "threads")]
fn watch(sp: u64) {
    let thread = libos::sync::current_thread();
    {
        let mut ending = ENDING.lock();
        if let Some(known) = ending.iter_mut().find(|e| e.thread == thread) {
            known.sp = sp;
            return;
        }
        if ending.try_reserve(1).is_err() {
            return;
        }
        ending.push(Ending { thread, sp, parked: Vec::new() });
    }
    if libos::thread::when_gone(move || thread_gone(thread)).is_err() {
        ENDING.lock().retain(|e| e.thread != thread); // nothing parked with it yet
    }
}

/// The scheduler's report that `thread` is gone: what was unmapped under it is freed. Runs
/// where the scheduler reaps threads, perhaps with interrupts masked: freeing anonymous memory
/// does not block.
#[cfg(feature = "threads")]
fn thread_gone(thread: libos::sync::ThreadId) {
    let gone = {
        let mut ending = ENDING.lock();
        ending.iter().position(|e| e.thread == thread).map(|i| ending.swap_remove(i))
    };
    drop(gone);
}

/// Takes the pieces of `removed` an ending thread may still run on out of the way (parked with
/// it, see [`Ending`]); returns the others. The caller's own stack among them makes it watched.
fn park_under_running_stacks(removed: Vec<Range>) -> Vec<Range> {
    #[cfg(feature = "threads")]
    {
        let under = |r: &Range, sp: u64| r.value.shared.is_none() && (r.start..r.start + r.len).contains(&sp);
        let here = stack_marker();
        if removed.iter().any(|r| under(r, here)) {
            watch(here);
        }
        let mut ending = ENDING.lock();
        if ending.is_empty() {
            return removed;
        }
        let mut rest = Vec::new();
        for range in removed {
            match ending.iter_mut().find(|e| under(&range, e.sp)) {
                Some(thread) => thread.parked.push(range),
                None => rest.push(range),
            }
        }
        rest
    }
    #[cfg(not(feature = "threads"))]
    removed
}

/// Frees parked pieces no call in flight pins any more (called as pins are dropped).
pub fn release_deferred() {
    let released: Vec<Range> = {
        let mut parked = PARKED.lock();
        let (keep, release): (Vec<Range>, Vec<Range>) =
            core::mem::take(&mut *parked).into_iter().partition(|r| inflight::overlaps(r.start, r.start + r.len));
        *parked = keep;
        if parked.is_empty() {
            inflight::DEFERRED.store(false, Ordering::SeqCst);
        }
        release
    };
    drop(released); // frees allocations outside the lock
}

/// Releases removed pieces: parks those a call in flight pins, drops the rest.
fn release(removed: Vec<Range>) {
    let (pinned, free): (Vec<Range>, Vec<Range>) = removed.into_iter().partition(|r| inflight::overlaps(r.start, r.start + r.len));
    if !pinned.is_empty() {
        // Set before the pieces are visible, so a pin dropped meanwhile looks at the list.
        inflight::DEFERRED.store(true, Ordering::SeqCst);
        PARKED.lock().extend(pinned);
        // A pin dropped between the check and the push did not see these pieces: look again.
        release_deferred();
    }
    drop(free);
}

/// Reads `object` from `offset` into `memory` until it is full or the file ends (the rest
/// stays as it was: zeros in a fresh allocation).
fn fill_from(object: &Object, offset: u64, memory: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < memory.len() {
        match object.read_at(offset + done as u64, &mut memory[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(())
}

/// At program exit, as the kernel's final `munmap`: writes every shared file mapping back,
/// then lets go of the mapped files, so that a file unlinked while mapped is freed before the
/// file systems' last sync (a disk file system would otherwise keep an orphan inode). The
/// memory itself stays mapped: the exiting thread may still be running on it.
pub fn release_files_at_exit() {
    write_back_all();
    let files: Vec<Backing> = MAPPINGS.lock().values_mut().filter_map(|m| m.shared.take()).collect();
    drop(files); // outside the lock: the last reference to a file may do I/O
}

/// Writes every shared file mapping back.
fn write_back_all() {
    let pieces: Vec<Range> = MAPPINGS
        .lock()
        .iter()
        .filter(|p| p.value.shared.is_some())
        .map(|p| Piece { start: p.start, len: p.len, value: p.value.clone() })
        .collect();
    for range in &pieces {
        if let Err(e) = write_back(range) {
            log::warn!("posix-shim: writing a shared mapping back at exit failed: {e:?}");
        }
    }
}
static BRK: Mutex<BrkState> = Mutex::new(BrkState { base: 0, current: 0, _allocation: None });

/// The heap (`brk`) and the `mmap` areas, as `/proc/self/maps` lists them (a shared file
/// mapping with its file's path and offset).
#[cfg(feature = "fs")]
pub fn mappings() -> Vec<libos::fs::vfs::procfs::Mapping> {
    use libos::fs::vfs::procfs::Mapping as Area;
    let mut areas = Vec::new();
    {
        let brk = BRK.lock();
        if brk.current > brk.base {
            areas.push(Area { start: brk.base, end: page_round(brk.current).unwrap_or(brk.current), read: true, write: true, name: "[heap]".into(), ..Area::default() });
        }
    }
    // The files' paths are looked up once the lock is released (a lookup may wait for a
    // device).
    let pieces: Vec<(u64, u64, u64, Option<Backing>)> =
        MAPPINGS.lock().iter().map(|piece| (piece.start, piece.len, piece.value.prot, piece.value.shared.clone())).collect();
    for (start, len, prot, shared) in pieces {
        let name = match shared.as_ref().map(|backing| &*backing.object) {
            Some(Object::File(file)) => file.file_ref().and_then(|r| r.path().ok()).unwrap_or_default(),
            _ => alloc::string::String::new(),
        };
        areas.push(Area {
            start,
            end: start + len,
            read: prot & PROT_READ != 0,
            write: prot & PROT_WRITE != 0,
            exec: prot & PROT_EXEC != 0,
            shared: shared.is_some(),
            offset: shared.map_or(0, |backing| backing.offset),
            name,
        });
    }
    areas
}

fn page_round(len: u64) -> Result<u64> {
    len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1)).ok_or(Errno::ENOMEM)
}

fn write_back(range: &Range) -> Result<()> {
    let Some(backing) = &range.value.shared else { return Ok(()) };
    if range.value.allocation.is_file() {
        return Ok(()); // the file's own pages: stores are already the file's
    }
    if !check_file_access(&backing.object, true, 0).unwrap_or(false) {
        return Ok(()); // never writable (mmap and mprotect refuse PROT_WRITE): nothing to store
    }
    // Never write past the end of the file: the tail of the last page is not file data.
    let Some(size) = backing.object.file_size()? else { return Ok(()) };
    let len = range.len.min(size.saturating_sub(backing.offset));
    if len == 0 {
        return Ok(());
    }
    // SAFETY: the range is mapped memory of this shim (its allocation is alive: `range` holds it).
    let bytes = unsafe { core::slice::from_raw_parts(range.start as *const u8, len as usize) };
    let mut done = 0;
    while done < bytes.len() {
        let n = backing.object.write_at(backing.offset + done as u64, &bytes[done..])?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n;
    }
    Ok(())
}

/// `mmap(addr, len, prot, flags, fd, offset)`.
pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd_number: u64, offset: u64) -> Result<u64> {
    if len == 0 || offset % PAGE != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = flags & MAP_SHARED_VALIDATE;
    if !matches!(kind, MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE) || flags & !(MAP_SHARED_VALIDATE | MAP_FIXED | MAP_ANONYMOUS | MAP_HINTS | MAP_FIXED_NOREPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_round(len)?;
    // Linux's check: the file range must end within 64 bits (the bookkeeping relies on it).
    offset.checked_add(len).ok_or(Errno::EOVERFLOW)?;
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        return map_fixed(addr, len, flags);
    }
    let shared_kind = kind == MAP_SHARED || kind == MAP_SHARED_VALIDATE;
    let (allocation, shared) = if flags & MAP_ANONYMOUS == 0 {
        let object = fd::get(fd_number)?;
        let writable = check_file_access(&object, shared_kind, prot)?;
        let allocation = match shared_kind.then(|| Allocation::of_file(&object, offset, len, writable)).flatten() {
            Some(direct) => direct,
            None => copy_of(&object, offset, len)?,
        };
        (allocation, shared_kind.then_some(Backing { object, offset }))
    } else {
        // Anonymous shared memory is private memory in a single-process system.
        (Allocation::new(len)?, None)
    };
    let start = allocation.ptr as u64;
    // Neither a fresh heap allocation nor window slots claimed for this mapping can overlap a
    // live mapping.
    note_protection(prot);
    MAPPINGS.lock().insert(start, len, Mapping { allocation, shared, prot }).map_err(|_| Errno::ENOMEM)?;
    Ok(start)
}

/// A fresh allocation of `len` bytes holding `object`'s bytes from `offset` (zeros past its
/// end).
fn copy_of(object: &Object, offset: u64, len: u64) -> Result<Arc<Allocation>> {
    let allocation = Allocation::new(len)?;
    // SAFETY: the allocation was just made, `len` bytes, and nothing else refers to it yet.
    let memory = unsafe { core::slice::from_raw_parts_mut(allocation.ptr, len as usize) };
    fill_from(object, offset, memory).map_err(|e| if e == Errno::ESPIPE { Errno::ENODEV } else { e })?;
    Ok(allocation)
}

/// Linux's checks of the descriptor behind a file mapping: open for reading (`EACCES`), and
/// for a shared writable mapping open for writing (`EACCES`; `O_APPEND` does not matter, as on
/// Linux); an `O_PATH` handle is `EBADF`. Returns
/// whether the program may write the file through a shared mapping (later, after `mprotect`,
/// too): what a mapping of the file's own pages is asked for.
fn check_file_access(object: &Object, shared: bool, prot: u64) -> Result<bool> {
    #[cfg(feature = "fs")]
    if let Object::File(file) = object {
        let flags = file.flags();
        if flags.contains(libos::fs::vfs::OpenFlags::PATH) {
            return Err(Errno::EBADF);
        }
        if !flags.readable() {
            return Err(Errno::EACCES);
        }
        let writable = flags.writable();
        if shared && prot & PROT_WRITE != 0 && !writable {
            return Err(Errno::EACCES);
        }
        return Ok(writable);
    }
    let _ = (object, shared, prot);
    Ok(false)
}

/// `MAP_FIXED` can only "replace" memory the program already owns (an anonymous mapping of
/// this shim or the `brk` reservation; musl's allocator maps guard pages there): the range is
/// zeroed, as a fresh anonymous mapping reads. Anything else is `ENOMEM`.
fn map_fixed(addr: u64, len: u64, flags: u64) -> Result<u64> {
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let in_brk = {
        let brk = BRK.lock();
        brk.base != 0 && addr >= brk.base && end <= brk.base + BRK_RESERVE
    };
    let owned = in_brk || MAPPINGS.lock().covers(addr, end);
    if flags & MAP_FIXED_NOREPLACE != 0 && owned {
        return Err(Errno::EEXIST);
    }
    if !owned || flags & MAP_ANONYMOUS == 0 || flags & MAP_FIXED_NOREPLACE != 0 {
        log::warn!("posix-shim: mmap at a fixed address outside the program's memory (or of a file) is not supported: ENOMEM");
        return Err(Errno::ENOMEM);
    }
    replace_file_mappings(addr, end)?;
    // SAFETY: the range is memory this shim handed to the program (checked above).
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len as usize) };
    Ok(addr)
}

/// Anonymous memory put over `[addr, end)` replaces the file mappings there, as on Linux:
/// shared copies are written back, then become anonymous (zeroed next, they must not reach
/// the file). A file's own pages cannot become anonymous memory in place: `ENOMEM`.
fn replace_file_mappings(addr: u64, end: u64) -> Result<()> {
    let pieces = {
        let mut mappings = MAPPINGS.lock();
        if mappings.overlapping(addr, end).any(|p| p.value.allocation.is_file()) {
            log::warn!("posix-shim: anonymous memory at a fixed address over a file's own pages (a DAX mapping) is not supported: ENOMEM");
            return Err(Errno::ENOMEM);
        }
        if !mappings.overlapping(addr, end).any(|p| p.value.shared.is_some()) {
            return Ok(());
        }
        // The cut pieces keep their memory alive (and so their addresses taken) meanwhile.
        mappings.cut(addr, end)
    };
    // A failed write-back leaves every piece a file mapping (and the call fails): its bytes
    // may be the only copy of what the program stored.
    let result = pieces.iter().try_for_each(write_back);
    let mut mappings = MAPPINGS.lock();
    for mut piece in pieces {
        if result.is_ok() {
            piece.value.shared = None;
        }
        // Cannot fail: the pieces were just cut out of the map.
        let _ = mappings.insert(piece.start, piece.len, piece.value);
    }
    result
}

/// `execve`'s clean-up: shared file mappings written back, every mapping and the `brk` heap
/// released (memory with I/O in flight parked, as by `munmap`), except the allocation holding
/// `keep` (the stack the call runs on), which is left to the kernel thread that keeps it.
pub fn release_for_exec(keep: u64) {
    let removed = MAPPINGS.lock().cut(0, u64::MAX & !(PAGE - 1));
    for range in &removed {
        if let Err(e) = write_back(range) {
            log::warn!("posix-shim: writing a shared mapping back at execve failed: {e:?}");
        }
        if range.value.allocation.contains(keep) {
            // Leaked on purpose: the calling thread still runs on it (one stack per execve).
            core::mem::forget(range.value.allocation.clone());
        }
    }
    release(removed);
    *BRK.lock() = BrkState { base: 0, current: 0, _allocation: None };
}

/// `munmap(addr, len)`.
pub fn munmap(addr: u64, len: u64) -> Result<u64> {
    if addr % PAGE != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(page_round(len)?).ok_or(Errno::EINVAL)?;
    let removed = MAPPINGS.lock().cut(addr, end);
    let mut result = Ok(0);
    for range in &removed {
        if let Err(e) = write_back(range) {
            result = Err(e);
        }
    }
    // Frees allocations whose last range went, unless I/O is in flight or a thread runs there.
    release(park_under_running_stacks(removed));
    result
}

/// `msync(addr, len, flags)`: writes shared file mappings in the range back.
pub fn msync(addr: u64, len: u64, flags: u64) -> Result<u64> {
    if addr % PAGE != 0 || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || flags & (MS_ASYNC | MS_SYNC) == (MS_ASYNC | MS_SYNC) {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(page_round(len)?).ok_or(Errno::ENOMEM)?;
    let pieces: Vec<Range> = {
        let mappings = MAPPINGS.lock();
        if !mappings.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        mappings
            .overlapping(addr, end)
            .filter(|p| p.value.shared.is_some())
            .map(|p| Piece { start: p.start, len: p.len, value: p.value.clone() })
            .collect()
    };
    for range in &pieces {
        write_back(range)?;
        // A file's own pages are the file's already; MS_SYNC asks for them on stable storage.
        if flags & MS_SYNC != 0 && range.value.allocation.is_file() {
            sync_file(range)?;
        }
    }
    Ok(0)
}

/// `fsync` of the file behind a shared mapping.
fn sync_file(range: &Range) -> Result<()> {
    #[cfg(feature = "fs")]
    if let Some(Backing { object, .. }) = &range.value.shared
        && let Object::File(file) = &**object
    {
        return file.sync();
    }
    let _ = range;
    Ok(())
}

/// `mremap(old, old_len, new_len, flags, new_addr)`.
pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, _new_addr: u64) -> Result<u64> {
    if old % PAGE != 0 || new_len == 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | 4) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_FIXED != 0 {
        return Err(Errno::ENOMEM);
    }
    let old_len = page_round(old_len)?;
    let new_len = page_round(new_len)?;
    let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
    // The new mapping takes the protection and file backing of the old range. Linux refuses
    // to move a range spanning several mappings (`EFAULT`); this map does not merge
    // neighbours, so pieces alike (same protection, anonymous) count as one.
    let first = {
        let mappings = MAPPINGS.lock();
        if !mappings.covers(old, old_end) {
            return Err(Errno::EFAULT);
        }
        let first = mappings.overlapping(old, old_end).next().map(|p| (p.start, p.value.clone()));
        let alike = |p: &Piece<&Mapping>| first.as_ref().is_some_and(|(_, f)| f.shared.is_none() && p.value.shared.is_none() && p.value.prot == f.prot);
        if new_len > old_len && mappings.overlapping(old, old_end).count() > 1 && !mappings.overlapping(old, old_end).all(|p| alike(&p)) {
            return Err(Errno::EFAULT);
        }
        first
    };
    if new_len <= old_len {
        if new_len < old_len {
            munmap(old + new_len, old_len - new_len)?;
        }
        return Ok(old);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::ENOMEM);
    }
    let (piece_start, value) = first.ok_or(Errno::EFAULT)?;
    let value = value.advanced(old - piece_start);
    // The file's own pages stay so when the file system can map the longer range.
    let direct = match value.shared.as_ref().filter(|_| value.allocation.is_file()) {
        Some(backing) => {
            let writable = check_file_access(&backing.object, true, 0)?;
            Allocation::of_file(&backing.object, backing.offset, new_len, writable)
        }
        None => None,
    };
    let (allocation, shared) = match direct {
        Some(allocation) => (allocation, value.shared),
        None => {
            let allocation = Allocation::new(new_len)?;
            let new = allocation.ptr as u64;
            // SAFETY: the old range is mapped by this shim (checked above), the new one was
            // just allocated, `new_len > old_len` bytes; they are distinct.
            unsafe { core::ptr::copy_nonoverlapping(old as *const u8, new as *mut u8, old_len as usize) };
            let shared = value.shared.map(|backing| {
                // The grown tail maps the file's next bytes, as on Linux (zeros past its end).
                // SAFETY: the tail of the fresh allocation; nothing else refers to it yet.
                let tail = unsafe { core::slice::from_raw_parts_mut((new + old_len) as *mut u8, (new_len - old_len) as usize) };
                // A read error leaves the rest of the tail zero, as past the end of the file.
                let _ = fill_from(&backing.object, backing.offset + old_len, tail);
                backing
            });
            (allocation, shared)
        }
    };
    let new = allocation.ptr as u64;
    MAPPINGS.lock().insert(new, new_len, Mapping { allocation, shared, prot: value.prot }).map_err(|_| Errno::ENOMEM)?;
    // Writes the old range's shared bytes back (the new mapping's copy of them is the same).
    munmap(old, old_len)?;
    Ok(new)
}

/// `mprotect(addr, len, prot)`: validated, not enforced (see the module docs).
pub fn mprotect(addr: u64, len: u64, prot: u64) -> Result<u64> {
    if addr % PAGE != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_round(len)?;
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    // W^X also for memory that is never executable.
    protect_program_pages(addr, len, prot)?;
    let prot = prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
    let mut mappings = MAPPINGS.lock();
    // A shared file mapping becomes writable only where its descriptor allows writing.
    if prot & PROT_WRITE != 0 {
        for piece in mappings.overlapping(addr, end) {
            if let Some(backing) = &piece.value.shared {
                check_file_access(&backing.object, true, prot)?;
            }
        }
    }
    if mappings.overlapping(addr, end).any(|p| p.value.prot != prot) {
        note_protection(prot);
        for mut piece in mappings.cut(addr, end) {
            piece.value.prot = prot;
            // Cannot fail: the piece was just cut out of the map.
            let _ = mappings.insert(piece.start, piece.len, piece.value);
        }
    }
    Ok(0)
}

/// Applies `prot` when `[addr, addr + len)` are a loaded ELF program's pages (the platform's
/// program pages, `hal::Platform::map_pages`); other memory keeps the shim's no-enforcement.
fn protect_program_pages(addr: u64, len: u64, prot: u64) -> Result<()> {
    use libos::hal::Protection;
    if len == 0 {
        return Ok(());
    }
    let protection = match prot & (PROT_READ | PROT_WRITE | PROT_EXEC) {
        PROT_READ => Protection::Read,
        p if p == PROT_READ | PROT_WRITE || p == PROT_WRITE => Protection::ReadWrite,
        p if p == PROT_READ | PROT_EXEC || p == PROT_EXEC => Protection::ReadExecute,
        p if p & PROT_WRITE != 0 && p & PROT_EXEC != 0 => return Err(Errno::EACCES),
        _ => return Ok(()),
    };
    // SAFETY: the program asked for this protection of its own pages; the kernel never writes
    // or runs a loaded program's pages after loading it.
    match unsafe { libos::hal::platform().protect_pages(addr, len, protection) } {
        Err(Errno::ENOMEM) => Err(Errno::ENOMEM),
        // EINVAL: not (only) program pages; ENOSYS: no program pages on this platform.
        _ => Ok(()),
    }
}

/// `madvise(addr, len, advice)`: hints; `MADV_DONTNEED` zeroes anonymous private pages as
/// Linux does (their next read sees zeros).
pub fn madvise(addr: u64, len: u64, advice: u64) -> Result<u64> {
    const MADV_DONTNEED: u64 = 4;
    const KNOWN: [u64; 12] = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 14, 15];
    if addr % PAGE != 0 || !KNOWN.contains(&advice) {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(page_round(len)?).ok_or(Errno::EINVAL)?;
    if advice == MADV_DONTNEED {
        let mappings = MAPPINGS.lock();
        if !mappings.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        for p in mappings.overlapping(addr, end).filter(|p| p.value.shared.is_none()) {
            let (cs, ce) = (p.start.max(addr), (p.start + p.len).min(end));
            // SAFETY: the pages are mapped by this shim (the lock keeps them mapped).
            unsafe { core::ptr::write_bytes(cs as *mut u8, 0, (ce - cs) as usize) };
        }
    }
    Ok(0)
}

/// `brk(addr)`: returns the new break, or the old one when it cannot move.
pub fn brk(addr: u64) -> u64 {
    let mut state = BRK.lock();
    if state.base == 0 {
        match Allocation::new(BRK_RESERVE) {
            Ok(allocation) => {
                state.base = allocation.ptr as u64;
                state.current = state.base;
                state._allocation = Some(allocation);
            }
            Err(_) => return 0,
        }
    }
    if addr >= state.base && addr <= state.base + BRK_RESERVE {
        if addr < state.current {
            // Memory given back and taken again must read as zeros, as fresh pages do.
            // SAFETY: inside the reservation, which lives as long as the program.
            unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (state.current - addr) as usize) };
        }
        state.current = addr;
    }
    state.current
}
