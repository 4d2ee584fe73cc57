//! Eight bytes per step with 64-bit arithmetic ("SIMD within a register"), for scans
//! whose matches are rare: the end of a word, the end of a JSON string.

/// `0x0101…01`: multiplies a byte into all eight lanes.
pub const ONES: u64 = u64::MAX / 255;
/// `0x8080…80`: the top bit of every lane.
pub const HIGH: u64 = ONES << 7;

/// The first index at or after `start` whose byte matches, or `bytes.len()`. `marks`
/// takes eight bytes as a little-endian word and sets the top bit of every matching
/// lane (exactly: no carry may cross lanes); `matches` decides the bytes of the last,
/// partial word one at a time.
#[inline(always)]
pub fn find(
    bytes: &[u8],
    mut start: usize,
    marks: impl Fn(u64) -> u64,
    matches: impl Fn(u8) -> bool,
) -> usize {
    while let Some(chunk) = bytes.get(start..start + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let hits = marks(u64::from_le_bytes(word)) & HIGH;
        if hits != 0 {
            return start + (hits.trailing_zeros() / 8) as usize;
        }
        start += 8;
    }
    while bytes.get(start).is_some_and(|&b| !matches(b)) {
        start += 1;
    }
    start
}
