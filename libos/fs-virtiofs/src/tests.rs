//! Host tests: the whole VFS conformance suite over the fake server, the caching targets,
//! FORGET accounting, and every fault the fake server can inject.

use crate::fs::{FuseStats, MIN_VALIDITY_NS, MountOptions, VirtioFs, rename_flags};
use crate::protocol::op;
use crate::testing::{FakeOptions, FakeServer, Fault, ManualClock};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::Errno;
use libos_vfs::conformance::{self, FileSystemFactory, ModelConfig};
use libos_vfs::{FileSystem, Node, OpenFlags, TimeUpdate, Timestamp, Vfs};

const NEW: OpenFlags = OpenFlags::CREAT.union(OpenFlags::RDWR);

struct Factory {
    options: FakeOptions,
}

impl FileSystemFactory for Factory {
    fn name(&self) -> &str {
        "virtiofs over the fake FUSE server"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        let server = FakeServer::with_options(self.options);
        let fs = VirtioFs::mount(server, MountOptions::default()).map_err(|e| format!("mount: {e}"))?;
        Ok(fs)
    }

    /// virtiofsd 1.14 has no FUSE_TMPFILE (ENOSYS), so libos sends none: `O_TMPFILE` is
    /// `EOPNOTSUPP` on virtio-fs, as for a Linux guest.
    fn makes_unnamed_files(&self) -> bool {
        false
    }
}

fn run_suite(options: FakeOptions) {
    let mut failures = Vec::new();
    let report = conformance::run_all(&Factory { options }, &mut |name, result| {
        if let Err(why) = result {
            failures.push(format!("{name}: {why}"));
        }
    });
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(report.passed, conformance::CASES.len());
}

#[test]
fn conformance_suite_passes_with_caching() {
    run_suite(FakeOptions::default());
}

/// virtiofsd `--cache=never`: every timeout 0.
#[test]
fn conformance_suite_passes_without_caching() {
    run_suite(FakeOptions { entry_valid_ns: 0, attr_valid_ns: 0, ..FakeOptions::default() });
}

/// A small `max_write`/`max_pages` makes every large read and write split.
#[test]
fn conformance_suite_passes_with_small_transfers() {
    run_suite(FakeOptions { max_write: 8192, max_pages: 2, max_transfer: 64 * 1024, ..FakeOptions::default() });
}

#[test]
fn model_test_thorough() {
    if let Err(why) = conformance::run_model(&Factory { options: FakeOptions::default() }, ModelConfig::THOROUGH) {
        panic!("{why}");
    }
}

struct Mounted {
    server: Arc<FakeServer>,
    fs: Arc<VirtioFs>,
    vfs: Vfs,
    clock: Arc<ManualClock>,
}

fn mount_with(options: FakeOptions, mount: MountOptions) -> Mounted {
    let server = FakeServer::with_options(options);
    let clock = ManualClock::new(1_000_000);
    let fs = VirtioFs::mount(server.clone(), MountOptions { clock: clock.clone(), ..mount }).unwrap();
    let vfs = Vfs::new(fs.clone());
    Mounted { server, fs, vfs, clock }
}

fn mount(options: FakeOptions) -> Mounted {
    mount_with(options, MountOptions::default())
}

fn delta(m: &Mounted, before: &FuseStats) -> FuseStats {
    m.fs.stats().since(before)
}

fn write_file(vfs: &Vfs, path: &str, data: &[u8]) {
    let file = vfs.open(path, NEW | OpenFlags::TRUNC, 0o644).unwrap();
    assert_eq!(file.write(data).unwrap(), data.len());
}

#[test]
fn init_negotiates_sizes_and_flags() {
    let m = mount(FakeOptions::default());
    let n = m.fs.negotiated();
    assert_eq!((n.minor, n.max_write, n.max_read), (38, 1 << 20, 1 << 20));
    assert_eq!(n.flags & fuse_abi::linux::FUSE_DO_READDIRPLUS, 0, "not offered");
    assert_eq!(m.server.count(op::INIT), 1);
    // An old server is refused.
    let old = FakeServer::with_options(FakeOptions { minor: 26, ..FakeOptions::default() });
    assert_eq!(VirtioFs::mount(old, MountOptions::default()).err(), Some(Errno::EPROTO));
}

/// Issue target: a cold `stat` is exactly one LOOKUP; a warm one sends nothing while the
/// host's timeouts hold; after they expire, one LOOKUP again.
#[test]
fn warm_stat_sends_nothing_cold_stat_one_lookup() {
    let m = mount(FakeOptions::default());
    m.vfs.mkdir("/d", 0o755).unwrap();
    write_file(&m.vfs, "/d/f", b"data");
    m.fs.drop_caches();
    m.clock.advance(2_000_000_000);

    let before = m.fs.stats();
    let server_before = m.server.total();
    let meta = m.vfs.metadata("/d").unwrap();
    assert!(meta.is_dir());
    let cold = delta(&m, &before);
    assert_eq!((cold.count(op::LOOKUP), cold.total()), (1, 1), "cold stat: {cold:?}");
    assert_eq!(m.server.total() - server_before, 1);

    let before = m.fs.stats();
    for _ in 0..10 {
        assert_eq!(m.vfs.metadata("/d").unwrap(), meta);
    }
    assert_eq!(delta(&m, &before).total(), 0, "warm stats sent requests");

    // Half a second later the 1 s timeouts still hold.
    m.clock.advance(500_000_000);
    let before = m.fs.stats();
    m.vfs.metadata("/d").unwrap();
    assert_eq!(delta(&m, &before).total(), 0);

    // Past them: the entry is revalidated by one LOOKUP (which brings fresh attributes).
    m.clock.advance(600_000_000);
    let before = m.fs.stats();
    m.vfs.metadata("/d").unwrap();
    let expired = delta(&m, &before);
    assert_eq!((expired.count(op::LOOKUP), expired.total()), (1, 1), "{expired:?}");

    // A two-component cold path: one LOOKUP per component, nothing else.
    m.fs.drop_caches();
    m.clock.advance(2_000_000_000);
    let before = m.fs.stats();
    assert_eq!(m.vfs.metadata("/d/f").unwrap().size, 4);
    let cold = delta(&m, &before);
    assert_eq!((cold.count(op::LOOKUP), cold.total()), (2, 2), "{cold:?}");
}

/// With the root's entry cached and only the attributes expired, a stat is one GETATTR.
#[test]
fn expired_attributes_alone_cost_one_getattr() {
    let m = mount(FakeOptions { entry_valid_ns: 10_000_000_000, attr_valid_ns: 1_000_000_000, ..FakeOptions::default() });
    write_file(&m.vfs, "/f", b"x");
    m.vfs.metadata("/f").unwrap();
    m.clock.advance(2_000_000_000);
    let before = m.fs.stats();
    m.vfs.metadata("/f").unwrap();
    let d = delta(&m, &before);
    assert_eq!((d.count(op::GETATTR), d.total()), (1, 1), "{d:?}");
}

/// `--cache=never`: nothing is trusted beyond the walk that fetched it, but a cold stat is
/// still one LOOKUP (the attributes that came with it serve the stat).
#[test]
fn cache_never_stat_is_one_lookup_every_time() {
    let m = mount(FakeOptions { entry_valid_ns: 0, attr_valid_ns: 0, ..FakeOptions::default() });
    write_file(&m.vfs, "/f", b"x");
    for _ in 0..3 {
        m.clock.advance(MIN_VALIDITY_NS);
        let before = m.fs.stats();
        m.vfs.metadata("/f").unwrap();
        let d = delta(&m, &before);
        assert_eq!((d.count(op::LOOKUP), d.total()), (1, 1), "{d:?}");
    }
}

/// Changes on the host show once the timeouts expire (and not before: the cache is honest
/// about what it promises).
#[test]
fn host_changes_show_after_the_timeout() {
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/f", b"1234");
    assert_eq!(m.vfs.metadata("/f").unwrap().size, 4);
    let host = m.server.host();
    host.root().lookup("f").unwrap().write_at(4, b"5678").unwrap();
    assert_eq!(m.vfs.metadata("/f").unwrap().size, 4, "cached");
    m.clock.advance(1_100_000_000);
    assert_eq!(m.vfs.metadata("/f").unwrap().size, 8);
    // Data is never cached.
    let file = m.vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    host.root().lookup("f").unwrap().write_at(0, b"abcd").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(file.read(&mut buf).unwrap(), 8);
    assert_eq!(&buf, b"abcd5678");
}

/// Reads and writes are split at the negotiated sizes, one request per piece, and the bytes
/// are counted.
#[test]
fn reads_and_writes_split_at_negotiated_sizes() {
    let m = mount(FakeOptions::default());
    let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i * 7 % 251) as u8).collect();
    let file = m.vfs.open("/big", NEW, 0o644).unwrap();
    let before = m.fs.stats();
    assert_eq!(file.write_at(0, &data).unwrap(), data.len());
    let d = delta(&m, &before);
    assert_eq!(d.count(op::WRITE), 4);
    assert_eq!(d.bytes_written, data.len() as u64);
    // A 1 MiB aligned read is exactly one READ.
    let mut buf = vec![0u8; 1 << 20];
    let before = m.fs.stats();
    assert_eq!(file.read_at(1 << 20, &mut buf).unwrap(), 1 << 20);
    let d = delta(&m, &before);
    assert_eq!((d.count(op::READ), d.total(), d.bytes_read), (1, 1, 1 << 20));
    assert_eq!(&buf[..], &data[1 << 20..2 << 20]);
    // Reading across the end: the short READ ends it.
    let mut all = vec![0u8; 4 << 20];
    let before = m.fs.stats();
    assert_eq!(file.read_at(0, &mut all).unwrap(), data.len());
    assert_eq!(delta(&m, &before).count(op::READ), 4);
    assert_eq!(&all[..data.len()], &data[..]);
}

#[test]
fn small_max_write_is_honoured() {
    let m = mount(FakeOptions { max_write: 4096, ..FakeOptions::default() });
    let file = m.vfs.open("/f", NEW, 0o644).unwrap();
    let before = m.fs.stats();
    file.write(&[7u8; 10_000]).unwrap();
    assert_eq!(delta(&m, &before).count(op::WRITE), 3);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

/// Issue target: 10 000 creates and unlinks leave no nodeid alive on the host.
#[test]
fn ten_thousand_creates_and_unlinks_leak_nothing() {
    let m = mount(FakeOptions::default());
    m.vfs.mkdir("/many", 0o755).unwrap();
    for i in 0..10_000 {
        let path = format!("/many/f{i}");
        let file = m.vfs.open(&path, NEW, 0o644).unwrap();
        file.write(b"x").unwrap();
        drop(file);
        m.vfs.unlink(&path).unwrap();
    }
    m.fs.flush_forgets();
    let stats = m.fs.stats();
    assert_eq!(m.server.live_nodeids(), 1, "only /many is still looked up");
    assert_eq!(m.server.open_handles(), 0, "every handle released");
    assert!(stats.forget_records >= 10_000);
    assert!(stats.forget_messages <= 10_000 / 64 + 2, "batched: {} messages", stats.forget_messages);
    assert_eq!(m.server.count(op::BATCH_FORGET), stats.forget_messages);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

/// Files that stay (in a directory bigger than the dentry cache) are forgotten when evicted,
/// and everything is forgotten at unmount.
#[test]
fn eviction_and_unmount_forget_everything() {
    let m = mount_with(FakeOptions::default(), MountOptions { dentry_capacity: 100, ..MountOptions::default() });
    for i in 0..1000 {
        write_file(&m.vfs, &format!("/f{i}"), b"x");
    }
    m.fs.flush_forgets();
    let live = m.server.live_nodeids();
    assert!(live <= 100, "{live} nodes alive with a 100-entry cache");
    assert!(m.fs.live_nodes() <= 101);
    // An open file keeps its node (and host inode) past unmount, until it is closed.
    let open = m.vfs.open("/f1", OpenFlags::RDONLY, 0).unwrap();
    let Mounted { server, fs, vfs, .. } = m;
    drop(vfs);
    drop(fs);
    assert_eq!(server.live_nodeids(), 1);
    let mut buf = [0u8; 1];
    assert_eq!(open.read(&mut buf).unwrap(), 1);
    drop(open);
    assert_eq!(server.live_nodeids(), 0);
    assert_eq!(server.open_handles(), 0);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

/// Every reply that names an entry counts one lookup; the node object forgets exactly that.
#[test]
fn lookup_counts_match_the_server() {
    let m = mount_with(FakeOptions { entry_valid_ns: 0, attr_valid_ns: 0, ..FakeOptions::default() }, MountOptions::default());
    write_file(&m.vfs, "/f", b"x");
    let file = m.vfs.open("/f", OpenFlags::RDONLY, 0).unwrap();
    for _ in 0..5 {
        m.clock.advance(MIN_VALIDITY_NS);
        m.vfs.metadata("/f").unwrap();
    }
    m.vfs.link("/f", "/g").unwrap();
    let count = m.server.lookup_count("/f").unwrap();
    assert!(count >= 7, "CREATE + 5 LOOKUPs + LINK: {count}");
    m.fs.drop_caches();
    assert_eq!(m.server.lookup_count("/f"), Some(count), "the open file still holds them");
    drop(file);
    m.fs.flush_forgets();
    assert_eq!(m.server.lookup_count("/f"), None);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

#[test]
fn rename2_flags() {
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/a", b"a");
    write_file(&m.vfs, "/b", b"b");
    let root = m.fs.root_node();
    let dir: &dyn Node = &*root;
    assert_eq!(root.rename_with_flags("a", dir, "b", rename_flags::NOREPLACE), Err(Errno::EEXIST));
    root.rename_with_flags("a", dir, "c", rename_flags::NOREPLACE).unwrap();
    assert_eq!(m.vfs.metadata("/a").err(), Some(Errno::ENOENT));
    assert_eq!(m.vfs.metadata("/c").unwrap().size, 1);
    assert_eq!(m.server.count(op::RENAME2), 2);
    assert_eq!(root.rename_with_flags("c", dir, "b", 3), Err(Errno::EINVAL), "both flags");
    assert_eq!(root.rename_with_flags("c", dir, "b", 8), Err(Errno::EINVAL), "unknown flag");
    root.rename_with_flags("c", dir, "b", rename_flags::EXCHANGE).unwrap();
    let mut byte = [0u8; 4];
    assert_eq!(m.vfs.open("/c", OpenFlags::RDONLY, 0).unwrap().read(&mut byte), Ok(1));
    assert_eq!(&byte[..1], b"b", "the names swapped");
    assert_eq!(m.server.count(op::RENAME2), 3);
    assert_eq!(root.rename_with_flags("c", dir, "missing", rename_flags::EXCHANGE), Err(Errno::ENOENT), "the host's errno");
    m.vfs.rename("/c", "/b").unwrap();
    assert_eq!(m.server.count(op::RENAME), 1);
}

#[test]
fn set_times_and_statfs() {
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/f", b"x");
    let (t1, t2) = (Timestamp(5_000_000_001), Timestamp(7_000_000_002));
    m.vfs.set_times("/f", TimeUpdate::To(t1), TimeUpdate::To(t2), true).unwrap();
    let meta = m.vfs.metadata("/f").unwrap();
    assert_eq!((meta.atime, meta.mtime), (t1, t2), "served from SETATTR's reply");
    m.vfs.set_times("/f", TimeUpdate::Keep, TimeUpdate::Now, true).unwrap();
    let now = m.vfs.metadata("/f").unwrap();
    assert_eq!(now.atime, t1);
    assert!(now.mtime > t2);
    let s = m.vfs.statfs("/").unwrap();
    assert_eq!(s.fs_type, crate::fs::FUSE_SUPER_MAGIC);
    assert_eq!(s.name_max, 255);
    assert_eq!(m.server.count(op::SETATTR), 2);
}

#[test]
fn fsync_flush_release_and_syncfs() {
    let m = mount(FakeOptions::default());
    let file = m.vfs.open("/f", NEW, 0o644).unwrap();
    file.write(b"durable").unwrap();
    file.sync().unwrap();
    m.vfs.open("/", OpenFlags::RDONLY, 0).unwrap().sync().unwrap();
    m.vfs.sync().unwrap();
    assert_eq!((m.server.count(op::FSYNC), m.server.count(op::FSYNCDIR), m.server.count(op::SYNCFS)), (1, 1, 1));
    drop(file);
    m.fs.drop_caches();
    assert_eq!(m.server.count(op::FLUSH), 1, "a written handle is flushed on release");
    assert_eq!(m.server.count(op::RELEASE), 1);
    assert_eq!(m.server.count(op::RELEASEDIR), 0, "the root's handle lives with the mount");
    assert_eq!(m.server.open_handles(), 1);
}

/// READDIR pages: a listing of 500 entries takes a few requests, not one per entry, and a
/// rewind is served from the page.
#[test]
fn readdir_is_paged() {
    let m = mount(FakeOptions::default());
    m.vfs.mkdir("/d", 0o755).unwrap();
    for i in 0..500 {
        m.vfs.open(&format!("/d/entry-{i:03}"), NEW, 0o644).unwrap();
    }
    let before = m.fs.stats();
    assert_eq!(m.vfs.read_dir("/d").unwrap().len(), 500);
    let d = delta(&m, &before);
    assert!(d.count(op::READDIR) <= 3, "{d:?}");
    assert_eq!(d.count(op::OPENDIR), 1);
    let before = m.fs.stats();
    assert_eq!(m.vfs.read_dir("/d").unwrap().len(), 500);
    assert!(delta(&m, &before).count(op::READDIR) <= 3);
    assert_eq!(delta(&m, &before).count(op::OPENDIR), 0, "the handle is kept");
}

#[test]
fn append_writes_at_the_hosts_end() {
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/log", b"one\n");
    let file = m.vfs.open("/log", OpenFlags::WRONLY | OpenFlags::APPEND, 0).unwrap();
    // Someone on the host appends too: ours still lands at the end.
    m.server.host().root().lookup("log").unwrap().write_at(4, b"host\n").unwrap();
    assert_eq!(file.write(b"two\n").unwrap(), 4);
    assert_eq!(file.position(), 13);
    let mut buf = [0u8; 32];
    let n = m.vfs.open("/log", OpenFlags::RDONLY, 0).unwrap().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one\nhost\ntwo\n");
}

// ---- faults: a clear errno, no panic, no hang, and the mount keeps working afterwards ----

fn faulty(fault: Fault, opcode: u32, run: impl Fn(&Mounted) -> Result<(), Errno>, expected: Errno) {
    let m = mount(FakeOptions::default());
    m.vfs.mkdir("/d", 0o755).unwrap();
    write_file(&m.vfs, "/d/f", b"0123456789");
    m.vfs.symlink("/d/f", "/l").unwrap();
    m.fs.drop_caches();
    m.clock.advance(2_000_000_000);
    m.server.inject(fault, Some(opcode), 1);
    assert_eq!(run(&m), Err(expected), "{fault:?} on {}", op::name(opcode));
    // The next request is answered properly again.
    m.clock.advance(2_000_000_000);
    run(&m).unwrap_or_else(|e| panic!("after {fault:?} on {}: {e}", op::name(opcode)));
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

fn stat_file(m: &Mounted) -> Result<(), Errno> {
    m.vfs.metadata("/d/f").map(drop)
}

fn read_file(m: &Mounted) -> Result<(), Errno> {
    let file = m.vfs.open("/d/f", OpenFlags::RDONLY, 0)?;
    let mut buf = [0u8; 16];
    let n = file.read(&mut buf)?;
    assert_eq!(&buf[..n], b"0123456789");
    Ok(())
}

fn list_dir(m: &Mounted) -> Result<(), Errno> {
    assert_eq!(m.vfs.read_dir("/d")?.len(), 1);
    Ok(())
}

fn write_file_fallible(m: &Mounted) -> Result<(), Errno> {
    let file = m.vfs.open("/d/f", OpenFlags::WRONLY, 0)?;
    file.write_at(0, b"0")?;
    Ok(())
}

fn read_link(m: &Mounted) -> Result<(), Errno> {
    assert_eq!(m.vfs.read_link("/l")?, "/d/f");
    Ok(())
}

#[test]
fn malformed_replies_are_eio() {
    for fault in [Fault::ShortReply, Fault::OversizedReply, Fault::LenMismatch, Fault::WrongUnique, Fault::Truncated, Fault::ErrorWithPayload] {
        faulty(fault, op::LOOKUP, stat_file, Errno::EIO);
    }
    for fault in [Fault::ShortReply, Fault::OversizedReply, Fault::LenMismatch, Fault::WrongUnique] {
        faulty(fault, op::READ, read_file, Errno::EIO);
        faulty(fault, op::READDIR, list_dir, Errno::EIO);
        faulty(fault, op::READLINK, read_link, Errno::EIO);
    }
    faulty(Fault::Truncated, op::WRITE, write_file_fallible, Errno::EIO);
    faulty(Fault::Truncated, op::OPEN, read_file, Errno::EIO);
    faulty(Fault::BadDirents, op::READDIR, list_dir, Errno::EIO);
}

#[test]
fn host_errors_become_errnos() {
    faulty(Fault::Error(-13), op::LOOKUP, stat_file, Errno::EACCES);
    faulty(Fault::Error(-4000), op::LOOKUP, stat_file, Errno::EIO);
    faulty(Fault::Error(17), op::LOOKUP, stat_file, Errno::EIO);
    faulty(Fault::Error(i32::MIN), op::READ, read_file, Errno::EIO);
    faulty(Fault::Error(-28), op::WRITE, write_file_fallible, Errno::ENOSPC);
}

#[test]
fn a_missing_reply_is_eio() {
    faulty(Fault::NoReply, op::LOOKUP, stat_file, Errno::EIO);
    faulty(Fault::NoReply, op::READ, read_file, Errno::EIO);
    faulty(Fault::NoReply, op::OPEN, read_file, Errno::EIO);
}

/// The server dies mid-run: every operation fails with EIO, dropping nodes and unmounting do
/// not panic, and nothing hangs.
#[test]
fn a_dead_server_gives_eio_everywhere() {
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/f", b"data");
    let file = m.vfs.open("/f", OpenFlags::RDWR, 0).unwrap();
    m.server.kill();
    m.clock.advance(2_000_000_000);
    let mut buf = [0u8; 4];
    assert_eq!(file.read_at(0, &mut buf), Err(Errno::EIO));
    assert_eq!(file.write_at(0, b"x"), Err(Errno::EIO));
    assert_eq!(file.metadata().err(), Some(Errno::EIO));
    assert_eq!(m.vfs.metadata("/f").err(), Some(Errno::EIO));
    assert_eq!(m.vfs.open("/g", NEW, 0o644).err(), Some(Errno::EIO));
    assert_eq!(m.vfs.read_dir("/").err(), Some(Errno::EIO));
    assert_eq!(m.vfs.statfs("/").err(), Some(Errno::EIO));
    assert_eq!(m.vfs.sync(), Err(Errno::EIO));
    assert!(m.fs.stats().transport_errors > 0);
    drop(file);
    drop(m);
}

#[test]
fn a_server_dead_before_init_fails_the_mount() {
    let server = FakeServer::new();
    server.kill();
    assert_eq!(VirtioFs::mount(server, MountOptions::default()).err(), Some(Errno::EIO));
    let server = FakeServer::new();
    server.inject(Fault::WrongUnique, Some(op::INIT), 1);
    assert_eq!(VirtioFs::mount(server, MountOptions::default()).err(), Some(Errno::EIO));
    let server = FakeServer::new();
    server.inject(Fault::Truncated, Some(op::INIT), 1);
    assert_eq!(VirtioFs::mount(server, MountOptions::default()).err(), Some(Errno::EPROTO));
    let server = FakeServer::new();
    server.inject(Fault::Error(-71), Some(op::INIT), 1);
    assert_eq!(VirtioFs::mount(server, MountOptions::default()).err(), Some(Errno::EPROTO));
}

/// Requests never exceed the channel's limit, however large the caller's buffer.
#[test]
fn requests_fit_the_channel() {
    let m = mount(FakeOptions { max_transfer: 40 * 1024, ..FakeOptions::default() });
    let data = vec![3u8; 200 * 1024];
    let file = m.vfs.open("/f", NEW, 0o644).unwrap();
    assert_eq!(file.write_at(0, &data).unwrap(), data.len());
    let mut back = vec![0u8; data.len()];
    assert_eq!(file.read_at(0, &mut back).unwrap(), data.len());
    assert_eq!(back, data);
    assert_eq!(m.fs.stats().transport_errors, 0);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

/// A value or list longer than the first buffer is asked for by size, then fetched whole; a
/// server without extended attributes (virtiofsd without `--xattr`: ENOSYS) gives
/// `EOPNOTSUPP`, as Linux's FUSE client reports it.
#[test]
fn extended_attributes_of_any_size_and_servers_without_them() {
    use libos_vfs::XattrSet;
    let m = mount(FakeOptions::default());
    write_file(&m.vfs, "/f", b"f");
    let long: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    m.vfs.set_xattr("/f", true, "user.long", &long, XattrSet::Create).unwrap();
    m.vfs.set_xattr("/f", true, "user.short", b"s", XattrSet::Create).unwrap();
    let before = m.server.count(op::GETXATTR);
    assert_eq!(m.vfs.get_xattr("/f", true, "user.short").unwrap(), b"s");
    assert_eq!(m.server.count(op::GETXATTR) - before, 1, "a short value: one request");
    assert_eq!(m.vfs.get_xattr("/f", true, "user.long").unwrap(), long);
    assert_eq!(m.server.count(op::GETXATTR) - before, 4, "a long one: too small, its size, the value");
    let names: Vec<String> = (0..40).map(|i| format!("user.a-rather-long-attribute-name-{i:03}")).collect();
    for name in &names {
        m.vfs.set_xattr("/f", true, name, b"", XattrSet::Create).unwrap();
    }
    let mut listed = m.vfs.list_xattr("/f", true).unwrap();
    listed.sort();
    assert_eq!(listed.len(), 42, "a list longer than the first buffer");
    assert_eq!(&listed[..40], &names[..]);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());

    let m = mount(FakeOptions { xattrs: false, ..FakeOptions::default() });
    write_file(&m.vfs, "/f", b"f");
    assert_eq!(m.vfs.set_xattr("/f", true, "user.a", b"1", XattrSet::Either), Err(Errno::EOPNOTSUPP));
    assert_eq!(m.vfs.get_xattr("/f", true, "user.a"), Err(Errno::EOPNOTSUPP));
    assert_eq!(m.vfs.list_xattr("/f", true), Err(Errno::EOPNOTSUPP));
    assert_eq!(m.vfs.remove_xattr("/f", true, "user.a"), Err(Errno::EOPNOTSUPP));
}
