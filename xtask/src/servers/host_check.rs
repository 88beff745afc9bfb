//! The native check (`./x build-server NAME --host-check`): runs a server's x86_64 program on
//! this host, on 127.0.0.1 and a free port, and drives it with its project's own tools, the way
//! the integration tests will drive it in the guest. It separates "the build is broken" from
//! "libos is missing something" before any guest runs.
//!
//! - redis: the guest's `redis.conf` with the port and address replaced; `redis-cli ping`, a SET/GET round trip, `redis-benchmark -q -n 1000`, then
//!   `redis-cli shutdown nosave`, after which the server must exit 0;
//! - lighttpd: the guest's configuration with `/srv` pointing at `servers/rootfs/srv` and the
//!   port and address replaced; `curl` of `/4k.txt` compared byte for byte with the file, a 404,
//!   then `ab -n 1000 -c 10` (new connections) and `ab -k` (keep-alive), no failed request.
//!
//! Every wait is bounded; the server is killed by its PID if a step fails.

use super::{LIGHTTPD, REDIS, Server};
use crate::Result;
use crate::arch::Arch;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A server process, killed when dropped unless it already ended.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until the file `log` contains `text`.
fn wait_for(log: &Path, text: &str, server: &mut Running) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let seen = std::fs::read_to_string(log).unwrap_or_default();
        if seen.contains(text) {
            return Ok(());
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            return Err(format!("the server exited ({status}) before saying {text:?}:\n{seen}").into());
        }
        if Instant::now() > deadline {
            return Err(format!("no {text:?} from the server within {READY_TIMEOUT:?}:\n{seen}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a client tool, bounded by `timeout(1)`; fails unless it exits 0. Returns its stdout.
fn client(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!("`{program} {}` failed ({}): {}", args.join(" "), output.status, String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A scratch directory for the check's logs and configuration.
fn scratch(server: &Server) -> Result<PathBuf> {
    let dir = super::cache_dir().join("host-check").join(server.name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Builds the x86_64 program if needed and checks it natively; returns a summary.
pub fn run(server: &Server) -> Result<String> {
    if Arch::host() != Arch::X86_64 {
        return Err("the native check runs the x86_64 programs: this host is not x86_64".into());
    }
    let program = server.build(Arch::X86_64)?;
    server.ensure_clients()?;
    match server.name {
        "redis" => check_redis(&program),
        "lighttpd" => check_lighttpd(&program),
        other => Err(format!("no native check for {other}").into()),
    }
}

fn check_redis(program: &Path) -> Result<String> {
    let dir = scratch(&REDIS)?;
    let log = dir.join("server.log");
    let port = free_port()?.to_string();
    let config = super::rootfs().join("srv/redis.conf");
    let mut server = Running(
        Command::new(program)
            .arg(&config)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.join("server.stderr"))?)
            .spawn()?,
    );
    wait_for(&log, REDIS.ready, &mut server)?;
    let mut summary = String::new();
    let ping = client("redis-cli", &["-p", &port, "ping"])?;
    if ping.trim() != "PONG" {
        return Err(format!("redis-cli ping answered {ping:?}").into());
    }
    client("redis-cli", &["-p", &port, "set", "libos", "round trip"])?;
    let got = client("redis-cli", &["-p", &port, "get", "libos"])?;
    if got.trim() != "round trip" {
        return Err(format!("GET returned {got:?} after SET \"round trip\"").into());
    }
    summary.push_str("redis-cli ping: PONG; SET/GET round trip: ok\nredis-benchmark -q -n 1000:\n");
    let bench = client("redis-benchmark", &["-p", &port, "-q", "-n", "1000"])?;
    // -q still draws progress with carriage returns: keep what each line ends with.
    for line in bench.lines().map(|l| l.rsplit('\r').next().unwrap_or(l).trim()).filter(|l| !l.is_empty()) {
        summary.push_str(&format!("  {line}\n"));
    }
    // redis exits by itself on SHUTDOWN, so redis-cli sees the connection close, not a reply.
    let _ = client("redis-cli", &["-p", &port, "shutdown", "nosave"]);
    let deadline = Instant::now() + READY_TIMEOUT;
    let status = loop {
        if let Some(status) = server.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("redis-server did not exit after SHUTDOWN NOSAVE".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(format!("redis-server exited with {status} after SHUTDOWN NOSAVE").into());
    }
    summary.push_str("redis-cli shutdown nosave: redis-server exited 0\n");
    Ok(summary)
}

/// The guest's lighttpd configuration, made to run on the host: `/srv` is `srv`, the server
/// listens on 127.0.0.1:`port`.
pub fn host_lighttpd_config(config: &str, srv: &Path, port: u16) -> String {
    let mut out = String::new();
    for line in config.lines() {
        if line.trim_start().starts_with("server.port") {
            out.push_str(&format!("server.port = {port}\nserver.bind = \"127.0.0.1\"\n"));
        } else {
            out.push_str(&line.replace("\"/srv", &format!("\"{}", srv.display())));
            out.push('\n');
        }
    }
    out
}

fn ab_summary(output: &str) -> String {
    output
        .lines()
        .filter(|l| ["Complete requests", "Failed requests", "Non-2xx", "Requests per second", "Keep-Alive requests"].iter().any(|k| l.starts_with(k)))
        .map(|l| format!("  {}\n", l.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

fn check_lighttpd(program: &Path) -> Result<String> {
    let dir = scratch(&LIGHTTPD)?;
    let srv = super::rootfs().join("srv");
    let port = free_port()?;
    let config_text = std::fs::read_to_string(srv.join("lighttpd.conf"))?;
    let config = dir.join("lighttpd.conf");
    std::fs::write(&config, host_lighttpd_config(&config_text, &srv, port))?;
    let log = dir.join("server.log");
    let mut server = Running(
        Command::new(program)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    wait_for(&log, LIGHTTPD.ready, &mut server)?;
    let url = format!("http://127.0.0.1:{port}/4k.txt");
    let got = dir.join("4k.txt");
    let code = client("curl", &["-s", "-o", got.to_str().ok_or("non-UTF-8 path")?, "-w", "%{http_code}", &url])?;
    if code != "200" || std::fs::read(&got)? != std::fs::read(srv.join("www/4k.txt"))? {
        return Err(format!("curl {url}: status {code}, or the bytes differ from the file").into());
    }
    let missing = client("curl", &["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/missing")])?;
    if missing != "404" {
        return Err(format!("curl of a missing file: status {missing}, expected 404").into());
    }
    let mut summary = String::from("curl /4k.txt: 200, the file's 4096 bytes; /missing: 404\n");
    for (label, args) in [("ab -n 1000 -c 10", vec!["-n", "1000", "-c", "10"]), ("ab -k -n 1000 -c 10", vec!["-k", "-n", "1000", "-c", "10"])] {
        let mut args = args;
        args.push(&url);
        let output = client("ab", &args)?;
        if !output.contains("Failed requests:        0") {
            return Err(format!("{label}: failed requests:\n{output}").into());
        }
        summary.push_str(&format!("{label} {url}:\n{}", ab_summary(&output)));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_config_moves_srv_and_the_port_only() {
        let guest = "server.document-root = \"/srv/www\"\nserver.port           = 8080\nserver.max-worker = 0\n";
        assert_eq!(
            host_lighttpd_config(guest, Path::new("/repo/servers/rootfs/srv"), 4321),
            "server.document-root = \"/repo/servers/rootfs/srv/www\"\nserver.port = 4321\nserver.bind = \"127.0.0.1\"\n\
             server.max-worker = 0\n"
        );
    }
}
