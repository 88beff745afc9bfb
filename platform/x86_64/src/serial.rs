//! The 16550 UART at COM1 (I/O port 0x3f8): the console.
//!
//! Every port access is a VM exit under a hypervisor, so writing checks the transmitter once per
//! 16 bytes (the FIFO depth) instead of before every byte.

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const FIFO_DEPTH: usize = 16;
const LSR_TX_EMPTY: u8 = 0x20;

/// Programs COM1 for 115200 8N1 with FIFOs. Returns false when no UART answers.
pub fn init() -> bool {
    // SAFETY: COM1's registers are I/O ports with no memory side effects; the scratch register
    // probe and the programming sequence below are the standard 16550 initialisation.
    unsafe {
        let mut scratch = Port::<u8>::new(COM1 + 7);
        scratch.write(0x5a);
        if scratch.read() != 0x5a {
            return false;
        }
        Port::<u8>::new(COM1 + 1).write(0x00); // no interrupts
        Port::<u8>::new(COM1 + 3).write(0x80); // DLAB: set the divisor
        Port::<u8>::new(COM1).write(0x01); // 115200 baud
        Port::<u8>::new(COM1 + 1).write(0x00);
        Port::<u8>::new(COM1 + 3).write(0x03); // 8 bits, no parity, one stop bit
        Port::<u8>::new(COM1 + 2).write(0xc7); // FIFOs on and cleared
        Port::<u8>::new(COM1 + 4).write(0x03); // DTR, RTS
    }
    true
}

/// Writes bytes, turning `\n` into `\r\n` for terminals.
pub fn write(bytes: &[u8]) {
    let mut data = Port::<u8>::new(COM1);
    let mut status = Port::<u8>::new(COM1 + 5);
    let mut budget = 0;
    let mut put = |byte: u8| {
        if budget == 0 {
            // SAFETY: reading the line status register has no side effects.
            while unsafe { status.read() } & LSR_TX_EMPTY == 0 {
                core::hint::spin_loop();
            }
            budget = FIFO_DEPTH;
        }
        // SAFETY: writing the transmit register sends one byte; the FIFO has room (checked above).
        unsafe { data.write(byte) };
        budget -= 1;
    };
    for &byte in bytes {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}
