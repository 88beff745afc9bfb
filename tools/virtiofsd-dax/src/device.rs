//! The vhost-user-fs device: [`FsBackend`] is what vhost-user-backend drives (features, guest
//! memory, the backend request channel, queue kicks); [`Requests`] serves one descriptor chain
//! with fuse-backend-rs's server on [`ShareFs`] and the daemon's own rules ([`crate::fuse`]).
//!
//! Queue 0 is virtio-fs's hiprio queue (FORGET, INTERRUPT), queue 1 the one request queue
//! (QEMU's `num-request-queues` default); both are served alike, by one worker thread.

use crate::dax::{DaxMapper, MapSender};
use crate::fuse::{self, INIT_REPLY_LEN, Policy, Request, Verdict};
use crate::share::ShareFs;
use fuse_backend_rs::abi::fuse_abi::{InitOut, Opcode, OutHeader};
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FsCacheReqHandler, Reader, VirtioFsWriter, Writer};
use std::io::{self, Write};
use std::mem::size_of;
use std::ops::Deref;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserShMemConfig, VhostUserVirtioFeatures};
use vhost::vhost_user::Backend;
use vhost_user_backend::{VhostUserBackendMut, VringRwLock, VringT};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier};

/// The guest's memory as vhost-user-backend shares it.
pub type Memory = GuestMemoryMmap<()>;

/// virtio-fs queues: hiprio plus one request queue.
pub const NUM_QUEUES: usize = 2;
/// The largest queue QEMU may ask for (`queue-size=1024`).
pub const MAX_QUEUE_SIZE: usize = 1024;

const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// The FUSE side of the device: the server, the share's rules and the DAX mapper.
pub struct Requests<S: MapSender> {
    server: Server<ShareFs>,
    policy: Policy,
    dax: Option<DaxMapper<S>>,
}

impl<S: MapSender> Requests<S> {
    /// Serves `fs` under `policy`; `dax` (with the policy's window) maps through its sender.
    pub fn new(fs: ShareFs, policy: Policy, dax: Option<DaxMapper<S>>) -> Requests<S> {
        debug_assert_eq!(policy.window, dax.as_ref().map(DaxMapper::window));
        Requests { server: Server::new(fs), policy, dax }
    }

    /// The DAX mapper, if the share has a window.
    pub fn dax_mut(&mut self) -> Option<&mut DaxMapper<S>> {
        self.dax.as_mut()
    }

    /// Serves the request in `chain` and gives the number of bytes written back (the used
    /// length). Never panics on what the guest sent: a chain that cannot be read is logged and
    /// completed with 0 bytes, a request that cannot be served gets an error reply.
    pub fn serve<M>(&mut self, mem: &Memory, chain: DescriptorChain<M>) -> u32
    where
        M: Deref<Target = Memory> + Clone,
    {
        let reader = match Reader::from_descriptor_chain(mem, chain.clone()) {
            Ok(reader) => reader,
            Err(e) => {
                log::warn!("bad descriptor chain {}: {e}", chain.head_index());
                return 0;
            }
        };
        let Some(request) = Request::peek(reader.clone()) else {
            log::warn!("descriptor chain {} holds no FUSE request header", chain.head_index());
            return 0;
        };
        log::debug!("request unique={} opcode={} ", request.unique, fuse::opcode_name(request.opcode).unwrap_or("unknown"));
        if let Verdict::Refuse(errno) = self.policy.verdict(&request) {
            return if request.expects_reply() { reply_error(mem, chain, &request, errno) } else { 0 };
        }
        let writer = match VirtioFsWriter::new(mem, chain.clone()) {
            Ok(writer) => Writer::from(writer),
            Err(e) => {
                log::warn!("bad descriptor chain {}: {e}", chain.head_index());
                return 0;
            }
        };
        let dax = self.dax.as_mut().map(|d| d as &mut dyn FsCacheReqHandler);
        match self.server.handle_message(reader, writer, dax, None) {
            Ok(written) => {
                if request.opcode == Opcode::Init as u32 && written == INIT_REPLY_LEN {
                    if let Some(offered) = request.init_flags {
                        amend_init_reply(mem, &chain, offered, self.policy.window);
                    }
                }
                u32::try_from(written).unwrap_or(0)
            }
            Err(e) => {
                log::warn!("request unique={} opcode={}: {e}", request.unique, request.opcode);
                let writing_failed = matches!(
                    e,
                    fuse_backend_rs::Error::EncodeMessage(_)
                        | fuse_backend_rs::Error::FailedToWrite(_)
                        | fuse_backend_rs::Error::FailedToSplitWriter(_)
                );
                if request.expects_reply() && !writing_failed {
                    reply_error(mem, chain, &request, nix::libc::EINVAL)
                } else {
                    0
                }
            }
        }
    }
}

/// Writes an error reply to `request` into `chain`; the used length (0 if it does not fit).
fn reply_error<M>(mem: &Memory, chain: DescriptorChain<M>, request: &Request, errno: i32) -> u32
where
    M: Deref<Target = Memory> + Clone,
{
    let header = fuse::error_reply(request, errno);
    let written = VirtioFsWriter::new(mem, chain).map_err(io::Error::other).and_then(|mut w| w.write_all(header.as_slice()));
    match written {
        Ok(()) => header.len,
        Err(e) => {
            log::warn!("no room for the error reply to request unique={}: {e}", request.unique);
            0
        }
    }
}

/// The device-writable buffers of a chain, as `(address, length)`.
fn writable_buffers<M>(chain: &DescriptorChain<M>) -> Vec<(GuestAddress, usize)>
where
    M: Deref<Target = Memory> + Clone,
{
    chain.clone().writable().map(|d| (d.addr(), d.len() as usize)).collect()
}

/// Copies between `bytes` and the first `bytes.len()` bytes of `buffers` (`to_guest`: into
/// guest memory). `None` if the buffers are shorter or not in guest memory.
fn copy_reply(mem: &Memory, buffers: &[(GuestAddress, usize)], bytes: &mut [u8], to_guest: bool) -> Option<()> {
    let mut done = 0;
    for &(addr, len) in buffers {
        if done == bytes.len() {
            break;
        }
        let n = len.min(bytes.len() - done);
        let part = &mut bytes[done..done + n];
        if to_guest { mem.write_slice(part, addr) } else { mem.read_slice(part, addr) }.ok()?;
        done += n;
    }
    (done == bytes.len()).then_some(())
}

/// Rewrites the server's FUSE_INIT reply in `chain` with [`fuse::amend_init`].
fn amend_init_reply<M>(mem: &Memory, chain: &DescriptorChain<M>, offered: u64, window: Option<crate::dax::Window>)
where
    M: Deref<Target = Memory> + Clone,
{
    let buffers = writable_buffers(chain);
    let mut reply = [0u8; INIT_REPLY_LEN];
    if copy_reply(mem, &buffers, &mut reply, false).is_none() {
        return;
    }
    let (head, body) = reply.split_at_mut(size_of::<OutHeader>());
    let header = OutHeader::from_slice(head).copied().unwrap_or_default();
    let Some(out) = InitOut::from_mut_slice(body) else { return };
    if header.error != 0 {
        return;
    }
    fuse::amend_init(out, offered, window);
    log::info!("FUSE_INIT: flags {:#x} {:#x}, max_write {}, map_alignment {}", out.flags, out.flags2, out.max_write, out.map_alignment);
    if copy_reply(mem, &buffers, &mut reply, true).is_none() {
        log::warn!("could not complete the FUSE_INIT reply");
    }
}

/// The vhost-user device vhost-user-backend drives.
pub struct FsBackend {
    requests: Requests<Option<Backend>>,
    mem: Option<GuestMemoryAtomic<Memory>>,
    event_idx: bool,
}

impl FsBackend {
    /// The device serving `requests`.
    pub fn new(requests: Requests<Option<Backend>>) -> FsBackend {
        FsBackend { requests, mem: None, event_idx: false }
    }

    /// Serves every available chain of `vring`, then interrupts the guest if it asked for it.
    fn process_queue(&mut self, vring: &VringRwLock) -> io::Result<()> {
        let Some(atomic) = &self.mem else {
            log::warn!("queue kick before the memory table");
            return Ok(());
        };
        let mem = atomic.memory();
        let mut used = false;
        loop {
            let chain = vring.get_mut().get_queue_mut().pop_descriptor_chain(mem.clone());
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let len = self.requests.serve(&mem, chain);
            vring.add_used(head, len).map_err(|e| io::Error::other(format!("cannot return chain {head}: {e}")))?;
            used = true;
        }
        if used && vring.needs_notification().map_err(|e| io::Error::other(e.to_string()))? {
            vring.signal_used_queue()?;
        }
        Ok(())
    }
}

impl VhostUserBackendMut for FsBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_INDIRECT_DESC
            | VIRTIO_RING_F_EVENT_IDX
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // MQ: QEMU refuses a backend without it for more than one queue. REPLY_ACK, BACKEND_REQ
        // and BACKEND_SEND_FD: the channel that carries SHMEM_MAP with the file's fd, each
        // acknowledged. vhost-user-backend sets the Backend's REPLY_ACK and SHMEM flags from
        // what the frontend acked when it hands the channel over (`set_backend_req_fd`).
        let mut features = VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
        if self.requests.policy.window.is_some() {
            features |= VhostUserProtocolFeatures::BACKEND_REQ
                | VhostUserProtocolFeatures::BACKEND_SEND_FD
                | VhostUserProtocolFeatures::SHMEM;
        }
        features
    }

    fn set_event_idx(&mut self, enabled: bool) {
        self.event_idx = enabled;
    }

    fn update_memory(&mut self, mem: GuestMemoryAtomic<Memory>) -> io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }

    fn set_backend_req_fd(&mut self, backend: Backend) {
        match self.requests.dax_mut() {
            Some(dax) => {
                log::info!("DAX: the frontend's backend request channel is set");
                *dax.sender_mut() = Some(backend);
            }
            None => log::debug!("backend request channel unused (no DAX window)"),
        }
    }

    /// An exit event per worker thread: vhost-user-backend signals it when the frontend is gone
    /// (dropping the daemon joins the workers, which would otherwise wait for kicks forever).
    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK)
            .inspect_err(|e| log::warn!("no exit event for the queue worker: {e}"))
            .ok()
    }

    /// GET_SHMEM_CONFIG (with SHMEM): one region, id 0, the window (vhost-user-fs-pci takes
    /// the size from its own `cache-size`; a generic vhost-user device asks this).
    fn get_shmem_config(&self) -> io::Result<VhostUserShMemConfig> {
        match self.requests.policy.window {
            Some(window) => Ok(VhostUserShMemConfig::new(1, &[window.size])),
            None => Err(io::Error::new(io::ErrorKind::Unsupported, "no DAX window")),
        }
    }

    fn handle_event(&mut self, device_event: u16, evset: EventSet, vrings: &[VringRwLock], _thread_id: usize) -> io::Result<()> {
        if evset != EventSet::IN {
            log::warn!("unexpected event {evset:?} on queue {device_event}");
            return Ok(());
        }
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            log::warn!("event for unknown queue {device_event}");
            return Ok(());
        };
        if !self.event_idx {
            return self.process_queue(vring);
        }
        // With EVENT_IDX the guest kicks only when it sees notifications enabled: keep serving
        // until the ring stays empty with them on.
        loop {
            vring.disable_notification().map_err(|e| io::Error::other(e.to_string()))?;
            self.process_queue(vring)?;
            if !vring.enable_notification().map_err(|e| io::Error::other(e.to_string()))? {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dax::Window;
    use crate::xattr::Xattrs;
    use fuse_backend_rs::abi::fuse_abi::{EntryOut, FsOptions, GetxattrIn, GetxattrOut, InHeader, InitIn, OpenIn, OpenOut, SetxattrIn};
    use fuse_backend_rs::abi::virtio_fs::SetupmappingIn;
    use fuse_backend_rs::passthrough::{Config, PassthroughFs};
    use nix::libc;
    use std::os::fd::RawFd;
    use std::sync::{Arc, Mutex};
    use vhost::vhost_user::message::VhostUserMMap;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor};
    use virtio_queue::mock::MockSplitQueue;

    const VRING_DESC_F_WRITE: u16 = 2;
    const REQUEST_AT: u64 = 0x10_0000;
    const REPLY_AT: u64 = 0x20_0000;
    const WINDOW: Window = Window { size: 64 << 20, page_size: 4096 };

    /// A frontend that records the mappings it was sent.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<VhostUserMMap>>>);

    impl MapSender for Recorder {
        fn map(&mut self, request: &VhostUserMMap, _fd: RawFd) -> io::Result<()> {
            self.0.lock().unwrap().push(*request);
            Ok(())
        }

        fn unmap(&mut self, request: &VhostUserMMap) -> io::Result<()> {
            self.0.lock().unwrap().push(*request);
            Ok(())
        }
    }

    /// A device on a fresh temporary share with `hello` in it, and guest memory.
    struct Rig {
        requests: Requests<Recorder>,
        sent: Recorder,
        mem: Memory,
        share: tempfile::TempDir,
        next_unique: u64,
    }

    impl Rig {
        fn new(readonly: bool, window: Option<Window>) -> Rig {
            Rig::serving(readonly, window, true)
        }

        /// A share with `--xattr` or without.
        fn serving(readonly: bool, window: Option<Window>, xattr: bool) -> Rig {
            let share = tempfile::tempdir().unwrap();
            std::fs::write(share.path().join("hello"), vec![7u8; 8192]).unwrap();
            let config = Config { root_dir: share.path().to_str().unwrap().into(), do_import: true, ..Config::default() };
            let fs = ShareFs(PassthroughFs::new(config).unwrap(), xattr.then(|| Xattrs::open().unwrap()));
            let sent = Recorder::default();
            let dax = window.map(|w| DaxMapper::new(w, sent.clone()));
            let requests = Requests::new(fs, Policy { readonly, window }, dax);
            let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
            Rig { requests, sent, mem, share, next_unique: 1 }
        }

        /// Puts the chain `descriptors` on a queue and serves it: (used length, reply bytes).
        fn serve_chain(&mut self, descriptors: &[RawDescriptor]) -> (u32, Vec<u8>) {
            let queue = MockSplitQueue::new(&self.mem, 16);
            let chain = queue.build_desc_chain(descriptors).unwrap();
            let used = self.requests.serve(&self.mem, chain);
            let mut reply = vec![0u8; used as usize];
            self.mem.read_slice(&mut reply, GuestAddress(REPLY_AT)).unwrap();
            (used, reply)
        }

        /// Sends `opcode` on `nodeid` with `body`, `reply_room` bytes for the answer.
        fn call(&mut self, opcode: Opcode, nodeid: u64, body: &[u8], reply_room: u32) -> (u32, Vec<u8>) {
            let unique = self.next_unique;
            self.next_unique += 1;
            let len = (size_of::<InHeader>() + body.len()) as u32;
            let header = InHeader { len, opcode: opcode as u32, unique, nodeid, ..InHeader::default() };
            let mut request = header.as_slice().to_vec();
            request.extend_from_slice(body);
            self.mem.write_slice(&request, GuestAddress(REQUEST_AT)).unwrap();
            self.serve_chain(&[
                Descriptor::new(REQUEST_AT, len, 0, 0).into(),
                Descriptor::new(REPLY_AT, reply_room, VRING_DESC_F_WRITE, 0).into(),
            ])
        }

        /// The errno of a reply (0: success).
        fn errno(reply: &[u8]) -> i32 {
            -OutHeader::from_slice(&reply[..size_of::<OutHeader>()]).unwrap().error
        }

        fn init(&mut self, offered: FsOptions) -> InitOut {
            let init = InitIn { major: 7, minor: 31, max_readahead: 1 << 20, flags: offered.bits() as u32 };
            let (used, reply) = self.call(Opcode::Init, 0, init.as_slice(), 4096);
            assert_eq!((used as usize, Rig::errno(&reply)), (INIT_REPLY_LEN, 0));
            *InitOut::from_slice(&reply[size_of::<OutHeader>()..]).unwrap()
        }

        fn lookup(&mut self, name: &str) -> u64 {
            let (_, reply) = self.call(Opcode::Lookup, 1, format!("{name}\0").as_bytes(), 4096);
            assert_eq!(Rig::errno(&reply), 0, "lookup {name}");
            EntryOut::from_slice(&reply[size_of::<OutHeader>()..][..size_of::<EntryOut>()]).unwrap().nodeid
        }
    }

    const OFFERED: FsOptions = FsOptions::MAX_PAGES.union(FsOptions::MAP_ALIGNMENT).union(FsOptions::DO_READDIRPLUS);

    #[test]
    fn init_with_a_window_announces_the_page_alignment() {
        let mut rig = Rig::new(false, Some(WINDOW));
        let out = rig.init(OFFERED);
        let flags = FsOptions::from_bits_truncate(u64::from(out.flags));
        assert!(flags.contains(FsOptions::MAP_ALIGNMENT | FsOptions::MAX_PAGES), "{flags:?}");
        assert_eq!((out.map_alignment, out.max_pages), (12, 256));
        assert_eq!(out.max_write, 1 << 20);
        let mut plain = Rig::new(false, None);
        let out = plain.init(OFFERED);
        assert!(!FsOptions::from_bits_truncate(u64::from(out.flags)).contains(FsOptions::MAP_ALIGNMENT));
        assert_eq!(out.map_alignment, 0);
    }

    fn setupmapping(rig: &mut Rig, nodeid: u64, moffset: u64, len: u64, flags: u64) -> i32 {
        let map = SetupmappingIn { fh: 0, foffset: 0, len, flags, moffset };
        let (_, reply) = rig.call(Opcode::SetupMapping, nodeid, map.as_slice(), 4096);
        Rig::errno(&reply)
    }

    #[test]
    fn setupmapping_reaches_the_frontend_only_when_valid() {
        let mut rig = Rig::new(false, Some(WINDOW));
        rig.init(OFFERED);
        let hello = rig.lookup("hello");
        assert_eq!(setupmapping(&mut rig, hello, 2 << 20, 2 << 20, 2), 0);
        assert_eq!(setupmapping(&mut rig, hello, 63 << 20, 2 << 20, 2), libc::EINVAL, "past the window");
        assert_eq!(setupmapping(&mut rig, hello, 100, 4096, 2), libc::EINVAL, "unaligned");
        assert_eq!(setupmapping(&mut rig, hello, 0, 4096, 3), 0, "writable");
        let sent = rig.sent.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        let (shm_offset, len, flags) = (sent[0].shm_offset, sent[0].len, sent[0].flags);
        assert_eq!((shm_offset, len, flags), (2 << 20, 2 << 20, 0));
        let flags = sent[1].flags;
        assert_eq!(flags, 1, "FUSE_SETUPMAPPING_FLAG_WRITE is WRITABLE");

        let mut plain = Rig::new(false, None);
        plain.init(OFFERED);
        let hello = plain.lookup("hello");
        assert_eq!(setupmapping(&mut plain, hello, 0, 4096, 2), libc::ENOSYS);
        let (_, reply) = plain.call(Opcode::RemoveMapping, hello, &0u32.to_ne_bytes(), 4096);
        assert_eq!(Rig::errno(&reply), libc::ENOSYS);
    }

    /// SETXATTR's body: the compat header, the name, its NUL, the value.
    fn setxattr(rig: &mut Rig, nodeid: u64, name: &str, value: &[u8], flags: u32) -> i32 {
        let mut body = SetxattrIn { size: value.len() as u32, flags }.as_slice().to_vec();
        body.extend_from_slice(format!("{name}\0").as_bytes());
        body.extend_from_slice(value);
        let (_, reply) = rig.call(Opcode::Setxattr, nodeid, &body, 4096);
        Rig::errno(&reply)
    }

    /// GETXATTR (`name`) or LISTXATTR (`None`) with room for `size` bytes: the errno and the
    /// reply's body (the value or names; with `size` 0, GetxattrOut).
    fn getxattr(rig: &mut Rig, nodeid: u64, name: Option<&str>, size: u32) -> (i32, Vec<u8>) {
        let mut body = GetxattrIn { size, padding: 0 }.as_slice().to_vec();
        let opcode = match name {
            Some(name) => {
                body.extend_from_slice(format!("{name}\0").as_bytes());
                Opcode::Getxattr
            }
            None => Opcode::Listxattr,
        };
        let (_, reply) = rig.call(opcode, nodeid, &body, 4096);
        (Rig::errno(&reply), reply[size_of::<OutHeader>()..].to_vec())
    }

    #[test]
    fn extended_attributes_follow_the_inode_without_a_proc_path() {
        let mut rig = Rig::new(false, None);
        rig.init(OFFERED);
        let hello = rig.lookup("hello");
        let on_host = rig.share.path().join("hello");
        assert_eq!(setxattr(&mut rig, hello, "user.colour", b"blue", 0), 0);
        let mut seen = [0u8; 16];
        let len = rustix::fs::getxattr(&on_host, "user.colour", &mut seen[..]).unwrap();
        assert_eq!(&seen[..len], b"blue", "the host file holds what the guest set");
        assert_eq!(setxattr(&mut rig, hello, "user.colour", b"red", 1), libc::EEXIST, "XATTR_CREATE");
        assert_eq!(setxattr(&mut rig, hello, "user.shape", b"round", 2), libc::ENODATA, "XATTR_REPLACE");

        // Renamed on the host: the attributes are still the inode's.
        let moved = rig.share.path().join("moved");
        std::fs::rename(&on_host, &moved).unwrap();
        let (errno, out) = getxattr(&mut rig, hello, Some("user.colour"), 0);
        assert_eq!((errno, GetxattrOut::from_slice(&out[..size_of::<GetxattrOut>()]).unwrap().size), (0, 4));
        assert_eq!(getxattr(&mut rig, hello, Some("user.colour"), 64), (0, b"blue".to_vec()));
        assert_eq!(getxattr(&mut rig, hello, Some("user.colour"), 2).0, libc::ERANGE);
        assert_eq!(getxattr(&mut rig, hello, Some("user.none"), 64).0, libc::ENODATA);
        assert_eq!(getxattr(&mut rig, hello, None, 64), (0, b"user.colour\0".to_vec()));
        let (_, reply) = rig.call(Opcode::Removexattr, hello, b"user.colour\0", 4096);
        assert_eq!(Rig::errno(&reply), 0);
        assert_eq!(rustix::fs::listxattr(&moved, &mut [0u8; 64][..]).unwrap(), 0, "removed on the host");
        assert_eq!(getxattr(&mut rig, hello, Some("user.colour"), 64).0, libc::ENODATA);

        // A symbolic link's own inode: user.* attributes are refused there, as on Linux.
        std::os::unix::fs::symlink("moved", rig.share.path().join("link")).unwrap();
        let link = rig.lookup("link");
        assert_eq!(setxattr(&mut rig, link, "user.colour", b"blue", 0), libc::EPERM);
        // The root directory (inode 1) takes attributes like any directory.
        assert_eq!(setxattr(&mut rig, 1, "user.top", b"1", 0), 0);
        assert_eq!(getxattr(&mut rig, 1, Some("user.top"), 8), (0, b"1".to_vec()));
        // No name left: nothing to reach the inode by.
        std::fs::remove_file(&moved).unwrap();
        assert_eq!(getxattr(&mut rig, hello, Some("user.colour"), 64).0, libc::ENOENT);
        assert!(std::env::current_dir().is_ok(), "the working directory is put back");

        let mut without = Rig::serving(false, None, false);
        without.init(OFFERED);
        let hello = without.lookup("hello");
        assert_eq!(setxattr(&mut without, hello, "user.colour", b"blue", 0), libc::ENOSYS, "no --xattr");
        assert_eq!(getxattr(&mut without, hello, None, 64).0, libc::ENOSYS);
    }

    #[test]
    fn a_readonly_share_stays_unchanged() {
        let mut rig = Rig::new(true, Some(WINDOW));
        rig.init(OFFERED);
        let (_, reply) = rig.call(Opcode::Mkdir, 1, b"\xed\x01\0\0\0\0\0\0new\0", 4096);
        assert_eq!(Rig::errno(&reply), libc::EROFS);
        assert!(!rig.share.path().join("new").exists());
        let hello = rig.lookup("hello");
        let open = |flags: libc::c_int| OpenIn { flags: flags as u32, fuse_flags: 0 };
        let (_, reply) = rig.call(Opcode::Open, hello, open(libc::O_RDWR).as_slice(), 4096);
        assert_eq!(Rig::errno(&reply), libc::EROFS);
        let (_, reply) = rig.call(Opcode::Open, hello, open(libc::O_RDONLY).as_slice(), 4096);
        assert_eq!(Rig::errno(&reply), 0);
        assert_ne!(OpenOut::from_slice(&reply[16..][..size_of::<OpenOut>()]).unwrap().fh, 0);
        assert_eq!(setupmapping(&mut rig, hello, 0, 4096, 3), libc::EROFS);
        assert!(rig.sent.0.lock().unwrap().is_empty());
    }

    /// READDIR's inode numbers are what LOOKUP/GETATTR report (the host's `st_ino`), and
    /// listing a directory leaves no lookup count behind.
    #[test]
    fn readdir_inode_numbers_match_stat() {
        use std::os::unix::fs::MetadataExt;
        let mut rig = Rig::new(false, None);
        rig.init(OFFERED);
        std::fs::create_dir(rig.share.path().join("sub")).unwrap();
        let share = rig.share.path().to_path_buf();
        let host_ino = |name: &str| std::fs::metadata(share.join(name)).unwrap().ino();
        let expected = [("hello", host_ino("hello")), ("sub", host_ino("sub"))];
        let (_, reply) = rig.call(Opcode::Opendir, 1, OpenIn::default().as_slice(), 4096);
        assert_eq!(Rig::errno(&reply), 0);
        let fh = OpenOut::from_slice(&reply[16..][..size_of::<OpenOut>()]).unwrap().fh;
        let read = fuse_backend_rs::abi::fuse_abi::ReadIn { fh, offset: 0, size: 4096, ..Default::default() };
        let (_, reply) = rig.call(Opcode::Readdir, 1, read.as_slice(), 8192);
        assert_eq!(Rig::errno(&reply), 0);
        let mut found = Vec::new();
        let mut at = size_of::<OutHeader>();
        while at + 24 <= reply.len() {
            let ino = u64::from_ne_bytes(reply[at..at + 8].try_into().unwrap());
            let namelen = u32::from_ne_bytes(reply[at + 16..at + 20].try_into().unwrap()) as usize;
            let name = String::from_utf8_lossy(&reply[at + 24..at + 24 + namelen]).into_owned();
            found.push((name, ino));
            at += (24 + namelen).next_multiple_of(8);
        }
        for (name, ino) in expected {
            assert!(found.contains(&(name.to_string(), ino)), "{name} (st_ino {ino}) in {found:?}");
        }
        // GETATTR of what LOOKUP gives agrees too.
        let sub = rig.lookup("sub");
        let (_, reply) = rig.call(Opcode::Getattr, sub, &[0; 16], 4096);
        let attr = fuse_backend_rs::abi::fuse_abi::AttrOut::from_slice(&reply[16..][..size_of::<fuse_backend_rs::abi::fuse_abi::AttrOut>()]).unwrap();
        assert_eq!(attr.attr.ino, host_ino("sub"));
    }

    #[test]
    fn malformed_requests_get_errors_not_panics() {
        let mut rig = Rig::new(false, None);
        rig.init(OFFERED);
        // An opcode the ABI does not have.
        let header = InHeader { len: 40, opcode: 7, unique: 99, nodeid: 1, ..InHeader::default() };
        rig.mem.write_slice(header.as_slice(), GuestAddress(REQUEST_AT)).unwrap();
        let chain = [Descriptor::new(REQUEST_AT, 40, 0, 0).into(), Descriptor::new(REPLY_AT, 64, VRING_DESC_F_WRITE, 0).into()];
        let (used, reply) = rig.serve_chain(&chain);
        assert_eq!((used, Rig::errno(&reply)), (16, libc::ENOSYS));
        // A LOOKUP without its name, a SETATTR without its body: decoding fails, EINVAL.
        let (used, reply) = rig.call(Opcode::Lookup, 1, b"", 4096);
        assert_eq!((used, Rig::errno(&reply)), (16, libc::EINVAL));
        let (used, reply) = rig.call(Opcode::Setattr, 1, b"x", 4096);
        assert_eq!((used, Rig::errno(&reply)), (16, libc::EINVAL));
        // No room for any reply.
        assert_eq!(rig.call(Opcode::Getattr, 1, &[0; 16], 8).0, 0);
        assert_eq!(rig.call(Opcode::Getattr, 1, &[0; 16], 0).0, 0);
        // Shorter than a header; a chain into memory the guest does not have; no writable part.
        assert_eq!(rig.serve_chain(&[Descriptor::new(REQUEST_AT, 10, 0, 0).into()]).0, 0);
        let outside = [Descriptor::new(0x1_0000_0000, 4096, 0, 0).into(), Descriptor::new(REPLY_AT, 64, VRING_DESC_F_WRITE, 0).into()];
        assert_eq!(rig.serve_chain(&outside).0, 0);
        let straddling = [Descriptor::new(0x3f_fff0, 64, 0, 0).into(), Descriptor::new(REPLY_AT, 64, VRING_DESC_F_WRITE, 0).into()];
        assert_eq!(rig.serve_chain(&straddling).0, 0);
        // FORGET has no reply, even when malformed.
        assert_eq!(rig.call(Opcode::Forget, 2, &1u64.to_ne_bytes(), 4096).0, 0);
        assert_eq!(rig.call(Opcode::Forget, 2, b"", 4096).0, 0);
        // Still serving.
        assert_ne!(rig.lookup("hello"), 0);
    }
}

/// The daemon's vhost-user side against a fake QEMU: feature negotiation, GET_SHMEM_CONFIG, a
/// FUSE_SETUPMAPPING on the request queue arriving as SHMEM_MAP with the file's fd, and
/// REMOVEMAPPING as SHMEM_UNMAP.
#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::dax::Window;
    use crate::xattr::Xattrs;
    use fuse_backend_rs::abi::fuse_abi::{EntryOut, FsOptions, InHeader, InitIn};
    use fuse_backend_rs::abi::virtio_fs::{RemovemappingIn, RemovemappingOne, SetupmappingIn};
    use fuse_backend_rs::passthrough::{Config, PassthroughFs};
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex, RwLock};
    use vhost::vhost_user::message::{VhostUserMMap, VhostUserProtocolFeatures};
    use vhost::vhost_user::{Frontend, FrontendReqHandler, Listener, VhostUserFrontend, VhostUserFrontendReqHandler};
    use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
    use vhost_user_backend::VhostUserDaemon;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{FileOffset, GuestMemory};
    use vmm_sys_util::eventfd::EventFd;

    /// QEMU's side of the backend channel: what it was asked to map, with the inode of the fd.
    #[derive(Default)]
    struct FakeQemu {
        maps: Mutex<Vec<(VhostUserMMap, u64)>>,
        unmaps: Mutex<Vec<VhostUserMMap>>,
    }

    impl VhostUserFrontendReqHandler for FakeQemu {
        fn shmem_map(&self, req: &VhostUserMMap, fd: &dyn AsRawFd) -> io::Result<u64> {
            // SAFETY: the fd came with the message and stays open during this call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
            let inode = std::fs::File::from(fd.try_clone_to_owned()?).metadata()?.ino();
            self.maps.lock().unwrap().push((*req, inode));
            Ok(0)
        }

        fn shmem_unmap(&self, req: &VhostUserMMap) -> io::Result<u64> {
            self.unmaps.lock().unwrap().push(*req);
            Ok(0)
        }
    }

    const WINDOW: Window = Window { size: 64 << 20, page_size: 4096 };
    const RAM: u64 = 0x40_0000;
    const REQUEST_AT: u64 = 0x10_0000;
    const REPLY_AT: u64 = 0x20_0000;

    struct Guest<'a> {
        mem: &'a Memory,
        queue: MockSplitQueue<'a, Memory>,
        kick: EventFd,
        call: EventFd,
        next: u16,
    }

    impl Guest<'_> {
        /// Sends one FUSE request on the request queue and waits for its reply.
        fn call(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> Vec<u8> {
            let unique = u64::from(self.next) + 1;
            let len = (size_of::<InHeader>() + body.len()) as u32;
            let header = InHeader { len, opcode: opcode as u32, unique, nodeid, ..InHeader::default() };
            let mut request = header.as_slice().to_vec();
            request.extend_from_slice(body);
            self.mem.write_slice(&request, GuestAddress(REQUEST_AT)).unwrap();
            let head = self.next * 2;
            let chain: [RawDescriptor; 2] =
                [Descriptor::new(REQUEST_AT, len, 1, head + 1).into(), Descriptor::new(REPLY_AT, 4096, 2, 0).into()];
            self.queue.add_desc_chains(&chain, head).unwrap();
            self.next += 1;
            self.kick.write(1).unwrap();
            self.call.read().unwrap(); // blocks until the daemon returned the chain
            let used = self.queue.used().ring().ref_at(usize::from(self.next - 1)).unwrap().load();
            let mut reply = vec![0u8; used.len() as usize];
            self.mem.read_slice(&mut reply, GuestAddress(REPLY_AT)).unwrap();
            let out = OutHeader::from_slice(&reply[..size_of::<OutHeader>()]).unwrap();
            assert_eq!((out.unique, out.error), (unique, 0), "{opcode:?}");
            reply
        }
    }

    #[test]
    fn setupmapping_becomes_shmem_map_to_the_frontend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello"), vec![1u8; 1 << 16]).unwrap();
        let hello_inode = std::fs::metadata(dir.path().join("hello")).unwrap().ino();
        let config = Config { root_dir: dir.path().to_str().unwrap().into(), do_import: true, ..Config::default() };
        let requests = Requests::new(
            ShareFs(PassthroughFs::new(config).unwrap(), Some(Xattrs::open().unwrap())),
            Policy { readonly: false, window: Some(WINDOW) },
            Some(DaxMapper::new(WINDOW, None)),
        );
        let backend = Arc::new(RwLock::new(FsBackend::new(requests)));
        let mut daemon =
            VhostUserDaemon::new("test".into(), backend, GuestMemoryAtomic::new(GuestMemoryMmap::new())).unwrap();
        let socket = dir.path().join("fs.sock");
        let mut listener = Listener::new(&socket, true).unwrap();
        let frontend_socket = socket.clone();
        let daemon_thread = std::thread::spawn(move || {
            daemon.start(&mut listener).unwrap();
            daemon.wait()
        });

        let mut frontend = Frontend::connect(&frontend_socket, NUM_QUEUES as u64).unwrap();
        frontend.set_owner().unwrap();
        let features = frontend.get_features().unwrap();
        assert_eq!(features & (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX), VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
        // This guest does not update `used_event`: no EVENT_IDX.
        frontend.set_features(features & !VIRTIO_RING_F_EVENT_IDX).unwrap();
        let protocol = frontend.get_protocol_features().unwrap();
        let dax = VhostUserProtocolFeatures::SHMEM
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::BACKEND_SEND_FD
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::MQ;
        assert!(protocol.contains(dax), "{protocol:?}");
        frontend.set_protocol_features(protocol).unwrap();
        assert_eq!(frontend.get_queue_num().unwrap(), NUM_QUEUES as u64);
        let shmem = frontend.get_shmem_config().unwrap();
        assert_eq!((shmem.nregions, shmem.memory_sizes[0]), (1, WINDOW.size));

        let qemu = Arc::new(FakeQemu::default());
        let mut channel = FrontendReqHandler::new(qemu.clone()).unwrap();
        channel.set_reply_ack_flag(true);
        frontend.set_backend_request_fd(&channel.get_tx_raw_fd()).unwrap();
        let channel_thread = std::thread::spawn(move || while channel.handle_request().is_ok() {});

        // Guest RAM in a memfd, as QEMU's memory-backend-memfd.
        let memfd = nix::sys::memfd::memfd_create("guest-ram", nix::sys::memfd::MFdFlags::empty()).unwrap();
        let file = std::fs::File::from(memfd);
        file.set_len(RAM).unwrap();
        let ranges = [(GuestAddress(0), RAM as usize, Some(FileOffset::new(file, 0)))];
        let mem = Memory::from_ranges_with_files(&ranges).unwrap();
        let host = |gpa: GuestAddress| mem.get_host_address(gpa).unwrap() as u64;
        let region = VhostUserMemoryRegionInfo::from_guest_region(mem.find_region(GuestAddress(0)).unwrap()).unwrap();
        frontend.set_mem_table(&[region]).unwrap();

        let queue = MockSplitQueue::create(&mem, GuestAddress(0x1000), 16);
        let (kick, call) = (EventFd::new(0).unwrap(), EventFd::new(0).unwrap());
        frontend.set_vring_num(1, 16).unwrap();
        let addresses = VringConfigData {
            queue_max_size: 16,
            queue_size: 16,
            flags: 0,
            desc_table_addr: host(queue.desc_table_addr()),
            used_ring_addr: host(queue.used_addr()),
            avail_ring_addr: host(queue.avail_addr()),
            log_addr: None,
        };
        frontend.set_vring_addr(1, &addresses).unwrap();
        frontend.set_vring_base(1, 0).unwrap();
        frontend.set_vring_call(1, &call).unwrap();
        frontend.set_vring_kick(1, &kick).unwrap();
        frontend.set_vring_enable(1, true).unwrap();
        let mut guest = Guest { mem: &mem, queue, kick, call, next: 0 };

        let offered = (FsOptions::MAX_PAGES | FsOptions::MAP_ALIGNMENT).bits() as u32;
        let reply = guest.call(Opcode::Init, 0, InitIn { major: 7, minor: 31, max_readahead: 0, flags: offered }.as_slice());
        assert_eq!(InitOut::from_slice(&reply[16..]).unwrap().map_alignment, 12);
        let reply = guest.call(Opcode::Lookup, 1, b"hello\0");
        let hello = EntryOut::from_slice(&reply[16..][..size_of::<EntryOut>()]).unwrap().nodeid;
        let map = SetupmappingIn { fh: 0, foffset: 4096, len: 8192, flags: 3, moffset: 2 << 20 };
        guest.call(Opcode::SetupMapping, hello, map.as_slice());
        let mut remove = RemovemappingIn { count: 1 }.as_slice().to_vec();
        remove.extend_from_slice(RemovemappingOne { moffset: 2 << 20, len: 8192 }.as_slice());
        guest.call(Opcode::RemoveMapping, hello, &remove);

        let maps = qemu.maps.lock().unwrap().clone();
        assert_eq!(maps.len(), 1);
        let (m, inode) = maps[0];
        let (shmid, fd_offset, shm_offset, len, flags) = (m.shmid, m.fd_offset, m.shm_offset, m.len, m.flags);
        assert_eq!((shmid, fd_offset, shm_offset, len, flags, inode), (0, 4096, 2 << 20, 8192, 1, hello_inode));
        let unmaps = qemu.unmaps.lock().unwrap().clone();
        assert_eq!(unmaps.len(), 1);
        let (shm_offset, len) = (unmaps[0].shm_offset, unmaps[0].len);
        assert_eq!((shm_offset, len), (2 << 20, 8192));

        // QEMU goes away: the daemon's wait ends, and dropping it stops its queue worker.
        drop(frontend);
        daemon_thread.join().unwrap().ok();
        // (The channel's handler keeps its own copy of the socket: its thread never ends.)
        drop(channel_thread);
    }
}
