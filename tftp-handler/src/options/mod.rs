//! Option negotiation (RFC 2347) for `blksize` (RFC 2348), `timeout` and `tsize` (RFC 2349),
//! `windowsize` (RFC 7440), and tftp-hpa's `utimeout`.
//!
//! Input: the options of a request, the server's caps, and what `tsize` means for this
//! transfer. Output: the parameters the transfer runs with and, if any option was accepted,
//! the OACK to send instead of the first DATA / ACK. Unknown options, and known ones with a
//! malformed or out-of-range value, are left out of the OACK (RFC 2347: the server omits
//! options it does not accept); names are matched case-insensitively, and of a repeated option
//! only the first acceptable occurrence counts. This module does no IO and keeps no state. The client's side (what
//! to ask for, and whether an OACK is acceptable) is in the `request` module.

use std::time::Duration;

use bytes::Bytes;

use crate::config::Config;
use crate::error::ErrorReply;
use crate::packet::{ErrorCode, Packet, TftpOption};

pub(crate) mod request;

pub use request::RequestOptions;

/// RFC 1350's block size, used when the client asks for no other.
pub const DEFAULT_BLOCK_SIZE: u16 = 512;
/// The smallest `blksize` RFC 2348 allows.
pub const MIN_BLOCK_SIZE: u16 = 8;
/// The largest `blksize` RFC 2348 allows.
pub const MAX_BLOCK_SIZE: u16 = 65_464;
/// The largest `windowsize` granted. RFC 7440 allows 65535, but block numbers are 16 bits:
/// with more than half the number space in flight, a delayed ACK could not be told from a
/// new one after a wrap.
pub const MAX_WINDOW_SIZE: u16 = 32_768;

/// What `tsize` means for the transfer being negotiated (RFC 2349).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SizeQuery<F> {
    /// A read: answer with the size the client will receive (computed only if asked).
    Read(F),
    /// A write: the client announces its size; refuse it if it is over this limit.
    Write {
        /// The largest file an upload may create.
        max_file_size: u64,
    },
}

/// The parameters a transfer runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferParams {
    /// Bytes per DATA block.
    pub(crate) block_size: u16,
    /// Blocks sent before waiting for an ACK (1 is RFC 1350's lock-step).
    pub(crate) window_size: u16,
    /// The retransmission timeout the client asked for, if any; it overrides the server's.
    pub(crate) retry_timeout: Option<Duration>,
    /// The size the client announced for an upload.
    pub(crate) announced_size: Option<u64>,
}

/// The outcome of negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// What the transfer runs with.
    pub(crate) params: TransferParams,
    /// The OACK to send first, when at least one option was accepted.
    pub(crate) oack: Option<Bytes>,
}

/// Negotiates `requested` against `config`. Fails only for a write whose announced size is
/// over the limit (ERROR 3, RFC 2349).
pub(crate) fn negotiate<F: FnOnce() -> u64>(
    requested: &[TftpOption<'_>],
    config: &Config,
    size: SizeQuery<F>,
) -> Result<Negotiated, ErrorReply> {
    let mut params = TransferParams {
        block_size: DEFAULT_BLOCK_SIZE,
        window_size: 1,
        retry_timeout: None,
        announced_size: None,
    };
    let mut size = Some(size);
    let mut accepted: Vec<(&'static str, u64)> = Vec::new();
    for option in requested {
        let Some(name) = Known::from_name(option.name) else {
            continue;
        };
        if accepted.iter().any(|(n, _)| *n == name.as_str()) {
            continue; // the first acceptable occurrence wins
        }
        let value = parse_decimal(option.value);
        let granted = match name {
            Known::BlockSize => value.filter(|&v| v >= u64::from(MIN_BLOCK_SIZE)).map(|v| {
                let cap = config.max_block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
                params.block_size = v.min(u64::from(cap)) as u16;
                u64::from(params.block_size)
            }),
            Known::Timeout => value
                .filter(|v| (1..=255).contains(v))
                .inspect(|&v| params.retry_timeout = Some(Duration::from_secs(v))),
            Known::MicroTimeout => value
                .filter(|v| (10_000..=255_000_000).contains(v))
                .inspect(|&v| params.retry_timeout = Some(Duration::from_micros(v))),
            Known::WindowSize => value.filter(|v| (1..=65_535).contains(v)).map(|v| {
                let cap = config.max_window_size.clamp(1, MAX_WINDOW_SIZE);
                params.window_size = v.min(u64::from(cap)) as u16;
                u64::from(params.window_size)
            }),
            Known::TransferSize => match size.take() {
                // An empty file's size is left out: curl (lib/tftp.c) takes `tsize 0` in an
                // OACK for an error and gives up, and RFC 2347 lets a server decline any option.
                Some(SizeQuery::Read(file_size)) => Some(file_size()).filter(|&size| size > 0),
                Some(SizeQuery::Write { max_file_size }) => match value {
                    Some(announced) if announced > max_file_size => {
                        return Err(ErrorReply::new(
                            ErrorCode::DiskFull,
                            format!(
                                "file too large: {announced} bytes, the limit is {max_file_size}"
                            ),
                        ));
                    }
                    Some(announced) => {
                        params.announced_size = Some(announced);
                        Some(announced)
                    }
                    None => None,
                },
                None => None,
            },
        };
        if let Some(granted) = granted {
            accepted.push((name.as_str(), granted));
        }
    }
    // `timeout` and `utimeout` both set the timer; when both are granted, the last one
    // negotiated wins, which is the order they are applied in above.
    Ok(Negotiated {
        params,
        oack: (!accepted.is_empty()).then(|| encode_oack(&accepted)),
    })
}

/// The options this crate understands, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    BlockSize,
    Timeout,
    MicroTimeout,
    TransferSize,
    WindowSize,
}

impl Known {
    fn from_name(name: &str) -> Option<Self> {
        [
            Self::BlockSize,
            Self::Timeout,
            Self::MicroTimeout,
            Self::TransferSize,
            Self::WindowSize,
        ]
        .into_iter()
        .find(|known| known.as_str().eq_ignore_ascii_case(name))
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::BlockSize => "blksize",
            Self::Timeout => "timeout",
            Self::MicroTimeout => "utimeout",
            Self::TransferSize => "tsize",
            Self::WindowSize => "windowsize",
        }
    }
}

/// A plain decimal number (digits only: no sign, no spaces), or `None`.
fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn encode_oack(accepted: &[(&'static str, u64)]) -> Bytes {
    let values: Vec<String> = accepted.iter().map(|(_, v)| v.to_string()).collect();
    let options = accepted
        .iter()
        .zip(&values)
        .map(|((name, _), value)| TftpOption { name, value })
        .collect();
    Packet::Oack { options }.to_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<TftpOption<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect()
    }

    fn read(pairs: &[(&str, &str)]) -> Negotiated {
        read_with(pairs, &Config::default())
    }

    fn read_with(pairs: &[(&str, &str)], config: &Config) -> Negotiated {
        negotiate(&opts(pairs), config, SizeQuery::Read(|| 1234)).unwrap()
    }

    fn oack_pairs(n: &Negotiated) -> Vec<(String, String)> {
        let bytes = n.oack.clone().unwrap();
        match Packet::decode(&bytes).unwrap() {
            Packet::Oack { options } => options
                .iter()
                .map(|o| (o.name.to_owned(), o.value.to_owned()))
                .collect(),
            other => panic!("not an OACK: {other:?}"),
        }
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn no_options_means_rfc_1350_defaults_and_no_oack() {
        let n = read(&[]);
        assert_eq!(n.params.block_size, 512);
        assert_eq!(n.params.window_size, 1);
        assert_eq!(n.oack, None);
    }

    #[test]
    fn blksize_is_granted_and_echoed() {
        let n = read(&[("BLKSIZE", "1468")]);
        assert_eq!(n.params.block_size, 1468);
        assert_eq!(oack_pairs(&n), vec![pair("blksize", "1468")]);
    }

    #[test]
    fn blksize_over_the_cap_is_clamped() {
        let n = read(&[("blksize", "100000")]);
        assert_eq!(n.params.block_size, 65_464);
        let config = Config {
            max_block_size: 1024,
            ..Config::default()
        };
        let n = read_with(&[("blksize", "1468")], &config);
        assert_eq!(oack_pairs(&n), vec![pair("blksize", "1024")]);
    }

    #[test]
    fn blksize_below_eight_or_malformed_is_ignored() {
        for bad in [
            "7",
            "0",
            "",
            "abc",
            "+512",
            " 512",
            "99999999999999999999999",
        ] {
            let n = read(&[("blksize", bad)]);
            assert_eq!(n.params.block_size, 512, "value {bad:?}");
            assert_eq!(n.oack, None, "value {bad:?}");
        }
    }

    #[test]
    fn timeout_in_range_overrides_the_server_timer() {
        let n = read(&[("timeout", "3")]);
        assert_eq!(n.params.retry_timeout, Some(Duration::from_secs(3)));
        assert_eq!(oack_pairs(&n), vec![pair("timeout", "3")]);
        for bad in ["0", "256", "x"] {
            assert_eq!(read(&[("timeout", bad)]).oack, None);
        }
    }

    #[test]
    fn utimeout_is_in_microseconds() {
        let n = read(&[("utimeout", "50000")]);
        assert_eq!(n.params.retry_timeout, Some(Duration::from_millis(50)));
        assert_eq!(read(&[("utimeout", "9999")]).oack, None);
    }

    #[test]
    fn tsize_on_a_read_answers_the_size() {
        let n = read(&[("tsize", "0")]);
        assert_eq!(oack_pairs(&n), vec![pair("tsize", "1234")]);
    }

    #[test]
    fn tsize_of_an_empty_file_is_left_out() {
        let n = negotiate(
            &opts(&[("tsize", "0"), ("blksize", "1024")]),
            &Config::default(),
            SizeQuery::Read(|| 0),
        )
        .unwrap();
        assert_eq!(oack_pairs(&n), vec![pair("blksize", "1024")]);
    }

    #[test]
    fn tsize_on_a_write_is_echoed_or_refused_over_the_limit() {
        let write = |v| {
            negotiate(
                &opts(&[("tsize", v)]),
                &Config::default(),
                SizeQuery::Write::<fn() -> u64> { max_file_size: 100 },
            )
        };
        let n = write("100").unwrap();
        assert_eq!(n.params.announced_size, Some(100));
        assert_eq!(oack_pairs(&n), vec![pair("tsize", "100")]);
        let refused = write("101").unwrap_err();
        assert_eq!(refused.code, ErrorCode::DiskFull);
    }

    #[test]
    fn windowsize_is_capped_by_the_server() {
        let n = read(&[("windowsize", "16")]);
        assert_eq!(n.params.window_size, 16);
        let n = read(&[("windowsize", "65535")]);
        assert_eq!(n.params.window_size, Config::default().max_window_size);
        assert_eq!(read(&[("windowsize", "0")]).oack, None);
    }

    #[test]
    fn unknown_options_are_left_out_and_known_ones_kept_in_order() {
        let n = read(&[("multicast", ""), ("tsize", "0"), ("blksize", "1024")]);
        assert_eq!(
            oack_pairs(&n),
            vec![pair("tsize", "1234"), pair("blksize", "1024")]
        );
    }

    #[test]
    fn the_first_of_a_repeated_option_wins() {
        let n = read(&[("blksize", "1024"), ("BlkSize", "2048")]);
        assert_eq!(n.params.block_size, 1024);
        assert_eq!(oack_pairs(&n), vec![pair("blksize", "1024")]);
    }

    #[test]
    fn blksize_eight_with_many_options_is_fine() {
        let many: Vec<(&str, &str)> = std::iter::once(("blksize", "8"))
            .chain(std::iter::repeat_n(("x-unknown", "1"), 500))
            .chain([("tsize", "0"), ("windowsize", "4"), ("timeout", "1")])
            .collect();
        let n = read(&many);
        assert_eq!(n.params.block_size, 8);
        assert_eq!(oack_pairs(&n).len(), 4);
    }
}
