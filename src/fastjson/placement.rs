//! Where to keep bytes that Envoy copies, so that the copy runs at full speed.
//!
//! glibc's `memcpy` moves a large block with `rep movsb`. When the destination lies less
//! than 512 bytes after the source, counted within a 4 KiB page ("4K aliasing"), it takes
//! a path that runs about ten times slower on the AMD EPYC this project is benchmarked on:
//! a megabyte in ~0.3 ms instead of ~25 µs. Envoy keeps a body in slices that are whole
//! pages and start on a page boundary, and the allocator hands out large blocks on a page
//! boundary too, so a body read into a fresh `Vec` and written back to Envoy lands on that
//! path both ways: natively, that copy was 29 % of Envoy's CPU time for a 1 MB request.
//!
//! So the native glue reads a large body half a page into its buffer ([`PlacedBuf`]), and
//! writes a large piece whose place would alias through a buffer placed the same way.
//! Where the assumptions about Envoy's slices fail nothing breaks: a copy is only slower.

use std::ops::Deref;

/// The page size the aliasing is counted in.
pub const PAGE: usize = 4096;

/// Below this length `memcpy` moves bytes with vector loads and stores, which alias no
/// worse than any other code: placement does not matter.
pub const MIN_LEN: usize = 4096;

/// Whether copying from address `src` to address `dst` takes the slow path: the
/// destination less than 512 bytes after the source, within a page. Only the offsets of
/// the two addresses within a page matter.
pub fn slow(dst: usize, src: usize) -> bool {
    dst.wrapping_sub(src) % PAGE < 512
}

/// Bytes kept at a chosen offset within a page: a `Vec` that starts its contents `lead`
/// bytes into its allocation. Reads as the slice of its contents. (Neither `Clone` nor
/// `PartialEq`: a clone would lose the placement, and equality would see the lead.)
#[derive(Debug, Default)]
pub struct PlacedBuf {
    buf: Vec<u8>,
    lead: usize,
}

impl PlacedBuf {
    /// An empty buffer with room for `len` bytes, whose first byte will sit at `offset`
    /// within a page when `len` is at least [`MIN_LEN`] (below that the place does not
    /// matter and the buffer is a plain `Vec`).
    pub fn for_copy(len: usize, offset: usize) -> Self {
        if len < MIN_LEN {
            return PlacedBuf {
                buf: Vec::with_capacity(len),
                lead: 0,
            };
        }
        let mut buf = Vec::with_capacity(len + PAGE);
        let lead = (offset % PAGE).wrapping_sub(buf.as_ptr() as usize) % PAGE;
        buf.resize(lead, 0);
        PlacedBuf { buf, lead }
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

impl From<Vec<u8>> for PlacedBuf {
    fn from(buf: Vec<u8>) -> Self {
        PlacedBuf { buf, lead: 0 }
    }
}

impl Deref for PlacedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buf.get(self.lead..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(bytes: &[u8]) -> usize {
        bytes.as_ptr() as usize % PAGE
    }

    #[test]
    fn slow_when_the_destination_is_just_after_the_source_within_a_page() {
        assert!(slow(0x10_0000, 0x20_0000), "both page-aligned");
        assert!(slow(0x10_0000 + 511, 0x20_0000));
        assert!(
            slow(0x10_0000 + 30, 0x20_0000 + 4096 - 10),
            "40 bytes after, a page over"
        );
        assert!(!slow(0x10_0000 + 512, 0x20_0000));
        assert!(
            !slow(0x10_0000, 0x20_0000 + 1),
            "destination just before the source"
        );
        assert!(!slow(0x10_0000, 0x20_0000 + 2048));
    }

    #[test]
    fn large_buffers_start_where_asked_and_hold_what_was_added() {
        for len in [MIN_LEN, 10_000, 1 << 20] {
            for want in [0, 1, 2048, 4095, 4096 + 7] {
                let mut b = PlacedBuf::for_copy(len, want);
                assert_eq!(b.len(), 0);
                let start = b.as_ptr();
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                b.extend_from_slice(&data);
                assert_eq!(&*b, data.as_slice());
                assert_eq!(offset(&b), want % PAGE, "len {len}, offset {want}");
                assert_eq!(
                    b.as_ptr(),
                    start,
                    "room was reserved: the contents did not move"
                );
            }
        }
    }

    #[test]
    fn a_buffer_read_at_half_a_page_writes_back_without_aliasing() {
        // Envoy's slices start on a page; a piece written after `written` bytes lands at
        // `written` within a page.
        let mut body = PlacedBuf::for_copy(1 << 20, PAGE / 2);
        body.extend_from_slice(&vec![b'x'; 1 << 20]);
        for (written, skip) in [(0, 0), (22, 11), (300, 17)] {
            let src = body.as_ptr() as usize + skip;
            assert!(!slow(written, src), "written {written}, skip {skip}");
        }
    }

    #[test]
    fn small_buffers_and_vecs_start_at_their_allocation() {
        let mut b = PlacedBuf::for_copy(100, PAGE / 2);
        b.extend_from_slice(b"abc");
        assert_eq!(&*b, b"abc");
        assert_eq!(b.lead, 0);
        let v = PlacedBuf::from(b"xyz".to_vec());
        assert_eq!(&*v, b"xyz");
        assert_eq!(&*PlacedBuf::default(), b"");
    }
}
