//! Host tests of `/proc/self`: a TinyFs namespace with procfs and devfs mounted, and a
//! process view with a pipe, the console, a file and a directory open.

use super::*;
use crate::conformance::TinyFs;
use crate::devfs::{DevFs, EntropySource};
use crate::procfs::ProcFs;
use crate::vfs::MountInfo;
use crate::{OpenFlags, Vfs};
use libos_core::sync::SpinLock;

struct View {
    descriptors: SpinLock<Vec<(u32, Descriptor)>>,
}

impl ProcessView for View {
    fn pid(&self) -> u32 {
        42
    }
    fn descriptors(&self) -> Vec<u32> {
        self.descriptors.lock().iter().map(|(fd, _)| *fd).collect()
    }
    fn descriptor(&self, fd: u32) -> Option<Descriptor> {
        self.descriptors.lock().iter().find(|(n, _)| *n == fd).map(|(_, d)| d.clone())
    }
    fn executable(&self) -> String {
        String::from("/bin/prog")
    }
    fn current_dir(&self) -> Result<String> {
        Ok(String::from("/dir"))
    }
    fn command_line(&self) -> Vec<u8> {
        b"prog\0-v\0".to_vec()
    }
    fn environment(&self) -> Vec<u8> {
        b"HOME=/\0".to_vec()
    }
    fn status(&self) -> Status {
        Status {
            name: String::from("prog"),
            ppid: 1,
            pgid: 42,
            sid: 42,
            uids: [1000, 1000, 1000, 1000],
            gids: [100, 100, 100, 100],
            groups: alloc::vec![100, 10],
            umask: 0o022,
            threads: 3,
            vm_bytes: 8 << 20,
            rss_bytes: 4 << 20,
            cpus: 0b1011,
            ..Status::default()
        }
    }
    fn owner(&self) -> (u32, u32) {
        (1000, 100)
    }
    fn mappings(&self) -> Vec<Mapping> {
        let text = Mapping { start: 0x400000, end: 0x401000, read: true, exec: true, name: String::from("/bin/prog"), ..Mapping::default() };
        alloc::vec![text, Mapping { start: 0x7000_0000, end: 0x7002_0000, read: true, write: true, ..Mapping::default() }]
    }
}

struct Figures(Arc<View>);

impl super::Figures for Figures {
    fn uptime_ns(&self) -> u64 {
        0
    }
    fn idle_ns(&self) -> u64 {
        0
    }
    fn memory(&self) -> (u64, u64) {
        (0, 0)
    }
    fn boot_time_secs(&self) -> u64 {
        0
    }
    fn mounts(&self) -> Vec<MountInfo> {
        Vec::new()
    }
    fn process(&self) -> Option<Arc<dyn ProcessView>> {
        Some(self.0.clone())
    }
}

struct NoEntropy;

impl EntropySource for NoEntropy {
    fn fill(&self, buf: &mut [u8]) {
        buf.fill(0);
    }
    fn mix(&self, _data: &[u8]) {}
    fn is_seeded(&self) -> bool {
        false
    }
}

fn read_all(vfs: &Vfs, path: &str) -> Result<String> {
    let file = vfs.open(path, OpenFlags::RDONLY, 0)?;
    let mut buf = [0u8; 2048];
    let n = file.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A namespace with `/dir/a` ("hello") open as descriptor 3, `/dir` as 4, a pipe as 0 and
/// the console as 1.
fn namespace() -> (Vfs, Arc<View>) {
    let vfs = Vfs::new(Arc::new(TinyFs::new()));
    let view = Arc::new(View { descriptors: SpinLock::new(Vec::new()) });
    vfs.mkdir("/proc", 0o755).unwrap();
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/proc", Arc::new(ProcFs::new(Arc::new(Figures(view.clone()))))).unwrap();
    vfs.mount("/dev", Arc::new(DevFs::new(&NoEntropy))).unwrap();
    vfs.mkdir("/dir", 0o755).unwrap();
    let file = vfs.open("/dir/a", OpenFlags::CREAT | OpenFlags::RDWR, 0o644).unwrap();
    file.write(b"hello").unwrap();
    let dir = vfs.open("dir", OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).unwrap();
    *view.descriptors.lock() = alloc::vec![
        (0, Descriptor::Pipe(7)),
        (1, Descriptor::Console),
        (3, Descriptor::File(file.file_ref().unwrap())),
        (4, Descriptor::File(dir.file_ref().unwrap())),
    ];
    (vfs, view)
}

#[test]
fn self_and_the_process_directory() {
    let (vfs, _view) = namespace();
    assert_eq!(vfs.read_link("/proc/self").unwrap(), "42");
    let names: Vec<String> = vfs.read_dir("/proc").unwrap().into_iter().map(|e| e.name).collect();
    assert!(names.ends_with(&[String::from("self"), String::from("42")]), "{names:?}");
    let names: Vec<String> = vfs.read_dir("/proc/self").unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["cmdline", "comm", "cwd", "environ", "exe", "fd", "maps", "mounts", "root", "stat", "statm", "status"]);
    assert_eq!(vfs.metadata("/proc/41").unwrap_err(), Errno::ENOENT);
    assert_eq!(vfs.metadata("/proc/042").unwrap_err(), Errno::ENOENT);
    assert_eq!(vfs.read_link("/proc/self/exe").unwrap(), "/bin/prog");
    assert_eq!(vfs.read_link("/proc/42/cwd").unwrap(), "/dir");
    assert_eq!(read_all(&vfs, "/proc/self/cmdline").unwrap(), "prog\0-v\0");
    assert_eq!(read_all(&vfs, "/proc/self/comm").unwrap(), "prog\n");
    let status = read_all(&vfs, "/proc/self/status").unwrap();
    for line in ["Name:\tprog\n", "Umask:\t0022\n", "Pid:\t42\n", "PPid:\t1\n", "Uid:\t1000\t1000\t1000\t1000\n", "Groups:\t100 10\n", "Threads:\t3\n", "VmRSS:\t    4096 kB\n", "CapEff:\t0000000000000000\n", "Cpus_allowed_list:\t0-1,3\n"] {
        assert!(status.contains(line), "{line:?} in {status}");
    }
    let stat = read_all(&vfs, "/proc/self/stat").unwrap();
    assert!(stat.starts_with("42 (prog) R 1 42 42 0 -1 "), "{stat}");
    assert_eq!(stat.split(' ').count(), 52, "{stat}");
    assert_eq!(read_all(&vfs, "/proc/self/statm").unwrap(), "2048 1024 0 0 0 1024 0\n");
    let maps = read_all(&vfs, "/proc/self/maps").unwrap();
    let first = maps.lines().next().unwrap();
    assert!(first.starts_with("00400000-00401000 r-xp 00000000 00:00 0 "), "{maps}");
    assert_eq!(first.find("/bin/prog"), Some(74), "{maps}");
    assert_eq!(maps.lines().nth(1), Some("70000000-70020000 rw-p 00000000 00:00 0"));
    // The directories have their parents, so the current directory's path comes out.
    vfs.chdir("/proc/self/fd").unwrap();
    assert_eq!(vfs.current_dir().unwrap(), "/proc/42/fd");
    vfs.chdir("..").unwrap();
    assert_eq!(vfs.current_dir().unwrap(), "/proc/42");
    assert_eq!(vfs.metadata("/proc/self/fd").unwrap().uid, 1000);
}

#[test]
fn descriptor_links_lead_to_the_open_file_wherever_it_is() {
    let (vfs, view) = namespace();
    let names: Vec<String> = vfs.read_dir("/proc/self/fd").unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["0", "1", "3", "4"]);
    assert_eq!(vfs.read_link("/proc/self/fd/0").unwrap(), "pipe:[7]");
    assert_eq!(vfs.read_link("/proc/self/fd/1").unwrap(), "/dev/console");
    assert_eq!(vfs.read_link("/proc/self/fd/3").unwrap(), "/dir/a");
    assert_eq!(vfs.read_link("/dev/fd/4").unwrap(), "/dir");
    assert_eq!(vfs.metadata("/proc/self/fd/2").unwrap_err(), Errno::ENOENT);
    assert_eq!(vfs.metadata("/proc/self/fd/03").unwrap_err(), Errno::ENOENT);
    // Renamed: the link shows the new name and still leads to the file.
    vfs.rename("/dir/a", "/dir/b").unwrap();
    assert_eq!(vfs.read_link("/proc/self/fd/3").unwrap(), "/dir/b");
    let ino = vfs.metadata("/dir/b").unwrap().ino;
    assert_eq!(vfs.metadata("/proc/self/fd/3").unwrap().ino, ino);
    assert_eq!(vfs.symlink_metadata("/proc/self/fd/3").unwrap().file_type, FileType::Symlink);
    // Through a directory's link, and through /dev/fd.
    assert_eq!(read_all(&vfs, "/proc/self/fd/4/b").unwrap(), "hello");
    assert_eq!(read_all(&vfs, "/dev/fd/3").unwrap(), "hello");
    // Removed: still open through the link, as on Linux.
    vfs.unlink("/dir/b").unwrap();
    assert_eq!(vfs.read_link("/proc/self/fd/3").unwrap(), "/dir/(deleted)");
    assert_eq!(read_all(&vfs, "/proc/self/fd/3").unwrap(), "hello");
    // `> /dev/stdout` with descriptor 1 a file: O_CREAT | O_TRUNC opens (and truncates)
    // that file, never creates one named after the link.
    let out = vfs.open("/dir/out", OpenFlags::CREAT | OpenFlags::RDWR, 0o644).unwrap();
    out.write(b"old contents").unwrap();
    view.descriptors.lock().push((1, Descriptor::File(out.file_ref().unwrap())));
    view.descriptors.lock().remove(1);
    let again = vfs.open("/dev/stdout", OpenFlags::CREAT | OpenFlags::WRONLY | OpenFlags::TRUNC, 0o644).unwrap();
    again.write(b"new").unwrap();
    assert_eq!(read_all(&vfs, "/dir/out").unwrap(), "new");
    assert_eq!(vfs.read_link("/proc/self/fd/1").unwrap(), "/dir/out");
}

#[test]
fn objects_outside_the_namespace_are_left_to_the_runtime() {
    let (vfs, _view) = namespace();
    let meta = vfs.metadata("/dev/stdin").unwrap();
    assert_eq!((meta.file_type, meta.perm, meta.uid), (FileType::Fifo, 0o600, 1000));
    let pipe = vfs.open("/dev/stdin", OpenFlags::RDONLY, 0).unwrap();
    assert_eq!(reopened_descriptor(&**pipe.node()), Some(0));
    let file = vfs.open("/proc/self/fd/3", OpenFlags::RDONLY, 0).unwrap();
    assert_eq!(reopened_descriptor(&**file.node()), None);
    // The console: devfs's (5, 1).
    let console = vfs.open("/proc/self/fd/1", OpenFlags::WRONLY, 0).unwrap();
    assert_eq!(console.metadata().unwrap().rdev, (5 << 8) | 1);
    assert_eq!(reopened_descriptor(&**console.node()), None);
}
