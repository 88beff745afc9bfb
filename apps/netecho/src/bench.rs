//! `netecho bench MODE PORT N`: the TCP workloads of `./x bench net`, written to do what
//! `bench/c/tcp_bench.c` does in the Linux guest, call for call, so the harness compares the two
//! stacks on the same work: blocking sockets, 64 KiB reads and writes, `TCP_NODELAY`, one
//! connection.
//!
//! It listens on PORT, prints `[bench] mark start` (the host connects then), serves one
//! connection and reports its window (`window.rs`; operations are MiB for the streams, round
//! trips otherwise).

use super::window::Window;
use super::{IO_SIZE, any_address};
use alloc::vec;
use core::time::Duration;
use libos::net::{Shutdown, TcpListener, TcpStream};
use libos::{Errno, println};
use netecho::{BenchMode, HTTP_BODY, HTTP_HEAD, request_head_len};

const MIB: u64 = 1 << 20;

/// Runs one workload (see the module comment).
pub fn run(mode: BenchMode, port: u16, n: u64) -> Result<(), Errno> {
    let listener = TcpListener::bind(any_address(port))?;
    println!("[bench] mark start");
    let (stream, _peer) = listener.accept()?;
    stream.set_nodelay(true)?;
    match mode {
        BenchMode::StreamIn => stream_in(&stream, n)?,
        BenchMode::StreamOut => stream_out(&stream, n)?,
        BenchMode::RoundTrips => round_trips(&stream, n)?,
        BenchMode::Http => http(&stream, n)?,
    }
    // Closing sends our FIN; let it and the last answer leave before the VM powers off.
    drop(stream);
    libos::thread::sleep(Duration::from_millis(200));
    Ok(())
}

fn stream_in(stream: &TcpStream, total: u64) -> Result<(), Errno> {
    let mut buf = vec![0u8; IO_SIZE];
    let mut received = stream.read(&mut buf)? as u64;
    let window = Window::open();
    loop {
        match stream.read(&mut buf)? {
            0 => break,
            n => received += n as u64,
        }
    }
    if received != total {
        println!("[netecho] bench: received {received} of {total} bytes");
        return Err(Errno::EIO);
    }
    window.close(total / MIB);
    Ok(())
}

fn stream_out(stream: &TcpStream, total: u64) -> Result<(), Errno> {
    let window = Window::open();
    let mut buf = vec![b'x'; IO_SIZE];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(IO_SIZE as u64) as usize;
        stream.write_all(&buf[..n])?;
        sent += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    while stream.read(&mut buf)? > 0 {}
    window.close(total / MIB);
    Ok(())
}

fn round_trips(stream: &TcpStream, rounds: u64) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    let mut window = None;
    for round in 0..=rounds {
        if stream.read(&mut byte)? != 1 {
            println!("[netecho] bench: EOF after {round} round trips");
            return Err(Errno::EPIPE);
        }
        window.get_or_insert_with(Window::open);
        stream.write_all(&byte)?;
    }
    window.map(|w| w.close(rounds));
    Ok(())
}

/// Reads one request head into `buf` (requests do not overlap: the client sends the next one
/// after the whole answer); false at EOF.
fn read_request(stream: &TcpStream, buf: &mut [u8]) -> Result<bool, Errno> {
    let mut have = 0;
    while request_head_len(&buf[..have]).is_none() {
        if have == buf.len() {
            return Err(Errno::EMSGSIZE);
        }
        match stream.read(&mut buf[have..])? {
            0 => return Ok(false),
            n => have += n,
        }
    }
    if !buf.starts_with(b"GET ") {
        return Err(Errno::EINVAL);
    }
    Ok(true)
}

fn http(stream: &TcpStream, requests: u64) -> Result<(), Errno> {
    let mut buf = vec![0u8; IO_SIZE];
    // Head and body in one buffer: one write, as the C program's one writev.
    let mut answer = HTTP_HEAD.to_vec();
    answer.resize(HTTP_HEAD.len() + HTTP_BODY, b'b');
    let mut window = None;
    for request in 0..=requests {
        if !read_request(stream, &mut buf)? {
            println!("[netecho] bench: EOF after {request} requests");
            return Err(Errno::EPIPE);
        }
        window.get_or_insert_with(Window::open);
        stream.write_all(&answer)?;
    }
    window.map(|w| w.close(requests));
    Ok(())
}
