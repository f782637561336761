//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Owns the ones' complement arithmetic every other `wire` room uses; knows nothing about
//! packet layouts beyond the IPv4 pseudo-header.
//!
//! Vocabulary: a *sum* is a folded, uncomplemented 16-bit ones' complement sum (what Linux keeps
//! in the TCP/UDP field for `CHECKSUM_PARTIAL`); a *checksum* is the complement of a sum (what a
//! finished header holds). A region verifies when the sum over it, checksum included, is 0xFFFF.

use std::net::Ipv4Addr;

/// Folded sum of `data`, as big-endian 16-bit words; an odd last byte is padded with a zero.
///
/// The bytes are added 8 at a time in native order with end-around carry (the ones' complement
/// sum is byte-order independent up to one final swap, RFC 1071 section 2(B)), so this runs at
/// close to memory speed. `data` must start at an even offset of the checksummed region for the
/// result to combine with other sums.
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (sum, carry) = acc.overflowing_add(u64::from_ne_bytes(word));
        acc = sum + u64::from(carry);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zero padding on the right is exactly RFC 1071's padding of an odd last byte.
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        let (sum, carry) = acc.overflowing_add(u64::from_ne_bytes(word));
        acc = sum + u64::from(carry);
    }
    // 2^16 - 1 divides 2^64 - 1, so folding the 64-bit ones' complement sum is exact.
    u16::from_be(fold64(acc))
}

fn fold64(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32)
}

/// Folds a 32-bit accumulator of 16-bit words into a 16-bit ones' complement sum.
pub fn fold(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Ones' complement addition of two sums.
pub fn add(a: u16, b: u16) -> u16 {
    fold(u32::from(a) + u32::from(b))
}

/// Ones' complement sum of several sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u32::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header (RFC 793 / RFC 768): addresses, protocol, L4 length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    fold(
        u32::from(u16::from_be_bytes([s[0], s[1]]))
            + u32::from(u16::from_be_bytes([s[2], s[3]]))
            + u32::from(u16::from_be_bytes([d[0], d[1]]))
            + u32::from(u16::from_be_bytes([d[2], d[3]]))
            + u32::from(proto)
            + u32::from(l4_len),
    )
}

/// RFC 1624 eqn. 3 for a *checksum* field: `HC' = ~(~HC + ~m + m')` when one 16-bit word
/// changes from `old` to `new`. Never turns a valid checksum into 0xFFFF-vs-0 trouble beyond
/// what a full recomputation would give.
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    !update_sum(!checksum, old, new)
}

/// [`update`] for a 32-bit field (an IPv4 address), as two 16-bit words.
pub fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    !update_sum32(!checksum, old, new)
}

/// Incremental update of an uncomplemented *sum* (the `CHECKSUM_PARTIAL` field): `S + ~m + m'`.
pub fn update_sum(sum: u16, old: u16, new: u16) -> u16 {
    fold(u32::from(sum) + u32::from(!old) + u32::from(new))
}

/// [`update_sum`] for a 32-bit field.
pub fn update_sum32(sum: u16, old: u32, new: u32) -> u16 {
    fold(
        u32::from(sum)
            + u32::from(!(old >> 16) as u16)
            + u32::from(!(old as u16))
            + (new >> 16)
            + (new & 0xffff),
    )
}

/// The checksum to store for `sum` (TCP, IPv4, ICMP): its complement. A result of 0 is kept,
/// as a full computation by Linux or etherparse gives it.
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// The checksum to store for UDP: the complement of `sum`, with 0 sent as 0xFFFF (the same
/// number in ones' complement), because UDP reserves 0 for "no checksum" (RFC 768).
pub fn finish_udp(sum: u16) -> u16 {
    match !sum {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, one 16-bit word at a time, as the independent reference.
    pub(crate) fn slow(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    fn prng(seed: &mut u64) -> u64 {
        // xorshift64*
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn matches_slow_reference_on_random_data() {
        let mut seed = 0x1234_5678_9abc_def1;
        for len in 0..300 {
            let buf: Vec<u8> = (0..len).map(|_| prng(&mut seed) as u8).collect();
            assert_eq!(data(&buf), slow(&buf), "len {len}");
        }
        // All ones: stresses the end-around carry.
        for len in 0..40 {
            let buf = vec![0xffu8; len];
            assert_eq!(data(&buf), slow(&buf), "len {len}");
        }
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut seed = 42;
        for _ in 0..2000 {
            let mut words: Vec<u16> = (0..12).map(|_| prng(&mut seed) as u16).collect();
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>();
            let before = !data(&bytes(&words));
            let i = (prng(&mut seed) % 11) as usize;
            let old32 = (u32::from(words[i]) << 16) | u32::from(words[i + 1]);
            let new32 = prng(&mut seed) as u32;
            words[i] = (new32 >> 16) as u16;
            words[i + 1] = new32 as u16;
            let after = !data(&bytes(&words));
            assert_eq!(update32(before, old32, new32), after);
            assert_eq!(update_sum32(!before, old32, new32), !after);
            let old16 = words[0];
            words[0] = prng(&mut seed) as u16;
            assert_eq!(update(after, old16, words[0]), !data(&bytes(&words)));
        }
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 200, 254);
        let mut b = Vec::new();
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header(src, dst, 6, 1500), slow(&b));
    }

    #[test]
    fn finish_never_zero() {
        assert_eq!(finish_udp(0xffff), 0xffff);
        assert_eq!(finish_udp(0x1234), !0x1234);
        assert_eq!(finish(0xffff), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(add(0x8000, 0x8000), 0x0001);
    }
}
