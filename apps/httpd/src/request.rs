//! Request heads: finding where one ends in a stream of bytes ([`HeadScanner`]) and parsing a
//! complete one ([`parse_head`]).
//!
//! The two steps are apart because bytes arrive in arbitrary pieces: the scanner looks at each
//! byte once however the request is split across reads (so a client sending one byte at a time
//! costs linear, not quadratic, work) and enforces the size limits while the head is still
//! incomplete; the parser then reads a complete head once. Both treat every input as hostile:
//! they return a [`Status`] for anything malformed and never panic.
//!
//! Accepted, per RFC 9112: `CRLF` or a bare `LF` as line end, empty lines before the request
//! line, origin-form (`/path?query`) and absolute-form (`http://host/path`) targets, HTTP/1.0
//! and HTTP/1.1. Rejected with 400: obsolete line folding, whitespace before a header's colon,
//! control characters, several different `Content-Length`s, an HTTP/1.1 request without exactly
//! one `Host`.

use crate::response::Status;

/// Longest request line (without its line end) the server accepts; longer ones get 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Most bytes of header fields after the request line (line ends included); more gets 431.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Input a connection buffers while a head is incomplete: enough for the largest head the
/// limits allow (empty lines before the request line included), and enough for
/// [`HeadScanner`] to have decided by the time it is full.
pub const MAX_HEAD_BUFFER: usize = 2 * MAX_REQUEST_LINE + MAX_HEADER_BYTES + 8;

/// What [`HeadScanner::scan`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// No complete head yet: wait for more bytes.
    Incomplete,
    /// The head is the first `head_len` bytes (including the empty line that ends it).
    Complete {
        /// Bytes of the head, up to and including its final line end.
        head_len: usize,
    },
    /// The head breaks a size limit: answer with this status and close.
    TooLarge(Status),
}

/// Finds the end of a request head incrementally: call [`scan`](Self::scan) with the whole
/// buffered input after each read; it resumes where it stopped. [`reset`](Self::reset) it when
/// the consumed request is removed from the front of the buffer.
#[derive(Clone, Debug, Default)]
pub struct HeadScanner {
    /// Bytes already examined.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// End (after the line end) of the request line, once seen.
    request_line_end: Option<usize>,
}

impl HeadScanner {
    /// A scanner at the start of a request.
    pub const fn new() -> HeadScanner {
        HeadScanner { pos: 0, line_start: 0, request_line_end: None }
    }

    /// Forgets progress (the next request starts at offset 0 of the buffer).
    pub fn reset(&mut self) {
        *self = HeadScanner::new();
    }

    /// Looks at the bytes of `input` not seen before. `input` must be the same buffer as in
    /// earlier calls, possibly with more bytes appended.
    pub fn scan(&mut self, input: &[u8]) -> Scan {
        if self.pos > input.len() {
            // Not the buffer of the earlier calls (a caller bug): start over rather than
            // index out of bounds.
            self.reset();
        }
        let start = self.pos;
        for (offset, &byte) in input[start..].iter().enumerate() {
            if byte != b'\n' {
                continue;
            }
            let end = start + offset + 1;
            let line = trim_line_end(&input[self.line_start..end]);
            self.line_start = end;
            match self.request_line_end {
                // Empty lines before the request line are skipped (RFC 9112 section 2.2), but
                // only up to a request line's worth, so they cannot go on forever.
                None if line.is_empty() && end > MAX_REQUEST_LINE => return Scan::TooLarge(Status::BadRequest),
                None if line.is_empty() => {}
                None if line.len() > MAX_REQUEST_LINE => return Scan::TooLarge(Status::UriTooLong),
                None => self.request_line_end = Some(end),
                Some(_) if line.is_empty() => return Scan::Complete { head_len: end },
                Some(request_line_end) if end - request_line_end > MAX_HEADER_BYTES => {
                    return Scan::TooLarge(Status::HeaderFieldsTooLarge);
                }
                Some(_) => {}
            }
        }
        self.pos = input.len();
        // No line end yet: decide as soon as the partial line is already over a limit, so the
        // buffer never has to hold more than a limit's worth.
        match self.request_line_end {
            None if input.len().saturating_sub(self.line_start) > MAX_REQUEST_LINE + 2 => Scan::TooLarge(Status::UriTooLong),
            Some(request_line_end) if input.len().saturating_sub(request_line_end) > MAX_HEADER_BYTES + 2 => {
                Scan::TooLarge(Status::HeaderFieldsTooLarge)
            }
            _ => Scan::Incomplete,
        }
    }
}

/// The request methods the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the file.
    Get,
    /// `HEAD`: the head a `GET` would get, without the body.
    Head,
    /// Anything else (answered with 405).
    Other,
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: closes after each response unless asked to keep the connection.
    Http10,
    /// HTTP/1.1: keeps the connection unless asked to close.
    Http11,
}

/// A parsed request head; it borrows from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, classified.
    pub method: Method,
    /// The method as sent (for logs).
    pub method_name: &'a str,
    /// The request target as sent (printable ASCII, not yet decoded).
    pub target: &'a str,
    /// The protocol version.
    pub version: Version,
    /// Whether the client wants the connection kept after the response.
    pub keep_alive: bool,
    /// Bytes of request body that follow the head (`Content-Length`, 0 without).
    pub body_len: u64,
}

/// Parses a complete head (as delimited by [`HeadScanner`]).
pub fn parse_head(head: &[u8]) -> Result<Request<'_>, Status> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_line_end).skip_while(|line| line.is_empty());
    let request_line = lines.next().ok_or(Status::BadRequest)?;
    let (method_name, target, version) = parse_request_line(request_line)?;

    let mut close = false;
    let mut keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut hosts = 0usize;
    let mut transfer_encoding = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = parse_header_line(line)?;
        if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim_whitespace) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_decimal(value).ok_or(Status::BadRequest)?;
            // Repeats are allowed only when they agree (RFC 9110 section 8.6).
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(Status::BadRequest);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        }
    }
    if version == Version::Http11 && hosts != 1 || hosts > 1 {
        return Err(Status::BadRequest);
    }
    if transfer_encoding {
        // A body in chunks the server would have to decode to find the next request; both
        // headers together are a smuggling attempt (RFC 9112 section 6.1).
        return Err(if content_length.is_some() { Status::BadRequest } else { Status::NotImplemented });
    }
    let method = match method_name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    };
    Ok(Request { method, method_name, target, version, keep_alive, body_len: content_length.unwrap_or(0) })
}

/// `METHOD SP TARGET SP HTTP/x.y`, exactly one space apart.
fn parse_request_line(line: &[u8]) -> Result<(&str, &str, Version), Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(Status::BadRequest);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Status::BadRequest);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Err(Status::VersionNotSupported);
        }
        _ => return Err(Status::BadRequest),
    };
    // Both are ASCII by the checks above.
    let method = core::str::from_utf8(method).map_err(|_| Status::BadRequest)?;
    let target = core::str::from_utf8(target).map_err(|_| Status::BadRequest)?;
    Ok((method, target, version))
}

/// `NAME: OWS VALUE OWS` with a token name and no control characters in the value.
fn parse_header_line(line: &[u8]) -> Result<(&[u8], &[u8]), Status> {
    let colon = line.iter().position(|&b| b == b':').ok_or(Status::BadRequest)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // A leading space is obsolete line folding; a space before the colon is forbidden
    // (RFC 9112 section 5.1): both fall out of the token check.
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(Status::BadRequest);
    }
    if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return Err(Status::BadRequest);
    }
    Ok((name, trim_whitespace(value)))
}

/// `tchar` of RFC 9110 section 5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty string of ASCII digits that fits a `u64`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        acc.checked_mul(10)?.checked_add(digit)
    })
}

/// The line without its `\n` and an optional `\r` before it.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Without leading and trailing spaces and tabs.
fn trim_whitespace(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
