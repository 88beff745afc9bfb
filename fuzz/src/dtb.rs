//! Flattened device trees: the aarch64 platform's reader ([`dtb::flat`]) and what the boot makes
//! of a tree ([`dtb::scan`], [`dtb::Machine`]), on any bytes. A broken tree must give missing
//! nodes or a [`dtb::DtbError`], never a panic, an overflow or unbounded recursion.

use libos_platform_aarch64::dtb::{self, Machine};

/// Opens `data` as a device tree and interprets it as the boot does.
pub fn run(data: &[u8]) {
    if let Some(header) = data.get(..8) {
        let _ = dtb::total_size(header.try_into().expect("8 bytes"));
    }
    let Ok(fdt) = dtb::open(data) else { return };
    let scan = dtb::scan(&fdt);
    let _ = (scan.console(), scan.psci());
    match Machine::from_scan(&scan, &fdt) {
        Ok(machine) => {
            assert!(machine.virtio_mmio().len() <= dtb::MAX_VIRTIO_MMIO);
            assert!(machine.cpus >= 1);
            for region in machine.ram.as_slice().iter().chain(machine.reserved.as_slice()) {
                assert!(region.start <= region.end, "{region:?}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = fdt.memory_reservations().take(64).count();
    for path in ["/chosen", "/cpus", "/memory", "/reserved-memory", "/psci"] {
        if let Some(node) = fdt.find_node(path) {
            let _ = node.properties().count();
        }
    }
    // Every node and property, to a fixed depth (a walk of our own: the reader's iterators
    // must end on any damage).
    let mut stack = Vec::from_iter(fdt.root().map(|root| (root, 0usize)));
    let mut budget = 10_000usize;
    while let Some((node, depth)) = stack.pop() {
        for property in node.properties() {
            let _ = property.as_u64();
        }
        if depth < 16 {
            for child in node.children() {
                budget = budget.saturating_sub(1);
                if budget == 0 {
                    return;
                }
                stack.push((child, depth + 1));
            }
        }
    }
}
