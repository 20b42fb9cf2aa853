//! Zero-copy relay for bulk flows: splice(2) from one socket into a pipe and from the pipe
//! into the other socket, so the bytes never enter the process. A flow switches to it once
//! it has moved `SPLICE_AFTER` bytes one way; short connections never pay for the pipe's two
//! descriptors. Without a pipe (descriptors exhausted) the copy goes on buffered.

use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes a direction copies through its buffer before it tries splice.
pub const SPLICE_AFTER: u64 = 256 * 1024;
/// One splice's most: a default pipe's capacity, so filling an empty pipe never blocks on
/// the pipe (a would-block is then always the socket's, and its readiness is right to clear).
const CHUNK: usize = 64 * 1024;

pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    pub fn new() -> Option<Self> {
        let (r, w) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
        Some(Self { r, w })
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// Moves everything `src` sends to `dst` until `src`'s end of data; `count` sees each chunk.
pub async fn relay(src: &TcpStream, dst: &TcpStream, pipe: &Pipe, count: impl Fn(usize)) -> io::Result<()> {
    loop {
        let n = loop {
            src.readable().await?;
            match src.try_io(Interest::READABLE, || splice(src, None, &pipe.w, None, CHUNK, flags()).map_err(io::Error::from)) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || splice(&pipe.r, None, dst, None, left, flags()).map_err(io::Error::from)) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        count(n);
    }
}
