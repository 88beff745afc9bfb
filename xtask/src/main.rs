//! `./x`: build, boot, test and measure libos. See `./x help`.

use std::process::{Command, ExitCode};
use std::time::Duration;
use xtask::accel::{self, Accel};
use xtask::arch::Arch;
use xtask::disk::Disk;
use xtask::qemu::{self, Exit, Machine, VmConfig};
use xtask::net::{Forward, NetConfig, NetMode};
use xtask::netns::Netns;
use xtask::virtiofs::{self, Cache, ROOT_TAG, Share};
use xtask::{Result, bench, build, root};

const HELP: &str = "\
./x: build, boot, test and measure libos

  ./x run [APP] [OPTIONS] [-- APP-ARGS...]
        Build APP (default: hello), boot it in QEMU, exit with the guest's exit code.
        --arch x86_64|aarch64   guest architecture (default: the host's)
        --accel kvm|tcg         accelerator (default: KVM only if a calibration boot shows it is
                                hardware-accelerated, else TCG)
        --mem SIZE              guest RAM (default 64M)
        --cpus N                virtual CPUs (default 1; QEMU `-smp N`, multi-threaded TCG):
                                the guest starts them all (kernel option `smp=N` caps it) and
                                runs threads on every one
        --machine MACHINE       microvm|microvm-pcie|q35 on x86_64 (default microvm),
                                virt-gicv3|virt-gicv2 on aarch64 (default virt-gicv3)
        --cmdline \"OPTIONS\"     kernel options (loglevel=LEVEL, bootstats, ...)
        --boot-stats            print the boot statistics (adds the `bootstats` option)
        --timeout SECONDS       kill the guest after this long (default: none)
        --share DIR[:TAG]       share a host directory through virtio-fs (repeatable; TAG
                                defaults to the directory's name; the guest mounts it with
                                `--cmdline mount=virtiofs:TAG:/PATH`); starts one virtiofsd per
                                share (built into /var/cache/libos on first use), stopped with
                                the guest
        --disk IMAGE[:ro]       attach the raw disk image IMAGE as a virtio-blk device
                                (repeatable: /dev/vda, /dev/vdb, ... in order; `:ro` read-only);
                                mount an ext2 one with `--cmdline root=ext2:vda` or
                                `mount=ext2:vdb:/data` (needs an image with the `fs-ext2` feature)
        --processes N           run the guest under the process host: each process a VM of its
                                own, `fork` copies the VM (an app built with posix-shim's
                                `processes` feature); at most N at once (fork then fails with
                                EAGAIN). On by default with --elf (16); 0 turns it off
        --no-rng                boot without the default virtio-rng device (the guest's
                                random-number generator then has no seed unless the CPU has a
                                random instruction: getrandom() blocks, see libos::random)
        --root DIR              share DIR as tag `root` and mount it as `/` (root=virtiofs:root)
        --cache auto|never|always|metadata
                                virtiofsd's cache policy for every share (default auto)
        --dax SIZE              give every share a DAX window of SIZE (a power of two, 2M to
                                64G, e.g. 256M): file contents are mapped into guest memory
                                and cached reads send no request. Uses a patched QEMU (built
                                once into /var/cache/libos, about 15 min on two cores) and our
                                own daemon (tools/virtiofsd-dax) instead of virtiofsd; devices
                                attach through PCI (microvm becomes microvm-pcie)
        --net user|user-open|tap
                                give the guest a virtio-net card (PCI on q35/microvm-pcie, else
                                virtio-mmio). user: QEMU's user network (slirp) restricted to
                                itself, guest 10.0.2.15 by DHCP without a gateway (slirp offers
                                none when restricted). user-open: unrestricted, DHCP gateway
                                10.0.2.2, through which the guest can reach what the host can
                                (use with care). tap: a tap
                                in a network namespace made for the run (host end 10.0.2.1/24,
                                guest 10.0.2.15 by the added option ip=10.0.2.15/24,gw=10.0.2.1
                                unless --cmdline has ip=), deleted when QEMU ends or on Ctrl-C;
                                reach the guest with `ip netns exec NAME ...` (printed). Root.
        --forward PROTO:[127.0.0.1:]HOSTPORT:GUESTPORT
                                forward a loopback host port (PROTO tcp or udp) to the guest
                                (repeatable; implies --net user)
        --elf PATH              run the static Linux ELF file PATH (musl or glibc, static-PIE
                                or non-PIE, for --arch) instead of an app: builds elf-runner
                                with PATH packed as /bin/NAME in its initial files; exits with
                                the program's code (126: not a static ELF for this arch)
        --files DIR             with --elf: also pack the tree under DIR into the initial
                                files, from / (DIR/srv/a.conf is /srv/a.conf), e.g.
                                servers/rootfs for the servers' configurations and site
  ./x busybox-root DIR [--arch A]
        Make DIR a root file system with Debian's static busybox (/bin/sh and every applet)
        for --root, e.g. a shell pipeline, each process a VM of its own:
          ./x busybox-root /tmp/bb && ./x run elf-runner --processes 16 --root /tmp/bb \\
              -- /bin/sh -c 'echo hi | tr a-z A-Z; ls /bin | wc -l'
  ./x disk create IMAGE --size SIZE [--from DIR] [--block-size 1024|2048|4096]
        Make IMAGE a fresh ext2 file system of SIZE (64M, 1G, ...) with mke2fs, holding a copy
        of the host directory DIR if given (e2fsprogs installed on first use).
  ./x disk check IMAGE
        Run e2fsck -fn on IMAGE (after a guest wrote to it); exit 1 if it finds a problem.
  ./x build [APP...] [--arch A]
        Build apps (default: all) and print their image paths (x86_64: PVH ELF; aarch64: Linux
        arm64 Image, flattened from the ELF beside it).
  ./x build-server NAME... [--arch x86_64|aarch64|all] [--host-check]
        Build real servers (redis, lighttpd) from their Debian source packages as static musl
        programs, on first use (built once per machine in /var/cache/libos/servers/, copied to
        target/servers/),
        and print the programs' paths. Run one with its files and a forward, e.g.
          ./x run --elf PATH --files servers/rootfs --mem 256M --forward tcp:6379:6379 \\
              -- /srv/redis.conf
        (servers/README.md has both servers' lines). --host-check runs the x86_64 program
        natively on 127.0.0.1 against its own tools (redis-cli and redis-benchmark; curl and
        ab) and prints what they report.
  ./x dax-qemu
        Build QEMU 10.0.2 with the virtio-fs DAX window patches of tools/qemu-dax/ (first use
        only: 8 to 20 minutes on two cores; cached in /var/cache/libos/qemu-10.0.2-dax-KEY/
        for every clone on the machine) and print the paths of its qemu-system-x86_64 and
        qemu-system-aarch64. The window: -device vhost-user-fs-pci,...,cache-size=256M.
  ./x test [--host | --qemu]
        Host unit tests of every pure crate and of the apps' libraries (apps/*/src/lib.rs), the
        fuzz corpus replay and a short run of every fuzz target, then the QEMU integration
        tests (tests/).
  ./x pjdfstest [--arch x86_64|aarch64|all] [--root ramfs|virtiofs|ext2|all] [--no-host] [-- PATTERN...]
        The POSIX file-system test suite pjdfstest (its Rust rewrite, 0.2.2, built as a static
        glibc program on first use, cached in /var/cache/libos) on libos's ramfs, virtio-fs and
        ext2 roots (e2fsck -fn clean afterwards) and natively on the host's file system under
        target/, side by side: counts and every case whose outcome differs from the host's.
        Writes target/pjdfstest/report.md; exits 1 when libos fails a case not known to fail.
  ./x fsx [--arch x86_64|aarch64|all] [--root ramfs|virtiofs|ext2|all] [--ops N] [--seed S]
        The file-system exerciser fsx (its Rust rewrite, 0.3.2, built like pjdfstest) on a
        fresh file of each root: N (default 5000) seeded random reads, writes, mmap reads and
        writes, truncations, syncs, fallocate, hole punching, sendfile, copy_file_range, every
        read checked. Exits 1 when a run finds a difference (its log is printed).
  ./x fuzz [TARGET] [--time S]
        Build the libFuzzer targets of fuzz/ (cpio, dtb, acpi, cmdline, elf, mmap, fuse) with
        sanitizer coverage and fuzz each (or TARGET) for S seconds (default 60), starting from
        the kept corpus fuzz/corpus/TARGET; prints runs, exec/s and coverage. A crash stops with
        the input's path (target/fuzz/artifacts/) and how to keep it as a regression input.
        Boot benchmark: guest instructions to main and to exit (icount), wall time against a
        floor kernel, image size, smallest RAM. Writes bench/results/boot.{json,md,svg}.
  ./x bench fs [--file-mib N] [--compare-mib N] [--compare-files N] [--only-compare] [--no-linux]
        File-system benchmark on ramfs: create/stat/unlink of 10 000 files, sequential I/O of an
        N MiB file (default 256) in 4 KiB and 1 MiB calls, 4 KiB random reads; guest
        instructions per operation (icount). Writes bench/results/fs.{json,md}. Then one table
        of bench/c/fs_tmpfs.c (default 64 MiB, 10 000 files) on libos ramfs, ext2 on virtio-blk
        and virtio-fs, and on the Linux guest's tmpfs, ext2 and virtio-fs: instructions and
        exits per operation. Writes bench/results/fs-compare.{json,md}.
  ./x bench block [--arch x86_64|aarch64|all] [--reads N] [--runs N] [--no-linux]
        The seed's block workload: bench/c/block_read.c (512-byte O_DIRECT reads of a raw
        virtio-blk disk, default 100 000 on x86_64, 10 000 on aarch64) on libos and in the Linux
        guest: busy instructions (idle subtracted), exits and interrupts per read (icount +
        trace events), wall per read (TCG). Writes bench/results/block.{json,md}.
  ./x bench sched
        Scheduler benchmark: guest instructions per yield switch and per spawn+join (icount),
        timer interrupts of an idle sleeping thread, both arches and policies. Writes
        bench/results/sched.{json,md}.
  ./x bench shim [--no-linux]
        posix-shim benchmark: guest instructions (icount) per null system call, 4 KiB pread and
        open/fstat/read/close of bench/c/shim_ops.c on libos (apps/c-bench) and in the Linux
        guest on tmpfs. Writes bench/results/shim.{json,md}.
  ./x bench virtiofs [--file-mib N] [--files N] [--no-linux]
        virtio-fs benchmark: the fsbench workloads on a virtio-fs share (host tmpfs, virtiofsd
        --cache=never and auto) and on ramfs in one boot, and bench/c/fs_tmpfs.c on the same kind
        of share in the Linux guest: guest instructions, FUSE requests and bytes, notifications
        and interrupts per operation (icount), MiB/s (TCG). Default: the seed workload (1024 MiB
        file, ten files of a tenth of it, 10 000 files). Writes bench/results/virtiofs.*.
  ./x bench linux [--arch x86_64|aarch64|all] [--runs N] [--only boot,syscall,block,icmp]
                  [--block-reads N] [--pings N]
        Linux guest baseline (Debian kernel + busybox, built and cached under
        target/linux-baseline/) running the C programs of bench/c/: instructions (icount),
        device traffic (QEMU trace events), wall time (TCG). The ICMP workload needs root (it
        creates a network namespace with a tap, deleted afterwards). Writes bench/results/linux.*.
  ./x bench net [--arch x86_64|aarch64|all] [--only icmp,tcp,tcp-c,scale] [--pings N]
                [--stream-mib N] [--rounds N] [--no-linux] [--no-scale]
        Network benchmark against the Linux guest in the same run, same card (virtio-net-pci
        on q35, virtio-mmio on virt): the ICMP echo workload (host `ping -f`, payloads 1, 512,
        1024, 1472; virtual ns (icount) and exits per echo, packets/s (TCG)); TCP stream both
        ways (default 256 MiB), 1-byte round trips and 4 KiB HTTP GETs (default 20 000),
        apps/netecho bench vs bench/c/tcp_bench.c: busy instructions and exits per MiB or round
        trip; the same tcp_bench.c file run on libos through posix-shim (tcp-c: round trips
        and GETs); TCP round trips with 1 to 10 000 open connections. Needs root (a network namespace
        with a tap, deleted afterwards). Writes bench/results/net.{json,md}.
  ./x bench servers [--arch x86_64|aarch64|all] [--requests N] [--runs N] [--no-linux]
        A real server with its own benchmark tool: the same static redis-server on libos
        (posix-shim) and in the Linux guest, same card and tap, driven by the host's
        redis-benchmark -t set|get -n N (default 20 000) -c 1 -P 1: instructions per request
        (QEMU's icount over QMP, halted time excluded), exits per request (device trace),
        requests/s (TCG, median of 5). Needs root. Writes bench/results/servers.{json,md}.
  ./x bench process [--arch x86_64|aarch64|all] [--runs N] [--no-linux]
        Processes, each a VM (the process host), against the Linux guest: bench/c/process_ops.c
        forks 20 times (fork + exit + wait) and pipes 64 MiB between two processes; wall time
        (TCG, median of N runs, default 3) with the host's save and load times, then guest
        instructions (icount) per fork and per MiB and exits per MiB (one trace log per QEMU).
        Writes bench/results/process.{json,md}.
  ./x bench all
        Every suite, then bench/results/README.md.
  ./x bench --compare [SUITE]
        The change of every figure against the previous results (<suite>.prev.json).
  ./x help
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("./x: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<i32> {
    let mut args = std::env::args().skip(1);
    let verb = args.next().unwrap_or_else(|| "help".into());
    let rest: Vec<String> = args.collect();
    match verb.as_str() {
        "run" => run_verb(rest),
        "build" => build_verb(rest),
        "build-server" => build_server_verb(rest),
        "disk" => disk_verb(rest),
        "busybox-root" => busybox_root_verb(rest),
        "test" => test_verb(rest),
        "bench" => bench::main(rest),
        "fuzz" => xtask::fuzz::main(rest),
        "pjdfstest" => pjdfstest_verb(rest),
        "fsx" => fsx_verb(rest),
        "dax-qemu" => xtask::dax_qemu::main(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(0)
        }
        other => Err(format!("unknown verb `{other}`; see ./x help").into()),
    }
}

fn busybox_root_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut arch = Arch::host();
    let mut dir = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => arch = parser.value()?.parse()?,
            Value(value) if dir.is_none() => dir = Some(std::path::PathBuf::from(value)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let dir = dir.ok_or("usage: ./x busybox-root DIR [--arch A]")?;
    xtask::linux::make_busybox_root(arch, &dir)?;
    eprintln!("==> {}: busybox for {arch} with its applets in bin/", dir.display());
    Ok(0)
}

fn run_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut app = None;
    let mut arch = Arch::host();
    let mut accel_request = None;
    let mut memory = "64M".to_string();
    let mut cpus = 1u32;
    let mut machine = None;
    let mut options = String::new();
    let mut boot_stats = false;
    let mut timeout = None;
    let mut shares = Vec::new();
    let mut root_dir = None;
    let mut cache = None;
    let mut app_args = Vec::new();
    let mut elf = None;
    let mut files = None;
    let mut net_mode = None;
    let mut forwards = Vec::new();
    let mut disks = Vec::new();
    let mut rng = true;
    let mut processes = None;
    let mut explicit_processes = false;
    let mut dax = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => arch = parser.value()?.parse()?,
            Long("elf") => elf = Some(std::path::PathBuf::from(parser.value()?)),
            Long("files") => files = Some(std::path::PathBuf::from(parser.value()?)),
            Long("accel") => accel_request = Some(parser.value()?.parse::<Accel>()?),
            Long("mem") => memory = parser.value()?.string()?,
            Long("cpus") => {
                cpus = parser.value()?.parse()?;
                if !(1..=64).contains(&cpus) {
                    return Err(format!("--cpus {cpus}: give 1 to 64").into());
                }
            }
            Long("machine") => machine = Some(parser.value()?.parse::<Machine>()?),
            Long("cmdline") => options = parser.value()?.string()?,
            Long("boot-stats") => boot_stats = true,
            Long("no-rng") => rng = false,
            Long("processes") => {
                let limit: usize = parser.value()?.parse()?;
                processes = Some(limit);
                explicit_processes = true;
                if limit == 0 {
                    processes = None; // one VM, no process host
                }
            }
            Long("timeout") => timeout = Some(Duration::from_secs_f64(parser.value()?.parse()?)),
            Long("share") => shares.push(Share::parse(&parser.value()?.string()?)?),
            Long("root") => root_dir = Some(parser.value()?.string()?),
            Long("cache") => cache = Some(parser.value()?.parse::<Cache>()?),
            Long("dax") => {
                let size = xtask::disk::parse_size(&parser.value()?.string()?)?;
                virtiofs::check_dax_window(size)?;
                dax = Some(size);
            }
            Long("net") => net_mode = Some(parser.value()?.parse::<NetMode>()?),
            Long("disk") => disks.push(Disk::parse(&parser.value()?.string()?)?),
            Long("forward") => forwards.push(Forward::parse(&parser.value()?.string()?)?),
            Value(value) if app.is_none() => app = Some(value.string()?),
            Value(value) => app_args.push(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    // lexopt hands everything after `--` back as values; they are the app's arguments.
    if let (Some(_), Some(app)) = (&elf, &app) {
        // Without `--`, lexopt takes the first value as the app: with --elf it is an argument.
        app_args.insert(0, app.clone());
    }
    let app = if elf.is_some() { build::ELF_RUNNER.to_string() } else { app.unwrap_or_else(|| "hello".into()) };
    let elf = match &elf {
        Some(path) => {
            let path = std::fs::canonicalize(path).map_err(|e| format!("--elf {}: {e}", path.display()))?;
            let name = path.file_name().and_then(|n| n.to_str()).ok_or("--elf: the file name is not UTF-8")?;
            app_args.insert(0, format!("/bin/{name}"));
            Some(path)
        }
        None => None,
    };
    if boot_stats {
        options = format!("bootstats {options}");
    }
    if let Some(dir) = root_dir {
        let share = Share::new(dir, ROOT_TAG);
        share.check()?;
        shares.insert(0, share);
        options = format!("root=virtiofs:{ROOT_TAG} {options}");
    }
    if let Some(cache) = cache {
        shares.iter_mut().for_each(|s| s.cache = cache);
    }
    if let Some(size) = dax {
        if shares.is_empty() {
            return Err("--dax gives shares a window: add --share DIR or --root DIR".into());
        }
        shares.iter_mut().for_each(|s| s.dax = Some(size));
    }
    virtiofs::check_unique_tags(&shares)?;
    let net_mode = xtask::net::resolve_mode(net_mode, &forwards)?;
    if net_mode == Some(NetMode::Tap) {
        options = xtask::net::with_tap_address(&options);
    }
    let machine = machine.unwrap_or_else(|| Machine::default_for(arch));
    if machine.arch() != arch {
        return Err(format!("--machine {} is for {}, not {arch}", machine.name(), machine.arch()).into());
    }
    let files = match (&files, &elf) {
        (Some(_), None) => return Err("--files needs --elf (it adds files to elf-runner's initial RAM archive)".into()),
        (Some(dir), Some(_)) if !dir.is_dir() => return Err(format!("--files {}: not a directory", dir.display()).into()),
        (Some(dir), Some(_)) => Some(std::fs::canonicalize(dir)?),
        (None, _) => None,
    };
    let image = match &elf {
        Some(program) => build::elf_runner_with(arch, false, Some(program), files.as_deref())?,
        None => build::build(&[&app], arch, false)?.remove(0),
    };
    let choice = accel::choose(arch, accel_request)?;
    eprintln!("==> booting {app} on {} {arch} with {}", machine.name(), choice.reason);
    let mut config = VmConfig::new(arch, image);
    config.accel = choice.accel;
    config.machine = machine;
    config.memory = memory;
    config.cpus = cpus;
    config.cmdline = qemu::kernel_cmdline(&options, &app_args);
    config.timeout = timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    config.shares = shares;
    config.disks = disks;
    config.rng = rng;
    // A static ELF program may fork: elf-runner is built with processes, on by default unless
    // `--processes` says otherwise (`0`: off) or a DAX window is asked for (forks copy a VM,
    // not the host's mappings into its window; see qemu::with_dax_host).
    config.processes = match (explicit_processes, elf.is_some() && dax.is_none()) {
        (false, true) => Some(xtask::process::DEFAULT_LIMIT),
        _ => processes,
    };
    // Ctrl-C reaches QEMU through the terminal; the daemons and the namespace must not outlive
    // it either (nor a SIGTERM to ./x).
    xtask::netns::install_interrupt_handler();
    // Deleted when this function returns: QEMU ended, was killed, or starting it failed.
    let mut _netns = None;
    match net_mode {
        None => {}
        Some(mode @ (NetMode::User | NetMode::UserOpen)) => {
            if mode == NetMode::User {
                config.net = Some(NetConfig::user(forwards.clone()));
                eprintln!("==> network: QEMU user network, restricted: guest 10.0.2.15 by DHCP, no gateway");
            } else {
                config.net = Some(NetConfig::user_open(forwards.clone()));
                eprintln!("==> network: QEMU user network, unrestricted: guest 10.0.2.15 by DHCP, gateway 10.0.2.2");
            }
            for forward in &forwards {
                eprintln!("    {}:{}:{} -> guest port {}", forward.protocol.name(), forward.host_address, forward.host_port, forward.guest_port);
            }
        }
        Some(NetMode::Tap) => {
            let netns = Netns::create("run")?;
            config.launcher = netns.launcher();
            config.net = Some(NetConfig::tap(xtask::netns::TAP));
            eprintln!(
                "==> network: tap {} in namespace {} (host {}, guest {}); try `ip netns exec {} ping {}`",
                xtask::netns::TAP,
                netns.name,
                xtask::netns::HOST_ADDRESS,
                xtask::netns::GUEST_ADDRESS,
                netns.name,
                xtask::netns::GUEST_IP
            );
            _netns = Some(netns);
        }
    }
    if !config.shares.is_empty() {
        for share in &config.shares {
            match share.dax {
                None => eprintln!("==> sharing {} as virtio-fs tag `{}` (virtiofsd --cache={})", share.dir.display(), share.tag, share.cache.name()),
                Some(size) => eprintln!(
                    "==> sharing {} as virtio-fs tag `{}` with a {} MiB DAX window ({} --cache={})",
                    share.dir.display(),
                    share.tag,
                    size >> 20,
                    virtiofs::DAX_DAEMON,
                    share.cache.name()
                ),
            }
        }
    }
    let outcome = qemu::run(&config, true)?;
    if outcome.console.contains("backtrace:") {
        // aarch64 boots a raw Image: the symbols are in the ELF beside it, linked at 0.
        let (elf, offset) = match arch {
            Arch::X86_64 => (config.image.clone(), 0),
            Arch::Aarch64 => (build::elf_path(&app, arch), xtask::elf::reported_load_address(&outcome.console).unwrap_or(0)),
        };
        let symbols = xtask::elf::function_symbols(&std::fs::read(&elf)?);
        let lines = xtask::elf::symbolize_backtrace_at(&outcome.console, &symbols, offset);
        if !lines.is_empty() {
            eprintln!("==> backtrace with symbols from {}:", elf.display());
            for line in lines {
                eprintln!("{line}");
            }
        }
    }
    match &outcome.exit {
        Exit::Code(_) => {}
        Exit::NoCode => eprintln!("./x: the guest stopped without reporting an exit code (reset or triple fault?)"),
        Exit::Timeout => eprintln!("./x: killed the guest after {:?}", config.timeout),
        Exit::QemuFailed(status, _) => eprintln!("./x: QEMU failed (status {status:?}); command: {:?}", config.command()),
    }
    if boot_stats {
        eprintln!("==> QEMU process wall time: {:.1?} ({})", outcome.wall, choice.accel);
    }
    Ok(outcome.process_code())
}

fn build_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut arch = Arch::host();
    let mut apps = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => arch = parser.value()?.parse()?,
            Value(value) => apps.push(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if apps.is_empty() {
        apps = build::apps();
    }
    let names: Vec<&str> = apps.iter().map(String::as_str).collect();
    for image in build::build(&names, arch, false)? {
        println!("{}", image.display());
    }
    Ok(0)
}

fn build_server_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut arches = vec![Arch::host()];
    let mut names = Vec::new();
    let mut host_check = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => {
                let value = parser.value()?.string()?;
                arches = Arch::parse_list(&value)?;
            }
            Long("host-check") => host_check = true,
            Value(value) => names.push(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if names.is_empty() {
        return Err("which server? (./x build-server redis|lighttpd ...)".into());
    }
    for name in &names {
        let server = xtask::servers::find(name)?;
        for &arch in &arches {
            println!("{}", server.build(arch)?.display());
        }
        if host_check {
            eprintln!("==> {name}: native check on 127.0.0.1");
            eprint!("{}", xtask::servers::host_check::run(server)?);
        }
    }
    Ok(0)
}

fn cargo_test(args: &[&str]) -> Result<bool> {
    cargo_test_with_env(args, &[])
}

fn cargo_test_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<bool> {
    let status = Command::new(build::cargo())
        .current_dir(root())
        .arg("test")
        .args(["--target-dir", "target/host"])
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    Ok(status.success())
}

/// What the QEMU tests run on the host, built or installed once before them: virtiofsd (the
/// virtio-fs tests start it), the DAX tests' daemon and patched QEMU (built once into
/// `/var/cache/libos`, so later clones on the machine reuse it) and the real servers (redis,
/// lighttpd) for every architecture (built once per machine, copied to `target/servers/`; a test would otherwise
/// build them inside its time), and the pjdfstest suite for every architecture (cached in
/// `/var/cache/libos`).
fn tools_for_tests(arches: &[Arch]) -> Result<()> {
    virtiofs::ensure_virtiofsd()?;
    virtiofs::ensure_dax_daemon()?;
    for &arch in arches {
        xtask::dax_qemu::ensure(arch)?;
    }
    for server in [&xtask::servers::REDIS, &xtask::servers::LIGHTTPD] {
        for &arch in arches {
            server.build(arch)?;
        }
    }
    for tool in [&xtask::pjdfstest::TOOL, &xtask::fsx::TOOL] {
        for &arch in arches {
            xtask::outside::ensure(tool, arch)?;
        }
    }
    Ok(())
}

fn fsx_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    use xtask::outside::Root;
    let mut parser = lexopt::Parser::from_args(args);
    let mut arches = vec![Arch::X86_64, Arch::Aarch64];
    let mut roots = Root::ALL.to_vec();
    let mut ops = 5000;
    let mut seed = 1;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => arches = Arch::parse_list(&parser.value()?.string()?)?,
            Long("root") => roots = Root::parse_list(&parser.value()?.string()?)?,
            Long("ops") => ops = parser.value()?.parse()?,
            Long("seed") => seed = parser.value()?.parse()?,
            _ => return Err(arg.unexpected().into()),
        }
    }
    xtask::fsx::main(&arches, &roots, ops, seed)
}

fn pjdfstest_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    use xtask::outside::Root;
    let mut parser = lexopt::Parser::from_args(args);
    let mut arches = vec![Arch::X86_64, Arch::Aarch64];
    let mut roots = Root::ALL.to_vec();
    let mut host = true;
    let mut patterns = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => arches = Arch::parse_list(&parser.value()?.string()?)?,
            Long("root") => roots = Root::parse_list(&parser.value()?.string()?)?,
            Long("no-host") => host = false,
            Value(value) => patterns.push(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    xtask::pjdfstest::compare(&arches, &roots, host, &patterns)
}

fn disk_verb(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut action = None;
    let mut image = None;
    let mut size = None;
    let mut from = None;
    let mut block_size = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("size") => size = Some(xtask::disk::parse_size(&parser.value()?.string()?)?),
            Long("from") => from = Some(std::path::PathBuf::from(parser.value()?)),
            Long("block-size") => block_size = Some(parser.value()?.parse::<u32>()?),
            Value(value) if action.is_none() => action = Some(value.string()?),
            Value(value) if image.is_none() => image = Some(std::path::PathBuf::from(value)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let image = image.ok_or("./x disk: which image? (see ./x help)")?;
    match action.as_deref() {
        Some("create") => {
            let size = size.ok_or("./x disk create: --size is required")?;
            xtask::disk::create_ext2(&image, size, from.as_deref(), block_size)?;
            eprintln!("==> {}: ext2, {} MiB; attach it with ./x run APP --disk {}", image.display(), size >> 20, image.display());
            Ok(0)
        }
        Some("check") => match xtask::disk::check_ext2(&image)? {
            Ok(()) => {
                eprintln!("==> {}: e2fsck -fn found no problem", image.display());
                Ok(0)
            }
            Err(report) => {
                eprintln!("{report}");
                Ok(1)
            }
        },
        _ => Err("./x disk create|check IMAGE ... (see ./x help)".into()),
    }
}

fn test_verb(args: Vec<String>) -> Result<i32> {
    let host = !args.iter().any(|a| a == "--qemu");
    let qemu = !args.iter().any(|a| a == "--host");
    if let Some(bad) = args.iter().find(|a| *a != "--qemu" && *a != "--host") {
        return Err(format!("unknown test option `{bad}` (expected --host or --qemu)").into());
    }
    let arches: Vec<Arch> = Arch::ALL.into_iter().filter(|a| a.is_supported()).collect();
    // Everything the tests install comes first, one apt at a time: the ext2 tests (host and
    // QEMU) make volumes with mke2fs and check them with e2fsck; the guest builds need musl
    // and the ELF samples' compilers; the network tests ping, shape traffic (tc netem) and
    // fetch pages with curl.
    xtask::disk::ensure_e2fsprogs()?;
    if qemu {
        xtask::linux::ensure_musl(&arches)?;
        xtask::linux::ensure_elf_samples()?;
        xtask::linux::ensure_net_tools()?;
    }
    std::thread::scope(|scope| {
        // The QEMU tests' images and host programs are built while the host tests run: those
        // spend long stretches on one core (a long ext2 test, the libFuzzer runs, links), and
        // the guest builds fill the other. Quiet then, so the tests' output stays readable.
        let builds = qemu.then(|| scope.spawn(|| build_for_qemu_tests(&arches, host)));
        let mut ok = true;
        if host {
            ok &= host_tests()?;
        }
        if let Some(builds) = builds {
            builds.join().unwrap_or_else(|_| Err("a build thread panicked".into()))?;
            eprintln!("==> QEMU integration tests");
            // Every image was built above: the test binaries need not check again
            // (`libos_tests::IMAGES_BUILT_ENV`).
            ok &= cargo_test_with_env(&["-p", "libos-tests"], &[("LIBOS_TEST_IMAGES_BUILT", "1")])?;
        }
        Ok(if ok { 0 } else { 1 })
    })
}

/// The host unit tests of every pure crate, the fuzz corpus replay and a short libFuzzer run
/// of every target. `Ok(false)` when a test failed.
fn host_tests() -> Result<bool> {
    eprintln!("==> host unit tests");
    let mut ok = cargo_test(&[])?;
    // `libos::fs` exists only with a file-system feature, `libos::block` with `blk`: test
    // them too.
    eprintln!("==> host unit tests of libos with fs-ramfs and fs-ext2");
    ok &= cargo_test(&["-p", "libos", "--features", "fs-ramfs,fs-ext2"])?;
    // Apps are bare-metal binaries outside the default members; their libraries are not.
    let app_libraries = build::apps_with_host_tests();
    if !app_libraries.is_empty() {
        eprintln!("==> host unit tests of the apps' libraries ({})", app_libraries.join(", "));
        let mut args = vec!["--lib"];
        for app in &app_libraries {
            args.extend(["-p", app.as_str()]);
        }
        ok &= cargo_test(&args)?;
    }
    // The fuzz crate is not a default member (its binaries need libFuzzer): its corpus
    // replay runs here, then a short libFuzzer run of every target.
    eprintln!("==> fuzz corpus replay and smoke runs ({} s per target)", xtask::fuzz::SMOKE_SECONDS);
    ok &= cargo_test(&["-p", "libos-fuzz"])?;
    ok &= xtask::fuzz::smoke()?;
    Ok(ok)
}

/// Every app for every architecture, both architectures at once (each has its own target
/// directory), and the host programs the QEMU tests need beside them: much of a guest build is
/// one LTO link on one core, so builds side by side keep both cores busy. `quiet`: cargo
/// prints only warnings and errors.
fn build_for_qemu_tests(arches: &[Arch], quiet: bool) -> Result<()> {
    let apps = build::apps();
    let names: Vec<&str> = apps.iter().map(String::as_str).collect();
    if quiet {
        let arch_names: Vec<&str> = arches.iter().map(|a| a.name()).collect();
        eprintln!("==> building {} for {} alongside the host tests (quiet)", names.join(", "), arch_names.join(" and "));
    }
    std::thread::scope(|scope| {
        let builds: Vec<_> = arches
            .iter()
            .map(|&arch| {
                let names = &names;
                scope.spawn(move || build::build(names, arch, quiet).map(drop).map_err(|e| e.to_string()))
            })
            .chain([scope.spawn(|| tools_for_tests(arches).map_err(|e| e.to_string()))])
            .collect();
        builds.into_iter().try_for_each(|b| b.join().unwrap_or_else(|_| Err("a build thread panicked".into())))
    })?;
    Ok(())
}
