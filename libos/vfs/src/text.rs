//! Files programs run from: Linux's rule that a file being executed may not be opened for
//! writing or truncated (`ETXTBSY`), and that a file open for writing may not be executed.
//!
//! As Linux's `i_writecount`, one count per file (its file system's [`Metadata::dev`] and its
//! inode, so every mount and every node object of the file share it): positive while
//! descriptions hold it open for writing ([`Writer`]), negative while programs run from it
//! ([`TextBusy`]); a count of either sign refuses the other kind. Only files with a count have
//! an entry, so the table holds the files open for writing and the running programs.
//!
//! Programs in other VMs of a run (other processes: libos runs each in a VM of its own) count
//! too: the process host says when one starts or stops running from a file
//! ([`crate::Vfs::set_running_elsewhere`]), and while any does, no writer gets the file. (The
//! other way round, a program another VM starts while this one writes the file, is not
//! refused: that VM cannot see this one's writers.)
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
    counts: SpinLock<Counts>,
}

#[derive(Default)]
struct Counts {
    /// This VM's: writers (positive) or running programs (negative), per file.
    here: HashMap<FileKey, i64>,
    /// Programs other VMs run from each file.
    elsewhere: HashMap<FileKey, u32>,
}

impl WriteCounts {
    /// Adds one to the count if no program runs from the file (else `ETXTBSY`), or takes one
    /// away if nothing holds it open for writing (else `ETXTBSY`).
    fn change(&self, key: FileKey, by: i64) -> Result<()> {
        let mut counts = self.counts.lock();
        let count = counts.here.get(&key).copied().unwrap_or(0);
        if count != 0 && count.signum() != by.signum() {
            return Err(Errno::ETXTBSY);
        }
        if by > 0 && !counts.elsewhere.is_empty() && counts.elsewhere.contains_key(&key) {
            return Err(Errno::ETXTBSY);
        }
        counts.here.insert(key, count + by);
        Ok(())
    }

    /// One more (`running`) or one fewer program in another VM runs from the file.
    pub(crate) fn set_running_elsewhere(&self, key: FileKey, running: bool) {
        let mut counts = self.counts.lock();
        let count = counts.elsewhere.get(&key).copied().unwrap_or(0);
        match (running, count) {
            (true, _) => {
                counts.elsewhere.insert(key, count + 1);
            }
            (false, 0 | 1) => {
                counts.elsewhere.remove(&key);
            }
            (false, _) => {
                counts.elsewhere.insert(key, count - 1);
            }
        }
    }

    /// Undoes one [`WriteCounts::change`] by `by`.
    fn undo(&self, key: FileKey, by: i64) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.here.get_mut(&key) {
            *count -= by;
            if *count == 0 {
                counts.here.remove(&key);
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
        self.counts.lock().here.get(&key).copied().unwrap_or(0)
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
/// it fail with `ETXTBSY` ([`crate::Vfs::open_executable`]).
pub struct TextBusy {
    counts: Arc<WriteCounts>,
    key: FileKey,
}

impl TextBusy {
    /// The file: its file system's device number and its inode.
    pub fn file(&self) -> (u64, u64) {
        (self.key.dev, self.key.ino)
    }
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
        assert!(counts.counts.lock().here.is_empty());
    }

    #[test]
    fn programs_in_other_vms_keep_writers_away_until_the_last_one_stops() {
        let counts = Arc::new(WriteCounts::default());
        let file = FileKey { dev: 1, ino: 9 };
        let writer = counts.writer(file).unwrap();
        counts.set_running_elsewhere(file, true);
        drop(writer);
        counts.set_running_elsewhere(file, true);
        assert_eq!(counts.writer(file).err(), Some(Errno::ETXTBSY));
        assert!(counts.writer(FileKey { dev: 2, ino: 9 }).is_ok());
        counts.set_running_elsewhere(file, false);
        assert_eq!(counts.writer(file).err(), Some(Errno::ETXTBSY));
        counts.set_running_elsewhere(file, false);
        counts.set_running_elsewhere(file, false);
        drop(counts.writer(file).unwrap());
        let here = counts.deny_writers(file).unwrap();
        drop(here);
        assert!(counts.counts.lock().elsewhere.is_empty() && counts.counts.lock().here.is_empty());
    }
}
