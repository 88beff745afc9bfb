//! [`PathAt`]: a path and the directory a relative one starts from, what the `*at` system
//! calls (`openat(dirfd, ...)`) pass.

use crate::file::OpenFile;
use alloc::string::String;

/// A path for a [`super::Vfs`] operation, and where it starts when it is relative: at the
/// directory `dir` (an open directory, as `openat`'s `dirfd` names it) or, without one, at the
/// current directory. An absolute path starts at the root either way.
///
/// The walk starts at the directory itself, not at a path it was opened by: after the
/// directory is renamed, paths relative to it still reach its entries, and after it is
/// removed they fail with `ENOENT`, as on Linux. A `dir` that is not a directory is `ENOTDIR`
/// (for relative paths only). Every `&str` converts to a path relative to the current
/// directory, so the operations take plain strings too.
#[derive(Clone, Copy, Debug)]
pub struct PathAt<'a> {
    /// Where a relative path starts (`None`: the current directory).
    pub dir: Option<&'a OpenFile>,
    /// The path.
    pub path: &'a str,
}

impl<'a> PathAt<'a> {
    /// `path` relative to the open directory `dir`.
    pub fn new(dir: &'a OpenFile, path: &'a str) -> PathAt<'a> {
        PathAt { dir: Some(dir), path }
    }
}

impl<'a> From<&'a str> for PathAt<'a> {
    fn from(path: &'a str) -> PathAt<'a> {
        PathAt { dir: None, path }
    }
}

impl<'a> From<&'a String> for PathAt<'a> {
    fn from(path: &'a String) -> PathAt<'a> {
        PathAt { dir: None, path }
    }
}

