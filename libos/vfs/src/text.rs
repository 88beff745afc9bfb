//! Files programs run from: Linux's rule that a file being executed may not be opened for
//! writing or truncated (`ETXTBSY`), and that a file open for writing may not be executed.
//!
//! As Linux's `i_writecount`, one count per file (its file system's [`Metadata::dev`] and its
//! inode, so every mount and every node object of the file share it): positive while
//! descriptions hold it open for writing ([`Writer`]), negative while programs run from it
//! ([`TextBusy`]); a count of either sign refuses the other kind. Only files with a count have
//! an entry, so the table holds the files open for writing and the running programs.
//!
//! [`Metadata::dev`]: crate::Metadata::dev

use alloc::sync::Arc;
use hashbrown::HashMap;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

/// A file by its file system and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// The counts of one namespace ([`crate::Vfs`]), shared with its open files.
#[derive(Default)]
pub(crate) struct WriteCounts {
    counts: SpinLock<HashMap<FileKey, i64>>,
}

impl WriteCounts {
    /// Adds one to the count if no program runs from the file (else `ETXTBSY`), or takes one
    /// away if nothing holds it open for writing (else `ETXTBSY`).
    fn change(&self, key: FileKey, by: i64) -> Result<()> {
        let mut counts = self.counts.lock();
        let count = counts.get(&key).copied().unwrap_or(0);
        if count != 0 && count.signum() != by.signum() {
            return Err(Errno::ETXTBSY);
        }
        counts.insert(key, count + by);
        Ok(())
    }

    /// Undoes one [`WriteCounts::change`] by `by`.
    fn undo(&self, key: FileKey, by: i64) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&key) {
            *count -= by;
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }

    /// Write access to the file, for as long as the [`Writer`] lives; `ETXTBSY` while a
    /// program runs from it.
    pub(crate) fn writer(self: &Arc<Self>, key: FileKey) -> Result<Writer> {
        self.change(key, 1)?;
        Ok(Writer { counts: self.clone(), key })
    }

    /// The file marked as a running program's, for as long as the [`TextBusy`] lives;
    /// `ETXTBSY` while it is open for writing.
    pub(crate) fn deny_writers(self: &Arc<Self>, key: FileKey) -> Result<TextBusy> {
        self.change(key, -1)?;
        Ok(TextBusy { counts: self.clone(), key })
    }

    #[cfg(test)]
    fn count(&self, key: FileKey) -> i64 {
        self.counts.lock().get(&key).copied().unwrap_or(0)
    }
}

/// Write access held by an open file description (or for the length of a truncation).
pub(crate) struct Writer {
    counts: Arc<WriteCounts>,
    key: FileKey,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.counts.undo(self.key, 1);
    }
}

/// A file a program runs from: while this lives, opening the file for writing and truncating
/// it fail with `ETXTBSY` ([`crate::Vfs::deny_writers`]).
pub struct TextBusy {
    counts: Arc<WriteCounts>,
    key: FileKey,
}

impl Drop for TextBusy {
    fn drop(&mut self) {
        self.counts.undo(self.key, -1);
    }
}

impl core::fmt::Debug for TextBusy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TextBusy").field("dev", &self.key.dev).field("ino", &self.key.ino).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_and_programs_exclude_each_other_and_leave_no_entry_behind() {
        let counts = Arc::new(WriteCounts::default());
        let (file, other) = (FileKey { dev: 1, ino: 5 }, FileKey { dev: 2, ino: 5 });
        let w1 = counts.writer(file).unwrap();
        let w2 = counts.writer(file).unwrap();
        assert_eq!(counts.deny_writers(file).unwrap_err(), Errno::ETXTBSY);
        assert_eq!(counts.count(file), 2, "a refused program leaves the count alone");
        let busy_elsewhere = counts.deny_writers(other).unwrap();
        drop((w1, w2));
        let t1 = counts.deny_writers(file).unwrap();
        let t2 = counts.deny_writers(file).unwrap();
        assert_eq!(counts.writer(file).err().map(|_| ()), Some(()));
        drop(t1);
        assert!(counts.writer(file).is_err(), "one program still runs from it");
        drop(t2);
        drop(counts.writer(file).unwrap());
        drop(busy_elsewhere);
        assert!(counts.counts.lock().is_empty());
    }
}
