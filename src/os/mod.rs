//! The operating system: network namespaces, TUN devices, processes. The only unsafe code.
#![allow(unsafe_code)]
