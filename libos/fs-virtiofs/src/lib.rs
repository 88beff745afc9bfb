//! # libos-fs-virtiofs: virtio-fs (FUSE over virtio)
//!
//! The crate has two halves that meet at one small trait, [`channel::FuseChannel`]:
//!
//! - the **FUSE protocol** and the **file system** on top of it: pure code, no `unsafe`,
//!   host-tested against an in-memory fake FUSE server (feature `testing`);
//! - the **virtio device** that carries FUSE requests over virtqueues (the only module here
//!   allowed to use `unsafe`).
//!
//! Users: `libos` (feature `fs-virtiofs`: `root=virtiofs:TAG`, `mount=virtiofs:TAG:/PATH`).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod channel;
pub mod device;

pub use channel::FuseChannel;
