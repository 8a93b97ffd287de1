//! The I/O thread: device back ends (virtio queues and their disks) run here, woken by their
//! doorbells, so a slow disk never stalls a vCPU and, under KVM, a queue notification costs the
//! vCPU no exit to this process.

use std::io;
use std::thread::JoinHandle;

use tandem_softmmu::doorbell::{wait_any, Doorbell};

/// Work to do when a doorbell rings.
pub struct IoHandler {
    /// What rings it (the guest's queue notification).
    pub bell: Doorbell,
    /// What runs then (process the queue).
    pub run: Box<dyn FnMut() + Send>,
}

/// A running I/O thread; dropping it stops it.
pub struct IoThread {
    stop: Doorbell,
    handle: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Starts a thread serving `handlers` (none: no thread).
    pub fn spawn(mut handlers: Vec<IoHandler>) -> io::Result<Self> {
        let stop = Doorbell::new()?;
        if handlers.is_empty() {
            return Ok(Self { stop, handle: None });
        }
        let stop_here = stop.try_clone()?;
        let handle = std::thread::Builder::new()
            .name("tandem-io".into())
            .spawn(move || loop {
                let rang = {
                    let bells: Vec<&Doorbell> = std::iter::once(&stop_here)
                        .chain(handlers.iter().map(|h| &h.bell))
                        .collect();
                    match wait_any(&bells, -1) {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                };
                for i in rang {
                    match i.checked_sub(1) {
                        None => return,
                        Some(h) => {
                            if let Some(h) = handlers.get_mut(h) {
                                (h.run)();
                            }
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.stop.ring();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_the_handler_of_each_ring_and_stops_on_drop() {
        let count = Arc::new(AtomicU32::new(0));
        let bell = Doorbell::new().unwrap();
        let ring = bell.try_clone().unwrap();
        let c = count.clone();
        let t = IoThread::spawn(vec![IoHandler {
            bell,
            run: Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        }])
        .unwrap();
        ring.ring();
        let start = Instant::now();
        while count.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        drop(t);
    }
}
