//! The current directory: `chdir`, `fchdir` and `getcwd`.

use super::{Loc, Vfs};
use crate::cred::Access;
use crate::file::OpenFile;
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
        let mut loc = self.cwd();
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
            let ino = loc.node.ino();
            let mut cookie = 0;
            let name = loop {
                match parent.read_dir(cookie)? {
                    Some(entry) if entry.ino == ino && entry.file_type.is_dir() => break entry.name,
                    Some(entry) => cookie = entry.next_cookie,
                    None => return Err(Errno::ENOENT),
                }
            };
            length += name.len() + 1;
            names.push(name);
            loc = Loc { mount: loc.mount, node: parent };
        }
    }
}
