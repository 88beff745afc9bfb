//! The current directory: `chdir`, `fchdir` and `getcwd`.

use super::{Loc, Vfs};
use crate::cred::Access;
use crate::file::{FileRef, OpenFile};
use crate::node::Node;
use crate::types::PATH_MAX;
use alloc::string::String;
use alloc::vec::Vec;
use libos_core::{Errno, Result};

impl Vfs {
    /// Changes the current directory (search permission on it needed: `EACCES`).
    pub fn chdir(&self, path: &str) -> Result<()> {
        let loc = self.resolve(path.into(), true)?;
        self.set_cwd(loc)
    }

    /// `fchdir`: makes the open directory `dir` the current directory (`ENOTDIR` for
    /// anything else; search permission needed: `EACCES`).
    pub fn chdir_to(&self, dir: &OpenFile) -> Result<()> {
        self.set_cwd(dir.start()?)
    }

    fn set_cwd(&self, loc: Loc) -> Result<()> {
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.creds.check(&*loc.node, Access::EXEC)?;
        *self.cwd.lock() = loc;
        Ok(())
    }

    /// The absolute path of the current directory (`getcwd`), found by walking `..` and
    /// looking each directory up in its parent, so it names where the directory is now (after
    /// renames), through mount points. `ENOENT` if the directory was removed, `ENAMETOOLONG` if
    /// the path would reach [`PATH_MAX`] bytes.
    pub fn current_dir(&self) -> Result<String> {
        path_of_dir(self.cwd())
    }
}

/// The absolute path of directory `loc` now (see [`Vfs::current_dir`]).
pub(crate) fn path_of_dir(mut loc: Loc) -> Result<String> {
    let mut names: Vec<String> = Vec::new();
    let mut length = 0;
    loop {
        if length >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        while loc.is_mount_root() {
            match &loc.mount.parent {
                Some(covered) => loc = covered.clone(),
                None => {
                    let mut path = String::new();
                    for name in names.iter().rev() {
                        path.push('/');
                        path.push_str(name);
                    }
                    return Ok(if path.is_empty() { String::from("/") } else { path });
                }
            }
        }
        let parent = loc.node.lookup("..")?;
        let name = name_in(&*parent, loc.node.ino(), true)?.ok_or(Errno::ENOENT)?;
        length += name.len() + 1;
        names.push(name);
        loc = Loc { mount: loc.mount, node: parent };
    }
}

/// The name of inode `ino` (a directory or not, `dir`) in directory `parent`, if it has one.
fn name_in(parent: &dyn Node, ino: u64, dir: bool) -> Result<Option<String>> {
    let mut cookie = 0;
    while let Some(entry) = parent.read_dir(cookie)? {
        if entry.ino == ino && entry.file_type.is_dir() == dir {
            return Ok(Some(entry.name));
        }
        cookie = entry.next_cookie;
    }
    Ok(None)
}

/// The absolute path of an open file now, as `/proc/self/fd` shows it: a directory's through
/// `..`; another file's as a name in the directory it was found in (the mount's root for a
/// device), where a file that has none left (removed) shows as `DIR/(deleted)`: the VFS keeps
/// the directory, not the name.
pub(crate) fn path_of(file: &FileRef) -> Result<String> {
    let loc = &file.loc;
    if loc.is_dir() {
        return path_of_dir(loc.clone());
    }
    let dir = file.parent.clone().unwrap_or_else(|| loc.mount.root.clone());
    let name = name_in(&*dir, loc.node.ino(), false)?;
    let mut path = path_of_dir(Loc { mount: loc.mount.clone(), node: dir })?;
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(name.as_deref().unwrap_or("(deleted)"));
    Ok(path)
}
