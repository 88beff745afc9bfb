//! Real, unmodified servers on libos, on both architectures: redis and lighttpd built from
//! their Debian source packages as static musl programs (`xtask::servers`), booted in
//! elf-runner images with their configuration and site from `servers/rootfs/` in the initial
//! files, reached through QEMU user-network forwards on 127.0.0.1, and driven by their own
//! projects' tools on the host:
//!
//! - redis (`redis-server /srv/redis.conf`): `redis-cli ping`, a SET/GET round trip of a value
//!   with spaces, `redis-benchmark` (a few hundred requests), then `redis-cli shutdown
//!   nosave`, after which the guest must exit 0;
//! - lighttpd (`lighttpd -D -f /srv/lighttpd.conf`): `curl` of `/4k.txt` compared byte for byte
//!   with `servers/rootfs/srv/www/4k.txt`, a 404, then `ab` with new connections and with
//!   keep-alive, no failed request.
//!
//! Bounded: each guest is killed after 5 minutes, the ready line must come within 2, each tool
//! runs under `timeout 120`, a few hundred requests per tool (QEMU's user network stalls
//! under heavy connection churn). The figures printed are TCG wall-clock, for orientation only.
//!
//! The first run builds the servers (about 2 minutes for both, both arches; cached under
//! `target/servers/`) and installs the tools (redis-tools, apache2-utils, curl).

use libos_tests::{Boot, Started, arches, free_port};
use std::process::Command;
use std::time::Duration;
use xtask::arch::Arch;
use xtask::net::{Forward, Protocol};
use xtask::servers::{LIGHTTPD, REDIS, Server};

/// How long a server may take from boot to its ready line (TCG; aarch64 is the slower).
const UP: Duration = Duration::from_secs(120);

/// Starts `server` on `arch` with `args` after its program's path, its `guest_port`
/// forwarded from a free loopback port; returns the boot and the host port once the server
/// printed its ready line.
fn start(server: &Server, arch: Arch, args: &[&str], guest_port: u16) -> (Started, u16) {
    let image = server.guest_image(arch).unwrap_or_else(|e| panic!("building the {} image for {arch}: {e}", server.name));
    let port = free_port();
    let program = format!("/bin/{}", server.program);
    let mut all_args = vec![program.as_str()];
    all_args.extend_from_slice(args);
    let started = Boot::app(server.name)
        .with_image(image)
        .args(&all_args)
        .net_user(&[Forward::new(Protocol::Tcp, port, guest_port)])
        .memory("256M")
        .timeout(Duration::from_secs(300))
        .start(arch);
    // Waits for the ready line, but not for a guest that already ended (libos says so).
    let deadline = std::time::Instant::now() + UP;
    loop {
        let console = started.console();
        if console.contains(server.ready) {
            return (started, port);
        }
        if console.contains("libos: exit code") {
            started.fail(&format!("{} ended before printing {:?}", server.program, server.ready));
        }
        if std::time::Instant::now() > deadline {
            started.fail(&format!("no {:?} within {UP:?}", server.ready));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a host tool under `timeout 120`; fails the test (with the guest's console) unless it
/// exits 0. Returns its standard output.
fn tool(started: &Started, program: &str, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("120")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| started.fail(&format!("cannot run {program}: {e}")));
    if !output.status.success() {
        started.fail(&format!("`{program} {}` failed ({}): {}", args.join(" "), output.status, String::from_utf8_lossy(&output.stderr)));
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn redis_serves_redis_cli_and_redis_benchmark() {
    REDIS.ensure_clients().unwrap_or_else(|e| panic!("installing redis-tools: {e}"));
    for arch in arches() {
        let (started, port) = start(&REDIS, arch, &["/srv/redis.conf"], 6379);
        let port = port.to_string();
        let cli = |args: &[&str]| {
            let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str()];
            all.extend_from_slice(args);
            tool(&started, "redis-cli", &all).trim().to_string()
        };
        assert_eq!(cli(&["ping"]), "PONG", "{arch}: redis-cli ping");
        assert_eq!(cli(&["set", "libos", "a value with spaces"]), "OK", "{arch}: SET");
        assert_eq!(cli(&["get", "libos"]), "a value with spaces", "{arch}: GET after SET");
        assert_eq!(cli(&["dbsize"]), "1", "{arch}: DBSIZE");
        let bench = tool(&started, "redis-benchmark", &["-h", "127.0.0.1", "-p", &port, "-q", "-n", "300", "-c", "4", "-t", "ping,set,get"]);
        // -q still draws progress with carriage returns: each line's last part is the result.
        let results: Vec<&str> = bench.lines().map(|l| l.rsplit('\r').next().unwrap_or(l).trim()).filter(|l| !l.is_empty()).collect();
        for test in ["PING_INLINE", "SET", "GET"] {
            if !results.iter().any(|l| l.starts_with(&format!("{test}: ")) && l.contains("requests per second")) {
                started.fail(&format!("redis-benchmark printed no {test} result:\n{bench}"));
            }
        }
        eprintln!("{arch} (TCG): redis-benchmark -n 300 -c 4: {}", results.join("; "));
        // The server exits as it shuts down: redis-cli sees the connection close, not a reply.
        let _ = Command::new("timeout").args(["60", "redis-cli", "-h", "127.0.0.1", "-p", &port, "shutdown", "nosave"]).output();
        started.finish().exits_with(0).prints("Redis is now ready to exit, bye bye...");
    }
}

#[test]
fn lighttpd_serves_curl_and_ab() {
    LIGHTTPD.ensure_clients().unwrap_or_else(|e| panic!("installing apache2-utils and curl: {e}"));
    let expected = std::fs::read(xtask::servers::rootfs().join("srv/www/4k.txt")).expect("servers/rootfs/srv/www/4k.txt");
    assert_eq!(expected.len(), 4096);
    for arch in arches() {
        let (started, port) = start(&LIGHTTPD, arch, &["-D", "-f", "/srv/lighttpd.conf"], 8080);
        let url = format!("http://127.0.0.1:{port}/4k.txt");
        let body = dir_for(arch).join("4k.txt");
        let body_path = body.to_str().expect("UTF-8 path");
        let code = tool(&started, "curl", &["--silent", "--max-time", "60", "--output", body_path, "--write-out", "%{http_code}", &url]);
        let got = std::fs::read(&body).unwrap_or_default();
        if code != "200" || got != expected {
            started.fail(&format!("curl {url}: status {code}, {} bytes (expected 200 and the file's 4096 bytes)", got.len()));
        }
        let missing = format!("http://127.0.0.1:{port}/missing");
        let code = tool(&started, "curl", &["--silent", "--max-time", "60", "--output", "/dev/null", "--write-out", "%{http_code}", &missing]);
        assert_eq!(code, "404", "{arch}: curl of a missing file");
        for keep_alive in [false, true] {
            let mut args = vec!["-n", "200", "-c", "4"];
            if keep_alive {
                args.push("-k");
            }
            args.push(&url);
            let output = tool(&started, "ab", &args);
            let field = |name: &str| output.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("?").to_string();
            if field("Complete requests:") != "200" || field("Failed requests:") != "0" || output.contains("Non-2xx") {
                started.fail(&format!("ab {}: not 200 good answers:\n{output}", args.join(" ")));
            }
            eprintln!("{arch} (TCG): ab {}: {} requests/s", args.join(" "), field("Requests per second:"));
        }
        started.stop();
    }
}

/// A scratch directory for what the host tools fetch from `arch`'s guest.
fn dir_for(arch: Arch) -> std::path::PathBuf {
    let dir = xtask::servers::cache_dir().join("test").join(arch.name());
    std::fs::create_dir_all(&dir).expect("creating the test's scratch directory");
    dir
}
