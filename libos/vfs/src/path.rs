//! Path syntax: validation and splitting into components. No file system access here.

use crate::types::{NAME_MAX, PATH_MAX};
use alloc::vec::Vec;
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

/// A syntactically valid path split into components.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    /// Starts with `/`.
    pub absolute: bool,
    /// The non-empty components between slashes, `.` and `..` included.
    pub components: Vec<&'a str>,
    /// Ends with `/` after at least one component (`a/`): the last component must be a
    /// directory.
    pub trailing_slash: bool,
}

impl<'a> Parsed<'a> {
    /// The last component, classified.
    pub fn last(&self) -> Last<'a> {
        match self.components.last() {
            None => Last::Root,
            Some(&".") => Last::Dot,
            Some(&"..") => Last::DotDot,
            Some(name) => Last::Name(name),
        }
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
    if path.as_bytes().contains(&0) {
        return Err(Errno::EINVAL);
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components.iter().any(|c| c.len() > NAME_MAX) {
        return Err(Errno::ENAMETOOLONG);
    }
    let trailing_slash = path.ends_with('/') && !components.is_empty();
    Ok(Parsed { absolute: path.starts_with('/'), components, trailing_slash })
}

/// Checks a symlink target: like a path, but it is stored, not walked, so only emptiness, NUL
/// and total length matter.
pub(crate) fn check_target(target: &str) -> Result<()> {
    if target.is_empty() {
        Err(Errno::ENOENT)
    } else if target.len() >= PATH_MAX {
        Err(Errno::ENAMETOOLONG)
    } else if target.as_bytes().contains(&0) {
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
        assert_eq!(p.components, ["a", "b", "."]);
        assert_eq!(p.last(), Last::Dot);
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
    }
}
