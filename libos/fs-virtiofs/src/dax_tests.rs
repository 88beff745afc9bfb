//! Host tests of DAX: the conformance suite and the model test through a fake window (small
//! enough that chunks are reclaimed all the time), warm reads that send nothing, reclaim,
//! coherence with writes from both sides, a host that does not map, and a file shrunk on the
//! host while mapped.

use crate::fs::{DAX_CHUNK, MountOptions, VirtioFs};
use crate::protocol::op;
use crate::testing::{FakeOptions, FakeServer, ManualClock};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_vfs::conformance::{self, FileSystemFactory, ModelConfig};
use libos_vfs::{FileSystem, OpenFlags, Vfs};
use std::sync::Mutex;

const MIB: usize = 1 << 20;

/// Mounts fake servers with a window of `slots` chunks, keeping every server to check it.
struct Factory {
    options: FakeOptions,
    servers: Mutex<Vec<Arc<FakeServer>>>,
}

impl Factory {
    fn new(slots: u64, attr_valid_ns: u64) -> Factory {
        let options =
            FakeOptions { dax_window: Some(slots * DAX_CHUNK), attr_valid_ns, entry_valid_ns: attr_valid_ns, ..FakeOptions::default() };
        Factory { options, servers: Mutex::new(Vec::new()) }
    }

    fn check(&self) {
        for server in self.servers.lock().unwrap().iter() {
            assert_eq!(server.violations(), Vec::<String>::new());
            assert_eq!(server.window().unwrap().faults(), 0, "no read past a file's end");
        }
    }
}

impl FileSystemFactory for Factory {
    fn name(&self) -> &str {
        "virtiofs with a DAX window over the fake FUSE server"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        let server = FakeServer::with_options(self.options);
        self.servers.lock().unwrap().push(server.clone());
        let fs = VirtioFs::mount(server, MountOptions::default()).map_err(|e| format!("mount: {e}"))?;
        if fs.dax_usage().is_none() {
            return Err(String::from("the mount does not use the window"));
        }
        Ok(fs)
    }

    /// virtiofsd 1.14 has no FUSE_TMPFILE (ENOSYS), so libos sends none: `O_TMPFILE` is
    /// `EOPNOTSUPP` on virtio-fs, as for a Linux guest.
    fn makes_unnamed_files(&self) -> bool {
        false
    }
}

fn run_suite(factory: &Factory) {
    let mut failures = Vec::new();
    let report = conformance::run_all(factory, &mut |name, result| {
        if let Err(why) = result {
            failures.push(format!("{name}: {why}"));
        }
    });
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(report.passed, conformance::CASES.len());
    factory.check();
}

#[test]
fn conformance_suite_passes_through_a_two_chunk_window() {
    run_suite(&Factory::new(2, 1_000_000_000));
}

/// `--cache=never`: the size comes from a GETATTR before every read.
#[test]
fn conformance_suite_passes_through_a_window_without_caching() {
    run_suite(&Factory::new(2, 0));
}

#[test]
fn model_test_through_a_one_chunk_window() {
    let factory = Factory::new(1, 1_000_000_000);
    if let Err(why) = conformance::run_model(&factory, ModelConfig::THOROUGH) {
        panic!("{why}");
    }
    factory.check();
}

struct Mounted {
    server: Arc<FakeServer>,
    fs: Arc<VirtioFs>,
    vfs: Vfs,
    clock: Arc<ManualClock>,
}

fn mount(slots: u64) -> Mounted {
    let server = FakeServer::with_options(FakeOptions { dax_window: Some(slots * DAX_CHUNK), ..FakeOptions::default() });
    let clock = ManualClock::new(1_000_000);
    let fs = VirtioFs::mount(server.clone(), MountOptions { clock: clock.clone(), ..MountOptions::default() }).unwrap();
    let vfs = Vfs::new(fs.clone());
    Mounted { server, fs, vfs, clock }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8).collect()
}

fn write_file(vfs: &Vfs, path: &str, data: &[u8]) {
    let file = vfs.open(path, OpenFlags::CREAT | OpenFlags::RDWR | OpenFlags::TRUNC, 0o644).unwrap();
    assert_eq!(file.write(data).unwrap(), data.len());
}

fn read_all(vfs: &Vfs, path: &str) -> Vec<u8> {
    let file = vfs.open(path, OpenFlags::RDONLY, 0).unwrap();
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; 300_000]; // not a divisor of 2 MiB: pieces straddle chunks
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn warm_reads_send_no_request_and_cold_ones_one_mapping_per_chunk() {
    let m = mount(8);
    let data = pattern(5 * MIB + 123, 1);
    write_file(&m.vfs, "/f", &data);
    let before = m.fs.stats();
    assert_eq!(read_all(&m.vfs, "/f"), data);
    let cold = m.fs.stats().since(&before);
    assert_eq!(cold.count(op::SETUPMAPPING), 3, "5 MiB and a bit: three chunks");
    assert_eq!(cold.count(op::READ), 0);
    assert_eq!(cold.bytes_read_from_window, data.len() as u64);
    let before = m.fs.stats();
    assert_eq!(read_all(&m.vfs, "/f"), data);
    let warm = m.fs.stats().since(&before);
    assert_eq!(warm.total(), 0, "a warm read sends nothing: {warm:?}");
    assert_eq!(m.fs.dax_usage(), Some((8, 3)));
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

#[test]
fn a_window_smaller_than_the_files_reclaims_and_stays_correct() {
    let m = mount(2);
    let files: Vec<Vec<u8>> = (0..3).map(|i| pattern(2 * MIB + 4096 * i, i as u8)).collect();
    for (i, data) in files.iter().enumerate() {
        write_file(&m.vfs, &format!("/f{i}"), data);
    }
    for _round in 0..3 {
        for (i, data) in files.iter().enumerate() {
            assert_eq!(&read_all(&m.vfs, &format!("/f{i}")), data, "file {i}");
        }
    }
    assert_eq!(m.fs.dax_usage(), Some((2, 2)));
    assert_eq!(m.server.window().unwrap().mappings(), 2, "reclaimed slots were mapped over, not stacked");
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}

#[test]
fn writes_from_the_guest_and_the_host_show_in_mapped_chunks() {
    let m = mount(4);
    write_file(&m.vfs, "/f", &pattern(3 * MIB, 7));
    read_all(&m.vfs, "/f"); // maps both chunks
    let file = m.vfs.open("/f", OpenFlags::RDWR, 0).unwrap();
    file.write_at(MIB as u64 * 2 + 10, b"guest").unwrap();
    let host = m.server.host().root().lookup("f").unwrap();
    host.write_at(5, b"host").unwrap();
    let mut buf = [0u8; 5];
    file.read_at(MIB as u64 * 2 + 10, &mut buf).unwrap();
    assert_eq!(&buf, b"guest");
    file.read_at(5, &mut buf[..4]).unwrap();
    assert_eq!(&buf[..4], b"host");
    assert_eq!(m.server.count(op::SETUPMAPPING), 2, "no chunk was mapped again");
}

#[test]
fn a_server_without_dax_is_read_with_requests() {
    // The device has a window but the server answers SETUPMAPPING with ENOSYS (virtiofsd).
    struct NoMapping(Arc<FakeServer>, Arc<dyn crate::DaxWindow>);
    impl crate::FuseChannel for NoMapping {
        fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> libos_core::Result<usize> {
            self.0.request(request, reply)
        }
        fn send_forget(&self, request: &[u8]) -> libos_core::Result<()> {
            self.0.send_forget(request)
        }
        fn max_transfer(&self) -> usize {
            self.0.max_transfer()
        }
        fn dax_window(&self) -> Option<Arc<dyn crate::DaxWindow>> {
            Some(self.1.clone())
        }
    }
    let plain = FakeServer::new();
    let window = FakeServer::with_options(FakeOptions { dax_window: Some(DAX_CHUNK), ..FakeOptions::default() }).window().unwrap();
    let fs = VirtioFs::mount(Arc::new(NoMapping(plain.clone(), window)), MountOptions::default()).unwrap();
    // No map_alignment in INIT: the window is not used at all.
    assert_eq!(fs.dax_usage(), None);
    let vfs = Vfs::new(fs.clone());
    write_file(&vfs, "/f", &pattern(100_000, 3));
    assert_eq!(read_all(&vfs, "/f"), pattern(100_000, 3));
    assert_eq!(plain.count(op::SETUPMAPPING), 0);
    assert!(plain.count(op::READ) > 0);
}

#[test]
fn a_server_that_refuses_to_map_is_given_up_on_once() {
    let m = mount(2);
    write_file(&m.vfs, "/f", &pattern(10_000, 1));
    // Mappings fail with ENOSYS from now on (a server without DAX that announced an alignment).
    m.server.inject(crate::testing::Fault::Error(-38), Some(op::SETUPMAPPING), 1);
    assert_eq!(read_all(&m.vfs, "/f"), pattern(10_000, 1));
    assert_eq!(read_all(&m.vfs, "/f"), pattern(10_000, 1));
    assert_eq!(m.server.count(op::SETUPMAPPING), 1, "asked once");
    assert_eq!(m.fs.dax_usage(), None, "DAX given up");
}

#[test]
fn a_failed_mapping_falls_back_to_read_and_is_tried_again() {
    let m = mount(2);
    write_file(&m.vfs, "/f", &pattern(10_000, 1));
    m.server.inject(crate::testing::Fault::Error(-5), Some(op::SETUPMAPPING), 1);
    assert_eq!(read_all(&m.vfs, "/f"), pattern(10_000, 1));
    assert!(m.server.count(op::READ) > 0);
    assert_eq!(read_all(&m.vfs, "/f"), pattern(10_000, 1));
    assert_eq!(m.server.count(op::SETUPMAPPING), 2);
    assert_eq!(m.fs.dax_usage(), Some((2, 1)));
}

#[test]
fn a_file_shrunk_on_the_host_reads_short_once_its_size_is_known() {
    let m = mount(2);
    write_file(&m.vfs, "/f", &pattern(MIB, 5));
    read_all(&m.vfs, "/f");
    m.server.host().root().lookup("f").unwrap().truncate(10_000).unwrap();
    // Until the attribute cache expires the old size is believed (as Linux's DAX does): the
    // part past the new end reads as zeros, where the host put a zero page.
    m.clock.advance(2_000_000_000);
    let data = read_all(&m.vfs, "/f");
    assert_eq!(data, &pattern(MIB, 5)[..10_000]);
    assert!(m.server.violations().is_empty(), "{:?}", m.server.violations());
}
