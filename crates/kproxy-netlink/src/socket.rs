//! The raw netlink socket. Every `unsafe` block of kproxy lives here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOL_NETLINK: libc::c_int = 270;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const NETLINK_DROP_MEMBERSHIP: libc::c_int = 2;

pub struct NetlinkSocket {
    fd: OwnedFd,
    recv_buf: Vec<u8>,
}

impl NetlinkSocket {
    /// Opens and binds a netlink socket of `protocol` in the current network namespace.
    pub fn open(protocol: i32) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr outlives the call and its size is passed alongside.
        let rc = unsafe {
            libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_nl>() as u32)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Self { fd, recv_buf: vec![0u8; 1 << 20] };
        // Extended acks name the offending attribute; capped acks keep replies small.
        let _ = s.setsockopt_int(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let _ = s.setsockopt_int(SOL_NETLINK, NETLINK_CAP_ACK, 1);
        // A blocking receive must not hang a sync forever if a reply never comes.
        s.set_recv_timeout(std::time::Duration::from_secs(5))?;
        Ok(s)
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` is a live, initialised T for the duration of the call, and its size is passed alongside.
        let rc = unsafe {
            libc::setsockopt(self.fd.as_raw_fd(), level, name, value as *const T as *const libc::c_void, std::mem::size_of::<T>() as u32)
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn setsockopt_int(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        self.setsockopt(level, name, &value)
    }

    fn set_recv_timeout(&self, d: std::time::Duration) -> io::Result<()> {
        let tv = libc::timeval { tv_sec: d.as_secs() as libc::time_t, tv_usec: d.subsec_micros() as libc::suseconds_t };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// The port id the kernel gave this socket: notifications caused by our own
    /// requests carry it in nlmsg_pid.
    pub fn port_id(&self) -> io::Result<u32> {
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr and len are live and writable, and len holds addr's size.
        let rc = unsafe { libc::getsockname(self.fd.as_raw_fd(), &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(addr.nl_pid)
    }

    /// Subscribes to a multicast group (e.g. NFNLGRP_NFTABLES for ruleset changes).
    pub fn join_group(&self, group: u32) -> io::Result<()> {
        self.setsockopt_int(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as libc::c_int)
    }

    /// Leaves a multicast group joined with `join_group`.
    pub fn leave_group(&self, group: u32) -> io::Result<()> {
        self.setsockopt_int(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, group as libc::c_int)
    }

    /// Raises the send buffer so one batch fits a single send(); FORCE needs CAP_NET_ADMIN.
    pub fn ensure_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        self.setsockopt_int(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v)
            .or_else(|_| self.setsockopt_int(libc::SOL_SOCKET, libc::SO_SNDBUF, v))
    }

    pub fn ensure_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        self.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
            .or_else(|_| self.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF, v))
    }

    /// Sends the whole buffer as one datagram to the kernel.
    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain old data; zero is the kernel's address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: buf and addr are valid for the duration of the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send"));
        }
        Ok(())
    }

    /// Receives one datagram. Returns Ok(None) when none is queued (`nonblocking`)
    /// or none arrived within the receive timeout.
    pub fn recv(&mut self, nonblocking: bool) -> io::Result<Option<&[u8]>> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: recv_buf is a live, writable buffer of the given length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.recv_buf.as_mut_ptr() as *mut libc::c_void, self.recv_buf.len(), flags) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(None),
                    _ => return Err(e),
                }
            }
            return Ok(Some(&self.recv_buf[..n as usize]));
        }
    }
}
