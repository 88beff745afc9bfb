//! [`FakeWindow`]: the fake server's DAX window. It keeps the mappings SETUPMAPPING made (a
//! window range -> a file range) and answers a read of the window by reading the mapped file
//! at that moment, so it is coherent with writes as a host's mapping of its page cache is.
//!
//! It checks the client: reading a window range nothing is mapped at is a violation. Reading a
//! mapped file's pages past its end (the file shrank on the host) would fault a host; the
//! patched QEMU then puts a zero page there, and so does this window: it reads zeros and
//! counts a fault ([`FakeWindow::faults`]).

use crate::channel::DaxWindow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::Node;

const PAGE: u64 = 4096;

struct Mapping {
    window_offset: u64,
    len: u64,
    node: Arc<dyn Node>,
    file_offset: u64,
}

/// A DAX window of the fake server.
pub struct FakeWindow {
    size: u64,
    mappings: SpinLock<Vec<Mapping>>,
    violations: SpinLock<Vec<String>>,
    faults: core::sync::atomic::AtomicU64,
}

impl FakeWindow {
    pub(super) fn new(size: u64) -> Arc<FakeWindow> {
        Arc::new(FakeWindow { size, mappings: SpinLock::new(Vec::new()), violations: SpinLock::new(Vec::new()), faults: Default::default() })
    }

    /// Checks a SETUPMAPPING as virtiofsd-like servers do: inside the window, page aligned.
    pub(super) fn map(&self, window_offset: u64, len: u64, node: Arc<dyn Node>, file_offset: u64) -> Result<()> {
        let end = window_offset.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 || end > self.size || window_offset % PAGE != 0 || len % PAGE != 0 || file_offset % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        self.unmap(window_offset, len);
        self.mappings.lock().push(Mapping { window_offset, len, node, file_offset });
        Ok(())
    }

    /// Removes every mapping overlapping the range (as an `munmap` would, whole mappings only:
    /// clients map and unmap whole chunks).
    pub(super) fn unmap(&self, window_offset: u64, len: u64) {
        let end = window_offset.saturating_add(len);
        self.mappings.lock().retain(|m| m.window_offset + m.len <= window_offset || m.window_offset >= end);
    }

    /// Window ranges mapped now.
    pub fn mappings(&self) -> usize {
        self.mappings.lock().len()
    }

    /// Reads of pages past the end of a mapped file (a host would have faulted).
    pub fn faults(&self) -> u64 {
        self.faults.load(core::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn violations(&self) -> Vec<String> {
        self.violations.lock().clone()
    }

    fn violation(&self, what: String) {
        log::warn!("fake DAX window: {what}");
        self.violations.lock().push(what);
    }
}

impl DaxWindow for FakeWindow {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(Errno::EINVAL);
        }
        let found = self
            .mappings
            .lock()
            .iter()
            .find(|m| m.window_offset <= offset && offset + len <= m.window_offset + m.len)
            .map(|m| (m.node.clone(), m.file_offset + (offset - m.window_offset)));
        let Some((node, file_offset)) = found else {
            self.violation(alloc::format!("read of {len} bytes at window offset {offset:#x}, where nothing is mapped"));
            buf.fill(0);
            return Ok(());
        };
        let size = node.metadata()?.size;
        if file_offset + len > size.next_multiple_of(PAGE) {
            log::warn!("fake DAX window: read at file offset {file_offset:#x} past the last page of a {size}-byte file");
            self.faults.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        buf.fill(0); // past the end of the file, inside its last page: zeros, as a mapping shows
        let mut done = 0;
        while done < buf.len() {
            let n = node.read_at(file_offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(())
    }
}
