//! Renames: moving an entry (replacing what the new name held, or not) and exchanging two
//! entries, each as one step under the file system's namespace lock.

use super::{Content, Inode};
use alloc::sync::Arc;
use libos_core::{Errno, Result};
use libos_vfs::Node;

impl Inode {
    /// `rename` (`replace`) and `rename_noreplace`, under the namespace lock.
    pub(super) fn move_entry(&self, old_name: &str, new_dir: &dyn Node, new_name: &str, replace: bool) -> Result<()> {
        let new_dir = self.own(new_dir)?;
        let _ns = self.shared.namespace.lock();
        let source = self.get(old_name)?;
        if new_dir.data.lock().nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let replaced = match new_dir.get(new_name) {
            Ok(_) if !replace => return Err(Errno::EEXIST),
            Ok(target) => Some(target),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if let Some(target) = &replaced {
            if Arc::ptr_eq(target, &source) {
                return Ok(());
            }
            match (source.file_type.is_dir(), target.file_type.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !target.is_empty_dir() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let is_dir = source.file_type.is_dir();
        self.with_dir(|dir, _| {
            dir.remove(old_name);
            if is_dir {
                dir.subdirs = dir.subdirs.saturating_sub(1);
            }
            Ok(())
        })?;
        new_dir.with_dir(|dir, _| {
            dir.insert(new_name, source.clone());
            if is_dir {
                dir.subdirs += 1;
            }
            if replaced.as_ref().is_some_and(|r| r.file_type.is_dir()) {
                dir.subdirs = dir.subdirs.saturating_sub(1);
            }
            Ok(())
        })?;
        self.touch_changed();
        new_dir.touch_changed();
        let now = self.shared.now();
        {
            let mut data = source.data.lock();
            data.ctime = now;
            if let Content::Dir(dir) = &mut data.content {
                dir.parent = new_dir.me.clone();
            }
        }
        if let Some(replaced) = replaced {
            let mut data = replaced.data.lock();
            data.nlink = if replaced.file_type.is_dir() { 0 } else { data.nlink.saturating_sub(1) };
            data.ctime = now;
        }
        Ok(())
    }

    /// `rename_exchange`, under the namespace lock: the two names swap nodes; a directory
    /// that changes parent gets its new `..` and moves its link from one parent's count to
    /// the other's.
    pub(super) fn exchange_entries(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        let new_dir = self.own(new_dir)?;
        let _ns = self.shared.namespace.lock();
        let source = self.get(old_name)?;
        let target = new_dir.get(new_name)?;
        if Arc::ptr_eq(&source, &target) {
            return Ok(());
        }
        let moves = !core::ptr::eq(self, new_dir);
        // Directories leaving one parent for the other: +1/-1 to each parent's count.
        let subdirs_delta = i64::from(source.file_type.is_dir()) - i64::from(target.file_type.is_dir());
        self.with_dir(|dir, _| {
            dir.insert(old_name, target.clone());
            if moves {
                dir.subdirs = dir.subdirs.saturating_add_signed(-subdirs_delta);
            }
            Ok(())
        })?;
        new_dir.with_dir(|dir, _| {
            dir.insert(new_name, source.clone());
            if moves {
                dir.subdirs = dir.subdirs.saturating_add_signed(subdirs_delta);
            }
            Ok(())
        })?;
        self.touch_changed();
        new_dir.touch_changed();
        let now = self.shared.now();
        for (node, parent) in [(&source, &new_dir.me), (&target, &self.me)] {
            let mut data = node.data.lock();
            data.ctime = now;
            if let Content::Dir(dir) = &mut data.content {
                dir.parent = parent.clone();
            }
        }
        Ok(())
    }
}
