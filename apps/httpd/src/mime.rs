//! `Content-Type` by file extension ([`content_type`]).

/// Extensions (lower case) and their media types; text types say their charset so browsers
/// need not guess.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("svg", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("xml", "application/xml"),
];

/// What every other file is served as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// The media type of the file at `path`, by its extension (case-insensitive).
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return DEFAULT_TYPE;
    };
    if stem.is_empty() {
        // `.htaccess`-style names are hidden files, not extensions.
        return DEFAULT_TYPE;
    }
    TYPES.iter().find(|(known, _)| known.eq_ignore_ascii_case(extension)).map_or(DEFAULT_TYPE, |&(_, media)| media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/a/b/page.HTM"), "text/html; charset=utf-8");
        assert_eq!(content_type("/style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/data.json"), "application/json");
        assert_eq!(content_type("/notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("/logo.png"), "image/png");
        assert_eq!(content_type("/photo.JPG"), "image/jpeg");
        assert_eq!(content_type("/photo.jpeg"), "image/jpeg");
        assert_eq!(content_type("/anim.gif"), "image/gif");
        assert_eq!(content_type("/icon.svg"), "image/svg+xml");
        assert_eq!(content_type("/favicon.ico"), "image/x-icon");
        assert_eq!(content_type("/module.wasm"), "application/wasm");
        assert_eq!(content_type("/paper.pdf"), "application/pdf");
        assert_eq!(content_type("/feed.xml"), "application/xml");
        assert_eq!(content_type("/archive.tar.gz.html"), "text/html; charset=utf-8", "the last extension counts");
    }

    #[test]
    fn everything_else_is_octet_stream() {
        for path in ["/", "/README", "/data.bin", "/.html", "/dir.html/file", "/x.", "/x.unknown"] {
            assert_eq!(content_type(path), DEFAULT_TYPE, "{path}");
        }
    }
}
