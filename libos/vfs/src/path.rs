//! Path syntax: validation and splitting into components. No file system access here.

use crate::types::{NAME_MAX, PATH_MAX};
use libos_core::{Errno, Result};

/// The last component of a path, as the operations that create or remove names see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Last<'a> {
    /// The path has no components (`/`, `//`).
    Root,
    /// `.`.
    Dot,
    /// `..`.
    DotDot,
    /// A plain name.
    Name(&'a str),
}

/// A syntactically valid path, split into components lazily (no allocation: a path walk runs
/// on every `open`, `stat`, ...).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed<'a> {
    /// Starts with `/`.
    pub absolute: bool,
    /// Ends with `/` after at least one component (`a/`): the last component must be a
    /// directory.
    pub trailing_slash: bool,
    /// The path up to the end of its last component (no trailing slashes).
    body: &'a str,
    /// Where the last component starts in `body` (`body.len()` when there is none).
    last_start: usize,
}

impl<'a> Parsed<'a> {
    /// The last component, classified.
    pub fn last(&self) -> Last<'a> {
        match &self.body[self.last_start..] {
            "" => Last::Root,
            "." => Last::Dot,
            ".." => Last::DotDot,
            name => Last::Name(name),
        }
    }

    /// The last component as written (`None` for `/`).
    pub fn last_name(&self) -> Option<&'a str> {
        let name = &self.body[self.last_start..];
        (!name.is_empty()).then_some(name)
    }

    /// The non-empty components between slashes before the last one, `.` and `..` included.
    pub fn dirs(&self) -> Components<'a> {
        Components { rest: &self.body[..self.last_start] }
    }

    /// The text of [`Parsed::dirs`]: the path up to its last component (`/a/b/` of `/a/b/c`).
    pub fn dirs_text(&self) -> &'a str {
        &self.body[..self.last_start]
    }

    /// Every component, `.` and `..` included.
    #[cfg(test)]
    pub fn components(&self) -> Components<'a> {
        Components { rest: self.body }
    }
}

/// The non-empty components of a path (see [`Parsed::dirs`]).
#[derive(Debug, Clone)]
pub(crate) struct Components<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Components<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let start = bytes.iter().position(|&b| b != b'/')?;
        let end = bytes[start..].iter().position(|&b| b == b'/').map_or(bytes.len(), |n| start + n);
        // Both ends are at ASCII `/` bytes or the ends of the string: char boundaries.
        let name = &self.rest[start..end];
        self.rest = &self.rest[end..];
        Some(name)
    }
}

/// Checks a path as Linux does: empty is `ENOENT`, a NUL byte is `EINVAL` (C cannot even pass
/// one), `PATH_MAX` bytes or more and any component over `NAME_MAX` bytes are `ENAMETOOLONG`.
pub(crate) fn parse(path: &str) -> Result<Parsed<'_>> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if has_nul(path.as_bytes()) {
        return Err(Errno::EINVAL);
    }
    // A component can be too long only in a path longer than NAME_MAX (the common case skips
    // the scan).
    if path.len() > NAME_MAX && path.split('/').any(|c| c.len() > NAME_MAX) {
        return Err(Errno::ENAMETOOLONG);
    }
    // Byte loops, not `trim_end_matches`/`rfind`: on paths this short `memrchr`'s setup costs
    // more than the scan (measured: about 90 instructions per call).
    let bytes = path.as_bytes();
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] == b'/' {
        end -= 1;
    }
    // Both cuts are at ASCII `/` bytes or the ends of the string: char boundaries.
    let body = &path[..end];
    let last_start = bytes[..end].iter().rposition(|&b| b == b'/').map_or(0, |slash| slash + 1);
    Ok(Parsed { absolute: path.starts_with('/'), trailing_slash: !body.is_empty() && body.len() < path.len(), body, last_start })
}

/// True if `bytes` holds a NUL: eight bytes at a time (paths are short, and a byte loop
/// would cost as much as the rest of the parse).
fn has_nul(bytes: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_ne_bytes(word.try_into().unwrap_or_default());
        if w.wrapping_sub(LOW) & !w & HIGH != 0 {
            return true;
        }
    }
    words.remainder().contains(&0)
}

/// Checks a symlink target: like a path, but it is stored, not walked, so only emptiness, NUL
/// and total length matter.
pub(crate) fn check_target(target: &str) -> Result<()> {
    if target.is_empty() {
        Err(Errno::ENOENT)
    } else if target.len() >= PATH_MAX {
        Err(Errno::ENAMETOOLONG)
    } else if has_nul(target.as_bytes()) {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn splits_and_classifies() {
        let p = parse("/a//b/./").unwrap();
        assert!(p.absolute && p.trailing_slash);
        assert_eq!(p.components().collect::<Vec<_>>(), ["a", "b", "."]);
        assert_eq!(p.dirs().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.last(), Last::Dot);
        let q = parse("x//y").unwrap();
        assert!(!q.absolute && !q.trailing_slash);
        assert_eq!(q.dirs().collect::<Vec<_>>(), ["x"]);
        assert_eq!(q.last_name(), Some("y"));
        assert_eq!(parse("///").unwrap().dirs().count(), 0);
        assert_eq!(parse("///").unwrap().last_name(), None);
        assert!(!parse("///").unwrap().trailing_slash);
        assert_eq!(parse("//").unwrap().last(), Last::Root);
        assert!(!parse("/").unwrap().trailing_slash);
        assert_eq!(parse("x/..").unwrap().last(), Last::DotDot);
        assert_eq!(parse("x").unwrap().last(), Last::Name("x"));
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(parse("").unwrap_err(), Errno::ENOENT);
        assert_eq!(parse("a\0b").unwrap_err(), Errno::EINVAL);
        let long_name: String = "n".repeat(256);
        assert_eq!(parse(&long_name).unwrap_err(), Errno::ENAMETOOLONG);
        assert!(parse(&"n".repeat(255)).is_ok());
        let long_path = "a/".repeat(2048);
        assert_eq!(parse(&long_path).unwrap_err(), Errno::ENAMETOOLONG);
        assert_eq!(check_target("").unwrap_err(), Errno::ENOENT);
        assert_eq!(check_target("\0").unwrap_err(), Errno::EINVAL);
        for n in 0..20 {
            let mut path = "a".repeat(20);
            path.replace_range(n..=n, "\0");
            assert_eq!(parse(&path).unwrap_err(), Errno::EINVAL);
        }
    }
}
