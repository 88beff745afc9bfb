//! The sending and receiving calls: `sendto`/`recvfrom`, `sendmsg`/`recvmsg` (`struct msghdr`
//! and its iovecs) and `sendmmsg`/`recvmmsg`, over [`Socket`]'s one send and one receive.

use super::{MSG_CTRUNC, MSG_TRUNC, MSG_WAITFORONE, MsgFlags, Received, Socket, read_addr, socket_of, write_addr};
use crate::sockaddr::{self, SockAddr};
use crate::user;
use alloc::vec::Vec;
use libos::{Errno, Result};

/// The largest datagram any socket here carries (`AF_UNIX` queues up to 208 KiB; UDP one
/// frame), so the bound of a gather or bounce buffer.
const MAX_DATAGRAM: usize = 256 * 1024;

/// The user's buffers of an iovec array, checked and copied (see [`user::iovec_buffers`]);
/// more than 1024 is `EMSGSIZE` for the socket calls.
pub(super) fn buffers(iov: u64, count: u64) -> Result<user::Iovecs> {
    if count > user::IOV_MAX {
        return Err(Errno::EMSGSIZE);
    }
    user::iovec_buffers(iov, count)
}

/// Sends the bytes of `parts` (one datagram, or stream bytes in order).
pub(super) fn send_parts(socket: &Socket, parts: &[(u64, u64)], to: Option<SockAddr>, flags: MsgFlags) -> Result<usize> {
    if parts.len() == 1 || !socket.is_stream() {
        if let [(base, len)] = parts {
            // SAFETY: checked by `buffers`/`user::slice`; the C program vouches for the bytes.
            return socket.send(unsafe { user::slice(*base, *len)? }, to, flags);
        }
        // A datagram is one message: gather it (no datagram here is larger than MAX_DATAGRAM,
        // so a larger total is refused before the copy is allocated).
        if parts.iter().map(|p| p.1).sum::<u64>() > MAX_DATAGRAM as u64 {
            return Err(Errno::EMSGSIZE);
        }
        let mut data = Vec::new();
        for &(base, len) in parts {
            // SAFETY: as above.
            data.extend_from_slice(unsafe { user::slice(base, len)? });
        }
        return socket.send(&data, to, flags);
    }
    let mut slices = Vec::with_capacity(parts.len());
    for &(base, len) in parts {
        // SAFETY: as above.
        slices.push(unsafe { user::slice(base, len)? });
    }
    socket.send_stream(&slices, flags)
}

/// Receives into `parts`: stream bytes (the first part may wait, later ones take only what
/// is there), or one datagram scattered over them.
fn receive_parts(socket: &Socket, parts: &[(u64, u64)], flags: MsgFlags) -> Result<Received> {
    if let [(base, len)] = parts {
        // SAFETY: checked by `buffers`; the caller's buffer.
        return socket.receive(unsafe { user::slice_mut(*base, *len)? }, flags);
    }
    let capacity: u64 = parts.iter().map(|p| p.1).sum();
    if !socket.is_stream() || flags.peek {
        // One datagram (or a peek) into a bounce buffer, then scattered: never larger than
        // the largest datagram, whatever lengths the iovecs claim.
        let mut data = alloc::vec![0u8; capacity.min(MAX_DATAGRAM as u64) as usize];
        let received = socket.receive(&mut data, flags)?;
        let mut at = 0;
        for &(base, len) in parts {
            let n = (len as usize).min(received.len - at);
            // SAFETY: as above.
            unsafe { user::slice_mut(base, n as u64)? }.copy_from_slice(&data[at..at + n]);
            at += n;
        }
        return Ok(received);
    }
    let mut total = Received { len: 0, full_len: 0, from: None };
    for &(base, len) in parts {
        // SAFETY: as above.
        let buf = unsafe { user::slice_mut(base, len)? };
        let later = MsgFlags { dont_wait: flags.dont_wait || total.len > 0, ..flags };
        match socket.receive(buf, later) {
            Ok(r) => {
                total.len += r.len;
                if r.len < buf.len() {
                    break;
                }
            }
            Err(e) if total.len == 0 => return Err(e),
            Err(_) => break,
        }
    }
    total.full_len = total.len;
    Ok(total)
}

/// `sendto(fd, buf, len, flags, addr, addrlen)` (and `send`).
pub fn sendto(fd_number: u64, buf: u64, len: u64, flags: u64, addr: u64, addr_len: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let flags = MsgFlags::from_bits(flags)?;
    let to = if addr == 0 { None } else { Some(read_addr(socket, addr, addr_len)?) };
    user::check_access(buf, len, libos::hal::Access::Read)?;
    send_parts(socket, &[(buf, len)], to, flags).map(|n| n as u64)
}

/// `recvfrom(fd, buf, len, flags, addr, addrlen)` (and `recv`).
pub fn recvfrom(fd_number: u64, buf: u64, len: u64, flags: u64, addr: u64, len_ptr: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let msg_flags = MsgFlags::from_bits(flags)?;
    user::check_access(buf, len, libos::hal::Access::Write)?;
    let received = receive_parts(socket, &[(buf, len)], msg_flags)?;
    if let Some(from) = &received.from {
        write_addr(addr, len_ptr, from, socket.family())?;
    } else if addr != 0 && len_ptr != 0 {
        // SAFETY: checked by `user::write`: a stream socket reports no address.
        unsafe { user::write(len_ptr, 0u32)? };
    }
    Ok((if msg_flags.real_length { received.full_len } else { received.len }) as u64)
}

/// `struct msghdr` (64-bit: both architectures).
#[repr(C)]
#[derive(Clone, Copy)]
struct MsgHdr {
    name: u64,
    name_len: u32,
    _pad1: u32,
    iov: u64,
    iov_len: u64,
    control: u64,
    control_len: u64,
    flags: i32,
    _pad2: u32,
}

/// `struct mmsghdr`: a `msghdr` and the bytes moved.
const MMSGHDR_SIZE: u64 = 64;

fn sendmsg_one(socket: &Socket, msg: &MsgHdr, flags: MsgFlags) -> Result<usize> {
    if msg.control_len != 0 && msg.control != 0 {
        crate::dispatch::log_refused("sendmsg with ancillary data (SCM_RIGHTS, IP_PKTINFO...), control bytes", msg.control_len, Errno::EOPNOTSUPP);
        return Err(Errno::EOPNOTSUPP);
    }
    let parts = buffers(msg.iov, msg.iov_len)?;
    let to = if msg.name == 0 || msg.name_len == 0 { None } else { Some(read_addr(socket, msg.name, u64::from(msg.name_len))?) };
    send_parts(socket, &parts, to, flags)
}

fn recvmsg_one(socket: &Socket, msg_addr: u64, flags: MsgFlags) -> Result<usize> {
    // SAFETY: checked by `user::read`.
    let msg: MsgHdr = unsafe { user::read(msg_addr)? };
    let parts = buffers(msg.iov, msg.iov_len)?;
    let received = receive_parts(socket, &parts, flags)?;
    let mut out_flags = 0u64;
    if received.full_len > received.len {
        out_flags |= MSG_TRUNC;
    }
    let name_len = match &received.from {
        Some(from) if msg.name != 0 => {
            let bytes = sockaddr::encode(from, socket.family());
            let n = bytes.len().min(msg.name_len as usize);
            // SAFETY: checked by `user::slice_mut`: the caller's name buffer.
            unsafe { user::slice_mut(msg.name, n as u64)? }.copy_from_slice(&bytes[..n]);
            bytes.len() as u32
        }
        _ => 0,
    };
    if msg.control_len > 0 && msg.control != 0 {
        out_flags &= !MSG_CTRUNC; // no ancillary data to report
    }
    let updated = MsgHdr { name_len, control_len: 0, flags: out_flags as i32, ..msg };
    // SAFETY: checked by `user::write`.
    unsafe { user::write(msg_addr, updated)? };
    Ok(if flags.real_length { received.full_len } else { received.len })
}

/// `sendmsg(fd, msg, flags)`.
pub fn sendmsg(fd_number: u64, msg: u64, flags: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    // SAFETY: checked by `user::read`.
    let header: MsgHdr = unsafe { user::read(msg)? };
    sendmsg_one(socket, &header, MsgFlags::from_bits(flags)?).map(|n| n as u64)
}

/// `recvmsg(fd, msg, flags)`.
pub fn recvmsg(fd_number: u64, msg: u64, flags: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    recvmsg_one(object.socket()?, msg, MsgFlags::from_bits(flags)?).map(|n| n as u64)
}

/// `sendmmsg(fd, msgvec, vlen, flags)`: as many messages as go; the count sent (an error only
/// if the first fails).
pub fn sendmmsg(fd_number: u64, vec: u64, count: u64, flags: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let flags = MsgFlags::from_bits(flags)?;
    let mut sent = 0;
    for i in 0..count.min(user::IOV_MAX) {
        let at = vec + i * MMSGHDR_SIZE;
        // SAFETY: checked by `user::read`.
        let header: MsgHdr = unsafe { user::read(at)? };
        match sendmsg_one(socket, &header, flags) {
            Ok(n) => {
                // SAFETY: checked by `user::write`: `msg_len` after the header.
                unsafe { user::write(at + 56, n as u32)? };
                sent += 1;
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

/// `recvmmsg(fd, msgvec, vlen, flags, timeout)`: the timeout is checked between messages, as
/// Linux does; `MSG_WAITFORONE` makes every message after the first non-blocking.
pub fn recvmmsg(fd_number: u64, vec: u64, count: u64, flags: u64, timeout: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let wait_for_one = flags & MSG_WAITFORONE != 0;
    let mut msg_flags = MsgFlags::from_bits(flags & !MSG_WAITFORONE)?;
    let deadline = crate::events::read_timeout(timeout)?.map(|t| libos::time::Instant::now() + t);
    let mut received = 0;
    for i in 0..count.min(user::IOV_MAX) {
        let at = vec + i * MMSGHDR_SIZE;
        match recvmsg_one(socket, at, msg_flags) {
            Ok(n) => {
                // SAFETY: checked by `user::write`: `msg_len` after the header.
                unsafe { user::write(at + 56, n as u32)? };
                received += 1;
            }
            Err(e) if received == 0 => return Err(e),
            Err(_) => break,
        }
        if wait_for_one {
            msg_flags.dont_wait = true;
        }
        if deadline.is_some_and(|d| libos::time::Instant::now() >= d) {
            break;
        }
    }
    Ok(received)
}

