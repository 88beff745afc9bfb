//! Host tests of the head scanner and parser.

use super::*;
use alloc::vec::Vec;

fn scan_all(input: &[u8]) -> Scan {
    HeadScanner::new().scan(input)
}

/// Feeds `input` to one scanner in pieces of `step` bytes; the result after the last piece.
fn scan_in_steps(input: &[u8], step: usize) -> Scan {
    let mut scanner = HeadScanner::new();
    let mut result = Scan::Incomplete;
    for end in (step..input.len() + step).step_by(step) {
        result = scanner.scan(&input[..end.min(input.len())]);
        if result != Scan::Incomplete {
            return result;
        }
    }
    result
}

const SIMPLE: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";

#[test]
fn scanner_finds_the_end_however_the_input_is_split() {
    let expected = Scan::Complete { head_len: SIMPLE.len() };
    assert_eq!(scan_all(SIMPLE), expected);
    for step in 1..SIMPLE.len() {
        assert_eq!(scan_in_steps(SIMPLE, step), expected, "step {step}");
    }
    for cut in 0..SIMPLE.len() {
        assert_eq!(scan_all(&SIMPLE[..cut]), Scan::Incomplete, "cut at {cut}");
    }
}

#[test]
fn scanner_stops_at_the_first_head_of_pipelined_requests() {
    let mut two = SIMPLE.to_vec();
    two.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(scan_all(&two), Scan::Complete { head_len: SIMPLE.len() });
}

#[test]
fn scanner_accepts_bare_lf_and_leading_empty_lines() {
    assert_eq!(scan_all(b"GET / HTTP/1.0\n\n"), Scan::Complete { head_len: 16 });
    let input = b"\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    assert_eq!(scan_all(input), Scan::Complete { head_len: input.len() });
    // The request line alone is not a head.
    assert_eq!(scan_all(b"GET / HTTP/1.1\r\n"), Scan::Incomplete);
}

#[test]
fn long_request_line_is_414_even_before_its_end_arrives() {
    let mut line = b"GET /".to_vec();
    line.resize(MAX_REQUEST_LINE + 10, b'a');
    assert_eq!(scan_all(&line), Scan::TooLarge(Status::UriTooLong));
    assert_eq!(scan_in_steps(&line, 1000), Scan::TooLarge(Status::UriTooLong));
    line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(scan_all(&line), Scan::TooLarge(Status::UriTooLong));
}

#[test]
fn request_line_at_the_limit_is_fine() {
    let suffix = b" HTTP/1.1";
    let mut line = b"GET /".to_vec();
    line.resize(MAX_REQUEST_LINE - suffix.len(), b'a');
    line.extend_from_slice(suffix);
    assert_eq!(line.len(), MAX_REQUEST_LINE);
    line.extend_from_slice(b"\r\nHost: h\r\n\r\n");
    assert_eq!(scan_in_steps(&line, 100), Scan::Complete { head_len: line.len() });
    assert!(line.len() <= MAX_HEAD_BUFFER);
}

#[test]
fn too_many_header_bytes_is_431() {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    while head.len() < MAX_HEADER_BYTES + 100 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(scan_all(&head), Scan::TooLarge(Status::HeaderFieldsTooLarge));
    assert_eq!(scan_in_steps(&head, 7), Scan::TooLarge(Status::HeaderFieldsTooLarge));
    // One endless header line: decided before its end.
    let mut endless = b"GET / HTTP/1.1\r\nX: ".to_vec();
    endless.resize(MAX_HEADER_BYTES + 100, b'b');
    assert_eq!(scan_all(&endless), Scan::TooLarge(Status::HeaderFieldsTooLarge));
}

#[test]
fn endless_empty_lines_are_refused() {
    let blank = b"\r\n".repeat(MAX_REQUEST_LINE);
    assert_eq!(scan_all(&blank), Scan::TooLarge(Status::BadRequest));
}

#[test]
fn the_head_buffer_is_enough_to_decide() {
    // Any input of MAX_HEAD_BUFFER bytes is complete or too large: a connection whose input
    // is full never waits for more.
    let inputs: [Vec<u8>; 3] = [
        vec![b'x'; MAX_HEAD_BUFFER],
        [b"GET / HTTP/1.1\r\n".as_slice(), &[b'y'; MAX_HEAD_BUFFER]].concat(),
        [b"\n".repeat(MAX_REQUEST_LINE - 1).as_slice(), b"GET / HTTP/1.1\r\n", &[b'z'; MAX_HEAD_BUFFER]].concat(),
    ];
    for input in inputs {
        assert_ne!(scan_all(&input[..MAX_HEAD_BUFFER]), Scan::Incomplete);
    }
}

#[test]
fn scanner_survives_a_shorter_buffer() {
    let mut scanner = HeadScanner::new();
    assert_eq!(scanner.scan(b"GET / HTTP/1.1\r\nHost"), Scan::Incomplete);
    assert_eq!(scanner.scan(b"GE"), Scan::Incomplete);
}

fn parse(head: &[u8]) -> Result<Request<'_>, Status> {
    parse_head(head)
}

#[test]
fn parses_a_simple_get() {
    let request = parse(SIMPLE).unwrap();
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.method_name, "GET");
    assert_eq!(request.target, "/index.html");
    assert_eq!(request.version, Version::Http11);
    assert!(request.keep_alive);
    assert_eq!(request.body_len, 0);
}

#[test]
fn methods() {
    assert_eq!(parse(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().method, Method::Head);
    for other in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"] {
        let head = alloc::format!("{other} / HTTP/1.1\r\nHost: h\r\n\r\n");
        let request = parse(head.as_bytes()).unwrap();
        assert_eq!(request.method, Method::Other, "{other}");
        assert_eq!(request.method_name, other);
    }
}

#[test]
fn keep_alive_rules() {
    let cases: [(&[u8], bool); 7] = [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: h\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection:  Keep-Alive \r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", true),
    ];
    for (head, keep) in cases {
        assert_eq!(parse(head).unwrap().keep_alive, keep, "{}", String::from_utf8_lossy(head));
    }
}

#[test]
fn header_names_are_case_insensitive_and_values_trimmed() {
    let request = parse(b"GET / HTTP/1.1\r\nhOsT:h\r\nCONTENT-LENGTH: \t 12 \t\r\n\r\n").unwrap();
    assert_eq!(request.body_len, 12);
}

#[test]
fn content_length_rules() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").unwrap().body_len, 5);
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
    ] {
        assert_eq!(parse(bad), Err(Status::BadRequest), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn transfer_encoding_is_not_implemented() {
    assert_eq!(parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(Status::NotImplemented));
    assert_eq!(
        parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        Err(Status::BadRequest),
        "both framings at once is request smuggling"
    );
}

#[test]
fn host_rules() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(Status::BadRequest), "HTTP/1.1 needs Host");
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Err(Status::BadRequest));
    assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok(), "HTTP/1.0 may omit it");
    assert_eq!(parse(b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), Err(Status::BadRequest));
}

#[test]
fn versions() {
    assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().version, Version::Http10);
    assert_eq!(parse(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), Err(Status::VersionNotSupported));
    assert_eq!(parse(b"GET / HTTP/0.9\r\n\r\n"), Err(Status::VersionNotSupported));
    for bad in [&b"GET / HTTP/1\r\n\r\n"[..], b"GET / http/1.1\r\n\r\n", b"GET / HTTP/1.1.1\r\n\r\n", b"GET / FTP/1.0\r\n\r\n"] {
        assert_eq!(parse(bad), Err(Status::BadRequest), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn malformed_request_lines() {
    for bad in [
        &b"GET /\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\r\n",
        b"",
    ] {
        assert_eq!(parse(bad), Err(Status::BadRequest), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn malformed_header_lines() {
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n: value\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n",
    ] {
        assert_eq!(parse(bad), Err(Status::BadRequest), "{}", String::from_utf8_lossy(bad));
    }
    // Tabs and obs-text are allowed inside values.
    assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a\tb \xff\r\n\r\n").is_ok());
}

#[test]
fn parser_and_scanner_never_panic_on_noise() {
    // A cheap deterministic fuzz: xorshift bytes biased toward the characters that matter.
    let alphabet = b"GETHPOS /:\r\n\t%.0123456789aAzZ\x00\xff";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..4000 {
        let len = round % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        let mut scanner = HeadScanner::new();
        for cut in [len / 3, len / 2, len] {
            if let Scan::Complete { head_len } = scanner.scan(&bytes[..cut]) {
                let _ = parse(&bytes[..head_len]);
                break;
            }
        }
        let _ = parse(&bytes);
    }
}
