//! rtnetlink errors; the binding maps each onto the addon's error catalogue.

use crate::EPERM;

#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    #[error("rtnetlink I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel refused the rtnetlink {what}: {} (errno {errno})", errno_text(*errno))]
    Kernel { errno: i32, what: &'static str },
    #[error("the kernel did not answer the rtnetlink {0} within the receive timeout")]
    NoReply(&'static str),
    #[error("malformed rtnetlink reply: {0}")]
    Malformed(&'static str),
}

impl RtnlError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            RtnlError::Io(e) => e.raw_os_error(),
            RtnlError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)"; the errno is printed once, by the caller.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if errno == EPERM {
        format!("{text}; links and addresses need CAP_NET_ADMIN")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_name_the_errno_once() {
        let e = RtnlError::Kernel { errno: crate::EEXIST, what: "link create" };
        assert_eq!(e.to_string(), "kernel refused the rtnetlink link create: File exists (errno 17)");
        assert_eq!(e.errno(), Some(17));
        let e = RtnlError::Kernel { errno: EPERM, what: "address change" };
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        assert_eq!(RtnlError::NoReply("dump").errno(), None);
    }
}
