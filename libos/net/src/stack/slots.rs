//! The life of a slot: keys in the demultiplexer as a TCP connection changes state, a
//! listener's pool of listening sockets and its accept queue, allocation and release, and
//! local port choice. (Split from `stack.rs`, which keeps the packet and timer paths.)

use super::{CONTROL, IDLE_LISTENERS, Inner, Kind, LINGER, Slot, zeroed};
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;

impl Inner {
    /// Keeps the demultiplexer and the listener's queues in step with a TCP slot's state.
    pub(super) fn rekey(&mut self, slot: usize) {
        let Some(socket) = self.slots[slot].tcp() else { return };
        let state = socket.state();
        let flow = match (socket.local_endpoint(), socket.remote_endpoint()) {
            (Some(local), Some(remote)) => Some((local, remote)),
            _ => None,
        };
        let entry = &mut self.slots[slot];
        let previous = core::mem::replace(&mut entry.last_state, state);
        if state == tcp::State::Closed && entry.error.is_none() {
            use tcp::State::*;
            entry.error = match previous {
                SynSent => Some(Errno::ECONNREFUSED),
                SynReceived | Established | FinWait1 | FinWait2 | CloseWait | Closing => Some(Errno::ECONNRESET),
                _ => None,
            };
        }
        let wanted = flow.filter(|_| !matches!(state, tcp::State::Closed | tcp::State::Listen));
        if entry.flow != wanted {
            if let Some(old) = entry.flow.take() {
                self.tcp_flows.remove(&old);
            }
            if let Some(new) = wanted {
                self.tcp_flows.insert(new, slot);
                self.slots[slot].flow = Some(new);
            }
        }
        if let Some(parent) = self.slots[slot].parent {
            let enqueue = matches!(state, tcp::State::Established | tcp::State::CloseWait) && !self.slots[slot].accept_queued;
            let Kind::Listener(listener) = &mut self.slots[parent].kind else { return };
            // The idle pool holds at most `IDLE_LISTENERS`: a search is cheap.
            let idle = listener.idle.contains(&slot);
            match state {
                tcp::State::Listen if !idle => listener.idle.push(slot),
                tcp::State::Listen => {}
                _ if idle => listener.idle.retain(|&s| s != slot),
                _ => {}
            }
            if enqueue {
                listener.ready.push_back(slot);
                self.slots[slot].accept_queued = true;
                let shared = self.slots[parent].shared.clone();
                self.wakes.push(shared);
            }
            if state == tcp::State::SynReceived {
                self.replenish(parent);
            }
        } else if state == tcp::State::Closed && !self.slots[slot].user {
            self.free(slot);
        }
    }

    /// A listening socket of `listener` for a SYN, making one if the pool is empty
    /// and the backlog allows.
    pub(super) fn idle_listener(&mut self, listener: usize) -> Option<usize> {
        self.replenish(listener);
        let Kind::Listener(l) = &self.slots[listener].kind else { return None };
        l.idle.last().copied()
    }

    /// Tops the listener's pool of listening sockets up to [`IDLE_LISTENERS`] within its backlog.
    pub fn replenish(&mut self, listener: usize) {
        loop {
            let Kind::Listener(l) = &self.slots[listener].kind else { return };
            if l.idle.len() >= IDLE_LISTENERS || l.members >= l.backlog {
                return;
            }
            let endpoint = l.endpoint;
            let Ok(mut socket) = self.new_tcp_socket() else {
                log::warn!("net: out of memory for a listening socket on port {}", endpoint.port);
                return;
            };
            if socket.listen(endpoint).is_err() {
                return;
            }
            let slot = self.allocate(Kind::Tcp);
            let handle = self.slots[slot].set.add(socket);
            let entry = &mut self.slots[slot];
            entry.handle = Some(handle);
            entry.parent = Some(listener);
            entry.user = false;
            entry.last_state = tcp::State::Listen;
            if let Kind::Listener(l) = &mut self.slots[listener].kind {
                l.idle.push(slot);
                l.members += 1;
            }
        }
    }

    /// A TCP socket with this stack's buffer size and defaults. `ENOMEM` when the heap cannot
    /// hold its buffers (the connection is refused; the kernel does not abort).
    pub fn new_tcp_socket(&self) -> Result<tcp::Socket<'static>> {
        let rx = tcp::SocketBuffer::new(zeroed(self.tcp_buffer)?);
        let tx = tcp::SocketBuffer::new(zeroed(self.tcp_buffer)?);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_congestion_control(tcp::CongestionControl::Reno);
        Ok(socket)
    }

    /// A fresh slot of kind `kind` (user-owned).
    pub fn allocate(&mut self, kind: Kind) -> usize {
        match self.free_slots.pop() {
            Some(id) => {
                let generation = self.slots[id].generation;
                self.slots[id] = Slot::new(kind);
                self.slots[id].generation = generation;
                id
            }
            None => {
                self.slots.push(Slot::new(kind));
                self.slots.len() - 1
            }
        }
    }

    /// Releases slot `slot`: keys, timer, ports; stale references now fail.
    pub fn free(&mut self, slot: usize) {
        if slot == CONTROL {
            return;
        }
        let entry = &mut self.slots[slot];
        if matches!(entry.kind, Kind::Free) {
            return;
        }
        if let Some(flow) = entry.flow.take() {
            self.tcp_flows.remove(&flow);
        }
        if let Some(at) = entry.timer.take() {
            self.timers.remove(&(at, slot));
        }
        if let Some(port) = entry.port.take() {
            match entry.kind {
                Kind::Udp => {
                    self.udp_ports.remove(&port);
                }
                Kind::Tcp => {
                    if let Some(count) = self.tcp_client_ports.get_mut(&port) {
                        *count -= 1;
                        if *count == 0 {
                            self.tcp_client_ports.remove(&port);
                        }
                    }
                }
                Kind::Listener(_) => {
                    self.listeners.remove(&port);
                }
                _ => {}
            }
        }
        let entry = &mut self.slots[slot];
        entry.kind = Kind::Free;
        entry.set = SocketSet::new(Vec::new());
        entry.handle = None;
        entry.generation += 1;
        entry.shared.wake(); // a poller still registered drops it
        entry.neighbor_waiting = false; // its entry in the list, if any, is skipped
        self.free_slots.push(slot);
    }

    /// The app let go of slot `slot`: TCP closes gracefully (freed when closed), the rest is
    /// freed now.
    pub fn release(&mut self, slot: usize) {
        self.slots[slot].user = false;
        let listener_members = match &mut self.slots[slot].kind {
            Kind::Listener(l) => Some(l.idle.drain(..).chain(l.ready.drain(..)).collect::<Vec<_>>()),
            _ => None,
        };
        if let Some(members) = listener_members {
            // Closing a listener resets the connections nobody accepted.
            for member in members {
                if let Some(socket) = self.slots[member].tcp() {
                    socket.abort();
                }
                self.slots[member].parent = None;
                self.egress(member);
                self.free(member);
            }
            self.free(slot);
            return;
        }
        match self.slots[slot].tcp() {
            Some(socket) => {
                socket.close();
                socket.set_timeout(Some(LINGER));
                self.egress(slot);
                if self.slots[slot].tcp().is_some_and(|s| s.state() == tcp::State::Closed) {
                    self.free(slot);
                }
            }
            None => self.free(slot),
        }
    }

    /// A local port for a connection or an unbound UDP socket.
    pub fn ephemeral_port(&mut self, udp: bool) -> Result<u16> {
        for _ in 0..16384 {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == 65535 { 49152 } else { port + 1 };
            let taken = if udp { self.udp_ports.contains_key(&port) } else { self.tcp_client_ports.contains_key(&port) || self.listeners.contains_key(&port) };
            if !taken {
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }
}
