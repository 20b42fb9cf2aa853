//! The sockets a frontend listens on, and the reset a refused client gets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Pending connections the kernel queues for one listener (somaxconn caps it).
const BACKLOG: i32 = 4096;

fn socket(addr: &SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(*addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // A listener reopened while its old connections sit in TIME_WAIT still binds.
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&(*addr).into())?;
    Ok(s)
}

pub fn tcp_listener(addr: &SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

pub fn udp_socket(addr: &SocketAddr) -> io::Result<std::net::UdpSocket> {
    Ok(socket(addr, Type::DGRAM, Protocol::UDP)?.into())
}

/// Closes with a TCP reset rather than a FIN: the client learns at once that nothing serves it.
pub fn reset(s: tokio::net::TcpStream) {
    let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}
