//! Streaming netascii translation (RFC 1350 section 1, which defers to RFC 764): the send side
//! turns every LF into CR LF and every CR into CR NUL, and the receive side reverses that
//! exactly, so a round trip restores a file byte for byte.
//!
//! Both directions work block by block and carry state across block boundaries, because a CR
//! can end one DATA block while its LF or NUL begins the next. This module only translates
//! bytes: it knows nothing of packets, block numbers or when a transfer ends (the caller says
//! so with [`NetasciiDecoder::finish`], or sees a short block come out of the encoder).

use bytes::{BufMut, BytesMut};

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// Streaming encoder for the send side (file bytes to netascii).
#[derive(Debug, Default, Clone)]
pub struct NetasciiEncoder {
    /// The second byte (LF or NUL) of a pair whose CR ended the previous block; it is owed to
    /// the next block and written before anything else.
    pending: Option<u8>,
}

impl NetasciiEncoder {
    /// An encoder at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Translates from `input` and appends to `out` until `out.len() == out_limit`, or until
    /// `input` is exhausted and nothing is pending. Returns how many bytes of `input` were
    /// consumed; the caller passes the rest on the next call.
    ///
    /// `out_limit` counts what is already in `out`, so a caller may write the DATA header first
    /// and pass `DATA_HEADER_LEN + block_size`. If the limit falls between a CR and its LF/NUL,
    /// the CR goes in this block and the second byte is owed to the next call (which writes it
    /// first). A block that comes out shorter than the limit is therefore the last one.
    pub fn encode(&mut self, input: &[u8], out: &mut BytesMut, out_limit: usize) -> usize {
        if let Some(second) = self.pending {
            if out.len() >= out_limit {
                return 0;
            }
            out.put_u8(second);
            self.pending = None;
        }
        let mut rest = input;
        loop {
            let room = out_limit.saturating_sub(out.len());
            if room == 0 || rest.is_empty() {
                break;
            }
            // Every input byte yields at least one output byte, so nothing past `room` can fit.
            let (window, _) = rest.split_at(room.min(rest.len()));
            let Some(at) = window.iter().position(|&b| b == LF || b == CR) else {
                out.extend_from_slice(window);
                rest = rest.get(window.len()..).unwrap_or_default();
                continue;
            };
            let (run, tail) = rest.split_at(at);
            out.extend_from_slice(run);
            let Some((&special, tail)) = tail.split_first() else {
                break; // Unreachable: `at` indexes a byte of `rest`.
            };
            rest = tail;
            // RFC 764: LF goes out as CR LF, and a CR that is not part of a newline as CR NUL.
            let second = if special == LF { LF } else { NUL };
            out.put_u8(CR);
            if out.len() < out_limit {
                out.put_u8(second);
            } else {
                self.pending = Some(second);
            }
        }
        input.len() - rest.len()
    }

    /// True when a second byte of a pair is owed to the next block.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// The size of `input` after netascii translation: what tsize reports for a netascii RRQ
/// (RFC 2349), since the client counts the bytes it receives.
pub fn encoded_len(input: &[u8]) -> u64 {
    let specials = input.iter().filter(|&&b| b == LF || b == CR).count();
    // usize always fits in u64 on the platforms Rust supports.
    (input.len() as u64).saturating_add(specials as u64)
}

/// Streaming decoder for the receive side (netascii to file bytes).
#[derive(Debug, Default, Clone)]
pub struct NetasciiDecoder {
    /// A CR ended the previous block; the first byte of the next block decides what it means.
    pending_cr: bool,
}

impl NetasciiDecoder {
    /// A decoder at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Translates one received block, appending to `out`: CR LF becomes LF and CR NUL becomes
    /// CR. A CR at the end of the block is held until the next block decides it.
    ///
    /// A CR followed by any other byte is not valid netascii; it is kept as CR followed by that
    /// byte rather than dropping data.
    pub fn decode(&mut self, input: &[u8], out: &mut BytesMut) {
        let mut rest = input;
        if self.pending_cr {
            let Some((&next, tail)) = rest.split_first() else {
                return;
            };
            self.pending_cr = false;
            rest = resolve_cr(next, tail, rest, out);
        }
        while let Some(at) = rest.iter().position(|&b| b == CR) {
            let (run, tail) = rest.split_at(at);
            out.extend_from_slice(run);
            // `tail` starts with the CR itself.
            let tail = tail.get(1..).unwrap_or_default();
            let Some((&next, after)) = tail.split_first() else {
                self.pending_cr = true;
                return;
            };
            rest = resolve_cr(next, after, tail, out);
        }
        out.extend_from_slice(rest);
    }

    /// Ends the transfer: a held CR with nothing after it is written as a CR.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.pending_cr {
            out.put_u8(CR);
            self.pending_cr = false;
        }
    }
}

/// Writes what a CR followed by `next` stands for, and returns where decoding resumes: after
/// `next` when it completed the pair (`after`), or at `next` itself (`from_next`) when it did not.
fn resolve_cr<'a>(next: u8, after: &'a [u8], from_next: &'a [u8], out: &mut BytesMut) -> &'a [u8] {
    match next {
        LF => {
            out.put_u8(LF);
            after
        }
        NUL => {
            out.put_u8(CR);
            after
        }
        _ => {
            out.put_u8(CR);
            from_next
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    /// Encodes all of `input` in one call with no limit that matters.
    fn encode_all(input: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let consumed = NetasciiEncoder::new().encode(input, &mut out, usize::MAX);
        assert_eq!(consumed, input.len());
        out.to_vec()
    }

    /// Decodes `input` as a single block and finishes.
    fn decode_all(input: &[u8]) -> Vec<u8> {
        let mut decoder = NetasciiDecoder::new();
        let mut out = BytesMut::new();
        decoder.decode(input, &mut out);
        decoder.finish(&mut out);
        out.to_vec()
    }

    /// Encodes into blocks of `block_size` the way a sender does: a block shorter than the
    /// size is the last one.
    fn encode_blocks(input: &[u8], block_size: usize) -> Vec<BytesMut> {
        let mut encoder = NetasciiEncoder::new();
        let mut blocks = Vec::new();
        let mut position = 0;
        loop {
            let mut block = BytesMut::new();
            position += encoder.encode(&input[position..], &mut block, block_size);
            let last = block.len() < block_size;
            blocks.push(block);
            if last {
                assert_eq!(position, input.len());
                assert!(!encoder.has_pending());
                return blocks;
            }
        }
    }

    fn decode_blocks(blocks: &[impl AsRef<[u8]>]) -> Vec<u8> {
        let mut decoder = NetasciiDecoder::new();
        let mut out = BytesMut::new();
        for block in blocks {
            decoder.decode(block.as_ref(), &mut out);
        }
        decoder.finish(&mut out);
        out.to_vec()
    }

    // Encoder.

    #[test]
    fn encoder_turns_lf_into_cr_lf() {
        assert_eq!(encode_all(b"a\nb"), b"a\r\nb");
    }

    #[test]
    fn encoder_turns_cr_into_cr_nul() {
        assert_eq!(encode_all(b"a\rb"), b"a\r\0b");
    }

    #[test]
    fn encoder_turns_cr_lf_into_cr_nul_cr_lf() {
        assert_eq!(encode_all(b"a\r\n"), b"a\r\0\r\n");
    }

    #[test]
    fn encoder_translates_a_bare_cr_at_the_end() {
        assert_eq!(encode_all(b"end\r"), b"end\r\0");
    }

    #[test]
    fn encoder_produces_nothing_from_empty_input() {
        assert_eq!(encode_all(b""), b"");
    }

    #[test]
    fn encoder_stops_at_the_limit_and_reports_what_it_consumed() {
        let mut out = BytesMut::new();
        let consumed = NetasciiEncoder::new().encode(b"abcdef", &mut out, 4);
        assert_eq!((consumed, &out[..]), (4, &b"abcd"[..]));
    }

    #[test]
    fn encoder_limit_counts_bytes_already_in_the_buffer() {
        let mut out = BytesMut::from(&b"HDR:"[..]);
        let consumed = NetasciiEncoder::new().encode(b"a\nb", &mut out, 6);
        assert_eq!((consumed, &out[..]), (2, &b"HDR:a\r"[..]));
    }

    #[test]
    fn encoder_owes_the_lf_of_a_cr_that_ends_a_block_of_one() {
        let mut encoder = NetasciiEncoder::new();
        let mut first = BytesMut::new();
        assert_eq!(encoder.encode(b"\n", &mut first, 1), 1);
        assert!(encoder.has_pending());
        let mut second = BytesMut::new();
        assert_eq!(encoder.encode(b"", &mut second, 1), 0);
        assert_eq!((&first[..], &second[..]), (&b"\r"[..], &b"\n"[..]));
        assert!(!encoder.has_pending());
    }

    #[test]
    fn encoder_owes_the_nul_of_a_cr_that_ends_a_block_of_two() {
        let mut encoder = NetasciiEncoder::new();
        let mut first = BytesMut::new();
        assert_eq!(encoder.encode(b"a\rb", &mut first, 2), 2);
        let mut second = BytesMut::new();
        assert_eq!(encoder.encode(b"b", &mut second, 2), 1);
        assert_eq!((&first[..], &second[..]), (&b"a\r"[..], &b"\0b"[..]));
    }

    #[test]
    fn encoder_splits_cr_nul_cr_lf_across_blocks_of_three() {
        let blocks = encode_blocks(b"ab\r\n", 3);
        assert_eq!(blocks, [&b"ab\r"[..], b"\0\r\n", b""]);
    }

    #[test]
    fn encoder_keeps_its_debt_when_the_next_buffer_is_already_full() {
        let mut encoder = NetasciiEncoder::new();
        encoder.encode(b"\n", &mut BytesMut::new(), 1);
        let mut full = BytesMut::from(&b"HDR:"[..]);
        assert_eq!(encoder.encode(b"x", &mut full, 4), 0);
        assert_eq!(&full[..], b"HDR:");
        assert!(encoder.has_pending());
    }

    #[test]
    fn encoded_len_matches_the_encoder_output() {
        let input = b"line one\r\nline two\n\rbare\r";
        assert_eq!(encoded_len(input), encode_all(input).len() as u64);
    }

    // Decoder.

    #[test]
    fn decoder_turns_cr_lf_into_lf() {
        assert_eq!(decode_all(b"a\r\nb"), b"a\nb");
    }

    #[test]
    fn decoder_turns_cr_nul_into_cr() {
        assert_eq!(decode_all(b"a\r\0b"), b"a\rb");
    }

    #[test]
    fn decoder_restores_cr_lf_from_cr_nul_cr_lf() {
        assert_eq!(decode_all(b"a\r\0\r\n"), b"a\r\n");
    }

    #[test]
    fn decoder_writes_a_bare_cr_at_the_end_on_finish() {
        let mut decoder = NetasciiDecoder::new();
        let mut out = BytesMut::new();
        decoder.decode(b"end\r", &mut out);
        assert_eq!(&out[..], b"end");
        decoder.finish(&mut out);
        assert_eq!(&out[..], b"end\r");
    }

    #[test]
    fn decoder_produces_nothing_from_empty_input() {
        assert_eq!(decode_all(b""), b"");
    }

    #[test]
    fn decoder_keeps_a_cr_followed_by_another_byte() {
        assert_eq!(decode_all(b"a\rb\r\r\n"), b"a\rb\r\n");
    }

    #[test]
    fn decoder_keeps_a_bare_lf() {
        assert_eq!(decode_all(b"a\nb"), b"a\nb");
    }

    #[test]
    fn decoder_joins_a_cr_and_lf_split_across_blocks() {
        assert_eq!(decode_blocks(&[&b"a\r"[..], b"\nb"]), b"a\nb");
    }

    #[test]
    fn decoder_joins_a_cr_and_nul_split_across_blocks() {
        assert_eq!(decode_blocks(&[&b"\r"[..], b"\0"]), b"\r");
    }

    #[test]
    fn decoder_holds_a_cr_across_an_empty_block() {
        assert_eq!(decode_blocks(&[&b"\r"[..], b"", b"\n"]), b"\n");
    }

    #[test]
    fn decoder_keeps_a_split_cr_followed_by_another_byte() {
        assert_eq!(decode_blocks(&[&b"\r"[..], b"x"]), b"\rx");
    }

    #[test]
    fn round_trip_with_blocks_of_one_restores_the_file() {
        let input = b"\r\n\r\r\n\n\0\r";
        assert_eq!(decode_blocks(&encode_blocks(input, 1)), input);
    }

    // Properties.

    fn netascii_heavy_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => Just(CR),
            3 => Just(LF),
            2 => Just(NUL),
            3 => b'a'..=b'z',
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..2000)
    }

    proptest! {
        #[test]
        fn block_by_block_round_trip_restores_the_input(
            input in netascii_heavy_bytes(),
            block_size in 1usize..=600,
        ) {
            let blocks = encode_blocks(&input, block_size);
            let (last, full) = blocks.split_last().unwrap();
            prop_assert!(full.iter().all(|block| block.len() == block_size));
            prop_assert!(last.len() < block_size);
            let total: usize = blocks.iter().map(BytesMut::len).sum();
            prop_assert_eq!(total as u64, encoded_len(&input));
            prop_assert_eq!(decode_blocks(&blocks), input);
        }
    }
}
