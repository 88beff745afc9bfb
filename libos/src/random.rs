//! Random bytes for apps (`libos::random`), from the kernel's one generator
//! ([`libos_core::random`]: ChaCha20, seeded by real entropy sources), and the boot step that
//! seeds it.
//!
//! Sources, in the order boot tries them: the CPU's random instruction (x86 `RDSEED`/`RDRAND`,
//! aarch64 `RNDR`, where the CPU reports one), then every virtio-rng device (feature
//! `virtio-rng`; `./x run` gives guests one by default). Without any, [`fill`] fails with
//! `EAGAIN` and [`wait_seeded`] blocks, as `getrandom` does on Linux before its pool is
//! initialised; [`fill_insecure`] still gives bytes (what `/dev/urandom` and `GRND_INSECURE` give).

pub use libos_core::random::{add_randomness, fill, fill_insecure, for_each_source, is_seeded, seeded_waiters, wait_seeded};

/// Seeds the generator from every source the machine has and logs the outcome once. Called by
/// boot after the scheduler started (so a slow device could block through it).
#[cfg(target_os = "none")]
pub(crate) fn seed_at_boot() {
    libos_core::random::seed_from_platform();
    #[cfg(feature = "virtio-rng")]
    {
        let devices = libos_virtio_rng::probe(&libos_core::hal::platform().devices());
        libos_virtio_rng::seed(&devices);
    }
    // An image built with a driver for a device that is not there deserves a warning; one
    // without any random consumer compiled in only says so at `loglevel=info` (the warning
    // then comes on first use, see `libos_core::random`).
    libos_core::random::report(cfg!(feature = "virtio-rng"));
}
