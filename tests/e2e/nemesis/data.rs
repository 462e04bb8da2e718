//! Seeded randomness for the nemesis: [`Rng`] (the load's choices and the fault schedule) and
//! object contents as a pure function of (version, offset), so a writer streams an object
//! without holding it and a reader checks every byte without anything stored but the version.

/// splitmix64: one step of a 64-bit counter-based generator.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small seeded generator (splitmix64 over a counter): the same seed gives the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator of its own for stream `n` of this seed (client `n`, the nemesis, ...).
    pub fn fork(seed: u64, n: u64) -> Rng {
        Rng(mix(seed ^ mix(n.wrapping_add(0x5EED))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// An index into `weights`, each chosen in proportion to its weight.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Fills `buf` with the bytes of object version `version` starting at byte `offset`.
pub fn fill(version: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(version ^ mix(pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Where `got` (the bytes of version `version` at `offset`) first differs from what they should
/// be, as an offset into the object.
pub fn first_difference(
    version: u64,
    offset: u64,
    got: &[u8],
    scratch: &mut Vec<u8>,
) -> Option<u64> {
    scratch.resize(got.len(), 0);
    fill(version, offset, scratch);
    got.iter()
        .zip(scratch.iter())
        .position(|(a, b)| a != b)
        .map(|p| offset + p as u64)
}

/// An object size: mostly small, sometimes up to `max` (64 MiB in the full suite).
pub fn object_size(rng: &mut Rng, max: u64) -> u64 {
    let kib = 1024;
    let mib = 1024 * kib;
    let size = match rng.weighted(&[5, 40, 30, 17, 6, 2]) {
        0 => 0,
        1 => rng.range(1, 4 * kib),
        2 => rng.range(4 * kib, 256 * kib),
        3 => rng.range(256 * kib, 4 * mib),
        4 => rng.range(4 * mib, 20 * mib),
        _ => rng.range(20 * mib, 64 * mib),
    };
    size.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_do_not_depend_on_how_they_are_cut() {
        let mut whole = vec![0u8; 1000];
        fill(42, 3, &mut whole);
        let mut pieces = vec![0u8; 1000];
        let (a, b) = pieces.split_at_mut(333);
        fill(42, 3, a);
        fill(42, 336, b);
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 1000];
        fill(43, 3, &mut other);
        assert_ne!(whole, other);
        let mut scratch = Vec::new();
        assert_eq!(first_difference(42, 3, &whole, &mut scratch), None);
        whole[500] ^= 1;
        assert_eq!(first_difference(42, 3, &whole, &mut scratch), Some(503));
    }

    #[test]
    fn same_seed_same_choices() {
        let (mut a, mut b) = (Rng::fork(7, 1), Rng::fork(7, 1));
        let xs: Vec<u64> = (0..10).map(|_| a.range(3, 9)).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.range(3, 9)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (3..=9).contains(x)));
        assert_ne!(Rng::fork(7, 2).next_u64(), Rng::fork(7, 1).next_u64());
    }
}
