//! Kernel command lines: [`libos::cmdline::parse`] on any UTF-8 text. It must give options or a
//! [`libos::cmdline::CmdlineError`] with a printable message, never a panic.

use std::fmt::Write as _;

/// Parses `data` (lossily decoded as UTF-8, so every input reaches the parser).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match libos::cmdline::parse(&text) {
        Ok(cmdline) => {
            // Every app argument came from the text, so none can be longer than it.
            assert!(cmdline.app_args.iter().all(|a| a.len() <= text.len()));
        }
        Err(e) => {
            let mut message = String::new();
            write!(message, "{e}").expect("formatting an error into a String");
            assert!(!message.is_empty());
        }
    }
}
