//! IPVS errors; the binding maps each onto the addon's error catalogue.

#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The kernel has no IPVS generic-netlink family (module not loaded / not built).
    #[error("the kernel has no IPVS generic-netlink family (ip_vs not loaded, or not built)")]
    NotAvailable,
    #[error("IPVS netlink I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel refused the IPVS {what}: {} (errno {errno})", errno_text(*errno))]
    Kernel { errno: i32, what: &'static str },
    #[error("the kernel did not answer the IPVS {0} within the receive timeout")]
    NoReply(&'static str),
    #[error("malformed IPVS reply: {0}")]
    Malformed(&'static str),
}

impl IpvsError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::Io(e) => e.raw_os_error(),
            IpvsError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

// The errnos the kernel's IPVS answers with (asm-generic/errno-base.h, errno.h).
pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EEXIST: i32 = 17;
pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;
pub const EAFNOSUPPORT: i32 = 97;

pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)"; the errno is printed once, by the caller.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if errno == EPERM {
        format!("{text}; IPVS needs CAP_NET_ADMIN")
    } else {
        text
    }
}
