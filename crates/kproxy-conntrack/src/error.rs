//! Conntrack errors; the binding maps each onto the addon's error catalogue.

#[derive(Debug, thiserror::Error)]
pub enum CtError {
    #[error("conntrack netlink I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel refused the conntrack {what}: {} (errno {errno})", errno_text(*errno))]
    Kernel { errno: i32, what: &'static str },
    #[error("the kernel did not answer the conntrack {0} within the receive timeout")]
    NoReply(&'static str),
    #[error("invalid conntrack input: {0}")]
    Input(String),
}

impl CtError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            CtError::Io(e) => e.raw_os_error(),
            CtError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;

pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)"; the errno is printed once, by the caller.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if errno == EPERM {
        format!("{text}; conntrack needs CAP_NET_ADMIN")
    } else {
        text
    }
}
