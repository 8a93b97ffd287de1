//! virtio devices: the split virtqueue and the modern virtio-pci transport, written once, and
//! the devices on them.
