//! The event loop that owns the TUN devices, the NAT table and the pipes that record and replay.
