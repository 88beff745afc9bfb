//! From a request target to a file path that cannot leave the served root ([`clean_target`]),
//! and back to a URL path for redirects ([`percent_encode_path`]).
//!
//! Decoding happens before the `.`/`..` segments are resolved, so `%2e%2e` and `%2F` cannot
//! smuggle an escape past the check. A `..` that would climb above the root is refused (400)
//! rather than clamped: a client that sends one is not a browser following a link.

use crate::response::Status;
use alloc::string::String;
use alloc::vec::Vec;

/// A request target reduced to a path inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanPath {
    /// `/` followed by the segments joined with `/`; never has `.`, `..`, empty segments or a
    /// trailing slash (except the root itself, `/`).
    pub path: String,
    /// Whether the target named a directory: it ended with `/` (or a `.`/`..` segment). A
    /// directory asked for without one is redirected, so relative links in its index work.
    pub trailing_slash: bool,
}

/// Decodes and sanitises a request target (origin-form or absolute-form; query and fragment
/// are ignored).
pub fn clean_target(target: &str) -> Result<CleanPath, Status> {
    let path = strip_scheme_and_authority(target);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let decoded = percent_decode(path.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| Status::BadRequest)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = true;
    for segment in decoded.split('/') {
        match segment {
            "" => continue,
            "." => {}
            ".." => {
                segments.pop().ok_or(Status::BadRequest)?;
            }
            name => {
                segments.push(name);
                trailing_slash = false;
                continue;
            }
        }
        trailing_slash = true;
    }
    trailing_slash |= decoded.ends_with('/');
    let mut clean = String::with_capacity(decoded.len());
    for segment in &segments {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    Ok(CleanPath { path: clean, trailing_slash })
}

/// The path of an absolute-form target (`http://host:port/path` -> `/path`); other targets
/// unchanged.
fn strip_scheme_and_authority(target: &str) -> &str {
    let bytes = target.as_bytes();
    for scheme in ["http://", "https://"] {
        if bytes.len() >= scheme.len() && bytes[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes()) {
            let rest = &target[scheme.len()..];
            return rest.find('/').map_or("/", |slash| &rest[slash..]);
        }
    }
    target
}

/// `%XX` to bytes; a `%` without two hex digits, or an encoded NUL, is a bad request.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let high = bytes.next().and_then(|&b| hex_value(b));
        let low = bytes.next().and_then(|&b| hex_value(b));
        match (high, low) {
            (Some(high), Some(low)) if high | low != 0 => out.push(high << 4 | low),
            _ => return Err(Status::BadRequest),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `path` with every byte outside RFC 3986's `pchar` and `/` percent-encoded (for `Location`).
pub fn percent_encode_path(path: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// The file system path of a clean `path` under `root` (`/srv/www` + `/a/b` = `/srv/www/a/b`).
pub fn join_root(root: &str, path: &str) -> String {
    let root = root.trim_end_matches('/');
    let mut full = String::with_capacity(root.len() + path.len());
    full.push_str(root);
    full.push_str(path);
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(target: &str) -> Result<(String, bool), Status> {
        clean_target(target).map(|c| (c.path, c.trailing_slash))
    }

    fn ok(path: &str, trailing_slash: bool) -> Result<(String, bool), Status> {
        Ok((String::from(path), trailing_slash))
    }

    #[test]
    fn plain_paths() {
        assert_eq!(clean("/"), ok("/", true));
        assert_eq!(clean("/index.html"), ok("/index.html", false));
        assert_eq!(clean("/a/b/c.txt"), ok("/a/b/c.txt", false));
        assert_eq!(clean("/docs/"), ok("/docs", true));
        assert_eq!(clean("//a///b//"), ok("/a/b", true));
    }

    #[test]
    fn query_and_fragment_are_ignored() {
        assert_eq!(clean("/page.html?x=1&y=/../../etc"), ok("/page.html", false));
        assert_eq!(clean("/page.html#top"), ok("/page.html", false));
        assert_eq!(clean("/?q"), ok("/", true));
        assert_eq!(clean("/a%3Fb"), ok("/a?b", false), "an encoded ? is part of the name");
    }

    #[test]
    fn dot_segments_resolve_inside_the_root() {
        assert_eq!(clean("/a/./b"), ok("/a/b", false));
        assert_eq!(clean("/a/b/../c"), ok("/a/c", false));
        assert_eq!(clean("/a/.."), ok("/", true));
        assert_eq!(clean("/a/."), ok("/a", true));
        assert_eq!(clean("/a/b/.."), ok("/a", true));
        assert_eq!(clean("/..."), ok("/...", false), "three dots is an ordinary name");
        assert_eq!(clean("/..a"), ok("/..a", false));
    }

    #[test]
    fn escaping_the_root_is_refused() {
        for target in ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E%2Fx", "/a/%2e%2e%2f%2e%2e/x", "/./../"] {
            assert_eq!(clean(target), Err(Status::BadRequest), "{target}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(clean("/hello%20world.txt"), ok("/hello world.txt", false));
        assert_eq!(clean("/a%2Fb"), ok("/a/b", false), "an encoded slash separates too");
        assert_eq!(clean("/caf%C3%A9"), ok("/café", false));
        assert_eq!(clean("/%41%62"), ok("/Ab", false));
        for bad in ["/%", "/%4", "/%zz", "/%g0", "/a%00b", "/%FF", "/%C3"] {
            assert_eq!(clean(bad), Err(Status::BadRequest), "{bad}");
        }
    }

    #[test]
    fn absolute_form_and_non_paths() {
        assert_eq!(clean("http://example.com/a/b?q"), ok("/a/b", false));
        assert_eq!(clean("HTTP://example.com:8080"), ok("/", true));
        assert_eq!(clean("https://h/x/"), ok("/x", true));
        for bad in ["*", "index.html", "example.com/x", "ftp://h/x"] {
            assert_eq!(clean(bad), Err(Status::BadRequest), "{bad}");
        }
    }

    #[test]
    fn encoding_for_location() {
        assert_eq!(percent_encode_path("/docs"), "/docs");
        assert_eq!(percent_encode_path("/my docs/café"), "/my%20docs/caf%C3%A9");
        assert_eq!(percent_encode_path("/a?b#c%"), "/a%3Fb%23c%25");
        let decoded = clean_target(&percent_encode_path("/x y/%z")).unwrap();
        assert_eq!(decoded.path, "/x y/%z", "encoding round-trips");
    }

    #[test]
    fn joining_the_root() {
        assert_eq!(join_root("/", "/a/b"), "/a/b");
        assert_eq!(join_root("/", "/"), "/");
        assert_eq!(join_root("/srv/www", "/a"), "/srv/www/a");
        assert_eq!(join_root("/srv/www/", "/"), "/srv/www/");
    }
}
