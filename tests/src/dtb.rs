//! Device trees for bad-input boots on aarch64: QEMU `virt` boots the image with `-dtb FILE`
//! (QEMU still fills in `/memory` and `/chosen/bootargs`), so a test can take away the UART or
//! the timer, or name an interrupt controller libos has no driver for, and check the message.
//!
//! [`VirtDtb`] describes QEMU virt's GICv3 machine (the devices at the addresses QEMU puts them)
//! minus what a test removes; [`VirtDtb::write`] serialises it as a flattened device tree.

use std::path::PathBuf;

/// What the tree contains.
#[derive(Clone, Copy, Debug)]
pub struct VirtDtb {
    /// The interrupt controller's `compatible` (`arm,gic-v3` is what the machine has).
    pub gic: &'static str,
    /// Include the PL011 at 0x0900_0000.
    pub uart: bool,
    /// Include the `arm,armv8-timer` node.
    pub timer: bool,
    /// Include the `psci` node (conduit `hvc`).
    pub psci: bool,
}

impl Default for VirtDtb {
    fn default() -> VirtDtb {
        VirtDtb { gic: "arm,gic-v3", uart: true, timer: true, psci: true }
    }
}

#[derive(Default)]
struct Writer {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl Writer {
    fn begin(&mut self, name: &str) -> &mut Writer {
        self.structs.extend(1u32.to_be_bytes());
        self.structs.extend(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Writer {
        self.structs.extend(2u32.to_be_bytes());
        self
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Writer {
        let offset = self.strings.len() as u32;
        self.strings.extend(name.as_bytes());
        self.strings.push(0);
        self.structs.extend(3u32.to_be_bytes());
        self.structs.extend((value.len() as u32).to_be_bytes());
        self.structs.extend(offset.to_be_bytes());
        self.structs.extend(value);
        self.pad();
        self
    }

    fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Writer {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }

    fn string(&mut self, name: &str, value: &str) -> &mut Writer {
        self.prop(name, format!("{value}\0").as_bytes())
    }

    fn pad(&mut self) {
        while self.structs.len() % 4 != 0 {
            self.structs.push(0);
        }
    }

    /// The blob, with room to grow (QEMU adds properties in place).
    fn finish(mut self) -> Vec<u8> {
        self.structs.extend(9u32.to_be_bytes());
        let rsv = [0u8; 16];
        let (off_rsv, off_struct) = (40u32, 56u32);
        let off_strings = off_struct + self.structs.len() as u32;
        let total = off_strings + self.strings.len() as u32;
        let mut out = Vec::new();
        for word in [0xd00d_feed, total, off_struct, off_strings, off_rsv, 17, 16, 0, self.strings.len() as u32, self.structs.len() as u32] {
            out.extend(u32::to_be_bytes(word));
        }
        out.extend(rsv);
        out.extend(&self.structs);
        out.extend(&self.strings);
        out
    }
}

impl VirtDtb {
    /// The flattened device tree.
    pub fn blob(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]).cells("interrupt-parent", &[1]);
        w.string("compatible", "linux,dummy-virt");
        w.begin("chosen").end();
        w.begin("memory@40000000").string("device_type", "memory").cells("reg", &[0, 0x4000_0000, 0, 0x0400_0000]).end();
        w.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
        w.begin("cpu@0").string("device_type", "cpu").string("compatible", "arm,cortex-a72").cells("reg", &[0]).end();
        w.end();
        if self.psci {
            w.begin("psci").string("compatible", "arm,psci-1.0").string("method", "hvc").end();
        }
        w.begin("intc@8000000")
            .string("compatible", self.gic)
            .prop("interrupt-controller", &[])
            .cells("#interrupt-cells", &[3])
            .cells("reg", &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000])
            .cells("phandle", &[1])
            .end();
        if self.uart {
            w.begin("pl011@9000000").prop("compatible", b"arm,pl011\0arm,primecell\0").cells("reg", &[0, 0x0900_0000, 0, 0x1000]).end();
        }
        if self.timer {
            w.begin("timer").string("compatible", "arm,armv8-timer").cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]).end();
        }
        w.end();
        w.finish()
    }

    /// Writes the tree to `target/generated/NAME.dtb` and returns the path.
    pub fn write(&self, name: &str) -> PathBuf {
        let dir = xtask::root().join("target/generated");
        std::fs::create_dir_all(&dir).expect("creating target/generated");
        let path = dir.join(format!("{name}.dtb"));
        std::fs::write(&path, self.blob()).expect("writing a test DTB");
        path
    }
}
