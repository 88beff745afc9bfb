//! # httpd: the protocol half of a static-file HTTP/1.1 server for libos
//!
//! The guest binary (`main.rs`) drives sockets through one `libos::net::Poller`; everything
//! that decides what goes over those sockets lives here, free of libos and I/O, so the host's
//! `cargo test -p httpd` checks it:
//!
//! - [`request`]: finding the end of a request head in a byte stream ([`request::HeadScanner`],
//!   incremental, with the 8 KiB limits: 414 and 431) and parsing it ([`request::parse_head`]);
//! - [`path`]: percent-decoding a target and resolving `.`/`..` so it cannot leave the root;
//! - [`mime`]: `Content-Type` by extension;
//! - [`response`]: statuses, the response head, error pages, the `Date` format;
//! - [`connection`]: one connection's state machine ([`connection::Connection`]): requests in,
//!   responses out, files streamed in chunks through the [`connection::Files`] trait, keep-alive
//!   and pipelining;
//! - [`config`]: the command line.
//!
//! Nothing reachable from network input panics: malformed input becomes a 4xx/5xx response
//! (and, where the request's framing is lost, a closed connection).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod connection;
pub mod mime;
pub mod path;
pub mod request;
pub mod response;
