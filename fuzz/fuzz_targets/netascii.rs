//! Fuzzes the streaming netascii translation. The first two bytes of the input choose a block
//! size (1..=600) and the rest is a file. The file is encoded block by block with
//! [`NetasciiEncoder`] as a sender does (`out_limit` = block size, a short block is the last):
//! every block but the last must be exactly the block size, the last shorter, no byte may be
//! left owed, and the total must equal [`netascii::encoded_len`]. The blocks are then decoded
//! one by one with [`NetasciiDecoder`] plus `finish`, which must restore the file exactly.
//! Separately, the raw input (not valid netascii in general) is fed straight into a decoder
//! in chunk sizes taken from the input itself: that must not panic, and must give the same
//! bytes as decoding it in one piece. Nothing here involves packets or block numbers.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tftp_handler::netascii::{self, NetasciiDecoder, NetasciiEncoder};

/// Encodes `file` into blocks of `block_size` bytes, checking the encoder's block contract.
fn encode_blocks(file: &[u8], block_size: usize) -> Vec<BytesMut> {
    let mut encoder = NetasciiEncoder::new();
    let mut blocks = Vec::new();
    let mut position = 0;
    loop {
        let mut block = BytesMut::new();
        let consumed = encoder.encode(&file[position..], &mut block, block_size);
        position += consumed;
        assert!(
            position <= file.len(),
            "the encoder consumed past the input"
        );
        assert!(block.len() <= block_size, "a block overran its limit");
        if block.len() < block_size {
            assert_eq!(position, file.len(), "a short block left input unread");
            assert!(!encoder.has_pending(), "a short block left a byte owed");
            blocks.push(block);
            return blocks;
        }
        blocks.push(block);
        // Every full block consumes input or pays a debt; more blocks than that is a loop.
        assert!(
            blocks.len() <= 2 * file.len() / block_size + 2,
            "the encoder does not make progress"
        );
    }
}

fn decode_blocks(blocks: &[BytesMut]) -> Vec<u8> {
    let mut decoder = NetasciiDecoder::new();
    let mut out = BytesMut::new();
    for block in blocks {
        decoder.decode(block, &mut out);
    }
    decoder.finish(&mut out);
    out.to_vec()
}

fuzz_target!(|input: &[u8]| {
    let Some((&[high, low], file)) = input.split_first_chunk::<2>() else {
        return;
    };
    let block_size = usize::from(u16::from_be_bytes([high, low])) % 600 + 1;

    let blocks = encode_blocks(file, block_size);
    let (last, full) = blocks.split_last().expect("at least one block");
    assert!(full.iter().all(|block| block.len() == block_size));
    assert!(last.len() < block_size);
    let total: usize = blocks.iter().map(BytesMut::len).sum();
    assert_eq!(total as u64, netascii::encoded_len(file));
    assert_eq!(
        decode_blocks(&blocks),
        file,
        "the round trip changed the file"
    );

    // Arbitrary bytes into the decoder, in chunks whose sizes cycle through the input's bytes.
    let mut whole = BytesMut::new();
    let mut decoder = NetasciiDecoder::new();
    decoder.decode(input, &mut whole);
    decoder.finish(&mut whole);
    let mut chunked = BytesMut::new();
    let mut decoder = NetasciiDecoder::new();
    let mut rest = input;
    let mut sizes = input.iter().cycle();
    while !rest.is_empty() {
        // A size of 0 feeds an empty chunk (a CR must be held across it), then takes one byte.
        let mut size = usize::from(*sizes.next().unwrap_or(&1) % 17);
        if size == 0 {
            decoder.decode(&[], &mut chunked);
            size = 1;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        decoder.decode(chunk, &mut chunked);
        rest = tail;
    }
    decoder.finish(&mut chunked);
    assert_eq!(
        chunked, whole,
        "decoding in chunks differs from decoding whole"
    );
});
