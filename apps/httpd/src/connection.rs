//! One client connection as a state machine without I/O ([`Connection`]): bytes the socket
//! delivered go in ([`Connection::receive`]), bytes for the socket come out
//! ([`Connection::output`], [`Connection::consume_output`]), and [`Connection::advance`]
//! turns complete requests into responses in between. Files come through the [`Files`] trait,
//! so the same code serves the VFS in the guest and an in-memory map in the host tests.
//!
//! Memory per connection is bounded whatever the client does: the input holds at most one
//! request head ([`MAX_HEAD_BUFFER`]; the socket is not read while it is full), and a file is
//! streamed in [`CHUNK`]-sized reads, the next one only once the previous chunk has left, so a
//! slow reader holds one chunk, never the file. Pipelined requests are answered in order; small
//! responses to several of them are batched into one write.

use crate::mime;
use crate::path::{CleanPath, clean_target, percent_encode_path};
use crate::request::{HeadScanner, MAX_HEAD_BUFFER, Method, Scan, Version, parse_head};
use crate::response::{ConnectionHeader, ERROR_PAGE_TYPE, ResponseHead, Status, error_page};
use alloc::string::String;
use alloc::vec::Vec;

/// Bytes of a file read per step of streaming it.
pub const CHUNK: usize = 64 * 1024;

/// Why a file cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// No such file (404).
    NotFound,
    /// Exists but is not to be served: not a regular file or directory, or not readable (403).
    Forbidden,
    /// The file system failed (500, or closing the connection mid-body).
    Io,
}

/// What [`Files::open`] found.
#[derive(Debug)]
pub enum Opened<F> {
    /// A regular file, open for reading, and its size.
    File {
        /// The open file.
        file: F,
        /// Its size in bytes (the `Content-Length`).
        size: u64,
    },
    /// A directory.
    Directory,
}

/// The files a [`Connection`] serves; paths are clean (see [`clean_target`]) and relative to
/// the served root.
pub trait Files {
    /// An open file.
    type File;
    /// Opens `path`.
    fn open(&self, path: &str) -> Result<Opened<Self::File>, FileError>;
    /// Reads from `file` at `offset` into `buf`; `Ok(0)` at the end.
    fn read_at(&self, file: &Self::File, buf: &mut [u8], offset: u64) -> Result<usize, FileError>;
}

/// One answered request, for `--verbose` logs.
#[derive(Clone, Copy, Debug)]
pub struct Served<'a> {
    /// The method as sent (`-` when the request could not be parsed).
    pub method: &'a str,
    /// The target as sent (`-` when the request could not be parsed).
    pub target: &'a str,
    /// The response's status.
    pub status: Status,
    /// Its `Content-Length`.
    pub length: u64,
}

/// A file being sent as a response body.
struct Body<F> {
    file: F,
    offset: u64,
    remaining: u64,
}

/// The protocol state of one connection (see the module docs).
pub struct Connection<F> {
    /// Received bytes not yet consumed: the next request's head (and maybe more pipelined).
    input: Vec<u8>,
    scanner: HeadScanner,
    /// Request body bytes still to skip before the next request starts.
    discard: u64,
    /// Response bytes waiting for the socket; `output[sent..]` is still to go.
    output: Vec<u8>,
    sent: usize,
    /// The file whose content follows the output, if one is being streamed.
    body: Option<Body<F>>,
    /// No more requests: close once the output is out.
    closing: bool,
    /// The peer sent EOF: answer what is complete, then close.
    peer_closed: bool,
}

impl<F> Default for Connection<F> {
    fn default() -> Self {
        Connection::new()
    }
}

impl<F> Connection<F> {
    /// A fresh connection, waiting for its first request.
    pub const fn new() -> Connection<F> {
        Connection {
            input: Vec::new(),
            scanner: HeadScanner::new(),
            discard: 0,
            output: Vec::new(),
            sent: 0,
            body: None,
            closing: false,
            peer_closed: false,
        }
    }

    /// Whether the socket should be read: there is room for input and requests are still
    /// accepted.
    pub fn wants_input(&self) -> bool {
        self.input_room() > 0
    }

    /// How many more bytes the input takes (the most a socket read should ask for).
    pub fn input_room(&self) -> usize {
        if self.closing || self.peer_closed { 0 } else { MAX_HEAD_BUFFER.saturating_sub(self.input.len()) }
    }

    /// Takes bytes read from the socket, as many as [`input_room`](Self::input_room) allows;
    /// returns how many it took.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.input_room());
        self.input.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// Records that the peer closed its sending side (EOF).
    pub fn peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Bytes waiting for the socket.
    pub fn output(&self) -> &[u8] {
        &self.output[self.sent..]
    }

    /// Marks the first `n` bytes of [`output`](Self::output) as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.output.len());
        if self.sent == self.output.len() {
            self.output.clear();
            self.sent = 0;
            if self.body.is_none() && self.output.capacity() > 4 * 1024 {
                // An idle keep-alive connection should not pin a file chunk's worth of memory.
                self.output = Vec::new();
            }
        }
    }

    /// Whether the socket has (or will have, after [`advance`](Self::advance)) bytes to send.
    pub fn wants_output(&self) -> bool {
        self.sent < self.output.len() || self.body.is_some()
    }

    /// Whether the connection is over: nothing left to send and no further request will be
    /// answered. The caller drops the socket (a graceful close).
    pub fn is_finished(&self) -> bool {
        !self.wants_output() && (self.closing || self.peer_closed)
    }

    /// Makes progress without I/O: refills the output from a file being streamed, or answers
    /// the complete requests in the input (several pipelined ones while their responses are
    /// small). `date` is the current [`crate::response::http_date`], if known; `log` sees each
    /// answered request.
    pub fn advance<S: Files<File = F>>(&mut self, files: &S, date: Option<&str>, log: &mut dyn FnMut(&Served<'_>)) {
        loop {
            if self.body.is_some() {
                if self.output().is_empty() {
                    self.refill_from_body(files);
                }
                return;
            }
            if self.closing || self.output().len() >= CHUNK {
                return;
            }
            if self.discard > 0 {
                let skip = usize::try_from(self.discard).unwrap_or(usize::MAX).min(self.input.len());
                self.input.drain(..skip);
                self.discard -= skip as u64;
                if self.discard > 0 {
                    return;
                }
            }
            match self.scanner.scan(&self.input) {
                Scan::Incomplete => {
                    if self.input.is_empty() && self.input.capacity() > 4 * 1024 {
                        self.input = Vec::new();
                    }
                    return;
                }
                Scan::TooLarge(status) => {
                    log(&Served { method: "-", target: "-", status, length: 0 });
                    self.respond_with_error(status, false, ConnectionHeader::Close, date);
                    self.closing = true;
                    return;
                }
                Scan::Complete { head_len } => self.answer(head_len, files, date, log),
            }
        }
    }

    /// Answers the request whose head is `input[..head_len]` and removes it from the input.
    fn answer<S: Files<File = F>>(
        &mut self,
        head_len: usize,
        files: &S,
        date: Option<&str>,
        log: &mut dyn FnMut(&Served<'_>),
    ) {
        // The head borrows the input: take it out, so the response can be built in `self`.
        let rest = self.input.split_off(head_len);
        let head = core::mem::replace(&mut self.input, rest);
        self.scanner.reset();
        let request = match parse_head(&head) {
            Ok(request) => request,
            Err(status) => {
                // The framing is unknown after a malformed head: answer and close.
                log(&Served { method: "-", target: "-", status, length: 0 });
                self.respond_with_error(status, false, ConnectionHeader::Close, date);
                self.closing = true;
                return;
            }
        };
        let head_only = request.method == Method::Head;
        // A body on a method we refuse could be anything (an upload): do not read it through.
        let keep_alive = request.keep_alive && !(request.method == Method::Other && request.body_len > 0);
        let connection = match (keep_alive, request.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http11) => ConnectionHeader::Omitted,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
        };
        self.closing = !keep_alive;
        self.discard = if keep_alive { request.body_len } else { 0 };
        let (status, length) = match request.method {
            Method::Other => (Status::MethodNotAllowed, self.respond_with_error(Status::MethodNotAllowed, false, connection, date)),
            Method::Get | Method::Head => match clean_target(request.target) {
                Ok(path) => self.respond_with_file(&path, files, head_only, connection, date),
                Err(status) => (status, self.respond_with_error(status, head_only, connection, date)),
            },
        };
        log(&Served { method: request.method_name, target: request.target, status, length });
    }

    /// Answers with the file at `path` (or a directory's `index.html`, a redirect, an error);
    /// returns the status and `Content-Length`.
    fn respond_with_file<S: Files<File = F>>(
        &mut self,
        path: &CleanPath,
        files: &S,
        head_only: bool,
        connection: ConnectionHeader,
        date: Option<&str>,
    ) -> (Status, u64) {
        let mut served_path = path.path.clone();
        let mut opened = files.open(&served_path);
        if let Ok(Opened::Directory) = opened {
            if !path.trailing_slash {
                let mut location = percent_encode_path(&path.path);
                location.push('/');
                let length = self.respond_with_page(Status::MovedPermanently, head_only, connection, date, Some(&location));
                return (Status::MovedPermanently, length);
            }
            if !served_path.ends_with('/') {
                served_path.push('/');
            }
            served_path.push_str("index.html");
            opened = files.open(&served_path);
        }
        let status = match opened {
            Ok(Opened::File { file, size }) => {
                ResponseHead {
                    status: Status::Ok,
                    content_length: size,
                    content_type: mime::content_type(&served_path),
                    connection,
                    date,
                    location: None,
                }
                .write_to(&mut self.output);
                if !head_only && size > 0 {
                    self.body = Some(Body { file, offset: 0, remaining: size });
                }
                return (Status::Ok, size);
            }
            // A directory inside a directory's place of index.html: nothing to show.
            Ok(Opened::Directory) | Err(FileError::NotFound) => Status::NotFound,
            Err(FileError::Forbidden) => Status::Forbidden,
            Err(FileError::Io) => Status::InternalServerError,
        };
        (status, self.respond_with_error(status, head_only, connection, date))
    }

    /// Appends an error response with its HTML page; returns the page's length.
    fn respond_with_error(&mut self, status: Status, head_only: bool, connection: ConnectionHeader, date: Option<&str>) -> u64 {
        self.respond_with_page(status, head_only, connection, date, None)
    }

    fn respond_with_page(
        &mut self,
        status: Status,
        head_only: bool,
        connection: ConnectionHeader,
        date: Option<&str>,
        location: Option<&str>,
    ) -> u64 {
        let page: String = error_page(status);
        let length = page.len() as u64;
        ResponseHead { status, content_length: length, content_type: ERROR_PAGE_TYPE, connection, date, location }
            .write_to(&mut self.output);
        if !head_only {
            self.output.extend_from_slice(page.as_bytes());
        }
        length
    }

    /// Reads the next chunk of the body into the (empty) output. A file that ends early or
    /// fails cannot be answered any more (the length is promised): the connection closes, which
    /// tells the client the body is short.
    fn refill_from_body<S: Files<File = F>>(&mut self, files: &S) {
        let Some(body) = self.body.as_mut() else { return };
        let want = usize::try_from(body.remaining).unwrap_or(usize::MAX).min(CHUNK);
        let start = self.output.len();
        self.output.resize(start + want, 0);
        let got = files.read_at(&body.file, &mut self.output[start..], body.offset).map(|n| n.min(want));
        match got {
            Ok(n) if n > 0 => {
                self.output.truncate(start + n);
                body.offset += n as u64;
                body.remaining -= n as u64;
                if body.remaining == 0 {
                    self.body = None;
                }
            }
            _ => {
                self.output.truncate(start);
                self.body = None;
                self.closing = true;
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
