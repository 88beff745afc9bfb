//! The whole stack after a device failure: the real virtio-fs device over the fake transport,
//! answered by the fake FUSE server, with one reply that never comes. The mount must come
//! back (a new device setup and FUSE session), and what belonged to the old session must
//! fail cleanly instead of reaching the new server, where its numbers name other files.

use crate::device::{DEVICE_ID, TAG_LEN, VirtioFsDevice};
use crate::fs::{FuseNode, MountOptions, VirtioFs};
use crate::protocol::op;
use crate::testing::FakeServer;
use crate::FuseChannel;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use libos_core::Errno;
use libos_virtio::Transport;
use libos_virtio::testing::FakeTransport;
use libos_vfs::{FileSystem, NewNode, Node, OpenFlags, Vfs};

/// The fake FUSE server behind a fake virtio-fs device; `hang_read` makes the next READ go
/// unanswered.
fn device_over(server: Arc<FakeServer>, hang_read: Arc<AtomicBool>) -> (Arc<VirtioFsDevice>, &'static FakeTransport) {
    libos_core::testing::shared_platform();
    let mut config = vec![0u8; TAG_LEN];
    config[..4].copy_from_slice(b"host");
    let transport: &'static FakeTransport = Box::leak(Box::new(FakeTransport::sized(
        DEVICE_ID,
        libos_virtio::features::INDIRECT_DESC,
        config,
        256,
        Box::new(move |queue, input, writable| {
            if queue == 0 {
                server.send_forget(input).ok()?;
                return Some(Vec::new());
            }
            let opcode = u32::from_le_bytes(input[4..8].try_into().unwrap());
            if opcode == op::READ && hang_read.swap(false, Ordering::Relaxed) {
                return None;
            }
            let mut reply = vec![0u8; writable];
            let n = server.request(&[input], &mut [&mut reply]).ok()?;
            reply.truncate(n);
            Some(reply)
        }),
    )));
    (VirtioFsDevice::new(Box::new(transport), None, Some(Duration::from_millis(50))).unwrap(), transport)
}

/// Runs `f` while the fake clock moves past any timeout.
fn with_time_passing<R>(f: impl FnOnce() -> R) -> R {
    let platform = libos_core::testing::shared_platform();
    let stop = Arc::new(AtomicBool::new(false));
    let ticking = stop.clone();
    let clock = std::thread::spawn(move || {
        while !ticking.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
            platform.advance(10_000_000);
        }
    });
    let result = f();
    stop.store(true, Ordering::Relaxed);
    clock.join().unwrap();
    result
}

fn nodeid(node: &Arc<dyn Node>) -> u64 {
    node.as_any().downcast_ref::<FuseNode>().unwrap().nodeid()
}

#[test]
fn a_reply_that_never_comes_starts_a_new_session_and_old_nodes_go_stale() {
    let server = FakeServer::new();
    let host = server.host().root();
    host.create("a", NewNode::File, 0o644, libos_vfs::Owner::default()).unwrap().write_at(0, b"AAAA").unwrap();
    host.create("b", NewNode::File, 0o644, libos_vfs::Owner::default()).unwrap().write_at(0, b"BBBB").unwrap();
    let hang = Arc::new(AtomicBool::new(false));
    let (device, transport) = device_over(server.clone(), hang.clone());
    let fs = VirtioFs::mount(device.clone(), MountOptions::default()).unwrap();
    let vfs = Vfs::new(fs.clone());
    let root = fs.root();
    let a = root.lookup("a").unwrap();
    let open_a = vfs.open("/a", OpenFlags::RDWR, 0).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(open_a.read_at(0, &mut buf), Ok(4));
    assert_eq!(&buf, b"AAAA");

    // One slow reply: the device is reset and the READ fails.
    hang.store(true, Ordering::Relaxed);
    assert_eq!(with_time_passing(|| a.read_at(0, &mut buf)), Err(Errno::EIO));
    assert!(device.has_failed());
    assert_eq!(transport.status(), 0, "reset");

    // Not EIO for ever: a new walk from the root brings the device and the session back.
    let b = vfs.open("/b", OpenFlags::RDWR, 0).unwrap();
    assert!(!device.has_failed());
    assert_eq!(server.restarts(), 1, "a second FUSE_INIT started a new session");
    assert_eq!(b.read_at(0, &mut buf), Ok(4));
    assert_eq!(&buf, b"BBBB");
    let b_node = root.lookup("b").unwrap();
    assert_eq!(nodeid(&b_node), nodeid(&a), "the new server gave b the number a had: using it for a would reach b");

    // The old session's node and open file fail cleanly and never reach the new server.
    let requests = server.total();
    assert_eq!(a.read_at(0, &mut buf), Err(Errno::ESTALE));
    assert_eq!(open_a.write_at(0, b"XXXX"), Err(Errno::ESTALE));
    assert_eq!(a.sync(), Err(Errno::ESTALE));
    assert_eq!(server.total(), requests, "nothing about a stale node was sent");
    assert_eq!(b.read_at(0, &mut buf), Ok(4));
    assert_eq!(&buf, b"BBBB", "b was not written through a's old number");

    // a itself is there again by path, and the root lists.
    let again = vfs.open("/a", OpenFlags::RDONLY, 0).unwrap();
    assert_eq!(again.read_at(0, &mut buf), Ok(4));
    assert_eq!(&buf, b"AAAA");
    assert_eq!(vfs.read_dir("/").unwrap().len(), 2);
    let sub = vfs.open("/d", OpenFlags::CREAT | OpenFlags::RDWR, 0o644).unwrap();
    assert_eq!(sub.write(b"new"), Ok(3));

    // The old node's lookup reference and handle died with the old server: no FORGET or
    // RELEASE of its number reaches the new one (it would take b's reference away).
    drop((a, open_a));
    fs.flush_forgets();
    assert_eq!(server.lookup_count("b"), Some(1));
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn a_device_that_stays_dead_keeps_failing_cleanly() {
    let server = FakeServer::new();
    server.host().root().create("a", NewNode::File, 0o644, libos_vfs::Owner::default()).unwrap();
    let hang = Arc::new(AtomicBool::new(false));
    let (device, _) = device_over(server.clone(), hang.clone());
    let fs = VirtioFs::mount(device.clone(), MountOptions::default()).unwrap();
    let a = fs.root().lookup("a").unwrap();
    hang.store(true, Ordering::Relaxed);
    let mut buf = [0u8; 4];
    assert_eq!(with_time_passing(|| a.read_at(0, &mut buf)), Err(Errno::EIO));
    server.kill(); // the host side is gone for good: the new INIT gets no answer either
    assert_eq!(with_time_passing(|| fs.root().lookup("a").err()), Some(Errno::EIO));
    assert_eq!(with_time_passing(|| fs.statfs().err()), Some(Errno::EIO));
    // The session never moved on, so the old node is not stale yet, but its device is dead.
    assert!(matches!(a.read_at(0, &mut buf), Err(Errno::EIO | Errno::ESTALE)));
    assert!(device.has_failed());
}
