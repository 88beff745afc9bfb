//! `httpd`: a static-file HTTP/1.1 server on libos.
//!
//! `httpd [--port N] [--root DIR] [--idle-timeout SECONDS] [--verbose]` serves the VFS
//! directory `DIR` (default `/`) on TCP port `N` (default 80). With the image's ramfs as root,
//! the site in `apps/httpd/www/` is unpacked into `/` first; booted with `./x run httpd --root
//! HOSTDIR` (virtio-fs root) it serves the host directory as it is (nothing is written to it).
//!
//! One thread, one [`Poller`], non-blocking sockets: the listener and every connection are
//! sources with level-triggered interest that follows each connection's state (readable while
//! it takes input, writable while it has output), so a wait costs O(ready connections) whatever
//! the number of idle keep-alive ones. What to send is decided by the host-tested library
//! ([`httpd::connection::Connection`]); this file only moves bytes between it and the sockets,
//! and closes connections that stay silent for the idle timeout.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use httpd::config::{Config, USAGE};
use httpd::connection::{Connection, FileError, Files, Opened, Served};
use httpd::path::join_root;
use httpd::response::http_date;
use libos::fs::{self, File};
use libos::net::{Event, Interest, IpAddr, Ipv4Addr, Poller, SocketAddr, TcpListener, TcpStream};
use libos::time::{Instant, SystemTime, UNIX_EPOCH};
use libos::{Errno, println};

/// The site, packed from `www/` by `build.rs`. Not `initial_files`: boot would unpack those into
/// any root, including a host directory shared as root.
static SITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/www.cpio"));

libos::main!(main);

/// The listener's token; connections use their slot index.
const LISTENER: usize = usize::MAX;
/// Connections beyond this are accepted and closed at once (so they do not wait in the backlog).
const MAX_CONNECTIONS: usize = 16 * 1024;
/// Pending connections the listener queues.
const BACKLOG: usize = 1024;
/// Most bytes moved for one connection per readiness event, so one fast client streaming a
/// large file does not starve the others (level-triggered readiness brings it back).
const WRITE_BUDGET: usize = 256 * 1024;
/// Bytes requested per socket read.
const READ_SIZE: usize = 16 * 1024;

fn main() -> i32 {
    let config = match Config::parse(libos::env::args().skip(1)) {
        Ok(config) => config,
        Err(why) => {
            println!("httpd: {why}\n{USAGE}");
            return 2;
        }
    };
    if let Err(why) = install_site() {
        println!("httpd: cannot unpack the site: {why}");
        return 1;
    }
    match fs::metadata(&config.root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            println!("httpd: {} is not a directory", config.root);
            return 1;
        }
        Err(e) => {
            println!("httpd: {}: {e}", config.root);
            return 1;
        }
    }
    match serve(&config) {
        Ok(()) => 0,
        Err(e) => {
            println!("httpd: {e}");
            1
        }
    }
}

/// Unpacks the site into `/` when the root is the image's ramfs.
fn install_site() -> Result<(), Errno> {
    let vfs = fs::vfs()?;
    if vfs.statfs("/")?.fs_type != fs::ramfs::RAMFS_MAGIC {
        return Ok(());
    }
    fs::vfs::cpio::unpack(vfs, SITE, "/")?;
    Ok(())
}

/// The VFS below the served root.
struct VfsFiles {
    root: String,
}

impl Files for VfsFiles {
    type File = File;

    fn open(&self, path: &str) -> Result<Opened<File>, FileError> {
        let full = join_root(&self.root, path);
        // `metadata` follows symlinks, like the open below: a link is served as its target.
        let meta = fs::metadata(&full).map_err(file_error)?;
        if meta.is_dir() {
            return Ok(Opened::Directory);
        }
        if !meta.is_file() {
            // Devices (`/dev/zero` would stream forever), sockets, fifos.
            return Err(FileError::Forbidden);
        }
        let file = File::open(&full).map_err(file_error)?;
        let size = file.metadata().map_err(file_error)?.size;
        Ok(Opened::File { file, size })
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> Result<usize, FileError> {
        file.read_at(buf, offset).map_err(file_error)
    }
}

fn file_error(e: Errno) -> FileError {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG | Errno::ELOOP => FileError::NotFound,
        Errno::EACCES | Errno::EPERM | Errno::EISDIR => FileError::Forbidden,
        _ => FileError::Io,
    }
}

/// One accepted connection.
struct Client {
    stream: TcpStream,
    conn: Connection<File>,
    /// The interest registered with the poller (readable, writable).
    interest: (bool, bool),
    /// Last time bytes moved either way (for the idle timeout).
    last_active: Instant,
}

/// The server's state: the poller, the listener, and the connections by token.
struct Server {
    poller: Poller,
    listener: TcpListener,
    files: VfsFiles,
    clients: Vec<Option<Client>>,
    free_slots: Vec<usize>,
    live: usize,
    verbose: bool,
    idle_timeout: Duration,
    /// The `Date` header and the second it was made for.
    date: Option<(u64, String)>,
    /// Where socket reads land before the connection copies what it takes.
    scratch: Vec<u8>,
}

fn serve(config: &Config) -> Result<(), Errno> {
    let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.port);
    let listener = TcpListener::bind_with_backlog(address, BACKLOG)?;
    listener.set_nonblocking(true)?;
    let poller = Poller::new();
    poller.add(&listener, LISTENER, Interest::READABLE)?;
    let mut server = Server {
        poller,
        listener,
        files: VfsFiles { root: config.root.clone() },
        clients: Vec::new(),
        free_slots: Vec::new(),
        live: 0,
        verbose: config.verbose,
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        date: None,
        scratch: vec![0u8; READ_SIZE],
    };
    println!("[httpd] listening on port {}, serving {}", config.port, config.root);

    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut last_sweep = Instant::now();
    loop {
        // Wake once a second while connections exist, to enforce the idle timeout.
        let timeout = (server.live > 0).then_some(Duration::from_secs(1));
        match server.poller.wait(&mut events, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        server.refresh_date();
        for event in &events {
            if event.token == LISTENER {
                server.accept_all();
            } else {
                server.service(event.token, event);
            }
        }
        let now = Instant::now();
        if now - last_sweep >= Duration::from_secs(1) {
            last_sweep = now;
            server.close_idle(now);
        }
    }
}

impl Server {
    /// Accepts every pending connection.
    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    // A connection that failed before we took it (ECONNABORTED), or no memory:
                    // the others are unaffected.
                    if self.verbose {
                        println!("[httpd] accept: {e}");
                    }
                    return;
                }
            };
            if self.live >= MAX_CONNECTIONS {
                continue; // dropped: closed at once
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            // Heads and small files go out at once rather than waiting for an ACK.
            let _ = stream.set_nodelay(true);
            let token = self.free_slots.pop().unwrap_or_else(|| {
                self.clients.push(None);
                self.clients.len() - 1
            });
            if self.poller.add(&stream, token, Interest::READABLE).is_err() {
                self.free_slots.push(token);
                continue;
            }
            let client = Client { stream, conn: Connection::new(), interest: (true, false), last_active: Instant::now() };
            self.clients[token] = Some(client);
            self.live += 1;
        }
    }

    /// Moves bytes for the connection `token` after a readiness event, then closes it or
    /// updates its interest.
    fn service(&mut self, token: usize, event: &Event) {
        let Some(Some(client)) = self.clients.get_mut(token) else { return };
        let date = self.date.as_ref().map(|(_, text)| text.as_str());
        let verbose = self.verbose;
        let mut log = |served: &Served<'_>| {
            if verbose {
                println!("[httpd] {} {} {} {}", served.method, served.target, served.status.code(), served.length);
            }
        };
        let healthy = (!(event.readable || event.hangup || event.error) || receive(client, &mut self.scratch))
            && transmit(client, &self.files, date, &mut log);
        if !healthy || client.conn.is_finished() {
            self.close(token);
            return;
        }
        let wanted = (client.conn.wants_input(), client.conn.wants_output());
        if wanted != client.interest {
            let interest = Interest { readable: wanted.0, writable: wanted.1 };
            if self.poller.modify(&client.stream, token, interest).is_err() {
                self.close(token);
                return;
            }
            client.interest = wanted;
        }
    }

    /// Removes connection `token` from the poller and drops it (a graceful close: what was
    /// written still goes out).
    fn close(&mut self, token: usize) {
        if let Some(client) = self.clients.get_mut(token).and_then(Option::take) {
            let _ = self.poller.delete(&client.stream);
            self.free_slots.push(token);
            self.live -= 1;
        }
    }

    /// Closes the connections silent for longer than the idle timeout.
    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(token, slot)| {
                let client = slot.as_ref()?;
                (now - client.last_active > self.idle_timeout).then_some(token)
            })
            .collect();
        for token in idle {
            self.close(token);
        }
    }

    /// Makes the `Date` header again when the second changed (it is the same for every
    /// response within a second).
    fn refresh_date(&mut self) {
        let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else { return };
        let seconds = since_epoch.as_secs();
        if self.date.as_ref().is_none_or(|(made, _)| *made != seconds) {
            self.date = Some((seconds, http_date(seconds)));
        }
    }
}

/// Reads what the socket has while the connection takes input, through the server's shared
/// `scratch` buffer (so an idle connection holds no read buffer). `false` when the connection
/// broke (reset, or any error but "nothing more now").
fn receive(client: &mut Client, scratch: &mut [u8]) -> bool {
    loop {
        let room = client.conn.input_room().min(scratch.len());
        if room == 0 {
            return true;
        }
        match client.stream.read(&mut scratch[..room]) {
            Ok(0) => {
                client.conn.peer_closed();
                return true;
            }
            Ok(n) => {
                client.conn.receive(&scratch[..n]);
                client.last_active = Instant::now();
                if n < room {
                    return true; // drained: level-triggered readiness reports more
                }
            }
            Err(Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}

/// Lets the connection answer what it has and writes until the socket is full, the
/// connection has nothing more, or the per-event budget is spent. `false` when the connection
/// broke.
fn transmit(client: &mut Client, files: &VfsFiles, date: Option<&str>, log: &mut dyn FnMut(&Served<'_>)) -> bool {
    let mut budget = WRITE_BUDGET;
    loop {
        client.conn.advance(files, date, log);
        let output = client.conn.output();
        if output.is_empty() || budget == 0 {
            return true;
        }
        match client.stream.write(&output[..output.len().min(budget)]) {
            Ok(0) | Err(Errno::EAGAIN) => return true,
            Ok(n) => {
                client.conn.consume_output(n);
                client.last_active = Instant::now();
                budget -= n;
            }
            Err(_) => return false,
        }
    }
}
