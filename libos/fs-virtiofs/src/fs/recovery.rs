//! Starting a FUSE session: `FUSE_INIT` at mount, and again after the device failed.
//!
//! A reply that does not come in time resets the device (see `libos_virtio::request`), and
//! the server loses every nodeid and file handle it gave us. Without a new session the mount
//! would answer `EIO` for ever, so the next operation that starts at the root
//! ([`Session::ready`], through `FuseNode::target`) brings the channel back
//! ([`FuseChannel::reconnect`]), sends `FUSE_INIT` and a `GETATTR` of the root in the
//! channel's new epoch, and only then moves the session to it and drops what belonged to the
//! old one: the dentry cache, the node table (but the root, whose nodeid is the same in every
//! session), queued FORGETs, the root's handles and directory page.
//!
//! Nodes of the old session that something still holds (an open file, a current directory)
//! keep their old epoch: every request about them fails with `ESTALE` before it is sent, and
//! the channel checks the epoch again where it publishes the request, so an old nodeid never
//! names whatever the new server gave that number to. Their FORGETs and RELEASEs are dropped
//! (the server forgot them with the reset).
//!
//! While one caller starts the new session, others get `EIO` (their operation failed with
//! the device anyway) rather than waiting on a spin lock across requests.

use super::{MIN_VALIDITY_NS, Session, Target};
use crate::channel::FuseChannel;
use crate::protocol::{self as proto, Negotiated, Reply, op};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use fuse_abi::linux as abi;
use libos_core::{Errno, Result};
use libos_vfs::Metadata;
use zerocopy::IntoBytes;

/// Sends `FUSE_INIT` (request id `unique`) in channel epoch `epoch` and checks the answer.
/// Errors: `EPROTO` if the server's protocol version is unusable, `EIO` if it does not answer
/// properly, `ESTALE` if the channel left `epoch`.
pub(super) fn init(channel: &dyn FuseChannel, epoch: u64, unique: u64) -> Result<Negotiated> {
    let init_in = proto::init_in();
    let header = proto::in_header(op::INIT, unique, 0, size_of::<proto::fuse_init_in>());
    let mut out_header = [0u8; proto::OUT_HEADER_SIZE];
    let mut init_out = proto::fuse_init_out::default();
    let written = channel
        .request_in(epoch, &[header.as_bytes(), init_in.as_bytes()], &mut [&mut out_header, init_out.as_mut_bytes()])
        .inspect_err(|e| log::error!("virtio-fs: INIT failed in the channel: {e}"))
        .map_err(|e| if e == Errno::ESTALE { e } else { Errno::EIO })?;
    match proto::verify_reply(&out_header, written, proto::OUT_HEADER_SIZE + 64, unique, op::INIT)? {
        Reply::Err(e) => {
            log::error!("virtio-fs: the server refused INIT: {e}");
            return Err(e);
        }
        // virtiofsd always sends the full 64 bytes; a 7.22-era 24-byte reply is too old.
        Reply::Ok(64) => {}
        Reply::Ok(n) => {
            log::error!("virtio-fs: INIT reply of {n} bytes (expected 64)");
            return Err(Errno::EPROTO);
        }
    }
    let negotiated = proto::negotiate(&init_out, channel.max_transfer())?;
    log::info!(
        "virtio-fs: FUSE 7.{} max_write {} max_read {} flags {:#x}",
        negotiated.minor,
        negotiated.max_write,
        negotiated.max_read,
        negotiated.flags
    );
    Ok(negotiated)
}

impl Session {
    /// The root's attributes from the server of `epoch` (and how long they hold, in
    /// nanoseconds). Errors: `ENOTDIR` when the root is not a directory, those of the request.
    pub(super) fn root_attr(&self, epoch: u64) -> Result<(Metadata, u64)> {
        let getattr = proto::fuse_getattr_in::default();
        let mut out = proto::fuse_attr_out::default();
        let root = Target { nodeid: abi::FUSE_ROOT_ID, epoch };
        self.send(op::GETATTR, root, &[getattr.as_bytes()], super::ReplyData::Fixed(out.as_mut_bytes()))?;
        let meta = proto::metadata_from_attr(&out.attr)?;
        if !meta.is_dir() {
            log::error!("virtio-fs: the root is not a directory");
            return Err(Errno::ENOTDIR);
        }
        Ok((meta, proto::timeout_nanos(out.attr_valid, out.attr_valid_nsec).max(MIN_VALIDITY_NS)))
    }

    /// The epoch requests about the root go to: the session's, after starting a new session
    /// if the channel moved on (its device failed). Errors: `EIO` while the device cannot be
    /// brought back or another caller is starting the session, those of [`init`].
    pub(super) fn ready(&self) -> Result<u64> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if self.channel.epoch() == epoch {
            return Ok(epoch);
        }
        if self.recovering.swap(true, Ordering::AcqRel) {
            return Err(Errno::EIO);
        }
        let result = self.start_new_session();
        self.recovering.store(false, Ordering::Release);
        result
    }

    fn start_new_session(&self) -> Result<u64> {
        let old = self.epoch.load(Ordering::Acquire);
        log::warn!("virtio-fs: the device failed; starting a new FUSE session (nodes and files of the old one give ESTALE)");
        let epoch = self.channel.reconnect()?;
        if epoch == old {
            return Ok(epoch);
        }
        let negotiated = init(&*self.channel, epoch, self.unique())?;
        bump_init(self);
        // The limits handed out (read and write sizes) must not shrink under callers.
        if negotiated != self.negotiated {
            log::error!("virtio-fs: the new session negotiated {negotiated:?}, the mount was sized for {:?}: EIO", self.negotiated);
            return Err(Errno::EIO);
        }
        let (meta, valid) = self.root_attr(epoch)?;
        // From here on the old session's nodes, handles and FORGETs are refused (each check
        // is made under the lock taken below to clear what the old session left).
        self.epoch.store(epoch, Ordering::Release);
        self.forgets.lock().clear();
        let root = {
            let mut nodes = self.nodes.lock();
            let root = nodes.get(&abi::FUSE_ROOT_ID).and_then(alloc::sync::Weak::upgrade);
            let old_nodes: Vec<_> = nodes.drain().filter(|(id, _)| *id != abi::FUSE_ROOT_ID).collect();
            if let Some(root) = &root {
                nodes.insert(abi::FUSE_ROOT_ID, alloc::sync::Arc::downgrade(root));
            }
            drop(nodes);
            drop(old_nodes);
            root
        };
        let mut dropped = Vec::new();
        self.dentries.lock().clear(&mut dropped);
        drop(dropped); // old nodes: their RELEASEs and FORGETs are refused as stale
        if let Some(root) = root {
            // The server forgot the root's handles with the reset: no RELEASE.
            let handles = core::mem::take(&mut *root.handles.lock());
            drop(handles);
            let page = root.dir_buf.lock().take();
            drop(page);
            root.set_attr(meta, self.now().saturating_add(valid));
        }
        log::warn!("virtio-fs: new FUSE session in epoch {epoch}");
        Ok(epoch)
    }
}

fn bump_init(session: &Session) {
    super::bump(&session.counters.requests[op::INIT as usize], 1);
}
