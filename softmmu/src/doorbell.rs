//! A doorbell: the eventfd a device's queue notifications ring. Under KVM the guest's write to
//! the notify address rings it inside the kernel (an ioeventfd: no exit to this process); under
//! the JIT the device model rings it when the write reaches it. Either way an I/O thread waits
//! on it, so the vCPU never does the device's work.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd that counts rings until it is taken.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new doorbell, not rung.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Rings it.
    pub fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd. It can only fail when
        // the counter would overflow, and then the doorbell is rung anyway.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Whether it was rung since the last take (and clears it).
    pub fn take(&self) -> bool {
        let mut buf = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer from our own non-blocking eventfd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n == 8 && u64::from_ne_bytes(buf) != 0
    }

    /// A second descriptor for the same doorbell (for the KVM ioeventfd registration).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
        })
    }
}

impl From<Doorbell> for OwnedFd {
    fn from(b: Doorbell) -> OwnedFd {
        b.fd
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until one of `bells` rings or `timeout_ms` passes (-1: forever); returns the indices
/// of those that rang (and takes them).
pub fn wait_any(bells: &[&Doorbell], timeout_ms: i32) -> io::Result<Vec<usize>> {
    let mut fds: Vec<libc::pollfd> = bells
        .iter()
        .map(|b| libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(i, p)| p.revents & libc::POLLIN != 0 && bells[*i].take())
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_seen_once() {
        let a = Doorbell::new().unwrap();
        let b = Doorbell::new().unwrap();
        assert!(!a.take());
        a.ring();
        a.ring();
        let clone = b.try_clone().unwrap();
        clone.ring();
        assert_eq!(wait_any(&[&a, &b], 1000).unwrap(), vec![0, 1]);
        assert_eq!(wait_any(&[&a, &b], 0).unwrap(), Vec::<usize>::new());
    }
}
