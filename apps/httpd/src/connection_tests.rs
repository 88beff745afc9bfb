//! Host tests of the connection state machine over an in-memory file tree.

use super::*;
use crate::request::{MAX_HEADER_BYTES, MAX_REQUEST_LINE};
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use core::cell::Cell;

/// An in-memory tree: files with contents, directories by name; `/secret` is unreadable and
/// `/broken` fails halfway through.
struct MemFiles {
    files: BTreeMap<String, Vec<u8>>,
    dirs: Vec<String>,
    reads: Cell<usize>,
}

impl MemFiles {
    fn new() -> MemFiles {
        let mut files = BTreeMap::new();
        files.insert("/index.html".to_string(), b"<h1>home</h1>".to_vec());
        files.insert("/style.css".to_string(), b"body{}".to_vec());
        files.insert("/docs/index.html".to_string(), b"docs".to_vec());
        files.insert("/docs/a b.txt".to_string(), b"spaced".to_vec());
        files.insert("/empty.txt".to_string(), Vec::new());
        files.insert("/big.bin".to_string(), (0..300_000u32).map(|i| (i % 251) as u8).collect());
        files.insert("/broken".to_string(), vec![7; 100_000]);
        let dirs = ["/", "/docs", "/noindex", "/nested", "/nested/index.html"].map(String::from).to_vec();
        MemFiles { files, dirs, reads: Cell::new(0) }
    }
}

impl Files for MemFiles {
    type File = String;

    fn open(&self, path: &str) -> Result<Opened<String>, FileError> {
        if path == "/secret" {
            return Err(FileError::Forbidden);
        }
        if self.dirs.iter().any(|d| d == path) {
            return Ok(Opened::Directory);
        }
        let data = self.files.get(path).ok_or(FileError::NotFound)?;
        Ok(Opened::File { file: path.to_string(), size: data.len() as u64 })
    }

    fn read_at(&self, file: &String, buf: &mut [u8], offset: u64) -> Result<usize, FileError> {
        self.reads.set(self.reads.get() + 1);
        if file == "/broken" && offset > 0 {
            return Err(FileError::Io);
        }
        let data = &self.files[file];
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

/// A connection plus the bytes it sent, driven like the socket loop drives it.
struct Client {
    conn: Connection<String>,
    files: MemFiles,
    sent: Vec<u8>,
    log: Vec<(String, u16)>,
}

impl Client {
    fn new() -> Client {
        Client { conn: Connection::new(), files: MemFiles::new(), sent: Vec::new(), log: Vec::new() }
    }

    /// Delivers `bytes` (as far as the connection takes input), then lets it send everything
    /// it can, `write_size` bytes per write.
    fn send(&mut self, bytes: &[u8], write_size: usize) {
        let mut rest = bytes;
        loop {
            while !rest.is_empty() && self.conn.wants_input() {
                let taken = self.conn.receive(rest);
                assert!(taken > 0);
                rest = &rest[taken..];
            }
            self.pump(write_size);
            if rest.is_empty() || !self.conn.wants_input() && !self.conn.wants_output() {
                break;
            }
        }
    }

    fn pump(&mut self, write_size: usize) {
        loop {
            let log = &mut self.log;
            self.conn.advance(&self.files, Some("DATE"), &mut |served| {
                log.push((alloc::format!("{} {}", served.method, served.target), served.status.code()));
            });
            let out = self.conn.output();
            if out.is_empty() {
                break;
            }
            let n = out.len().min(write_size);
            self.sent.extend_from_slice(&out[..n]);
            self.conn.consume_output(n);
        }
    }

    fn eof(&mut self) {
        self.conn.peer_closed();
        self.pump(usize::MAX);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.sent).into_owned()
    }

    /// The responses sent so far, as (head, body) with bodies cut by Content-Length; `head_only`
    /// says which responses answer HEAD requests (no body on the wire).
    fn responses(&self, head_only: &[bool]) -> Vec<(String, Vec<u8>)> {
        let mut rest = self.sent.as_slice();
        let mut out = Vec::new();
        let mut index = 0;
        while !rest.is_empty() {
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
            let head = String::from_utf8(rest[..end].to_vec()).unwrap();
            let length: usize = header(&head, "Content-Length").expect("Content-Length").parse().unwrap();
            let body_len = if head_only.get(index).copied().unwrap_or(false) { 0 } else { length };
            out.push((head, rest[end..end + body_len].to_vec()));
            rest = &rest[end + body_len..];
            index += 1;
        }
        out
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn get(path: &str) -> String {
    alloc::format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn serves_a_file_with_the_right_headers() {
    let mut client = Client::new();
    client.send(get("/index.html").as_bytes(), usize::MAX);
    let responses = client.responses(&[]);
    assert_eq!(responses.len(), 1);
    let (head, body) = &responses[0];
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(head, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(head, "Content-Length"), Some("13"));
    assert_eq!(header(head, "Server"), Some("libos-httpd"));
    assert_eq!(header(head, "Date"), Some("DATE"));
    assert_eq!(header(head, "Connection"), None, "HTTP/1.1 keeps the connection by default");
    assert_eq!(body, b"<h1>home</h1>");
    assert!(!client.conn.is_finished());
    assert!(client.conn.wants_input());
    assert_eq!(client.log, [("GET /index.html".to_string(), 200)]);
}

#[test]
fn request_split_into_single_bytes() {
    let mut client = Client::new();
    for &byte in get("/style.css").as_bytes() {
        client.send(&[byte], usize::MAX);
    }
    let responses = client.responses(&[]);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].1, b"body{}");
}

#[test]
fn head_has_the_length_but_no_body() {
    let mut client = Client::new();
    client.send(b"HEAD /big.bin HTTP/1.1\r\nHost: h\r\n\r\n", usize::MAX);
    let text = client.text();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(header(&text, "Content-Length"), Some("300000"));
    assert_eq!(header(&text, "Content-Type"), Some("application/octet-stream"));
    assert!(text.ends_with("\r\n\r\n"), "no body after the head");
    assert_eq!(client.files.reads.get(), 0, "HEAD reads nothing");
    // Errors to HEAD requests have no body either.
    let mut client = Client::new();
    client.send(b"HEAD /missing HTTP/1.1\r\nHost: h\r\n\r\n", usize::MAX);
    let text = client.text();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n") && text.ends_with("\r\n\r\n"), "{text}");
    assert_ne!(header(&text, "Content-Length"), Some("0"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut client = Client::new();
    let mut requests = String::new();
    for path in ["/style.css", "/missing", "/index.html", "/big.bin", "/docs/"] {
        requests.push_str(&get(path));
    }
    requests.push_str("HEAD /style.css HTTP/1.1\r\nHost: h\r\n\r\n");
    requests.push_str(&get("/empty.txt"));
    client.send(requests.as_bytes(), 1000);
    let responses = client.responses(&[false, false, false, false, false, true, false]);
    let statuses: Vec<&str> = responses.iter().map(|(h, _)| &h[9..12]).collect();
    assert_eq!(statuses, ["200", "404", "200", "200", "200", "200", "200"]);
    assert_eq!(responses[0].1, b"body{}");
    assert_eq!(responses[2].1, b"<h1>home</h1>");
    assert_eq!(responses[3].1, client.files.files["/big.bin"]);
    assert_eq!(responses[4].1, b"docs");
    assert!(responses[5].1.is_empty());
    assert!(responses[6].1.is_empty());
    assert_eq!(header(&responses[6].0, "Content-Length"), Some("0"));
    assert_eq!(client.log.len(), 7);
}

#[test]
fn pipelined_requests_arriving_in_odd_pieces() {
    let requests = [get("/style.css"), get("/index.html"), get("/docs/a%20b.txt")].concat();
    for piece in [1, 2, 3, 5, 17, 64] {
        let mut client = Client::new();
        for chunk in requests.as_bytes().chunks(piece) {
            client.send(chunk, 7);
        }
        let bodies: Vec<Vec<u8>> = client.responses(&[]).into_iter().map(|(_, b)| b).collect();
        assert_eq!(bodies, [b"body{}".to_vec(), b"<h1>home</h1>".to_vec(), b"spaced".to_vec()], "pieces of {piece}");
    }
}

#[test]
fn large_files_stream_in_chunks() {
    let mut client = Client::new();
    client.send(get("/big.bin").as_bytes(), usize::MAX);
    let responses = client.responses(&[]);
    assert_eq!(responses[0].1, client.files.files["/big.bin"]);
    assert_eq!(client.files.reads.get(), 300_000usize.div_ceil(CHUNK));
}

#[test]
fn a_slow_reader_holds_one_chunk_at_most() {
    let mut conn: Connection<String> = Connection::new();
    let files = MemFiles::new();
    let request = get("/big.bin");
    assert_eq!(conn.receive(request.as_bytes()), request.len());
    let mut total = 0;
    for _ in 0..10 {
        conn.advance(&files, None, &mut |_| {});
        assert!(conn.output().len() <= CHUNK + 200, "{}", conn.output().len());
        let n = conn.output().len().min(10_000);
        total += n;
        conn.consume_output(n);
    }
    assert!(total < 300_000);
    assert!(conn.wants_output());
}

#[test]
fn directories() {
    let mut client = Client::new();
    client.send([get("/"), get("/docs"), get("/docs/"), get("/noindex/"), get("/nested/")].concat().as_bytes(), usize::MAX);
    let responses = client.responses(&[]);
    assert_eq!(responses[0].1, b"<h1>home</h1>", "/ serves /index.html");
    assert!(responses[1].0.starts_with("HTTP/1.1 301 "), "{}", responses[1].0);
    assert_eq!(header(&responses[1].0, "Location"), Some("/docs/"));
    assert_eq!(responses[2].1, b"docs");
    assert_eq!(header(&responses[2].0, "Content-Type"), Some("text/html; charset=utf-8"));
    assert!(responses[3].0.starts_with("HTTP/1.1 404 "), "no index.html: 404");
    assert!(responses[4].0.starts_with("HTTP/1.1 404 "), "index.html that is a directory: 404");
    assert!(!client.conn.is_finished(), "none of these closes the connection");
}

#[test]
fn error_statuses_and_their_pages() {
    let cases = [
        (get("/missing.html"), "404", false),
        (get("/secret"), "403", false),
        (get("/../etc/passwd"), "400", false),
        (get("/%zz"), "400", false),
        ("POST /index.html HTTP/1.1\r\nHost: h\r\n\r\n".to_string(), "405", false),
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n".to_string(), "505", true),
        ("GET /\r\n\r\n".to_string(), "400", true),
        ("GET / HTTP/1.1\r\n\r\n".to_string(), "400", true),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(), "501", true),
    ];
    for (request, status, closes) in cases {
        let mut client = Client::new();
        client.send(request.as_bytes(), usize::MAX);
        let responses = client.responses(&[]);
        assert_eq!(responses.len(), 1, "{request}");
        let (head, body) = &responses[0];
        assert_eq!(&head[9..12], status, "{request}: {head}");
        assert_eq!(header(head, "Content-Type"), Some(ERROR_PAGE_TYPE));
        assert!(String::from_utf8_lossy(body).contains(status), "the page names the status");
        assert_eq!(client.conn.is_finished(), closes, "{request}");
        assert_eq!(header(head, "Connection") == Some("close"), closes, "{request}");
        if status == "405" {
            assert_eq!(header(head, "Allow"), Some("GET, HEAD"));
        }
    }
}

#[test]
fn a_refused_method_with_a_body_closes() {
    let mut client = Client::new();
    client.send(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", usize::MAX);
    assert!(client.text().starts_with("HTTP/1.1 405 "));
    assert!(client.conn.is_finished());
}

#[test]
fn a_get_body_is_skipped_before_the_next_request() {
    let mut client = Client::new();
    let requests = ["GET /style.css HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", &get("/index.html")].concat();
    for chunk in requests.as_bytes().chunks(4) {
        client.send(chunk, usize::MAX);
    }
    let bodies: Vec<Vec<u8>> = client.responses(&[]).into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies, [b"body{}".to_vec(), b"<h1>home</h1>".to_vec()]);
}

#[test]
fn connection_close_and_http10() {
    let mut client = Client::new();
    client.send(b"GET /style.css HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", usize::MAX);
    let responses = client.responses(&[]);
    assert_eq!(responses.len(), 1, "nothing after Connection: close is answered");
    assert_eq!(header(&responses[0].0, "Connection"), Some("close"));
    assert!(client.conn.is_finished());
    assert!(!client.conn.wants_input());

    let mut client = Client::new();
    client.send(b"GET /style.css HTTP/1.0\r\n\r\n", usize::MAX);
    assert_eq!(header(&client.text(), "Connection"), Some("close"));
    assert!(client.conn.is_finished(), "HTTP/1.0 closes by default");

    let mut client = Client::new();
    client.send(b"GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", usize::MAX);
    assert_eq!(header(&client.text(), "Connection"), Some("keep-alive"));
    assert!(!client.conn.is_finished());
}

#[test]
fn the_connection_closes_after_the_last_byte_of_a_closing_response() {
    let mut conn: Connection<String> = Connection::new();
    let files = MemFiles::new();
    let request = b"GET /big.bin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    assert_eq!(conn.receive(request), request.len());
    let mut total = 0;
    loop {
        conn.advance(&files, None, &mut |_| {});
        if conn.output().is_empty() {
            break;
        }
        assert!(!conn.is_finished());
        total += conn.output().len();
        let n = conn.output().len();
        conn.consume_output(n);
    }
    assert!(total > 300_000);
    assert!(conn.is_finished());
}

#[test]
fn too_large_heads() {
    let mut long_line = b"GET /".to_vec();
    long_line.resize(MAX_REQUEST_LINE + 100, b'a');
    let mut client = Client::new();
    client.send(&long_line, usize::MAX);
    assert!(client.text().starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{}", client.text());
    assert!(client.conn.is_finished());

    let mut many_headers = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    while many_headers.len() < MAX_HEADER_BYTES + 1000 {
        many_headers.extend_from_slice(b"Cookie: 0123456789012345678901234567890123456789\r\n");
    }
    let mut client = Client::new();
    client.send(&many_headers, usize::MAX);
    assert!(client.text().starts_with("HTTP/1.1 431 "), "{}", client.text());
    assert!(client.conn.is_finished());
}

#[test]
fn input_is_bounded_while_a_response_is_pending() {
    // A client that pipelines endlessly without reading: the connection stops taking input.
    let mut conn: Connection<String> = Connection::new();
    let files = MemFiles::new();
    let mut offered = 0;
    let request = get("/big.bin");
    while conn.wants_input() && offered < 10_000_000 {
        conn.receive(request.as_bytes());
        offered += request.len();
        conn.advance(&files, None, &mut |_| {});
    }
    assert!(!conn.wants_input());
    assert!(conn.wants_output());
}

#[test]
fn eof_after_a_complete_request_still_gets_the_answer() {
    let mut client = Client::new();
    client.send(get("/style.css").as_bytes(), usize::MAX);
    client.eof();
    assert_eq!(client.responses(&[])[0].1, b"body{}");
    assert!(client.conn.is_finished());

    let mut client = Client::new();
    client.send(b"GET /style.css HTTP/1.1\r\nHo", usize::MAX);
    client.eof();
    assert!(client.sent.is_empty(), "half a request gets no answer");
    assert!(client.conn.is_finished());
}

#[test]
fn a_file_failing_midway_closes_the_connection() {
    let mut client = Client::new();
    client.send([get("/broken"), get("/style.css")].concat().as_bytes(), usize::MAX);
    let text = client.text();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&text, "Content-Length"), Some("100000"));
    let head_len = text.find("\r\n\r\n").unwrap() + 4;
    assert_eq!(client.sent.len() - head_len, CHUNK, "one chunk, then the failure");
    assert!(client.conn.is_finished(), "the promised length cannot be kept: close");
}

#[test]
fn noise_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"GET HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n%2e..\x00\xff";
    for _ in 0..300 {
        let mut client = Client::new();
        let bytes: Vec<u8> = (0..2000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        for chunk in bytes.chunks((state % 97 + 1) as usize) {
            client.send(chunk, 333);
        }
        client.eof();
        assert!(client.conn.is_finished());
    }
}
