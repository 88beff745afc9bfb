//! Checks on pointers that C code passes to system calls.
//!
//! Everything runs in one address space, so a "user pointer" is a kernel pointer. Before the
//! kernel touches a buffer (or hands it to a device for DMA) it checks, giving `EFAULT`
//! instead of a kernel fault or a write where the program may not write:
//!
//! - plausibility ([`check_range`]): null and the unmapped first page, ranges that wrap
//!   around, ranges beyond the canonical lower half (x86_64) / 48-bit space (aarch64);
//! - the live page tables ([`libos::hal::Platform::check_user_access`]): every page mapped as
//!   normal memory (not a hole, a guard page or a device window) and, for a buffer the kernel
//!   writes, writable (a read-only ELF segment, text). One table walk per page or large page,
//!   so a buffer inside one 2 MiB page of the identity map costs one walk;
//! - the shim's own record of `mmap` protections (`mem::check_protection`): memory
//!   that `mmap`/`mprotect` made read-only or `PROT_NONE` lives in heap pages the hardware
//!   keeps read-write, so the shim refuses it itself.
//!
//! What is not checked: that a range does not overlap the kernel's own data (a wild pointer
//! into mapped kernel memory gets its write done there, as with any code in a unikernel), and
//! changes between the check and the access: another thread that `mprotect`s a loaded
//! program's pages read-only while this call copies into them still makes the kernel fault.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use libos::hal::Access;
#[cfg(target_os = "none")]
use crate::mem::check_protection;
use libos::{Errno, Result};

/// The first address above the user-visible space the shim accepts.
pub const ADDRESS_LIMIT: u64 = 1 << 47;
/// Addresses below this (the never-mapped first page) are faults.
pub const LOWEST: u64 = 4096;

/// Checks that `[addr, addr + len)` is a plausible range; `len == 0` is always fine.
pub fn check_range(addr: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
    if addr < LOWEST || end > ADDRESS_LIMIT {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Checks that the program may give the kernel `[addr, addr + len)` for `access`: plausible
/// ([`check_range`]), mapped as normal memory and writable for a write (the platform's page
/// tables), and not made unreadable or read-only by `mmap`/`mprotect`. `EFAULT` otherwise.
pub fn check_access(addr: u64, len: u64, access: Access) -> Result<()> {
    check_range(addr, len)?;
    if len == 0 {
        return Ok(());
    }
    let end = addr + len; // no overflow: checked above
    if let Some(platform) = libos::hal::try_platform() {
        match platform.check_user_access(addr, end, access) {
            // ENOSYS: no page tables to ask (a host test's platform); plausibility only.
            Ok(()) | Err(Errno::ENOSYS) => {}
            Err(_) => return Err(Errno::EFAULT),
        }
    }
    check_protection(addr, end, access)
}

/// The bytes at `[addr, addr + len)`.
///
/// # Safety
/// Beyond [`check_access`], the caller trusts the C program that the range stays mapped and is
/// not written concurrently for the slice's lifetime (the system-call contract).
pub unsafe fn slice<'a>(addr: u64, len: u64) -> Result<&'a [u8]> {
    check_access(addr, len, Access::Read)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: the range is mapped readable (checked above); the caller vouches for the rest.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
}

/// The writable bytes at `[addr, addr + len)`.
///
/// # Safety
/// As [`slice`], and nothing else reads or writes the range meanwhile.
pub unsafe fn slice_mut<'a>(addr: u64, len: u64) -> Result<&'a mut [u8]> {
    check_access(addr, len, Access::Write)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as above.
    Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len as usize) })
}

/// Reads a `T` from `addr`.
///
/// # Safety
/// As [`slice`]; any bit pattern must be a valid `T` (plain C structures).
pub unsafe fn read<T: Copy>(addr: u64) -> Result<T> {
    check_access(addr, size_of::<T>() as u64, Access::Read)?;
    // SAFETY: as above; unaligned reads are allowed.
    Ok(unsafe { core::ptr::read_unaligned(addr as *const T) })
}

/// Writes `value` to `addr`.
///
/// # Safety
/// As [`slice_mut`].
pub unsafe fn write<T: Copy>(addr: u64, value: T) -> Result<()> {
    check_access(addr, size_of::<T>() as u64, Access::Write)?;
    // SAFETY: as above; unaligned writes are allowed.
    unsafe { core::ptr::write_unaligned(addr as *mut T, value) };
    Ok(())
}

/// `IOV_MAX`: the most iovecs one call takes.
pub const IOV_MAX: u64 = 1024;

/// The `(address, length)` pairs of an iovec array: up to 8 in place, as Linux's
/// `UIO_FASTIOV`, so the common `readv`/`writev` (musl's stdio writes two) allocates nothing.
pub type Iovecs = smallvec::SmallVec<[(u64, u64); 8]>;

/// The buffers of the `count` iovecs at `iov`, copied into the kernel (so another thread
/// rewriting the array cannot change a length between check and use) and checked up front
/// as Linux's `import_iovec` does: `EFAULT` for a bad array or buffer, `EINVAL` when the
/// lengths add up past `isize::MAX`. The array need not be aligned. The caller bounds
/// `count` by [`IOV_MAX`] (its error differs: `EINVAL`, `EMSGSIZE` for messages).
pub fn iovec_buffers(iov: u64, count: u64) -> Result<Iovecs> {
    let mut out = Iovecs::new();
    out.try_reserve_exact(count as usize).map_err(|_| Errno::ENOMEM)?;
    let mut total = 0u64;
    for i in 0..count {
        let at = iov.checked_add(i * 16).ok_or(Errno::EFAULT)?;
        // SAFETY: checked by `read`; `struct iovec` is two words, any bit pattern valid.
        let [base, len]: [u64; 2] = unsafe { read(at)? };
        total = total.checked_add(len).filter(|&t| t <= isize::MAX as u64).ok_or(Errno::EINVAL)?;
        check_range(base, len)?;
        out.push((base, len));
    }
    Ok(out)
}

/// Room for one string argument copied from the program (a path, mostly): up to
/// [`StrBuffer::INLINE`] bytes in place, longer ones on the heap.
/// The caller keeps it on its stack and [`c_string`] fills it, so the common call copies the
/// bytes once and moves nothing else (an inline string returned by value was copied again at
/// every return on its way to the VFS: about 400 instructions per path-taking call).
pub struct StrBuffer {
    inline: [MaybeUninit<u8>; StrBuffer::INLINE],
    /// How many bytes of `inline` hold the string, valid UTF-8; [`StrBuffer::ON_HEAP`] when
    /// `heap` holds it.
    len: usize,
    heap: String,
}

impl StrBuffer {
    /// The longest string kept in place.
    pub const INLINE: usize = 256;
    /// Not `usize::MAX`: a word of equal bytes next to the uninitialized room let the compiler
    /// merge both into one 264-byte `memset` in [`StrBuffer::new`] (about 60 instructions per
    /// path-taking call, measured); no string is this long.
    const ON_HEAP: usize = usize::MAX - 1;

    /// An empty buffer (no heap memory until a long string needs it).
    pub const fn new() -> StrBuffer {
        StrBuffer { inline: [MaybeUninit::uninit(); StrBuffer::INLINE], len: StrBuffer::ON_HEAP, heap: String::new() }
    }

    /// The string the buffer holds (empty before anything was copied in).
    pub fn as_str(&self) -> &str {
        if self.len == StrBuffer::ON_HEAP {
            return &self.heap;
        }
        // SAFETY: `len` is only set (by `c_string`) after it wrote the first `len` bytes of
        // `inline`.
        let bytes = unsafe { core::slice::from_raw_parts(self.inline.as_ptr().cast::<u8>(), self.len) };
        // SAFETY: ... and after `from_utf8` accepted exactly those bytes.
        unsafe { core::str::from_utf8_unchecked(bytes) }
    }

    /// Replaces the string by `string` (a long one, on the heap).
    fn replace(&mut self, string: String) -> &str {
        self.heap = string;
        self.len = StrBuffer::ON_HEAP;
        &self.heap
    }
}

impl Default for StrBuffer {
    fn default() -> StrBuffer {
        StrBuffer::new()
    }
}

/// The NUL-terminated string at `addr` (at most `max` bytes before the NUL), copied into
/// `buffer` and checked to be UTF-8 there. The kernel works on its own copy, validated after
/// copying, so another thread rewriting the bytes meanwhile cannot make a walk see a string
/// change under it (or stop being UTF-8 after the check). Errors: `EFAULT` for a bad pointer,
/// `ENAMETOOLONG` past `max`, `EINVAL` for non-UTF-8 bytes (the VFS works on `str` paths),
/// `ENOMEM` when the heap cannot hold a long copy.
///
/// # Safety
/// As [`slice`], for every byte up to the NUL.
pub unsafe fn c_string(addr: u64, max: usize, buffer: &mut StrBuffer) -> Result<&str> {
    // SAFETY: the caller's contract.
    if unsafe { copy_short(addr, max, buffer)? } {
        return Ok(buffer.as_str());
    }
    // SAFETY: the caller's contract.
    let len = unsafe { c_str_len(addr, max)? };
    // SAFETY: `c_str_len` checked and read the same `len` bytes; reading them again sees
    // whatever the program has there now, which is validated below, in the copy.
    let source = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    if len <= StrBuffer::INLINE {
        let room = buffer.inline.as_mut_ptr().cast::<u8>();
        // SAFETY: `inline` has room for `len` bytes; the kernel's buffer and the program's
        // memory do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(source.as_ptr(), room, len) };
        // SAFETY: the first `len` bytes were just written.
        let copy = unsafe { core::slice::from_raw_parts(room.cast_const(), len) };
        core::str::from_utf8(copy).map_err(|_| Errno::EINVAL)?;
        buffer.len = len;
        return Ok(buffer.as_str());
    }
    let mut copy = Vec::new();
    copy.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    copy.extend_from_slice(source);
    let string = String::from_utf8(copy).map_err(|_| Errno::EINVAL)?;
    Ok(buffer.replace(string))
}

/// For a NUL `0x00` byte anywhere in a word: `word.wrapping_sub(ZERO_LOW) & !word & ZERO_HIGH`
/// is non-zero, and its lowest set bit is the high bit of the first NUL (little-endian: the
/// first byte in memory is the lowest; borrows only run towards later bytes).
const ZERO_LOW: u64 = 0x0101_0101_0101_0101;
/// See [`ZERO_LOW`]; also the bits that are set only in non-ASCII bytes.
const ZERO_HIGH: u64 = 0x8080_8080_8080_8080;

/// [`c_string`]'s common case in one pass: a string whose NUL lies within its first page and
/// the in-place room is copied there eight bytes at a time while looking for the NUL; an ASCII
/// string (nearly every path) needs no UTF-8 decoding. Returns false, having stored nothing,
/// for anything longer (the general path then takes it). Saves about 250 instructions per
/// path against a length scan, a copy and `from_utf8` (measured on `stat`, x86_64).
///
/// # Safety
/// As [`c_string`].
unsafe fn copy_short(addr: u64, max: usize, buffer: &mut StrBuffer) -> Result<bool> {
    let chunk = ((4096 - addr % 4096) as usize).min(StrBuffer::INLINE);
    check_access(addr, chunk as u64, Access::Read)?;
    let room = &mut buffer.inline;
    let mut non_ascii = 0u64;
    let mut len = None;
    let mut i = 0;
    while i + 8 <= chunk {
        // SAFETY: `[addr + i, addr + i + 8)` lies in the checked chunk; unaligned loads are fine.
        let word = unsafe { core::ptr::read_unaligned((addr + i as u64) as *const u64) };
        room[i..i + 8].copy_from_slice(&word.to_ne_bytes().map(MaybeUninit::new));
        let zeros = word.wrapping_sub(ZERO_LOW) & !word & ZERO_HIGH;
        if zeros != 0 {
            let before = (zeros.trailing_zeros() / 8) as usize;
            // Only the bytes before the NUL are part of the string.
            non_ascii |= word & ((1u64 << (8 * before)) - 1) & ZERO_HIGH;
            len = Some(i + before);
            break;
        }
        non_ascii |= word & ZERO_HIGH;
        i += 8;
    }
    while len.is_none() && i < chunk {
        // SAFETY: `addr + i` lies in the checked chunk.
        let byte = unsafe { core::ptr::read((addr + i as u64) as *const u8) };
        room[i] = MaybeUninit::new(byte);
        if byte == 0 {
            len = Some(i);
        }
        non_ascii |= u64::from(byte & 0x80);
        i += 1;
    }
    let Some(len) = len else { return Ok(false) };
    if len > max {
        return Err(Errno::ENAMETOOLONG);
    }
    // SAFETY: the first `len` bytes of `inline` were written above.
    let copy = unsafe { core::slice::from_raw_parts(room.as_ptr().cast::<u8>(), len) };
    if non_ascii != 0 {
        core::str::from_utf8(copy).map_err(|_| Errno::EINVAL)?;
    }
    buffer.len = len;
    Ok(true)
}

/// The length of the NUL-terminated string at `addr`: `ENAMETOOLONG` past `max`.
///
/// # Safety
/// As [`slice`], for every byte up to the NUL.
unsafe fn c_str_len(addr: u64, max: usize) -> Result<usize> {
    // Scan page by page: each page's range is checked once, then searched for the NUL eight
    // aligned bytes at a time.
    let mut len = 0usize;
    'pages: loop {
        let at = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let chunk = 4096 - (at % 4096);
        check_access(at, chunk, Access::Read)?;
        // SAFETY: the chunk is mapped readable (checked above) and stays within one page.
        let bytes = unsafe { core::slice::from_raw_parts(at as *const u8, chunk as usize) };
        // Bytes up to the first 8-aligned address, then words (a page is a whole number of
        // them), then bytes again from the word that holds a NUL.
        let mut i = (at.next_multiple_of(8) - at) as usize;
        for (n, &b) in bytes[..i].iter().enumerate() {
            if b == 0 {
                len += n;
                break 'pages;
            }
        }
        while i < bytes.len() {
            // SAFETY: `at + i` is 8-aligned and its eight bytes lie within the checked page.
            let word = unsafe { core::ptr::read((at + i as u64) as *const u64) };
            if word.wrapping_sub(ZERO_LOW) & !word & ZERO_HIGH != 0 {
                break;
            }
            i += 8;
        }
        for (n, &b) in bytes[i..].iter().enumerate() {
            if b == 0 {
                len += i + n;
                break 'pages;
            }
        }
        len += bytes.len();
        if len > max {
            return Err(Errno::ENAMETOOLONG);
        }
    }
    if len > max {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(len)
}

/// Host builds have no `mmap` (the `mem` module is guest-only): nothing is protected.
#[cfg(not(target_os = "none"))]
fn check_protection(_: u64, _: u64, _: Access) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(check_range(0, 0), Ok(()));
        assert_eq!(check_range(0, 1), Err(Errno::EFAULT));
        assert_eq!(check_range(4095, 1), Err(Errno::EFAULT));
        assert_eq!(check_range(4096, 1), Ok(()));
        assert_eq!(check_range(u64::MAX, 2), Err(Errno::EFAULT));
        assert_eq!(check_range(ADDRESS_LIMIT - 1, 1), Ok(()));
        assert_eq!(check_range(ADDRESS_LIMIT - 1, 2), Err(Errno::EFAULT));
    }

    /// `c_string` into a fresh buffer, owned.
    unsafe fn copied(addr: u64, max: usize) -> Result<String> {
        let mut buffer = StrBuffer::new();
        // SAFETY: the caller's contract.
        unsafe { c_string(addr, max, &mut buffer) }.map(String::from)
    }

    #[test]
    fn c_strings() {
        let text = b"hello\0";
        // SAFETY: a live NUL-terminated buffer.
        assert_eq!(unsafe { copied(text.as_ptr() as u64, 100) }.as_deref(), Ok("hello"));
        let long = [b'L'; 300];
        let mut long_z = long.to_vec();
        long_z.push(0);
        // SAFETY: a live NUL-terminated buffer longer than the inline room.
        assert_eq!(unsafe { copied(long_z.as_ptr() as u64, 4096) }.as_deref().map(str::len), Ok(300));
        // SAFETY: as above.
        assert_eq!(unsafe { copied(text.as_ptr() as u64, 3) }.err(), Some(Errno::ENAMETOOLONG));
        // SAFETY: null is rejected before any read.
        assert_eq!(unsafe { copied(0, 3) }.err(), Some(Errno::EFAULT));
        let utf8 = "grüße\0";
        // SAFETY: a live NUL-terminated buffer.
        assert_eq!(unsafe { copied(utf8.as_ptr() as u64, 100) }.as_deref(), Ok("grüße"));
        for n in 0..40 {
            let mut text = alloc::vec![b'x'; n + 9];
            text[n] = 0;
            text[n + 1] = 0xff;
            for skip in 0..8.min(n + 1) {
                // SAFETY: a live buffer with a NUL at `n`.
                assert_eq!(unsafe { copied(text[skip..].as_ptr() as u64, 100) }.map(|s| s.len()), Ok(n - skip));
            }
        }
        for n in [StrBuffer::INLINE - 1, StrBuffer::INLINE, StrBuffer::INLINE + 1] {
            let mut text = alloc::vec![b'p'; n];
            text.push(0);
            // SAFETY: a live NUL-terminated buffer, in place or on the heap by its length.
            assert_eq!(unsafe { copied(text.as_ptr() as u64, 4096) }.map(|s| s.len()), Ok(n));
        }
        let mut buffer = StrBuffer::new();
        assert_eq!(buffer.as_str(), "");
        // SAFETY: a live NUL-terminated buffer.
        assert_eq!(unsafe { c_string(text.as_ptr() as u64, 100, &mut buffer) }, Ok("hello"));
        assert_eq!(buffer.replace(String::from("/joined/hello")), "/joined/hello");
        assert_eq!(buffer.as_str(), "/joined/hello");
        // A string across a page boundary leaves the one-pass copy for the general path.
        let pages = alloc::alloc::Layout::from_size_align(8192, 4096).unwrap();
        // SAFETY: a non-zero size.
        let base = unsafe { alloc::alloc::alloc_zeroed(pages) };
        assert!(!base.is_null());
        // SAFETY: the allocation just made, 8192 bytes, used only through this slice.
        let whole = unsafe { core::slice::from_raw_parts_mut(base, 8192) };
        for (start, len) in [(4096 - 5, 8), (4096 - 8, 8), (4096 - 9, 8), (4096 - 300, 299), (0, 255), (0, 256), (0, 257)] {
            for (i, b) in whole[start..=start + len].iter_mut().enumerate() {
                *b = if i == len { 0 } else { b'a' + (i % 26) as u8 };
            }
            // SAFETY: a live NUL-terminated buffer.
            let got = unsafe { copied(whole[start..].as_ptr() as u64, 4096) };
            assert_eq!(got.as_deref().map(str::len), Ok(len), "at {start}, {len} bytes");
            assert!(got.unwrap().bytes().enumerate().all(|(i, b)| b == b'a' + (i % 26) as u8));
        }
        // SAFETY: allocated above with this layout.
        unsafe { alloc::alloc::dealloc(base, pages) };
        let bad = b"a\xffb\0";
        // SAFETY: as above.
        assert_eq!(unsafe { copied(bad.as_ptr() as u64, 100) }.err(), Some(Errno::EINVAL));
    }
}
