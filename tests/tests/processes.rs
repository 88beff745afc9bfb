//! Processes, each one a VM of its own (issue 17): an unmodified static C program
//! (`apps/elf-runner/c/procs.c`, run by elf-runner under the process host) forks children and
//! checks every exit status, deaths by signal, `kill` between processes, `SIGCHLD`, `waitid`,
//! file offsets shared through inherited descriptors, process groups and sessions (`setpgid` of the caller and of a child, `setsid`, a signal to a
//! group, `waitpid` by group, Linux's errors), the process limit (`EAGAIN`), `execve` (of a program, of a `#!` script, and of files that
//! cannot run, which fail in the caller), `posix_spawn`, and files a child writes on a virtio-fs
//! share that its parent then reads. Every family prints "procs FAMILY: ok" only when all its
//! checks passed. Afterwards no VM of the runs is left: every QEMU the process host started
//! has its sockets in a `libos-processes-*` directory, and none is found running.

use libos_tests::{Boot, TempDir, arches};
use xtask::arch::Arch;
use xtask::qemu::{Machine, VirtioTransport};

/// Held by each test that starts process hosts: the check for VMs left behind must not see
/// another test's VMs (tests of a file run in parallel).
static PROCESS_HOSTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// QEMU processes started by a process host (their command lines name its socket directory).
fn process_host_vms() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.starts_with("qemu-system") && cmdline.contains("libos-processes-") {
                found.push(cmdline);
            }
        }
    }
    found
}

fn procs(limit: usize, args: &[&str]) -> Boot {
    let mut all = vec!["/bin/procs"];
    all.extend_from_slice(args);
    Boot::app("elf-runner").processes(limit).args(&all)
}

#[test]
fn forked_processes_wait_signal_exec_and_share_files() {
    let _alone = PROCESS_HOSTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for arch in arches() {
        procs(8, &["wait", "4"])
            .on(arch)
            .exits_with(0)
            .prints("child 0 is pid 2 of parent 1\n")
            .prints("child 3 is pid 5 of parent 1\n")
            .prints("procs wait: ok\n");
        procs(8, &["signal"])
            .on(arch)
            .exits_with(0)
            .prints("posix-shim: terminated by signal 15")
            .prints("handler child ready\n")
            .prints("procs signal: ok\n");
        procs(8, &["groups"]).on(arch).exits_with(0).prints("procs groups: ok\n");
        procs(4, &["limit"]).on(arch).exits_with(0).prints("procs limit: 3 children before EAGAIN\n").prints("procs limit: ok\n");
        procs(8, &["exec"])
            .on(arch)
            .exits_with(0)
            .prints("argv[1]=from-exec\n")
            .prints("env GREETING=exec\n")
            .prints("script: argc=4 [/bin/procs] [script-arg] [/tmp/script] [one]\n")
            .prints("argv[1]=vforked\n")
            .prints("argv[1]=spawned\n")
            .prints("procs exec: ok\n");
        procs(8, &["pipes"])
            .on(arch)
            .exits_with(0)
            .prints("posix-shim: terminated by signal 13")
            .prints("procs pipes: ok\n");
        let share = TempDir::new("processes-files", arch);
        procs(8, &["files", "/data"])
            .share(share.dir(), "data")
            .options("mount=virtiofs:data:/data")
            .on(arch)
            .exits_with(0)
            .prints("procs files: ok\n");
        procs(8, &["offsets", "/data"])
            .share(share.dir(), "data")
            .options("mount=virtiofs:data:/data")
            .on(arch)
            .exits_with(0)
            .prints("procs offsets: ok\n");
        assert_eq!(std::fs::read_dir(share.dir()).map(Iterator::count).unwrap_or(99), 0, "the children's files were removed by the parent");
        // A writable disk: each child's copy writes to an overlay over the parent's live image
        // (QEMU's image locks once refused every child at its start).
        let image = share.path("disk.img");
        xtask::disk::create_ext2(&image, 16 << 20, None, None).unwrap();
        procs(8, &["wait", "2"]).disk(&image, false).options("mount=ext2:vda:/data").on(arch).exits_with(0).prints("procs wait: ok\n");
        std::fs::remove_file(&image).unwrap();
        // The control channel on PCI (virtio-serial-pci, MSI-X): q35 on x86_64, `virt` with
        // PCI devices on aarch64.
        let boot = procs(8, &["wait", "2"]);
        let boot = match arch {
            Arch::X86_64 => boot.machine(Machine::Q35),
            Arch::Aarch64 => boot.transport(VirtioTransport::Pci),
        };
        boot.on(arch).exits_with(0).prints("procs wait: ok\n");
    }
    // A spare QEMU that was starting when its run ended stops as soon as it is up: allow that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut left = process_host_vms();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = process_host_vms();
    }
    assert!(left.is_empty(), "VMs left running after the runs ended: {left:#?}");
}

/// The script an unmodified shell runs in [`busybox_shell_runs_a_script_with_pipes`].
const SCRIPT: &str = "\
echo \"hello from the shell, pid $$\"
echo 'one two three' | tr a-z A-Z
echo redirected > /tmp/out.txt
cat /tmp/out.txt
{ (echo one); (echo two); (echo three); } > /tmp/seq.txt
tr '\\n' ' ' < /tmp/seq.txt; echo
ls /bin | grep -c '^'
false
echo \"false gave $?\"
(exit 7)
echo \"subshell gave $?\"
for i in 1 2 3; do echo \"loop $i\"; done | sort -r | head -n 2
cd /tmp && mkdir -p rel/dir && echo relative > rel/dir/file && ls rel/dir > /dev/null
cat rel/dir/file
df / > /dev/null && echo \"df found the root in /proc/mounts\"
timeout 1 sleep 5
echo \"timeout gave $?\"
exit 5
";

/// Debian's static busybox (glibc, unmodified) as the shell of a virtio-fs root: pipelines of
/// several processes, redirection into a file the next command reads, subshells (also writing
/// in turn through one redirected descriptor, whose offset they share), exit codes,
/// relative paths after `cd` (glibc's busybox passes `AT_FDCWD` zero-extended), `/dev/null`,
/// `df` (which reads `/proc/mounts`) and `timeout` (whose watcher process is orphaned and
/// re-parented to the first process, as to init on Linux).
#[test]
fn busybox_shell_runs_a_script_with_pipes() {
    let _alone = PROCESS_HOSTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for arch in arches() {
        let root = TempDir::new("processes-shell", arch);
        xtask::linux::make_busybox_root(arch, root.dir()).unwrap_or_else(|e| panic!("making the busybox root: {e}"));
        std::fs::write(root.path("script.sh"), SCRIPT).unwrap();
        let booted = Boot::app("elf-runner").processes(16).root_share(root.dir()).args(&["/bin/sh", "/script.sh"]).on(arch);
        // After the boot: elf-runner also unpacks its own initial files into the root's /bin.
        let listed = std::fs::read_dir(root.path("bin")).unwrap().count();
        booted
            .exits_with(5)
            .prints("hello from the shell, pid 1\n")
            .prints("ONE TWO THREE\n")
            .prints("redirected\n")
            // Three subshells, each a process, write through the one redirected descriptor:
            // each continues at the offset the previous one left.
            .prints("one two three \n")
            .prints(&format!("\n{listed}\n"))
            .prints("false gave 1\n")
            .prints("subshell gave 7\n")
            .prints("loop 3\nloop 2\n")
            .prints("\nrelative\n")
            .prints("df found the root in /proc/mounts\n")
            // busybox's timeout leaves an orphan watcher that the first process adopts.
            .prints("timeout gave 143\n")
            .does_not_print("not a child of this process")
            .does_not_print("loop 1");
        assert_eq!(std::fs::read_to_string(root.path("tmp/out.txt")).unwrap(), "redirected\n", "the redirection reached the host's file");
        assert_eq!(std::fs::read_to_string(root.path("tmp/seq.txt")).unwrap(), "one\ntwo\nthree\n", "the subshells' writes follow each other");
    }
}

/// Without the process host (one VM, as every other boot) `fork` fails cleanly.
#[test]
fn fork_without_a_process_host_is_enosys() {
    for arch in arches() {
        Boot::app("elf-runner").args(&["/bin/procs", "wait", "1"]).on(arch).exits_with(1).prints("procs wait: FAIL fork (errno 38");
    }
}
