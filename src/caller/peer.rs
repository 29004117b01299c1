//! The kernel's answer to "who owns the other end of this loopback TCP connection".
//!
//! [`peer_uid`] asks the kernel (netlink `NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY` for one exact
//! 4-tuple, no `NLM_F_DUMP`) for the uid owning the client's socket. The kernel answers from its
//! socket hash table, so the cost does not grow with the number of sockets on the node; nothing
//! here reads `/proc/net/tcp`. The answer comes back while `sendmsg` runs, so the call never
//! waits on anything but the kernel: a few microseconds, fine to make inline on an async worker.
//!
//! A uid is reported only for a real socket. A client that already closed leaves a time-wait
//! mini-socket that the kernel reports with uid 0; that is an error here, never "root".
//!
//! [`connection_owner`] is what the server asks: the client's uid, and then whether *our* end of the
//! connection is still the established socket we accepted. A connection reset before the lookup frees
//! its address pair, and a new connection (anyone's) may take it over; the kernel would then answer for
//! the newcomer. While our end is established the pair cannot be reused, so a lookup followed by that
//! check names the owner of this very connection, or nobody.
//!
//! A connection that NAT redirected to us (the instance-metadata redirect sends 169.254.169.254:80
//! to the agent's metadata listener, and [fd00:ec2::254]:80 to the same port on [::1]) still has the
//! client's socket addressed to the original destination: [`redirected_connection_owner`] asks
//! conntrack for it ([`original_destination`], `SO_ORIGINAL_DST` or `IP6T_SO_ORIGINAL_DST`) and looks
//! the client up by that address pair, IPv4 or IPv6; our own end is checked as accepted.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};

use netlink_packet_core::{NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV, TCP_TIME_WAIT,
};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, Timer};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NetlinkAddr};
use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::fstat;
use std::os::fd::AsFd;

/// `INET_DIAG_NOCOOKIE`: "any socket with this 4-tuple". A zero cookie would only match a socket
/// whose cookie is zero, and the kernel answers `ESTALE`.
const NO_COOKIE: [u8; 8] = [0xff; 8];
/// `TCP_NEW_SYN_RECV`: a request mini-socket (kernel-internal state, not in the crate's constants).
const TCP_NEW_SYN_RECV: u8 = 12;
/// One inet_diag reply without extensions is ~90 bytes; a page leaves room for anything queued.
const RECV_BUFFER: usize = 8192;
/// Replies to earlier, abandoned requests that may sit in a reused socket's queue.
const MAX_DATAGRAMS: usize = 16;

/// Sequence numbers for our requests; shared by all sockets so a stale reply never matches.
static SEQUENCE: AtomicU32 = AtomicU32::new(1);
/// One netlink socket reused across calls; a caller that finds it busy opens a private one.
static SHARED_SOCKET: OnceLock<Mutex<Option<Socket>>> = OnceLock::new();

/// The uid owning the *client* socket of a loopback TCP connection.
///
/// `local` is our (server) socket's local address, `peer` the client's address, both as the
/// accepted connection reports them. IPv4, IPv6 and IPv4-mapped IPv6 addresses (a dual-stack
/// listener) are supported; mixed families are queried as IPv6.
///
/// Errors: [`io::ErrorKind::NotFound`] when no live socket on this host (in this network
/// namespace) has that 4-tuple — the client is gone or remote; [`io::ErrorKind::ConnectionAborted`]
/// when only a closed client's kernel remnant is left (it has no owner); other kinds for netlink
/// failures. Blocking but bounded: the kernel answers synchronously, so this never waits on I/O.
pub fn peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<u32> {
    ask(&Query::new(End::Client, local, peer)).map(|found| found.uid)
}

/// The uid owning the client end of `stream`, an accepted connection from `peer` to `local`, checked
/// to belong to this connection: after the lookup, our end must still be the socket of `stream`,
/// established (or half-closed by the client). Otherwise [`io::ErrorKind::ConnectionAborted`].
pub fn connection_owner(stream: &impl AsFd, local: SocketAddr, peer: SocketAddr) -> io::Result<u32> {
    owner(stream, local, local, peer)
}

/// [`connection_owner`] of a connection that NAT may have redirected to us: the client's socket is
/// looked up by the destination it connected to ([`original_destination`]).
pub fn redirected_connection_owner(stream: &impl AsFd, local: SocketAddr, peer: SocketAddr) -> io::Result<u32> {
    owner(stream, original_destination(stream, local), local, peer)
}

/// The owner of the client socket from `peer` to `destination`, checked against our end (`local`).
fn owner(stream: &impl AsFd, destination: SocketAddr, local: SocketAddr, peer: SocketAddr) -> io::Result<u32> {
    let uid = peer_uid(destination, peer)?;
    let ours = fstat(stream.as_fd()).map_err(|e| with_context(io::Error::from(e), "fstat of the connection"))?;
    let server = ask(&Query::new(End::Server, local, peer))?;
    if u64::from(server.inode) != ours.st_ino {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("tcp {peer} -> {local} was reset and its addresses taken over by another connection"),
        ));
    }
    Ok(uid)
}

/// Where the client sent the connection accepted as `stream` on `local`: the destination before NAT
/// rewrote it (`SO_ORIGINAL_DST` for IPv4, `IP6T_SO_ORIGINAL_DST` for IPv6), or `local` itself when
/// nothing did (or conntrack does not track it).
pub fn original_destination(stream: &impl AsFd, local: SocketAddr) -> SocketAddr {
    let original = match local {
        SocketAddr::V4(_) => getsockopt(stream, sockopt::OriginalDst).ok().map(|sin| {
            SocketAddr::from((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
        }),
        // A v4-mapped local address is an IPv4 connection on a dual-stack socket: conntrack has it as IPv4.
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            getsockopt(stream, sockopt::OriginalDst).ok().map(|sin| {
                SocketAddr::from((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
            })
        }
        SocketAddr::V6(_) => getsockopt(stream, sockopt::Ip6tOriginalDst)
            .ok()
            .map(|sin6| SocketAddr::from((Ipv6Addr::from(sin6.sin6_addr.s6_addr), u16::from_be(sin6.sin6_port)))),
    };
    original.unwrap_or(local)
}

/// Sends `query` on the shared netlink socket (or a private one when it is busy).
fn ask(query: &Query) -> io::Result<Found> {
    let shared = SHARED_SOCKET.get_or_init(|| Mutex::new(None));
    let mut guard: MutexGuard<'_, Option<Socket>> = match shared.try_lock() {
        Ok(guard) => guard,
        // Nothing panics while holding the lock, but a poisoned slot is still a usable slot.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return query.run(&open_socket()?).0,
    };
    let socket = match guard.take() {
        Some(socket) => socket,
        None => open_socket()?,
    };
    let (result, socket_ok) = query.run(&socket);
    if socket_ok {
        *guard = Some(socket);
    }
    result
}

fn open_socket() -> io::Result<Socket> {
    let socket =
        Socket::new(NETLINK_SOCK_DIAG).map_err(|e| with_context(e, "cannot open a NETLINK_SOCK_DIAG socket"))?;
    // The kernel queues its reply before sendmsg returns, so a non-blocking read finds it; if it
    // ever did not, we fail fast instead of hanging a connection.
    socket.set_non_blocking(true)?;
    Ok(socket)
}

/// Which end of a connection a query asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client's socket: its owner is the caller.
    Client,
    /// Our own, accepted socket.
    Server,
}

/// What the kernel said about the socket asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Found {
    uid: u32,
    inode: u32,
}

/// One exact-match request for one end of a connection.
struct Query {
    end: End,
    local: SocketAddr,
    peer: SocketAddr,
    request: InetRequest,
}

impl Query {
    fn new(end: End, local: SocketAddr, peer: SocketAddr) -> Query {
        // The client's socket goes from the peer to our local address; ours the other way.
        let (from, to) = match end {
            End::Client => (peer, local),
            End::Server => (local, peer),
        };
        let (family, source, destination) = match (from.ip(), to.ip()) {
            (IpAddr::V4(f), IpAddr::V4(t)) => (AF_INET, IpAddr::V4(f), IpAddr::V4(t)),
            // The kernel looks up v4-mapped pairs in the IPv4 table itself; give it both as v6.
            (f, t) => (AF_INET6, IpAddr::V6(as_v6(f)), IpAddr::V6(as_v6(t))),
        };
        let socket_id = SocketId {
            source_port: from.port(),
            destination_port: to.port(),
            source_address: source,
            destination_address: destination,
            interface_id: 0,
            cookie: NO_COOKIE,
        };
        let request = InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        };
        Query { end, local, peer, request }
    }

    /// Sends the request and reads the answer. The flag says whether the socket is still in a
    /// known state (the kernel answered) and may be reused.
    fn run(&self, socket: &Socket) -> (io::Result<Found>, bool) {
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.send(socket, sequence) {
            return (Err(e), false);
        }
        let mut buffer = Vec::with_capacity(RECV_BUFFER);
        for _ in 0..MAX_DATAGRAMS {
            buffer.clear();
            let received = match socket.recv(&mut buffer, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("kernel sent no sock_diag reply for {}", self.describe()),
                    );
                    return (Err(e), false);
                }
                Err(e) => return (Err(with_context(e, "sock_diag receive failed")), false),
            };
            if received > buffer.len() {
                return (Err(invalid_data(format!("sock_diag reply truncated ({received} bytes)"))), false);
            }
            match self.parse_datagram(&buffer, sequence) {
                Some(Ok(answer)) => return (answer, true),
                Some(Err(e)) => return (Err(e), false),
                None => continue, // only replies to older requests
            }
        }
        (Err(invalid_data(format!("no sock_diag reply with sequence {sequence}"))), false)
    }

    fn send(&self, socket: &Socket, sequence: u32) -> io::Result<()> {
        let mut header = NetlinkHeader::default();
        // No NLM_F_DUMP: the kernel looks up exactly this socket. No NLM_F_ACK: the answer is
        // either the socket or an NLMSG_ERROR, one datagram either way.
        header.flags = NLM_F_REQUEST;
        header.sequence_number = sequence;
        let mut message =
            NetlinkMessage::new(header, NetlinkPayload::from(SockDiagMessage::InetRequest(self.request.clone())));
        message.finalize();
        let mut bytes = vec![0u8; message.buffer_len()];
        message.serialize(&mut bytes);
        let sent = socket
            .send_to(&bytes, &NetlinkAddr::new(0, 0), 0)
            .map_err(|e| with_context(e, "sock_diag request failed"))?;
        if sent != bytes.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "sock_diag request sent partially"));
        }
        Ok(())
    }

    /// Walks the netlink messages in one datagram. `None`: nothing for this sequence number.
    /// `Some(Ok(answer))`: the kernel's answer (a uid or its error). `Some(Err(_))`: garbage.
    fn parse_datagram(&self, mut bytes: &[u8], sequence: u32) -> Option<io::Result<io::Result<Found>>> {
        while !bytes.is_empty() {
            let length = match NetlinkBuffer::new_checked(bytes) {
                Ok(buffer) => buffer.length() as usize,
                Err(e) => return Some(Err(invalid_data(format!("bad netlink header: {e}")))),
            };
            let message = &bytes[..length];
            bytes = bytes.get(align4(length)..).unwrap_or(&[]);
            let message = match NetlinkMessage::<SockDiagMessage>::deserialize(message) {
                Ok(message) => message,
                Err(e) => return Some(Err(invalid_data(format!("bad sock_diag reply: {e}")))),
            };
            if message.header.sequence_number != sequence {
                continue;
            }
            return Some(Ok(self.answer(message.payload)));
        }
        None
    }

    fn answer(&self, payload: NetlinkPayload<SockDiagMessage>) -> io::Result<Found> {
        match payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => self.owner(&response),
            NetlinkPayload::Error(error) => match error.code {
                Some(code) if code.get().abs() == ENOENT => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no socket on this host is {} (closed, or not local)", self.describe()),
                )),
                Some(code) => Err(with_context(
                    io::Error::from_raw_os_error(code.get().abs()),
                    &format!("sock_diag lookup of {} failed", self.describe()),
                )),
                None => Err(invalid_data("sock_diag answered with a bare ACK".to_string())),
            },
            other => Err(invalid_data(format!("unexpected sock_diag reply (type {})", other.message_type()))),
        }
    }

    /// The socket the kernel found, if it is the one we asked for: for the client end, one with an
    /// owner; for ours, one still established.
    fn owner(&self, response: &InetResponse) -> io::Result<Found> {
        let header = &response.header;
        let id = &header.socket_id;
        let want = &self.request.socket_id;
        // The kernel found the socket by its 4-tuple, but it was torn down while it answered: a
        // closed socket may already report port 0. It is gone, not someone else's.
        if header.state == TCP_CLOSE {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("the {} socket of {} is already closed", self.end_name(), self.describe()),
            ));
        }
        let same = id.source_port == want.source_port
            && id.destination_port == want.destination_port
            && id.source_address.to_canonical() == want.source_address.to_canonical()
            && id.destination_address.to_canonical() == want.destination_address.to_canonical();
        if !same {
            return Err(invalid_data(format!(
                "sock_diag answered for {}:{} -> {}:{}, not {}",
                id.source_address,
                id.source_port,
                id.destination_address,
                id.destination_port,
                self.describe()
            )));
        }
        let usable = match self.end {
            // Time-wait and request mini-sockets carry no owner: the kernel reports uid 0 for them.
            End::Client => {
                !matches!(header.timer, Some(Timer::TimeWait))
                    && !matches!(header.state, TCP_TIME_WAIT | TCP_SYN_RECV | TCP_NEW_SYN_RECV | TCP_LISTEN)
            }
            // Ours holds the address pair only while established (or half-closed by the client).
            End::Server => matches!(header.state, TCP_ESTABLISHED | TCP_CLOSE_WAIT),
        };
        if !usable {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "the {} socket of {} is already closed (state {})",
                    self.end_name(),
                    self.describe(),
                    header.state
                ),
            ));
        }
        Ok(Found { uid: header.uid, inode: header.inode })
    }

    fn describe(&self) -> String {
        format!("tcp {} -> {}", self.peer, self.local)
    }

    fn end_name(&self) -> &'static str {
        match self.end {
            End::Client => "client",
            End::Server => "server",
        }
    }
}

const ENOENT: i32 = 2;

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn with_context(error: io::Error, context: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::ErrorMessage;
    use netlink_packet_sock_diag::inet::InetResponseHeader;
    use std::num::NonZeroI32;
    use std::time::Duration;

    fn query() -> Query {
        Query::new(End::Client, "127.0.0.1:9944".parse().unwrap(), "127.0.0.1:40000".parse().unwrap())
    }

    fn message(sequence: u32, payload: NetlinkPayload<SockDiagMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = sequence;
        header.message_type = SockDiagMessage::InetRequest(query().request).message_type();
        let mut message = NetlinkMessage::new(header, payload);
        message.finalize();
        let mut bytes = vec![0u8; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn response(q: &Query, state: u8, timer: Option<Timer>, uid: u32) -> NetlinkPayload<SockDiagMessage> {
        let mut id = q.request.socket_id.clone();
        id.cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let header = InetResponseHeader {
            family: AF_INET,
            state,
            timer,
            socket_id: id,
            recv_queue: 0,
            send_queue: 0,
            uid,
            inode: 7,
        };
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(Box::new(InetResponse {
            header,
            nlas: Default::default(),
        })))
    }

    fn error(code: i32) -> NetlinkPayload<SockDiagMessage> {
        let mut error = ErrorMessage::default();
        error.code = NonZeroI32::new(code);
        NetlinkPayload::Error(error)
    }

    #[test]
    fn request_is_the_client_end_with_no_cookie() {
        let q = query();
        assert_eq!(q.request.family, AF_INET);
        assert_eq!(q.request.socket_id.source_port, 40000);
        assert_eq!(q.request.socket_id.destination_port, 9944);
        assert_eq!(q.request.socket_id.cookie, NO_COOKIE);
        let mapped =
            Query::new(End::Client, "[::ffff:127.0.0.1]:9944".parse().unwrap(), "127.0.0.1:1".parse().unwrap());
        assert_eq!(mapped.request.family, AF_INET6);
        assert_eq!(mapped.request.socket_id.source_address, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn replies_to_older_requests_are_skipped() {
        let q = query();
        let mut datagram = message(6, response(&q, 1, None, 1000));
        datagram.extend(message(7, response(&q, 1, None, 1001)));
        assert_eq!(q.parse_datagram(&datagram, 7).unwrap().unwrap().unwrap().uid, 1001);
        assert!(q.parse_datagram(&datagram, 8).is_none());
    }

    #[test]
    fn enoent_is_not_found_and_other_errnos_keep_their_kind() {
        let q = query();
        let e = q.parse_datagram(&message(3, error(-2)), 3).unwrap().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("127.0.0.1:40000 -> 127.0.0.1:9944"), "{e}");
        let e = q.parse_datagram(&message(3, error(-1)), 3).unwrap().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn ownerless_mini_sockets_are_not_root() {
        let q = query();
        for (state, timer) in [
            (TCP_TIME_WAIT, Some(Timer::TimeWait)),
            (5, Some(Timer::TimeWait)), // time-wait with FIN_WAIT2 substate, as an orphaned client leaves
            (TCP_SYN_RECV, Some(Timer::Retransmit(Duration::ZERO, 0))),
        ] {
            let e = q.owner(&response_of(response(&q, state, timer, 0))).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        }
        assert_eq!(q.owner(&response_of(response(&q, 5, None, 0))).unwrap().uid, 0);
    }

    #[test]
    fn our_end_counts_only_while_it_holds_the_address_pair() {
        let local = "127.0.0.1:9944".parse().unwrap();
        let q = Query::new(End::Server, local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(q.request.socket_id.source_port, 9944);
        assert_eq!(q.request.socket_id.destination_port, 40000);
        for state in [TCP_ESTABLISHED, TCP_CLOSE_WAIT] {
            assert_eq!(q.owner(&response_of(response(&q, state, None, 7))).unwrap(), Found { uid: 7, inode: 7 });
        }
        for state in [TCP_CLOSE, TCP_TIME_WAIT, 4 /* FIN_WAIT1 */, TCP_LISTEN] {
            let e = q.owner(&response_of(response(&q, state, None, 7))).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "state {state}");
        }
    }

    #[test]
    fn an_answer_for_another_socket_is_refused() {
        let q = query();
        let other = Query::new(End::Client, "127.0.0.1:9944".parse().unwrap(), "127.0.0.1:40001".parse().unwrap());
        let e = q.owner(&response_of(response(&other, 1, None, 0))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    fn response_of(payload: NetlinkPayload<SockDiagMessage>) -> InetResponse {
        match payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => *r,
            _ => unreachable!(),
        }
    }
}
