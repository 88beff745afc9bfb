//! Responses: status codes ([`Status`]), the response head ([`ResponseHead::write_to`]), the
//! small HTML pages of error responses ([`error_page`]) and the `Date` header's format
//! ([`http_date`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// The statuses the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200: the file follows.
    Ok,
    /// 301: a directory was asked for without its trailing slash.
    MovedPermanently,
    /// 400: malformed request, or a path that leaves the root.
    BadRequest,
    /// 403: not a regular file (devices, sockets) or not readable.
    Forbidden,
    /// 404: no such file.
    NotFound,
    /// 405: a method other than GET and HEAD.
    MethodNotAllowed,
    /// 414: request line over [`crate::request::MAX_REQUEST_LINE`].
    UriTooLong,
    /// 431: header fields over [`crate::request::MAX_HEADER_BYTES`].
    HeaderFieldsTooLarge,
    /// 500: the file system failed.
    InternalServerError,
    /// 501: a request body in `Transfer-Encoding`.
    NotImplemented,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Status {
    /// The three-digit code.
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::MovedPermanently => 301,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase of RFC 9110.
    pub const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::MovedPermanently => "Moved Permanently",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::UriTooLong => "URI Too Long",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// No header: HTTP/1.1's default, the connection stays open.
    Omitted,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to keep the connection.
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
}

/// The value of the `Server` header.
pub const SERVER: &str = "libos-httpd";

/// A response head, written by [`write_to`](Self::write_to).
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    /// The status line's status.
    pub status: Status,
    /// `Content-Length`: the body's length (also for HEAD, where the body is not sent).
    pub content_length: u64,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// The `Connection` header.
    pub connection: ConnectionHeader,
    /// `Date` (an [`http_date`]), if the clock is known.
    pub date: Option<&'a str>,
    /// `Location` (redirects).
    pub location: Option<&'a str>,
}

impl ResponseHead<'_> {
    /// Appends the head, ending with its empty line, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut head = String::with_capacity(192);
        // Writing into a String cannot fail.
        let _ = write!(head, "HTTP/1.1 {} {}\r\nServer: {SERVER}\r\n", self.status.code(), self.status.reason());
        if let Some(date) = self.date {
            let _ = write!(head, "Date: {date}\r\n");
        }
        let _ = write!(head, "Content-Type: {}\r\nContent-Length: {}\r\n", self.content_type, self.content_length);
        if let Some(location) = self.location {
            let _ = write!(head, "Location: {location}\r\n");
        }
        if self.status == Status::MethodNotAllowed {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        match self.connection {
            ConnectionHeader::Omitted => {}
            ConnectionHeader::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
            ConnectionHeader::Close => head.push_str("Connection: close\r\n"),
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
    }
}

/// The content type of [`error_page`]s.
pub const ERROR_PAGE_TYPE: &str = "text/html; charset=utf-8";

/// The small HTML body of a response with `status`.
pub fn error_page(status: Status) -> String {
    let mut page = String::new();
    let (code, reason) = (status.code(), status.reason());
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><hr><p>{SERVER}</p></body></html>\n"
    );
    page
}

/// Unix time `seconds` as an HTTP date (RFC 9110 IMF-fixdate), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(seconds: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut date = String::with_capacity(29);
    let _ = write!(
        date,
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    date
}

/// (year, month 1-12, day 1-31) of the day `days` after 1970-01-01, by Howard Hinnant's
/// `civil_from_days` (proleptic Gregorian calendar, eras of 400 years).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn dates_match_known_values() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_799), "Wed, 28 Feb 2024 23:59:59 GMT");
        assert_eq!(http_date(1_709_251_200), "Fri, 01 Mar 2024 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn head_has_the_headers_in_order() {
        let mut out = Vec::new();
        ResponseHead {
            status: Status::Ok,
            content_length: 1234,
            content_type: "text/css; charset=utf-8",
            connection: ConnectionHeader::Omitted,
            date: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            location: None,
        }
        .write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: libos-httpd\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/css; charset=utf-8\r\nContent-Length: 1234\r\n\r\n"
        );
    }

    #[test]
    fn method_not_allowed_says_what_is_allowed_and_close_is_announced() {
        let mut out = Vec::new();
        let head = ResponseHead {
            status: Status::MethodNotAllowed,
            content_length: 7,
            content_type: ERROR_PAGE_TYPE,
            connection: ConnectionHeader::Close,
            date: None,
            location: None,
        };
        head.write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{text}");
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert!(!text.contains("Date:"), "{text}");
    }

    #[test]
    fn keep_alive_and_location_headers() {
        let mut out = Vec::new();
        let head = ResponseHead {
            status: Status::MovedPermanently,
            content_length: 0,
            content_type: ERROR_PAGE_TYPE,
            connection: ConnectionHeader::KeepAlive,
            date: None,
            location: Some("/docs/"),
        };
        head.write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nLocation: /docs/\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
    }

    #[test]
    fn error_pages_name_the_status() {
        let page = error_page(Status::NotFound);
        assert!(page.contains("<title>404 Not Found</title>"), "{page}");
        assert!(page.len() < 200);
        for status in [Status::BadRequest, Status::UriTooLong, Status::HeaderFieldsTooLarge, Status::VersionNotSupported] {
            assert!(error_page(status).contains(&status.code().to_string()));
        }
    }
}
