//! Device-tree interpretation on QEMU's own trees (`testdata/`, from `-M virt,dumpdtb=...`,
//! packed) and on small trees built here, with pieces missing or changed.

use super::*;

const VIRT_GICV3: &[u8] = include_bytes!("../testdata/virt-gicv3.dtb");
const VIRT_GICV2: &[u8] = include_bytes!("../testdata/virt-gicv2.dtb");

/// A minimal flattened-device-tree writer (version 17).
#[derive(Default)]
struct Builder {
    structs: Vec<u8>,
    strings: Vec<u8>,
    reservations: Vec<(u64, u64)>,
}

impl Builder {
    fn begin(&mut self, name: &str) -> &mut Self {
        self.structs.extend(1u32.to_be_bytes());
        self.structs.extend(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Self {
        self.structs.extend(2u32.to_be_bytes());
        self
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
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

    fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }

    fn string(&mut self, name: &str, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.prop(name, &bytes)
    }

    fn pad(&mut self) {
        while self.structs.len() % 4 != 0 {
            self.structs.push(0);
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.structs.extend(9u32.to_be_bytes());
        let mut rsv = Vec::new();
        for &(a, s) in self.reservations.iter().chain([(0, 0)].iter()) {
            rsv.extend(a.to_be_bytes());
            rsv.extend(s.to_be_bytes());
        }
        let off_rsv = 40u32;
        let off_struct = off_rsv + rsv.len() as u32;
        let off_strings = off_struct + self.structs.len() as u32;
        let total = off_strings + self.strings.len() as u32;
        let mut out = Vec::new();
        for word in [
            0xd00d_feed,
            total,
            off_struct,
            off_strings,
            off_rsv,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ] {
            out.extend(u32::to_be_bytes(word));
        }
        out.extend(rsv);
        out.extend(&self.structs);
        out.extend(&self.strings);
        out
    }
}

/// What the built tree contains.
struct Shape {
    gic: &'static str,
    uart: bool,
    timer: bool,
    memory: Option<(u64, u64)>,
    reservation: Option<(u64, u64)>,
}

const VIRT_LIKE: Shape =
    Shape { gic: "arm,gic-v3", uart: true, timer: true, memory: Some((0x4000_0000, 0x80_0000)), reservation: None };

fn build(shape: &Shape) -> Vec<u8> {
    build_with(shape, |_| {})
}

/// [`build`], with `extra` adding nodes at the end of the root.
fn build_with(shape: &Shape, extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
    let mut b = Builder::default();
    if let Some(r) = shape.reservation {
        b.reservations.push(r);
    }
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]).cells("interrupt-parent", &[1]);
    b.begin("chosen").string("bootargs", "loglevel=info -- --exit 3").string("stdout-path", "/pl011@9000000").end();
    if let Some((base, size)) = shape.memory {
        b.begin("memory@40000000")
            .string("device_type", "memory")
            .cells("reg", &[(base >> 32) as u32, base as u32, (size >> 32) as u32, size as u32])
            .end();
    }
    b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
    for i in 0..2 {
        b.begin(&format!("cpu@{i}")).string("device_type", "cpu").cells("reg", &[i]).end();
    }
    b.end();
    b.begin("intc@8000000")
        .string("compatible", shape.gic)
        .prop("interrupt-controller", &[])
        .cells("#interrupt-cells", &[3])
        .cells("reg", &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000])
        .cells("phandle", &[1])
        .end();
    if shape.uart {
        b.begin("pl011@9000000").prop("compatible", b"arm,pl011\0arm,primecell\0").cells("reg", &[0, 0x0900_0000, 0, 0x1000]).end();
    }
    if shape.timer {
        b.begin("timer")
            .string("compatible", "arm,armv8-timer")
            .cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
            .end();
    }
    b.begin("psci").string("compatible", "arm,psci-1.0").string("method", "smc").end();
    b.begin("virtio_mmio@a000000").string("compatible", "virtio,mmio").cells("reg", &[0, 0x0a00_0000, 0, 0x200]).cells("interrupts", &[0, 16, 1]).end();
    extra(&mut b);
    b.end();
    b.finish()
}

fn r(start: u64, end: u64) -> MemoryRegion {
    MemoryRegion { start, end }
}

#[test]
fn qemu_virt_gicv3_tree() {
    let fdt = open(VIRT_GICV3).unwrap();
    assert_eq!(scan(&fdt).console(), Some(Uart::Pl011(0x0900_0000)));
    let m = Machine::parse(&fdt).unwrap();
    assert_eq!(m.ram.as_slice(), &[r(0x4000_0000, 0x4000_0000 + (64 << 20))]);
    assert_eq!(m.gic, Gic::V3 { distributor: 0x0800_0000, redistributors: 0x080a_0000 });
    assert_eq!(m.timer_intid, 27);
    assert_eq!(m.psci, Some(PsciMethod::Hvc));
    assert_eq!(m.cpus, 1);
    assert_eq!(m.virtio_mmio().len(), 32);
    assert_eq!(m.virtio_mmio()[0], VirtioMmio { base: 0x0a00_0000, size: 0x200, intid: 48 });
    assert_eq!(m.virtio_mmio()[31].base, 0x0a00_3e00);
    assert_eq!(m.pcie_ecam.map(|e| e.start), Some(0x40_1000_0000));
    // The high PCIe MMIO window (512 GiB at 512 GiB) is device memory too.
    assert_eq!(m.device_limit, 0x100_0000_0000);
    assert_eq!(m.bootargs, "");
    assert_eq!(m.rtc, Some(0x0901_0000), "QEMU virt's PL031");
}

#[test]
fn qemu_virt_gicv2_tree() {
    let fdt = open(VIRT_GICV2).unwrap();
    let m = Machine::parse(&fdt).unwrap();
    assert_eq!(m.gic, Gic::V2 { distributor: 0x0800_0000, cpu_interface: 0x0801_0000 });
    assert_eq!(m.gic.version(), 2);
    assert_eq!(m.ram.total(), 8 << 20);
    assert_eq!(m.timer_intid, 27);
    assert_eq!(m.rtc, Some(0x0901_0000));
}

#[test]
fn built_tree_is_read_completely() {
    let bytes = build(&VIRT_LIKE);
    let header: [u8; 8] = bytes[..8].try_into().unwrap();
    assert_eq!(total_size(&header), Some(bytes.len() as u32));
    let fdt = open(&bytes).unwrap();
    assert_eq!(scan(&fdt).console(), Some(Uart::Pl011(0x0900_0000)));
    let m = Machine::parse(&fdt).unwrap();
    assert_eq!(m.bootargs, "loglevel=info -- --exit 3");
    assert_eq!(m.cpus, 2);
    assert_eq!(m.psci, Some(PsciMethod::Smc));
    assert_eq!(m.timer_intid, 27);
    assert_eq!(m.virtio_mmio(), &[VirtioMmio { base: 0x0a00_0000, size: 0x200, intid: 48 }]);
    assert_eq!(m.pcie_ecam, None);
    assert_eq!(m.device_limit, 0x0a00_0200);
    assert_eq!(m.rtc, None, "the built tree has no PL031");
}

#[test]
fn pl031_real_time_clock_is_found_on_the_root_and_on_a_simple_bus() {
    // As QEMU virt and Firecracker put it: under the root, `arm,pl031` then `arm,primecell`.
    let with_rtc = |parent_is_bus: bool| {
        build_with(&VIRT_LIKE, |b| {
            if parent_is_bus {
                b.begin("soc").string("compatible", "simple-bus").cells("#address-cells", &[1]).cells("#size-cells", &[1]).prop("ranges", &[]);
                b.begin("rtc@9010000").prop("compatible", b"arm,pl031\0arm,primecell\0").cells("reg", &[0x0901_0000, 0x1000]).end();
                b.end();
            } else {
                b.begin("pl031@9010000").prop("compatible", b"arm,pl031\0arm,primecell\0").cells("reg", &[0, 0x0901_0000, 0, 0x1000]).end();
                // A second clock is not the one we use.
                b.begin("pl031@9020000").prop("compatible", b"arm,pl031\0arm,primecell\0").cells("reg", &[0, 0x0902_0000, 0, 0x1000]).end();
            }
        })
    };
    for on_bus in [false, true] {
        let bytes = with_rtc(on_bus);
        let m = Machine::parse(&open(&bytes).unwrap()).unwrap();
        assert_eq!(m.rtc, Some(0x0901_0000), "on a simple-bus: {on_bus}");
        assert!(m.device_limit >= 0x0901_1000, "the clock's registers are mapped as device memory");
    }
    // No `reg`, a window at 0, unaligned or shorter than the ID registers, or in RAM: no clock.
    for reg in [None, Some([0, 0, 0, 0x1000]), Some([0, 0x0901_0800, 0, 0x1000]), Some([0, 0x0901_0000, 0, 0x100]), Some([0, 0x4000_1000, 0, 0x1000])] {
        let bytes = build_with(&VIRT_LIKE, |b| {
            b.begin("pl031").string("compatible", "arm,pl031");
            if let Some(reg) = reg {
                b.cells("reg", &reg);
            }
            b.end();
        });
        assert_eq!(Machine::parse(&open(&bytes).unwrap()).unwrap().rtc, None, "reg {reg:x?}");
    }
}

#[test]
fn memory_reservations_are_collected() {
    let bytes = build(&Shape { reservation: Some((0x4100_0000, 0x1000)), ..VIRT_LIKE });
    let m = Machine::parse(&open(&bytes).unwrap()).unwrap();
    assert_eq!(m.reserved.as_slice(), &[r(0x4100_0000, 0x4100_1000)]);
}

#[test]
fn missing_uart_leaves_no_console() {
    let bytes = build(&Shape { uart: false, ..VIRT_LIKE });
    assert_eq!(scan(&open(&bytes).unwrap()).console(), None);
}

#[test]
fn missing_timer_is_an_error() {
    let bytes = build(&Shape { timer: false, ..VIRT_LIKE });
    let e = Machine::parse(&open(&bytes).unwrap()).unwrap_err();
    assert_eq!(e, DtbError::NoTimer);
    assert!(e.to_string().contains("no arm,armv8-timer node"), "{e}");
}

#[test]
fn unsupported_gic_is_named() {
    let bytes = build(&Shape { gic: "arm,gic-v5", ..VIRT_LIKE });
    let e = Machine::parse(&open(&bytes).unwrap()).unwrap_err();
    assert_eq!(e, DtbError::UnsupportedGic("arm,gic-v5"));
    assert_eq!(e.to_string(), "unsupported interrupt controller `arm,gic-v5` (GICv2 or GICv3 needed)");
    let bytes = build(&Shape { gic: "acme,intc", ..VIRT_LIKE });
    let e = Machine::parse(&open(&bytes).unwrap()).unwrap_err();
    assert!(matches!(e, DtbError::UnsupportedGic(_)), "{e:?}");
}

#[test]
fn missing_memory_is_an_error() {
    let bytes = build(&Shape { memory: None, ..VIRT_LIKE });
    assert_eq!(Machine::parse(&open(&bytes).unwrap()).unwrap_err(), DtbError::NoMemory);
}

#[test]
fn garbage_is_not_a_tree() {
    assert_eq!(open(&[0u8; 64]).unwrap_err(), DtbError::Invalid("bad magic number"));
    let bytes = build(&VIRT_LIKE);
    assert_eq!(open(&bytes[..100]).unwrap_err(), DtbError::Invalid("truncated"));
    assert_eq!(total_size(&[0; 8]), None);
}

#[test]
fn console_is_the_uart_stdout_path_names() {
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.begin("chosen").string("stdout-path", "/pl011@9040000:115200n8").end();
    for base in [0x0900_0000u32, 0x0904_0000] {
        b.begin(&format!("pl011@{base:x}")).string("compatible", "arm,pl011").cells("reg", &[0, base, 0, 0x1000]).end();
    }
    b.end();
    let bytes = b.finish();
    assert_eq!(scan(&open(&bytes).unwrap()).console(), Some(Uart::Pl011(0x0904_0000)));
    // Without stdout-path: the first one.
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    for base in [0x0900_0000u32, 0x0904_0000] {
        b.begin(&format!("pl011@{base:x}")).string("compatible", "arm,pl011").cells("reg", &[0, base, 0, 0x1000]).end();
    }
    b.end();
    let bytes = b.finish();
    assert_eq!(scan(&open(&bytes).unwrap()).console(), Some(Uart::Pl011(0x0900_0000)));
}

#[test]
fn reserved_memory_node_and_simple_bus_children_are_read() {
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.begin("memory@40000000").string("device_type", "memory").cells("reg", &[0, 0x4000_0000, 0, 0x0100_0000]).end();
    b.begin("reserved-memory").cells("#address-cells", &[2]).cells("#size-cells", &[2]).prop("ranges", &[]);
    b.begin("fw@40f00000").cells("reg", &[0, 0x40f0_0000, 0, 0x10_0000]).end();
    b.end();
    b.begin("intc").string("compatible", "arm,gic-400").prop("interrupt-controller", &[]).cells("#interrupt-cells", &[3]);
    b.cells("reg", &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x0801_0000, 0, 0x1_0000]).end();
    b.begin("timer").string("compatible", "arm,armv8-timer").cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]).end();
    // A bus with 1-cell addresses and sizes, holding the UART.
    b.begin("soc").string("compatible", "simple-bus").cells("#address-cells", &[1]).cells("#size-cells", &[1]).prop("ranges", &[]);
    b.begin("serial@9000000").string("compatible", "arm,pl011").cells("reg", &[0x0900_0000, 0x1000]).end();
    b.end();
    b.end();
    let bytes = b.finish();
    let fdt = open(&bytes).unwrap();
    let s = scan(&fdt);
    assert_eq!(s.console(), Some(Uart::Pl011(0x0900_0000)));
    let m = Machine::from_scan(&s, &fdt).unwrap();
    assert_eq!(m.reserved.as_slice(), &[r(0x40f0_0000, 0x4100_0000)]);
    assert_eq!(m.gic, Gic::V2 { distributor: 0x0800_0000, cpu_interface: 0x0801_0000 });
    assert_eq!(m.device_limit, 0x0900_1000);
    assert_eq!(m.cpus, 1);
}

#[test]
fn firecracker_style_16550_is_a_console() {
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.begin("uart@40002000").string("compatible", "ns16550a").cells("reg", &[0, 0x4000_2000, 0, 0x1000]).end();
    b.begin("uart@40003000").string("compatible", "ns16550a").cells("reg-io-width", &[4]).cells("reg", &[0, 0x4000_3000, 0, 0x1000]).end();
    b.end();
    let bytes = b.finish();
    assert_eq!(scan(&open(&bytes).unwrap()).console(), Some(Uart::Ns16550 { base: 0x4000_2000, shift: 0 }));
}

#[test]
fn flat_reader_walks_qemus_tree() {
    let fdt = open(VIRT_GICV3).unwrap();
    let root = fdt.root().unwrap();
    assert_eq!(root.name, "");
    let names: Vec<&str> = root.children().map(|n| n.name).collect();
    assert!(names.contains(&"chosen") && names.contains(&"cpus"), "{names:?}");
    let cpus = fdt.find_node("/cpus").unwrap();
    assert!(cpus.children().any(|c| c.name.starts_with("cpu@")));
    assert_eq!(fdt.find_node("/cpus/cpu@0").map(|n| n.name), Some("cpu@0"));
    assert!(fdt.find_node("/no-such-node").is_none());
    let cells = root.property("#address-cells").unwrap();
    assert_eq!(cells.as_u64(), Some(2));
}

/// A small xorshift generator: deterministic "random" corruption.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn corrupted_trees_never_panic() {
    // Bad boot input must give errors (exit 103), never a kernel panic: flip bytes anywhere in a
    // real tree, including the header and the token stream, and interpret it.
    let mut state = 0x0123_4567_89ab_cdefu64;
    for round in 0..4_000 {
        let mut bytes = VIRT_GICV3.to_vec();
        let flips = 1 + round % 8;
        for _ in 0..flips {
            let at = (xorshift(&mut state) as usize) % bytes.len();
            bytes[at] = xorshift(&mut state) as u8;
        }
        if let Ok(fdt) = open(&bytes) {
            let s = scan(&fdt);
            let _ = s.console();
            let _ = Machine::from_scan(&s, &fdt);
        }
    }
}

#[test]
fn deeply_nested_nodes_do_not_exhaust_the_stack() {
    // 100 000 nested `cpus` nodes (and as many nested `simple-bus` ones): the scan descends a
    // bounded number of levels instead of recursing once per level until the stack overflows.
    for (name, compatible) in [("cpus", None), ("bus", Some("simple-bus"))] {
        let bytes = build_with(&VIRT_LIKE, |b| {
            for _ in 0..100_000 {
                b.begin(name);
                if let Some(c) = compatible {
                    b.string("compatible", c);
                }
            }
            b.begin("cpu@0").string("device_type", "cpu").end();
            for _ in 0..100_000 {
                b.end();
            }
        });
        let m = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Machine::parse(&open(&bytes).unwrap()).map(|m| m.cpus))
            .unwrap()
            .join()
            .expect("the scan overflowed its stack or panicked");
        assert_eq!(m, Ok(2), "{name}: the two real CPUs, not the one nested too deep");
    }
}

#[test]
fn interrupt_numbers_out_of_range_are_refused_not_overflowed() {
    assert_eq!(intid(0, 16), Some(48));
    assert_eq!(intid(1, 11), Some(27));
    assert_eq!(intid(0, u32::MAX), None);
    assert_eq!(intid(1, u32::MAX - 3), None);
    assert_eq!(intid(1, 16), None);
    assert_eq!(intid(7, 1), None);
    let bytes = build_with(&VIRT_LIKE, |b| {
        b.begin("virtio_mmio@a000200")
            .string("compatible", "virtio,mmio")
            .cells("reg", &[0, 0x0a00_0200, 0, 0x200])
            .cells("interrupts", &[0, u32::MAX, 1])
            .end();
    });
    let m = Machine::parse(&open(&bytes).unwrap()).unwrap();
    assert_eq!(m.virtio_mmio().len(), 1, "the slot with SPI 2^32-1 is skipped");
    // A timer whose virtual-timer PPI does not fit: no timer, not a panic.
    let bytes = build_with(&Shape { timer: false, ..VIRT_LIKE }, |b| {
        b.begin("timer").string("compatible", "arm,armv8-timer").cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, u32::MAX, 4]).end();
    });
    assert_eq!(Machine::parse(&open(&bytes).unwrap()).err(), Some(DtbError::NoTimer));
}

#[test]
fn truncated_trees_never_panic() {
    for len in (0..VIRT_GICV2.len()).step_by(7) {
        let mut bytes = VIRT_GICV2[..len].to_vec();
        if len >= 8 {
            // Keep the header's size honest so the reader looks inside the truncated blocks.
            bytes[4..8].copy_from_slice(&(len as u32).to_be_bytes());
        }
        if let Ok(fdt) = open(&bytes) {
            let _ = Machine::parse(&fdt);
        }
    }
}

/// A tree of only `/cpus` with `#address-cells` = `cells`; `cpus` adds its children.
fn cpu_tree(cells: u32, cpus: impl FnOnce(&mut Builder)) -> Vec<u8> {
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.begin("cpus").cells("#address-cells", &[cells]).cells("#size-cells", &[0]);
    cpus(&mut b);
    b.end().end();
    b.finish()
}

fn psci_cpu(b: &mut Builder, name: &str, reg: &[u32]) {
    b.begin(name).string("device_type", "cpu").string("enable-method", "psci").cells("reg", reg).end();
}

/// [`cpus`] on `bytes` with `boot`, and the nodes it skipped.
fn cpu_list(bytes: &[u8], boot: u64) -> (Vec<u64>, Vec<(String, CpuSkip)>) {
    let mut skipped = Vec::new();
    let list = cpus(&open(bytes).unwrap(), boot, &mut |name, why| skipped.push((name.to_string(), why)));
    (list.as_slice().to_vec(), skipped)
}

#[test]
fn cpu_list_of_qemus_tree_is_the_boot_cpu() {
    // MPIDR_EL1 bit 31 is RES1 (and bit 30, U, may be set): only the affinity fields count.
    for tree in [VIRT_GICV3, VIRT_GICV2] {
        assert_eq!(cpu_list(tree, 0x8000_0000), (vec![0], vec![]));
    }
}

#[test]
fn cpu_list_puts_the_boot_cpu_first_and_the_others_in_tree_order() {
    let tree = cpu_tree(1, |b| {
        for i in 0..4 {
            psci_cpu(b, &format!("cpu@{i}"), &[i]);
        }
        // Not a CPU: no device_type.
        b.begin("cpu-map").begin("cluster0").end().end();
    });
    assert_eq!(cpu_list(&tree, 0x8000_0002), (vec![2, 0, 1, 3], vec![]));
    assert_eq!(cpu_list(&tree, 0), (vec![0, 1, 2, 3], vec![]));
    // A boot CPU the tree does not name still is CPU 0.
    assert_eq!(cpu_list(&tree, 0x100).0, vec![0x100, 0, 1, 2, 3]);
}

#[test]
fn cpu_list_reads_two_cell_mpidrs_with_aff3() {
    let tree = cpu_tree(2, |b| {
        psci_cpu(b, "cpu@0", &[0, 0]);
        psci_cpu(b, "cpu@100000000", &[1, 0]);
        psci_cpu(b, "cpu@10101", &[0, 0x1_0101]);
    });
    assert_eq!(cpu_list(&tree, 0x1_0000_0000).0, vec![0x1_0000_0000, 0, 0x1_0101]);
}

#[test]
fn cpu_list_skips_disabled_spin_table_duplicate_and_malformed_cpus() {
    let tree = cpu_tree(1, |b| {
        psci_cpu(b, "cpu@0", &[0]);
        b.begin("cpu@1").string("device_type", "cpu").string("enable-method", "psci").string("status", "disabled").cells("reg", &[1]).end();
        b.begin("cpu@2").string("device_type", "cpu").string("enable-method", "spin-table").cells("reg", &[2]).end();
        b.begin("cpu@3").string("device_type", "cpu").cells("reg", &[3]).end();
        psci_cpu(b, "cpu@4", &[0, 4]); // two cells where /cpus says one
        b.begin("cpu@5").string("device_type", "cpu").string("enable-method", "psci").prop("reg", &[0, 0, 5]).end();
        b.begin("cpu@6").string("device_type", "cpu").string("enable-method", "psci").end(); // no reg
        psci_cpu(b, "cpu@7", &[0x0100_0007]); // bits 31:24 are not affinity
        psci_cpu(b, "cpu@8", &[8]);
        psci_cpu(b, "cpu@8-again", &[8]);
        psci_cpu(b, "cpu@0-again", &[0]);
        b.begin("cpu@9").string("device_type", "cpu").string("enable-method", "psci").string("status", "okay").cells("reg", &[9]).end();
    });
    let (list, skipped) = cpu_list(&tree, 0);
    assert_eq!(list, vec![0, 8, 9]);
    let skipped: Vec<(&str, CpuSkip)> = skipped.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    assert_eq!(
        skipped,
        [
            ("cpu@1", CpuSkip::Disabled),
            ("cpu@2", CpuSkip::NotPsci),
            ("cpu@3", CpuSkip::NotPsci),
            ("cpu@4", CpuSkip::BadReg),
            ("cpu@5", CpuSkip::BadReg),
            ("cpu@6", CpuSkip::BadReg),
            ("cpu@7", CpuSkip::BadReg),
            ("cpu@8-again", CpuSkip::Duplicate),
            ("cpu@0-again", CpuSkip::Duplicate),
        ]
    );
    // The boot CPU's own node may say anything: it runs already.
    let tree = cpu_tree(1, |b| {
        b.begin("cpu@0").string("device_type", "cpu").string("enable-method", "spin-table").cells("reg", &[0]).end();
        psci_cpu(b, "cpu@1", &[1]);
    });
    assert_eq!(cpu_list(&tree, 0), (vec![0, 1], vec![]));
    // No /cpus at all: the boot CPU alone. CPUs without enable-method cannot be started.
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).end();
    assert_eq!(cpu_list(&b.finish(), 3), (vec![3], vec![]));
    let (list, skipped) = cpu_list(&build(&VIRT_LIKE), 0);
    assert_eq!((list, skipped.len()), (vec![0], 1));
}

#[test]
fn cpu_list_stops_at_max_cpus() {
    let tree = cpu_tree(1, |b| {
        for i in 0..70 {
            psci_cpu(b, &format!("cpu@{i:x}"), &[i]);
        }
    });
    let (list, skipped) = cpu_list(&tree, 69);
    assert_eq!(list.len(), MAX_CPUS);
    assert_eq!(list[..3], [69, 0, 1]);
    assert_eq!(list[MAX_CPUS - 1], 62);
    assert_eq!(skipped.iter().map(|(n, w)| (n.as_str(), *w)).collect::<Vec<_>>(), [("cpu@3f", CpuSkip::TooMany), ("cpu@40", CpuSkip::TooMany), ("cpu@41", CpuSkip::TooMany), ("cpu@42", CpuSkip::TooMany), ("cpu@43", CpuSkip::TooMany), ("cpu@44", CpuSkip::TooMany)]);
}

#[test]
fn the_initrd_in_ram_is_found_and_reserved_and_one_elsewhere_is_not() {
    let with_initrd = |start: u64, end: u64| {
        build_with(&VIRT_LIKE, |b| {
            b.begin("chosen@1")
                .cells("linux,initrd-start", &[(start >> 32) as u32, start as u32])
                .cells("linux,initrd-end", &[(end >> 32) as u32, end as u32])
                .end();
        })
    };
    let bytes = with_initrd(0x4020_0000, 0x4020_1234);
    let m = Machine::parse(&open(&bytes).unwrap()).unwrap();
    assert_eq!(m.initrd, Some(r(0x4020_0000, 0x4020_1234)));
    assert!(m.reserved.as_slice().contains(&r(0x4020_0000, 0x4020_2000)), "kept from the heap, whole pages");
    let outside = with_initrd(0x1000_0000, 0x1000_1000);
    let m = Machine::parse(&open(&outside).unwrap()).unwrap();
    assert_eq!(m.initrd, None, "not RAM: not read");
    assert!(m.reserved.as_slice().is_empty());
    let backwards = with_initrd(0x4020_1000, 0x4020_0000);
    assert_eq!(Machine::parse(&open(&backwards).unwrap()).unwrap().initrd, None);
}
