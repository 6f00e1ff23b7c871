//! Where a [`Receiver`](super::Receiver) puts a file's bytes as its blocks arrive in order:
//! into one buffer that is handed over whole at the end (a server's upload, `Client::get`),
//! or straight on to a consumer (`Client::get_with`), so that a download is never held in
//! memory: a large file costs no allocation, no page faults and no second copy. In netascii
//! mode the bytes are translated first, either way.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::netascii::NetasciiDecoder;
use crate::packet::Mode;

/// Takes a download's bytes as they arrive. An error abandons the transfer: the message goes
/// to the server in an ERROR.
pub(crate) type Consumer<'a> = Box<dyn FnMut(&[u8]) -> Result<(), String> + Send + 'a>;

/// A file's destination, with the translation its mode needs.
pub(crate) struct Sink<'a> {
    /// Present in netascii mode.
    decoder: Option<NetasciiDecoder>,
    /// Where the translated bytes go.
    place: Place<'a>,
    /// File bytes taken so far (after translation).
    written: u64,
}

enum Place<'a> {
    /// Gathered, to be handed over whole.
    Buffer {
        /// The file so far.
        contents: BytesMut,
        /// Whether to drop spare capacity from the finished contents: a store keeps them
        /// for long and counts them by length; a client hands them straight to its caller.
        trim: bool,
    },
    /// Handed on block by block.
    Consumer {
        /// Who takes them.
        consume: Consumer<'a>,
        /// One block's translation (netascii only), reused.
        translated: BytesMut,
    },
}

impl<'a> Sink<'a> {
    /// Gathers the file in one buffer, starting with room for `capacity` bytes.
    pub(crate) fn buffer(mode: Mode, capacity: usize, trim: bool) -> Self {
        Self::new(
            mode,
            Place::Buffer {
                contents: BytesMut::with_capacity(capacity),
                trim,
            },
        )
    }

    /// Hands the file to `consume` as it arrives.
    pub(crate) fn consumer(mode: Mode, consume: Consumer<'a>) -> Self {
        Self::new(
            mode,
            Place::Consumer {
                consume,
                translated: BytesMut::new(),
            },
        )
    }

    fn new(mode: Mode, place: Place<'a>) -> Self {
        Self {
            decoder: (mode != Mode::Octet).then(NetasciiDecoder::new),
            place,
            written: 0,
        }
    }

    /// File bytes taken so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Makes room for `additional` more bytes, if the file is gathered.
    pub(crate) fn reserve(&mut self, additional: usize) {
        if let Place::Buffer { contents, .. } = &mut self.place {
            contents.reserve(additional);
        }
    }

    /// Takes the next block's bytes.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), String> {
        match &mut self.place {
            Place::Buffer { contents, .. } => {
                match &mut self.decoder {
                    Some(decoder) => decoder.decode(data, contents),
                    None => contents.extend_from_slice(data),
                }
                self.written = contents.len() as u64;
                Ok(())
            }
            Place::Consumer {
                consume,
                translated,
            } => {
                let data = match &mut self.decoder {
                    Some(decoder) => {
                        translated.clear();
                        decoder.decode(data, translated);
                        &translated[..]
                    }
                    None => data,
                };
                self.written += data.len() as u64;
                consume(data)
            }
        }
    }

    /// Ends the file: the gathered contents (empty when they went to a consumer).
    pub(crate) fn finish(&mut self) -> Result<Bytes, String> {
        match &mut self.place {
            Place::Buffer { contents, trim } => {
                if let Some(decoder) = &mut self.decoder {
                    decoder.finish(contents);
                    self.written = contents.len() as u64;
                }
                let contents = contents.split();
                Ok(if *trim {
                    exact_size(contents)
                } else {
                    contents.freeze()
                })
            }
            Place::Consumer {
                consume,
                translated,
            } => {
                if let Some(decoder) = &mut self.decoder {
                    translated.clear();
                    decoder.finish(translated);
                    if !translated.is_empty() {
                        self.written += translated.len() as u64;
                        consume(translated)?;
                    }
                }
                Ok(Bytes::new())
            }
        }
    }
}

impl fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.place {
            Place::Buffer { .. } => "buffer",
            Place::Consumer { .. } => "consumer",
        };
        f.debug_struct("Sink")
            .field("place", &place)
            .field("netascii", &self.decoder.is_some())
            .field("written", &self.written)
            .finish()
    }
}

/// The finished contents, without the spare capacity that doubling growth leaves (up to as
/// much again as the file): the store counts a file by its length, so that is all it may hold.
fn exact_size(contents: BytesMut) -> Bytes {
    if contents.capacity() - contents.len() > contents.len() / 8 {
        Bytes::copy_from_slice(&contents)
    } else {
        contents.freeze()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_buffer_gathers_the_blocks_and_trims_what_it_keeps() {
        let mut sink = Sink::buffer(Mode::Octet, 1 << 20, true);
        sink.write(b"abc").unwrap();
        sink.write(b"de").unwrap();
        assert_eq!(sink.written(), 5);
        let contents = sink.finish().unwrap();
        assert_eq!(contents, Bytes::from_static(b"abcde"));
    }

    #[test]
    fn a_consumer_gets_each_block_in_order_and_nothing_is_kept() {
        let mut seen = Vec::new();
        let mut sink = Sink::consumer(
            Mode::Octet,
            Box::new(|data: &[u8]| {
                seen.push(data.to_vec());
                Ok(())
            }),
        );
        sink.write(b"abc").unwrap();
        sink.write(b"").unwrap();
        assert_eq!(sink.written(), 3);
        assert!(sink.finish().unwrap().is_empty());
        drop(sink);
        assert_eq!(seen, [b"abc".to_vec(), Vec::new()]);
    }

    #[test]
    fn a_consumer_gets_netascii_translated_across_block_edges() {
        let mut got = Vec::new();
        let mut sink = Sink::consumer(
            Mode::Netascii,
            Box::new(|data: &[u8]| {
                got.extend_from_slice(data);
                Ok(())
            }),
        );
        // CR LF split across two blocks, and a CR NUL.
        sink.write(b"a\r").unwrap();
        sink.write(b"\nb\r\0c").unwrap();
        sink.finish().unwrap();
        let written = sink.written();
        drop(sink);
        assert_eq!(got, b"a\nb\rc");
        assert_eq!(written, got.len() as u64);
    }

    #[test]
    fn a_consumer_error_is_returned() {
        let mut sink = Sink::consumer(Mode::Octet, Box::new(|_: &[u8]| Err("no".to_string())));
        assert_eq!(sink.write(b"x"), Err("no".to_string()));
    }
}
