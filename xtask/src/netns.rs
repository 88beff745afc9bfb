//! Network namespaces holding one tap device: the guest's private network for `./x run --net
//! tap`, the network integration tests and the ICMP benchmarks.
//!
//! [`Netns::create`] makes a namespace `libos-PURPOSE-PID-N` (unique per process and call, so
//! parallel tests and runs never clash), brings up its loopback and a tap [`TAP`] with the host
//! address [`HOST_ADDRESS`]. QEMU runs inside it through [`Netns::launcher`] (`ip netns exec`
//! execs QEMU, so a kill reaches QEMU itself) and attaches to the tap; the guest is
//! [`GUEST_ADDRESS`]. Nothing is routed anywhere else, so no packet leaves the machine's own
//! namespaces.
//!
//! The namespace (and the tap inside it) is deleted when the [`Netns`] is dropped (QEMU exited
//! or was killed, an error, a failed test assertion), on Ctrl-C/SIGTERM through
//! [`install_interrupt_handler`], and, should this process die without either (SIGKILL), by the
//! next [`Netns::create`] of any process, which deletes namespaces whose creator is gone.
//!
//! Host code that wants to talk to the guest from inside the namespace either runs a command
//! there ([`Netns::command`]: `ping`, `tc`) or runs Rust code on a thread that joined the
//! namespace ([`Netns::run`]: `setns(2)` changes only the calling thread's namespace).

use crate::Result;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The host end of the tap, inside the namespace.
pub const HOST_ADDRESS: &str = "10.0.2.1/24";
/// [`HOST_ADDRESS`] without its prefix length.
pub const HOST_IP: &str = "10.0.2.1";
/// The guest's address on the tap network.
pub const GUEST_ADDRESS: &str = "10.0.2.15/24";
/// [`GUEST_ADDRESS`] without its prefix length.
pub const GUEST_IP: &str = "10.0.2.15";
/// The kernel option that gives a libos guest its static address on the tap network.
pub const GUEST_IP_OPTION: &str = "ip=10.0.2.15/24,gw=10.0.2.1";
/// The tap device inside the namespace.
pub const TAP: &str = "tap0";
/// The address of a namespace's end of the link to its [`Netns::peer`].
pub const ROUTER_ADDRESS: &str = "10.0.3.1/24";
/// The address of a [`Netns::peer`] namespace.
pub const PEER_ADDRESS: &str = "10.0.3.2/24";

/// Every namespace name this program makes starts with this.
const PREFIX: &str = "libos-";

/// Namespaces this process created and has not deleted yet (for the interrupt handler).
static OPEN_NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip (package iproute2): {e}"))?;
    if !output.status.success() {
        return Err(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    Ok(())
}

fn delete_namespace(name: &str) {
    // Deleting the namespace also deletes the tap inside it.
    let _ = Command::new("ip").args(["netns", "delete", name]).stderr(Stdio::null()).status();
}

/// The names of the network namespaces that exist now.
pub fn list() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    // Lines are `NAME` or `NAME (id: N)`.
    output.unwrap_or_default().lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

/// The PID in a name made by [`Netns::create`] (`libos-PURPOSE-PID-N`).
fn creator_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplit('-');
    let _counter: u64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Deletes namespaces made by a process that no longer exists (killed with SIGKILL: no
/// handler ran). Namespaces of live processes (another test run) are left alone.
fn delete_orphans() {
    for name in list() {
        if let Some(pid) = creator_pid(&name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("==> deleting network namespace {name}, left behind by process {pid} which is gone");
            delete_namespace(&name);
        }
    }
}

/// Deletes every namespace this process still has open (the interrupt handler's job).
pub fn delete_all() {
    let names = OPEN_NAMESPACES.lock().map(|n| n.clone()).unwrap_or_default();
    for name in names {
        eprintln!("./x: deleting network namespace {name}");
        delete_namespace(&name);
    }
}

/// On Ctrl-C, SIGTERM or SIGHUP: kills the guests still running and the virtiofsd daemons,
/// deletes the namespaces still open, then exits with status 130. One handler per process (the
/// `ctrlc` crate allows only one), so every part of `./x` that owns something to clean up
/// installs this same one.
pub fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let result = ctrlc::set_handler(|| {
            crate::qemu::kill_running();
            crate::virtiofs::kill_all();
            delete_all();
            std::process::exit(130);
        });
        if let Err(e) = result {
            eprintln!("./x: warning: cannot catch Ctrl-C ({e}); an interrupted run may leave a network namespace or daemon behind");
        }
    });
}

/// A network namespace holding one tap device with [`HOST_ADDRESS`]; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns exec NAME ...`).
    pub name: String,
}

impl Netns {
    /// Creates a namespace for `purpose` (a short word in its name: `run`, `test`, `bench`)
    /// and its tap. Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN).
    pub fn create(purpose: &str) -> Result<Netns> {
        let netns = Netns::create_empty(purpose)?;
        let ns = netns.name.as_str();
        ip(&["-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", ns, "addr", "add", HOST_ADDRESS, "dev", TAP])?;
        ip(&["-n", ns, "link", "set", TAP, "up"])?;
        Ok(netns)
    }

    /// A second namespace behind this one, for traffic this one must *forward*: a veth pair
    /// (this end [`ROUTER_ADDRESS`], the peer [`PEER_ADDRESS`]), a route from the peer to the
    /// tap network through this namespace, and IP forwarding on here. The guest reaches the
    /// peer through its gateway 10.0.2.1. Why: a netfilter drop of a packet this namespace
    /// sends itself is reported back to the sending socket, which just sends again, while a
    /// dropped forwarded packet is lost on the wire for both ends, like `tc netem loss` (which
    /// not every kernel has). Deleted on drop like any [`Netns`]; its veth goes with it.
    pub fn peer(&self, purpose: &str) -> Result<Netns> {
        let peer = Netns::create_empty(purpose)?;
        let (ns, p) = (self.name.as_str(), peer.name.as_str());
        ip(&["-n", ns, "link", "add", "veth-r", "type", "veth", "peer", "name", "veth-p", "netns", p])?;
        ip(&["-n", ns, "addr", "add", ROUTER_ADDRESS, "dev", "veth-r"])?;
        ip(&["-n", ns, "link", "set", "veth-r", "up"])?;
        ip(&["-n", p, "addr", "add", PEER_ADDRESS, "dev", "veth-p"])?;
        ip(&["-n", p, "link", "set", "veth-p", "up"])?;
        ip(&["-n", p, "route", "add", "10.0.2.0/24", "via", ROUTER_ADDRESS.split('/').next().unwrap_or_default()])?;
        // A namespace starts with forwarding off whatever the host's setting is.
        self.output("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        Ok(peer)
    }

    /// A namespace with only its loopback up.
    fn create_empty(purpose: &str) -> Result<Netns> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        install_interrupt_handler();
        delete_orphans();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{purpose}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]).map_err(|e| format!("{e} (creating a network namespace needs root)"))?;
        if let Ok(mut open) = OPEN_NAMESPACES.lock() {
            open.push(name.clone());
        }
        // From here on, dropping `netns` deletes the namespace, also when a step fails.
        let netns = Netns { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The launcher that runs a command (QEMU) inside the namespace.
    pub fn launcher(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name].map(String::from).into()
    }

    /// A command that runs `program` inside the namespace (add its arguments).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `program args` inside the namespace and returns its output; fails with its output
    /// when it exits unsuccessfully.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<String> {
        let output = self.command(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            return Err(format!("`{program} {}` in namespace {} failed ({}):\n{text}", args.join(" "), self.name, output.status).into());
        }
        Ok(text)
    }

    /// Runs `f` on a new thread that has joined the namespace (`setns(2)` with
    /// `CLONE_NEWNET`), so sockets it opens (`std::net`) live on the tap network; returns what
    /// `f` returned. A panic in `f` is re-raised here, so test assertions inside `f` work.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        match self.spawn(f)?.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// [`Netns::run`] without waiting: the thread's handle (join it for `f`'s result; an
    /// error inside means the thread could not join the namespace).
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<std::thread::JoinHandle<Result<T>>> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        std::thread::Builder::new()
            .name(format!("in-{}", self.name))
            .spawn(move || -> Result<T> {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns({path}): {e}"))?;
                Ok(f())
            })
            .map_err(|e| format!("cannot start a thread: {e}").into())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_namespace(&self.name);
        if let Ok(mut open) = OPEN_NAMESPACES.lock() {
            open.retain(|n| n != &self.name);
        }
    }
}

/// What `ping` reported.
#[derive(Clone, Debug, PartialEq)]
pub struct PingSummary {
    /// Requests sent.
    pub transmitted: u64,
    /// Replies received.
    pub received: u64,
    /// The time ping reports for the whole run, in ms.
    pub time_ms: f64,
}

impl PingSummary {
    /// Replies per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / (self.time_ms / 1000.0).max(1e-9)
    }
}

/// Parses ping's `N packets transmitted, M received, ..., time Tms` line.
pub fn parse_ping(output: &str) -> Option<PingSummary> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut transmitted = None;
    let mut received = None;
    let mut time_ms = None;
    for part in line.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let (first, second) = (words.next()?, words.next());
        match second {
            Some("packets") => transmitted = first.parse().ok(),
            Some("received") => received = first.parse().ok(),
            _ if first == "time" => time_ms = second?.strip_suffix("ms")?.parse().ok(),
            _ => {}
        }
    }
    Some(PingSummary { transmitted: transmitted?, received: received?, time_ms: time_ms? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_parses() {
        let output = "PING 10.0.2.15 (10.0.2.15) 1472(1500) bytes of data.\n\n--- 10.0.2.15 ping statistics ---\n10000 packets transmitted, 9998 received, 0.02% packet loss, time 2500ms\nrtt min/avg/max/mdev = 0.1/0.2/0.3/0.01 ms, ipg/ewma 0.25/0.2 ms\n";
        let summary = parse_ping(output).unwrap();
        assert_eq!(summary, PingSummary { transmitted: 10000, received: 9998, time_ms: 2500.0 });
        assert!((summary.pps() - 3999.2).abs() < 0.01);
        assert_eq!(parse_ping("ping: connect: Network is unreachable"), None);
    }

    #[test]
    fn creator_pid_comes_from_our_names_only() {
        assert_eq!(creator_pid("libos-test-1234-0"), Some(1234));
        assert_eq!(creator_pid("libos-run-77-12"), Some(77));
        assert_eq!(creator_pid("libos-bench-5"), None, "no counter: not ours");
        assert_eq!(creator_pid("other-1-2"), None);
        assert_eq!(creator_pid("libos-x-y-1"), None);
    }
}
