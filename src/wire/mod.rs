//! Packet views and rewriting: parses and builds IPv4, TCP, UDP and ICMP bytes, never does I/O.
