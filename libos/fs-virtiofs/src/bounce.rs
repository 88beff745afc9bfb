//! Request buffers that lie in a DAX window travel through bounce copies.
//!
//! A program may hand the kernel a buffer inside a file it mapped from a DAX window (a `write`
//! from the mapping, a `read` into it). The window is QEMU's memory, not guest RAM shared with
//! the vhost-user daemon, so the daemon cannot read or fill it: such parts of a FUSE request
//! are copied into heap buffers before the request and back after the reply. Every other part
//! goes to the device as it is (the common case costs one atomic load per request while no
//! window is registered, and a short lock round per part when one is).
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};
use libos_core::Result;
use libos_core::sync::SpinLock;

/// The windows programs may map, as ranges of kernel addresses.
static WINDOWS: SpinLock<Vec<Range<usize>>> = SpinLock::new(Vec::new());
/// Some window was registered (until then no part needs a look).
static ANY_WINDOW: AtomicBool = AtomicBool::new(false);

/// Registers a window whose pages programs may be given (addresses `range`).
pub(crate) fn register_window(range: Range<usize>) {
    WINDOWS.lock().push(range);
    ANY_WINDOW.store(true, Ordering::Release);
}

fn in_a_window(part: &[u8]) -> bool {
    if part.is_empty() {
        return false;
    }
    let start = part.as_ptr() as usize;
    let end = start.saturating_add(part.len());
    WINDOWS.lock().iter().any(|w| start < w.end && w.start < end)
}

/// Calls `send(request, reply)` with every part that lies in a window replaced by a heap copy
/// (reply copies start as the caller's bytes and are copied back whole after the reply).
pub(crate) fn send_bounced(
    request: &[&[u8]],
    reply: &mut [&mut [u8]],
    send: impl FnOnce(&[&[u8]], &mut [&mut [u8]]) -> Result<usize>,
) -> Result<usize> {
    if !ANY_WINDOW.load(Ordering::Acquire) || (!request.iter().any(|p| in_a_window(p)) && !reply.iter().any(|p| in_a_window(p))) {
        return send(request, reply);
    }
    let request_copies: Vec<Option<Box<[u8]>>> = request.iter().map(|p| in_a_window(p).then(|| Box::from(*p))).collect();
    let request_parts: Vec<&[u8]> = request.iter().zip(&request_copies).map(|(p, c)| c.as_deref().unwrap_or(p)).collect();
    let mut reply_copies: Vec<Option<Box<[u8]>>> = reply.iter().map(|p| in_a_window(p).then(|| Box::from(&**p))).collect();
    let written = {
        let mut reply_parts: Vec<&mut [u8]> =
            reply.iter_mut().zip(reply_copies.iter_mut()).map(|(p, c)| match c { Some(c) => &mut **c, None => &mut **p }).collect();
        send(&request_parts, &mut reply_parts)?
    };
    for (part, copy) in reply.iter_mut().zip(reply_copies) {
        if let Some(copy) = copy {
            part.copy_from_slice(&copy);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_in_a_window_are_copied_and_others_are_passed_as_they_are() {
        let window = alloc::vec![7u8; 64].into_boxed_slice();
        let mut reply_window = alloc::vec![0u8; 64].into_boxed_slice();
        let outside = [1u8, 2, 3];
        let mut reply_outside = [0u8; 4];
        register_window(window.as_ptr() as usize..window.as_ptr() as usize + window.len());
        register_window(reply_window.as_ptr() as usize..reply_window.as_ptr() as usize + reply_window.len());
        let (window_at, outside_at, reply_at) = (window.as_ptr(), outside.as_ptr(), reply_window.as_ptr());
        let request: [&[u8]; 2] = [&outside, &window[8..16]];
        let mut reply: [&mut [u8]; 2] = [&mut reply_outside, &mut reply_window[..8]];
        let n = send_bounced(&request, &mut reply, |rq, rp| {
            assert_eq!(rq[0].as_ptr(), outside_at, "a part outside every window goes as it is");
            assert!(rq[1].as_ptr() != window_at.wrapping_add(8) && rq[1] == [7; 8], "a part in a window is a copy");
            assert!(rp[1].as_ptr() != reply_at && rp[1].len() == 8);
            rp[0].copy_from_slice(b"head");
            rp[1].copy_from_slice(b"filled!!");
            Ok(12)
        })
        .unwrap();
        assert_eq!(n, 12);
        assert_eq!(&reply_outside, b"head");
        assert_eq!(&reply_window[..8], b"filled!!", "the reply copy came back");
        assert_eq!(reply_window[8], 0, "nothing past the part");
    }
}
