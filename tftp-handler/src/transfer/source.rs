//! Where a sender's blocks come from: the file's shared bytes, cut into blocks.
//!
//! In octet mode a block is a [`Bytes::slice`] of the stored file: no copy, no allocation
//! beyond a reference count. In netascii mode each block is translated as it is cut (the only
//! copy the mode requires), with a CR/LF pair allowed to straddle two blocks.

use bytes::{Bytes, BytesMut};

use crate::netascii::{self, NetasciiEncoder};
use crate::packet::Mode;

/// Cuts a file into successive blocks.
#[derive(Debug, Clone)]
pub(crate) struct BlockSource {
    /// The whole file.
    data: Bytes,
    /// How much of `data` has been cut into blocks.
    offset: usize,
    /// Present in netascii mode.
    encoder: Option<NetasciiEncoder>,
}

impl BlockSource {
    /// A source for `data` sent in `mode` (`Mail` is refused before a transfer starts and
    /// would be sent as netascii).
    pub(crate) fn new(data: Bytes, mode: Mode) -> Self {
        let encoder = (mode != Mode::Octet).then(NetasciiEncoder::new);
        Self {
            data,
            offset: 0,
            encoder,
        }
    }

    /// The number of bytes the peer will receive: the file's size, or its size after
    /// netascii translation (what `tsize` reports, RFC 2349).
    pub(crate) fn transfer_size(&self) -> u64 {
        match self.encoder {
            Some(_) => netascii::encoded_len(&self.data),
            None => self.data.len() as u64,
        }
    }

    /// The next block: `block_size` bytes, or fewer for the last one (empty if the previous
    /// block ended the data exactly).
    pub(crate) fn next_block(&mut self, block_size: usize) -> Bytes {
        let rest = &self.data[self.offset..];
        match &mut self.encoder {
            None => {
                let len = rest.len().min(block_size);
                let block = self.data.slice(self.offset..self.offset + len);
                self.offset += len;
                block
            }
            Some(encoder) => {
                // Translation at most doubles the rest: no need for a full block at the end.
                let mut out = BytesMut::with_capacity(block_size.min(2 * rest.len() + 1));
                self.offset += encoder.encode(rest, &mut out, block_size);
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_blocks_share_the_file_buffer() {
        let data = Bytes::from(vec![7u8; 1000]);
        let mut source = BlockSource::new(data.clone(), Mode::Octet);
        let first = source.next_block(512);
        assert_eq!(first.len(), 512);
        assert_eq!(first.as_ptr(), data.as_ptr());
        assert_eq!(source.next_block(512).len(), 488);
    }

    #[test]
    fn a_file_that_is_a_multiple_of_the_block_size_ends_with_an_empty_block() {
        let mut source = BlockSource::new(Bytes::from(vec![1u8; 1024]), Mode::Octet);
        assert_eq!(source.next_block(512).len(), 512);
        assert_eq!(source.next_block(512).len(), 512);
        assert_eq!(source.next_block(512).len(), 0);
    }

    #[test]
    fn netascii_blocks_are_translated_and_sized_after_translation() {
        let mut source = BlockSource::new(Bytes::from_static(b"a\nb\r"), Mode::Netascii);
        assert_eq!(source.transfer_size(), 6);
        assert_eq!(source.next_block(4), "a\r\nb");
        assert_eq!(source.next_block(4), "\r\0");
    }
}
