//! The TFTP wire codec: one datagram in, one [`Packet`] out, and back (RFC 1350 section 5,
//! with the OACK packet and error code 8 of RFC 2347).
//!
//! Decoding borrows from the datagram, never panics, and allocates nothing but the options
//! `Vec`; every malformed shape comes back as a typed [`DecodeError`]. This module only checks
//! the wire format: it does not judge file names, negotiate option values, refuse the obsolete
//! `mail` mode or translate netascii; those belong to the transfer code and [`crate::netascii`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The length of the opcode and block number that precede a DATA payload.
pub const DATA_HEADER_LEN: usize = 4;

/// The first two bytes of every packet, big-endian (RFC 1350 section 5; OACK from RFC 2347).
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Read request.
    Rrq = 1,
    /// Write request.
    Wrq = 2,
    /// A block of file data.
    Data = 3,
    /// Acknowledgement of a DATA block (or of a WRQ / OACK, as block 0).
    Ack = 4,
    /// An error; it ends the transfer.
    Error = 5,
    /// Option acknowledgement (RFC 2347).
    Oack = 6,
}

impl Opcode {
    fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            1 => Self::Rrq,
            2 => Self::Wrq,
            3 => Self::Data,
            4 => Self::Ack,
            5 => Self::Error,
            6 => Self::Oack,
            _ => return None,
        })
    }
}

/// The error code carried by an ERROR packet (RFC 1350 appendix; 8 from RFC 2347).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID.
    UnknownTransferId,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused,
    /// Any other code a peer sent; kept so the peer's number can be logged.
    Unknown(u16),
}

impl ErrorCode {
    /// Maps a wire code to its variant; codes above 8 become [`ErrorCode::Unknown`].
    pub fn from_u16(code: u16) -> Self {
        match code {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTransferId,
            6 => Self::FileExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionRefused,
            other => Self::Unknown(other),
        }
    }

    /// The code as written on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::NotDefined => 0,
            Self::FileNotFound => 1,
            Self::AccessViolation => 2,
            Self::DiskFull => 3,
            Self::IllegalOperation => 4,
            Self::UnknownTransferId => 5,
            Self::FileExists => 6,
            Self::NoSuchUser => 7,
            Self::OptionRefused => 8,
            Self::Unknown(code) => code,
        }
    }
}

/// The transfer mode of a request (RFC 1350 section 1), matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Text, translated as in RFC 764 (see [`crate::netascii`]).
    Netascii,
    /// Raw bytes.
    Octet,
    /// Obsolete; decoded so the server can refuse it with a clear ERROR.
    Mail,
}

impl Mode {
    /// The mode's name as written on the wire, in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Netascii => "netascii",
            Self::Octet => "octet",
            Self::Mail => "mail",
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        [Self::Netascii, Self::Octet, Self::Mail]
            .into_iter()
            .find(|mode| bytes.eq_ignore_ascii_case(mode.as_str().as_bytes()))
    }
}

/// One option name/value pair of a request or OACK (RFC 2347).
///
/// The name keeps the case it arrived in; whoever negotiates compares it case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpOption<'a> {
    /// The option's name, never empty once decoded.
    pub name: &'a str,
    /// The option's value, uninterpreted.
    pub value: &'a str,
}

/// The body shared by RRQ and WRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The requested file name, unchecked (it may be empty at this layer).
    pub filename: &'a str,
    /// The transfer mode.
    pub mode: Mode,
    /// The options that followed the mode, in the order and case they came.
    pub options: Vec<TftpOption<'a>>,
}

/// One TFTP packet, borrowing its text and data from the datagram it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A block of file data.
    Data {
        /// The block number, wrapping from 65535 to 0.
        block: u16,
        /// The payload; shorter than the block size only in the last block.
        data: &'a [u8],
    },
    /// Acknowledgement of block `block`.
    Ack {
        /// The block number acknowledged.
        block: u16,
    },
    /// An error, which ends the transfer.
    Error {
        /// The error code.
        code: ErrorCode,
        /// A human-readable message; must not contain NUL when encoded.
        message: &'a str,
    },
    /// Option acknowledgement (RFC 2347): the options the server accepted.
    Oack {
        /// The accepted options, at least one.
        options: Vec<TftpOption<'a>>,
    },
}

/// A part of a packet that holds NUL-terminated text, named in [`DecodeError`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The file name of a request.
    FileName,
    /// The transfer mode of a request.
    Mode,
    /// An option name of a request or OACK.
    OptionName,
    /// An option value of a request or OACK.
    OptionValue,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FileName => "file name",
            Self::Mode => "transfer mode",
            Self::OptionName => "option name",
            Self::OptionValue => "option value",
        })
    }
}

/// Why a datagram is not a well-formed TFTP packet.
///
/// The messages are fit to send back to the peer in an ERROR packet.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The datagram ends before a fixed-size field (opcode, block number or error code).
    #[error("packet too short")]
    Truncated,
    /// The opcode is not one of 1 to 6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A text field runs to the end of the datagram without its terminating NUL.
    #[error("missing NUL after {0}")]
    MissingNul(Field),
    /// A text field is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(Field),
    /// The mode is not `netascii`, `octet` or `mail`, in any case.
    #[error("unknown transfer mode")]
    UnknownMode,
    /// An option name is empty (which includes a stray NUL after the mode or last option).
    #[error("empty option name")]
    EmptyOptionName,
    /// The datagram ends right after an option name. Only the last option can lack its value,
    /// which is why the error needs no name (and so borrows nothing).
    #[error("last option has no value")]
    OptionWithoutValue,
    /// An OACK carries no option at all (RFC 2347 requires at least one).
    #[error("option acknowledgement has no options")]
    NoOptions,
}

impl<'a> Packet<'a> {
    /// Decodes one datagram, borrowing text and data from it.
    ///
    /// Requests and OACKs are strict (every byte must belong to a complete string). ACK ignores
    /// bytes after the block number, since some embedded clients pad. ERROR is lenient (a missing
    /// NUL, bad UTF-8 or trailing bytes still yield a packet), because a peer's ERROR must always
    /// end the transfer; atftpd's CVE-2019-11365 shows what a strict parser risks there.
    pub fn decode(datagram: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let (opcode, body) = split_u16(datagram).ok_or(DecodeError::Truncated)?;
        let opcode = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
        match opcode {
            Opcode::Rrq => decode_request(body).map(Packet::Rrq),
            Opcode::Wrq => decode_request(body).map(Packet::Wrq),
            Opcode::Data => {
                let (block, data) = split_u16(body).ok_or(DecodeError::Truncated)?;
                Ok(Packet::Data { block, data })
            }
            Opcode::Ack => {
                let (block, _padding) = split_u16(body).ok_or(DecodeError::Truncated)?;
                Ok(Packet::Ack { block })
            }
            Opcode::Error => {
                // Too short to hold its code, it is still the peer saying "stop": read it as
                // error 0, so that it ends a transfer and is never answered (atftpd
                // CVE-2019-11365 was a crash on exactly this packet).
                let (code, rest) = split_u16(body).unwrap_or((0, &[]));
                let text = split_nul(rest).map_or(rest, |(text, _ignored)| text);
                Ok(Packet::Error {
                    code: ErrorCode::from_u16(code),
                    message: longest_utf8_prefix(text),
                })
            }
            Opcode::Oack => {
                let options = decode_options(body)?;
                if options.is_empty() {
                    return Err(DecodeError::NoOptions);
                }
                Ok(Packet::Oack { options })
            }
        }
    }

    /// The packet's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Self::Rrq(_) => Opcode::Rrq,
            Self::Wrq(_) => Opcode::Wrq,
            Self::Data { .. } => Opcode::Data,
            Self::Ack { .. } => Opcode::Ack,
            Self::Error { .. } => Opcode::Error,
            Self::Oack { .. } => Opcode::Oack,
        }
    }

    /// The number of bytes [`Packet::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let body = match self {
            Self::Rrq(request) | Self::Wrq(request) => {
                request.filename.len()
                    + 1
                    + request.mode.as_str().len()
                    + 1
                    + options_len(&request.options)
            }
            Self::Data { data, .. } => 2 + data.len(),
            Self::Ack { .. } => 2,
            Self::Error { message, .. } => 2 + message.len() + 1,
            Self::Oack { options } => options_len(options),
        };
        2 + body
    }

    /// Appends the packet's wire form to `buf`.
    ///
    /// Text is written as given followed by NUL, so it must not itself contain NUL (the peer
    /// would read a different packet).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_u16(self.opcode() as u16);
        match self {
            Self::Rrq(request) | Self::Wrq(request) => {
                put_str(buf, request.filename);
                put_str(buf, request.mode.as_str());
                put_options(buf, &request.options);
            }
            Self::Data { block, data } => {
                buf.put_u16(*block);
                buf.extend_from_slice(data);
            }
            Self::Ack { block } => buf.put_u16(*block),
            Self::Error { code, message } => {
                buf.put_u16(code.as_u16());
                put_str(buf, message);
            }
            Self::Oack { options } => put_options(buf, options),
        }
    }

    /// The packet's wire form, in one allocation of exactly [`Packet::encoded_len`] bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// The 4-byte header (opcode 3, then `block`, big-endian) that precedes a DATA payload, for
/// callers that build DATA packets in place without a [`Packet`].
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [high, low] = block.to_be_bytes();
    [0, Opcode::Data as u8, high, low]
}

/// A complete ACK packet for `block`.
pub fn ack(block: u16) -> [u8; 4] {
    let [high, low] = block.to_be_bytes();
    [0, Opcode::Ack as u8, high, low]
}

/// RFC 1350 section 5: filename NUL mode NUL, then RFC 2347 options.
fn decode_request(body: &[u8]) -> Result<Request<'_>, DecodeError> {
    let (filename, rest) = split_nul(body).ok_or(DecodeError::MissingNul(Field::FileName))?;
    let filename = utf8(filename, Field::FileName)?;
    let (mode, rest) = split_nul(rest).ok_or(DecodeError::MissingNul(Field::Mode))?;
    // Unknown bytes, UTF-8 or not, are simply not one of the three modes.
    let mode = Mode::from_bytes(mode).ok_or(DecodeError::UnknownMode)?;
    let options = decode_options(rest)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

/// RFC 2347: zero or more `name NUL value NUL` pairs filling the rest of the datagram.
fn decode_options(mut rest: &[u8]) -> Result<Vec<TftpOption<'_>>, DecodeError> {
    let mut options = Vec::new();
    while !rest.is_empty() {
        let (name, after_name) =
            split_nul(rest).ok_or(DecodeError::MissingNul(Field::OptionName))?;
        if name.is_empty() {
            return Err(DecodeError::EmptyOptionName);
        }
        let name = utf8(name, Field::OptionName)?;
        if after_name.is_empty() {
            return Err(DecodeError::OptionWithoutValue);
        }
        let (value, after_value) =
            split_nul(after_name).ok_or(DecodeError::MissingNul(Field::OptionValue))?;
        let value = utf8(value, Field::OptionValue)?;
        options.push(TftpOption { name, value });
        rest = after_value;
    }
    Ok(options)
}

/// Splits a big-endian `u16` off the front, or `None` if fewer than two bytes remain.
fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    bytes
        .split_first_chunk::<2>()
        .map(|(head, rest)| (u16::from_be_bytes(*head), rest))
}

/// Splits at the first NUL: the text before it and the bytes after it.
fn split_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    let (text, rest) = bytes.split_at(nul);
    Some((text, rest.get(1..).unwrap_or_default()))
}

fn utf8(bytes: &[u8], field: Field) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(field))
}

/// The first chunk of `utf8_chunks` is exactly the longest valid prefix.
fn longest_utf8_prefix(bytes: &[u8]) -> &str {
    bytes.utf8_chunks().next().map_or("", |chunk| chunk.valid())
}

fn options_len(options: &[TftpOption<'_>]) -> usize {
    options
        .iter()
        .map(|option| option.name.len() + 1 + option.value.len() + 1)
        .sum()
}

fn put_str(buf: &mut BytesMut, text: &str) {
    buf.extend_from_slice(text.as_bytes());
    buf.put_u8(0);
}

fn put_options(buf: &mut BytesMut, options: &[TftpOption<'_>]) {
    for option in options {
        put_str(buf, option.name);
        put_str(buf, option.value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn round_trip(packet: &Packet<'_>) {
        let bytes = packet.to_bytes();
        assert_eq!(bytes.len(), packet.encoded_len());
        assert_eq!(&Packet::decode(&bytes).unwrap(), packet);
    }

    fn option<'a>(name: &'a str, value: &'a str) -> TftpOption<'a> {
        TftpOption { name, value }
    }

    // Round trips, one per packet type.

    #[test]
    fn rrq_round_trips() {
        round_trip(&Packet::Rrq(Request {
            filename: "boot/pxelinux.0",
            mode: Mode::Octet,
            options: vec![],
        }));
    }

    #[test]
    fn wrq_with_options_round_trips() {
        round_trip(&Packet::Wrq(Request {
            filename: "config.txt",
            mode: Mode::Netascii,
            options: vec![option("blksize", "1428"), option("tsize", "0")],
        }));
    }

    #[test]
    fn data_round_trips() {
        round_trip(&Packet::Data {
            block: 65535,
            data: b"\0\r\nhello",
        });
    }

    #[test]
    fn empty_data_round_trips() {
        round_trip(&Packet::Data {
            block: 7,
            data: b"",
        });
    }

    #[test]
    fn ack_round_trips() {
        round_trip(&Packet::Ack { block: 0x1234 });
    }

    #[test]
    fn error_round_trips() {
        round_trip(&Packet::Error {
            code: ErrorCode::DiskFull,
            message: "file too large",
        });
    }

    #[test]
    fn oack_round_trips() {
        round_trip(&Packet::Oack {
            options: vec![option("windowsize", "16")],
        });
    }

    // Exact wire form.

    #[test]
    fn rrq_encodes_to_the_rfc_1350_layout() {
        let packet = Packet::Rrq(Request {
            filename: "a",
            mode: Mode::Octet,
            options: vec![option("tsize", "0")],
        });
        assert_eq!(&packet.to_bytes()[..], b"\0\x01a\0octet\0tsize\x000\0");
    }

    #[test]
    fn encode_appends_to_what_is_in_the_buffer() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        Packet::Ack { block: 1 }.encode(&mut buf);
        assert_eq!(&buf[..], b"xy\0\x04\0\x01");
    }

    #[test]
    fn data_header_matches_an_encoded_data_packet() {
        let packet = Packet::Data {
            block: 0x0102,
            data: b"",
        };
        assert_eq!(data_header(0x0102)[..], packet.to_bytes()[..]);
    }

    #[test]
    fn ack_matches_an_encoded_ack_packet() {
        assert_eq!(
            ack(0xfffe)[..],
            Packet::Ack { block: 0xfffe }.to_bytes()[..]
        );
    }

    #[test]
    fn opcode_names_the_packet_type() {
        assert_eq!(Packet::Ack { block: 0 }.opcode(), Opcode::Ack);
        assert_eq!(Packet::Oack { options: vec![] }.opcode(), Opcode::Oack);
    }

    // Fixed-size fields and opcodes.

    #[test]
    fn empty_datagram_is_truncated() {
        assert_eq!(Packet::decode(b""), Err(DecodeError::Truncated));
    }

    #[test]
    fn one_byte_datagram_is_truncated() {
        assert_eq!(Packet::decode(b"\0"), Err(DecodeError::Truncated));
    }

    #[test]
    fn opcode_zero_is_unknown() {
        assert_eq!(
            Packet::decode(b"\0\0\0\x01"),
            Err(DecodeError::UnknownOpcode(0))
        );
    }

    #[test]
    fn opcode_seven_is_unknown() {
        assert_eq!(
            Packet::decode(b"\0\x07\0\x01"),
            Err(DecodeError::UnknownOpcode(7))
        );
    }

    #[test]
    fn data_without_a_block_number_is_truncated() {
        assert_eq!(Packet::decode(b"\0\x03"), Err(DecodeError::Truncated));
    }

    #[test]
    fn data_with_half_a_block_number_is_truncated() {
        assert_eq!(Packet::decode(b"\0\x03\0"), Err(DecodeError::Truncated));
    }

    #[test]
    fn ack_with_half_a_block_number_is_truncated() {
        assert_eq!(Packet::decode(b"\0\x04\0"), Err(DecodeError::Truncated));
    }

    #[test]
    fn ack_ignores_padding_after_the_block_number() {
        assert_eq!(
            Packet::decode(b"\0\x04\0\x05\0\0\0"),
            Ok(Packet::Ack { block: 5 })
        );
    }

    // Requests.

    #[test]
    fn request_without_a_file_name_lacks_its_nul() {
        assert_eq!(
            Packet::decode(b"\0\x01"),
            Err(DecodeError::MissingNul(Field::FileName))
        );
    }

    #[test]
    fn file_name_without_nul_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01file"),
            Err(DecodeError::MissingNul(Field::FileName))
        );
    }

    #[test]
    fn request_without_a_mode_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01file\0"),
            Err(DecodeError::MissingNul(Field::Mode))
        );
    }

    #[test]
    fn mode_without_nul_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x02file\0octet"),
            Err(DecodeError::MissingNul(Field::Mode))
        );
    }

    #[test]
    fn file_name_with_invalid_utf8_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\xffle\0octet\0"),
            Err(DecodeError::InvalidUtf8(Field::FileName))
        );
    }

    #[test]
    fn empty_file_name_is_left_to_the_caller() {
        let Packet::Rrq(request) = Packet::decode(b"\0\x01\0octet\0").unwrap() else {
            panic!("expected an RRQ");
        };
        assert_eq!(request.filename, "");
    }

    #[test]
    fn mode_foo_is_unknown() {
        assert_eq!(
            Packet::decode(b"\0\x01file\0foo\0"),
            Err(DecodeError::UnknownMode)
        );
    }

    #[test]
    fn mode_is_matched_case_insensitively() {
        let Packet::Wrq(request) = Packet::decode(b"\0\x02file\0OcTeT\0").unwrap() else {
            panic!("expected a WRQ");
        };
        assert_eq!(request.mode, Mode::Octet);
    }

    #[test]
    fn netascii_and_mail_modes_are_recognised() {
        let modes: Vec<_> = [&b"\0\x01f\0NETASCII\0"[..], b"\0\x01f\0mail\0"]
            .into_iter()
            .map(|datagram| match Packet::decode(datagram).unwrap() {
                Packet::Rrq(request) => request.mode,
                other => panic!("expected an RRQ, got {other:?}"),
            })
            .collect();
        assert_eq!(modes, [Mode::Netascii, Mode::Mail]);
    }

    #[test]
    fn option_name_without_nul_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0blksize"),
            Err(DecodeError::MissingNul(Field::OptionName))
        );
    }

    #[test]
    fn option_without_value_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0blksize\0"),
            Err(DecodeError::OptionWithoutValue)
        );
    }

    #[test]
    fn option_value_without_nul_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0blksize\x001024"),
            Err(DecodeError::MissingNul(Field::OptionValue))
        );
    }

    #[test]
    fn empty_option_name_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0\x001024\0"),
            Err(DecodeError::EmptyOptionName)
        );
    }

    #[test]
    fn stray_nul_after_the_mode_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0\0"),
            Err(DecodeError::EmptyOptionName)
        );
    }

    #[test]
    fn option_name_with_invalid_utf8_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0\xc3\x28\x001\0"),
            Err(DecodeError::InvalidUtf8(Field::OptionName))
        );
    }

    #[test]
    fn option_value_with_invalid_utf8_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x01f\0octet\0tsize\0\xff\0"),
            Err(DecodeError::InvalidUtf8(Field::OptionValue))
        );
    }

    #[test]
    fn options_keep_their_case_order_and_duplicates() {
        let Packet::Rrq(request) =
            Packet::decode(b"\0\x01f\0octet\0BlkSize\x00512\0blksize\x001024\0").unwrap()
        else {
            panic!("expected an RRQ");
        };
        assert_eq!(
            request.options,
            [option("BlkSize", "512"), option("blksize", "1024")]
        );
    }

    #[test]
    fn empty_option_value_is_accepted() {
        let Packet::Rrq(request) = Packet::decode(b"\0\x01f\0octet\0tsize\0\0").unwrap() else {
            panic!("expected an RRQ");
        };
        assert_eq!(request.options, [option("tsize", "")]);
    }

    // OACK.

    #[test]
    fn oack_without_options_is_rejected() {
        assert_eq!(Packet::decode(b"\0\x06"), Err(DecodeError::NoOptions));
    }

    #[test]
    fn oack_option_without_value_is_rejected() {
        assert_eq!(
            Packet::decode(b"\0\x06tsize\0"),
            Err(DecodeError::OptionWithoutValue)
        );
    }

    // ERROR, decoded leniently.

    #[test]
    fn an_error_too_short_for_its_code_reads_as_error_0() {
        for truncated in [&b"\0\x05"[..], b"\0\x05\0"] {
            assert_eq!(
                Packet::decode(truncated),
                Ok(Packet::Error {
                    code: ErrorCode::NotDefined,
                    message: ""
                })
            );
        }
    }

    #[test]
    fn error_with_only_a_code_has_an_empty_message() {
        assert_eq!(
            Packet::decode(b"\0\x05\0\x01"),
            Ok(Packet::Error {
                code: ErrorCode::FileNotFound,
                message: ""
            })
        );
    }

    #[test]
    fn error_without_nul_takes_the_rest_as_its_message() {
        assert_eq!(
            Packet::decode(b"\0\x05\0\x02denied"),
            Ok(Packet::Error {
                code: ErrorCode::AccessViolation,
                message: "denied"
            })
        );
    }

    #[test]
    fn error_with_invalid_utf8_keeps_the_valid_prefix() {
        assert_eq!(
            Packet::decode(b"\0\x05\0\0bad \xff byte\0"),
            Ok(Packet::Error {
                code: ErrorCode::NotDefined,
                message: "bad "
            })
        );
    }

    #[test]
    fn error_ignores_bytes_after_the_nul() {
        assert_eq!(
            Packet::decode(b"\0\x05\0\x08refused\0junk\xff"),
            Ok(Packet::Error {
                code: ErrorCode::OptionRefused,
                message: "refused"
            })
        );
    }

    #[test]
    fn error_code_above_eight_is_unknown() {
        assert_eq!(
            Packet::decode(b"\0\x05\0\x09x\0"),
            Ok(Packet::Error {
                code: ErrorCode::Unknown(9),
                message: "x"
            })
        );
    }

    #[test]
    fn every_error_code_maps_back_to_its_number() {
        for code in (0..=10).chain([u16::MAX]) {
            assert_eq!(ErrorCode::from_u16(code).as_u16(), code);
        }
    }

    #[test]
    fn decode_errors_read_as_lowercase_sentences() {
        assert_eq!(
            DecodeError::UnknownOpcode(9).to_string(),
            "unknown opcode 9"
        );
        assert_eq!(
            DecodeError::MissingNul(Field::FileName).to_string(),
            "missing NUL after file name"
        );
        assert_eq!(
            DecodeError::InvalidUtf8(Field::FileName).to_string(),
            "file name is not valid UTF-8"
        );
    }

    // Properties.

    /// An owned packet, so strategies can produce data the borrowed `Packet` points into.
    #[derive(Debug, Clone)]
    enum Owned {
        Rrq(String, Mode, Vec<(String, String)>),
        Wrq(String, Mode, Vec<(String, String)>),
        Data(u16, Vec<u8>),
        Ack(u16),
        Error(u16, String),
        Oack(Vec<(String, String)>),
    }

    impl Owned {
        fn packet(&self) -> Packet<'_> {
            fn borrow(pairs: &[(String, String)]) -> Vec<TftpOption<'_>> {
                pairs
                    .iter()
                    .map(|(name, value)| option(name, value))
                    .collect()
            }
            fn request<'a>(
                filename: &'a str,
                mode: Mode,
                pairs: &'a [(String, String)],
            ) -> Request<'a> {
                Request {
                    filename,
                    mode,
                    options: borrow(pairs),
                }
            }
            match self {
                Self::Rrq(filename, mode, pairs) => Packet::Rrq(request(filename, *mode, pairs)),
                Self::Wrq(filename, mode, pairs) => Packet::Wrq(request(filename, *mode, pairs)),
                Self::Data(block, data) => Packet::Data {
                    block: *block,
                    data,
                },
                Self::Ack(block) => Packet::Ack { block: *block },
                Self::Error(code, message) => Packet::Error {
                    code: ErrorCode::from_u16(*code),
                    message,
                },
                Self::Oack(pairs) => Packet::Oack {
                    options: borrow(pairs),
                },
            }
        }
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\\x00]{0,16}"
    }

    fn options(min: usize) -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[^\\x00]{1,16}", text()), min..5)
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Netascii), Just(Mode::Octet), Just(Mode::Mail)]
    }

    fn owned_packet() -> impl Strategy<Value = Owned> {
        prop_oneof![
            (text(), mode(), options(0)).prop_map(|(f, m, o)| Owned::Rrq(f, m, o)),
            (text(), mode(), options(0)).prop_map(|(f, m, o)| Owned::Wrq(f, m, o)),
            (any::<u16>(), prop::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(b, d)| Owned::Data(b, d)),
            any::<u16>().prop_map(Owned::Ack),
            (any::<u16>(), text()).prop_map(|(c, m)| Owned::Error(c, m)),
            options(1).prop_map(Owned::Oack),
        ]
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(datagram in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Packet::decode(&datagram);
        }

        #[test]
        fn every_valid_packet_survives_encode_then_decode(owned in owned_packet()) {
            let packet = owned.packet();
            let bytes = packet.to_bytes();
            prop_assert_eq!(bytes.len(), packet.encoded_len());
            prop_assert_eq!(Packet::decode(&bytes), Ok(packet));
        }
    }
}
